#!/usr/bin/env python3
"""What a follower's replication round costs, counted rather than sampled (issue 17,
decision 0012 session 23): one RF=3 acks=all produce per arm on a local 3-node cluster (as
perf/cluster_bench.py starts it), arms alternating, with `perf stat` attached to both
followers for a window in the middle of the run. Counts that load moves little
(instructions, syscalls, io-wq punts, context switches) are put per replica fetch round
(the leader's Fetch request count from /metrics, halved) and per MB; CPU-s/GB beside them.

Usage (with the Python that has confluent-kafka, e.g. .venv/bin/python):
       perf/follower_cost.py --arm base=BIN --arm new=BIN[,CONFIG] [--turns 3] [--seconds 10]
                             [--record PREFIX]
Prints one row per run and the medians per arm as Markdown. No hardware counters on this
VM, so no instruction counts: task-clock (the followers' run time) per round instead.
With --record it also runs `perf record` on the first follower over the same window
(PREFIX-ARM-TURN.data); FOLLOWER_PERF_HZ (default 1999), FOLLOWER_PERF_CG (default "-g";
"--call-graph dwarf,16384" for user-space stacks) and FOLLOWER_PERF_EVENTS (e.g. "-e
raw_syscalls:sys_enter" to count syscalls by number) change what it records.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import cluster_bench as cb
from cluster_profile import fetch_requests

# The first seconds of a run are the producer's ramp-up.
START_DELAY_S = 2
EVENTS = [
    "task-clock", "context-switches", "page-faults", "raw_syscalls:sys_enter",
    "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_pwritev",
    "syscalls:sys_enter_sync_file_range", "io_uring:io_uring_queue_async_work",
]


def perf_stat(pids, seconds, out):
    return subprocess.Popen(
        ["perf", "stat", "-x", ",", "--no-big-num", "-e", ",".join(EVENTS), "-o", out,
         "-p", ",".join(str(p) for p in pids), "--", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_stat(out):
    counts = {}
    for line in pathlib.Path(out).read_text().splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].replace(".", "").isdigit():
            counts[parts[2]] = float(parts[0])
    return counts


def one_run(binary, config, seconds, workdir, record=None):
    cluster = cb.Cluster(pathlib.Path(binary), 3, workdir, config,
                         serve_args=cb.local_cluster_serve_args(binary))
    try:
        cluster.wait_ready()
        cb.create_topic(cluster, "repl", 3, ["min.insync.replicas=2", "sluice.durability=none"])
        leader, replicas, _ = cb.leader_and_replicas(cluster, "repl")
        followers = [n for n in replicas if n != leader]
        pids = [cluster.pid_of_node(n) for n in followers]
        bench = subprocess.Popen([
            binary, "bench", "produce", "--bootstrap-server", cluster.bootstrap,
            "--topic", "repl", "--json", "--broker-pid", str(cluster.pid_of_node(leader)),
            "--record-size", "1024", "--batch-size", "16384", "--max-in-flight", "5",
            "--acks", "all", "--duration", f"{seconds}s"], stdout=subprocess.PIPE, text=True)
        time.sleep(START_DELAY_S)
        window_s = seconds - START_DELAY_S - 2
        fetches_before = fetch_requests(cluster.admin[leader - 1])
        cpu_before = sum(cb.cpu_seconds(p) for p in pids)
        bytes_before = [follower_log_bytes(cluster, n) for n in followers]
        with tempfile.NamedTemporaryFile(suffix=".stat", dir=workdir) as stat_out:
            stat = perf_stat(pids, window_s, stat_out.name)
            if record:
                # A profile of the first follower over the same window (frame-pointer call
                # graphs: the kernel's are whole, enough to split it by syscall).
                subprocess.run(["perf", "record", "-F", os.environ.get("FOLLOWER_PERF_HZ", "1999"), *os.environ.get("FOLLOWER_PERF_CG", "-g").split(),
                                *os.environ.get("FOLLOWER_PERF_EVENTS", "").split(), "-p", str(pids[0]),
                                "-o", record, "--", "sleep", str(window_s)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=window_s + 60)
            stat.wait(timeout=window_s + 60)
            cpu = sum(cb.cpu_seconds(p) for p in pids) - cpu_before
            fetches = fetch_requests(cluster.admin[leader - 1]) - fetches_before
            copied = sum(follower_log_bytes(cluster, n) - b
                         for n, b in zip(followers, bytes_before))
            counts = read_stat(stat_out.name)
        out, _ = bench.communicate(timeout=cb.BENCH_TIMEOUT_S)
    finally:
        cluster.stop()
    report = json.loads(out)
    rounds = max(fetches, 1)  # both followers' rounds
    mb = max(copied, 1) / 1e6
    row = {
        "MB/s": report["produced"]["mb_per_s"],
        "CPU-s/GB": cpu / (mb / 1e3),
        "KiB/round": copied / rounds / 1024,
    }
    row["task-clock us/round"] = counts.get("task-clock", 0) * 1e3 / rounds
    row["switches/round"] = counts.get("context-switches", 0) / rounds
    row["faults/round"] = counts.get("page-faults", 0) / rounds
    row["syscalls/round"] = counts.get("raw_syscalls:sys_enter", 0) / rounds
    row["uring_enter/round"] = counts.get("syscalls:sys_enter_io_uring_enter", 0) / rounds
    row["pwritev/round"] = counts.get("syscalls:sys_enter_pwritev", 0) / rounds
    row["io-wq punts/round"] = counts.get("io_uring:io_uring_queue_async_work", 0) / rounds
    row["load"] = os.getloadavg()[0]
    return row


def follower_log_bytes(cluster, node):
    """Bytes of the topic's segment files in a node's data directory."""
    total = 0
    for path in (cluster.dir / f"node-{node}" / "data").rglob("*.log"):
        if "repl" in str(path.parent.name):
            total += path.stat().st_size
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arm", action="append", required=True, help="NAME=BIN[,CONFIG]")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--record", help="also `perf record` one follower to RECORD-ARM-TURN.data")
    args = ap.parse_args()
    arms = []
    for spec in args.arm:
        name, rest = spec.split("=", 1)
        binary, _, config = rest.partition(",")
        arms.append((name, binary, config or None))
    rows = []
    for turn in range(1, args.turns + 1):
        for name, binary, config in arms:
            record = f"{args.record}-{name}-{turn}.data" if args.record else None
            row = one_run(binary, config, args.seconds, args.workdir, record)
            rows.append((name, turn, row))
            print(f"{name} turn {turn}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()),
                  flush=True)
    keys = list(rows[0][2].keys())
    print("| arm | turn | " + " | ".join(keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for name, turn, row in rows:
        print(f"| {name} | {turn} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    for name, _, _ in arms:
        mine = [r for n, _, r in rows if n == name]
        print(f"| **{name}** | median | "
              + " | ".join(f"{statistics.median(r[k] for r in mine):.2f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
