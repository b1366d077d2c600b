#!/usr/bin/env python3
"""Is RF=3 acks=all latency-bound or CPU-bound on this box, and where does an acks=all round
go? (issue 17, session 22)

Starts the 3-node cluster of perf/cluster_bench.py (one core per node), runs one RF=3
acks=all produce (min.insync.replicas=2, `sluice.durability=none`, 1 KiB records, 16 KiB
batches, 5 in flight) per binary, binaries alternating, and reads around each run:

  * the box's CPU use (/proc/stat: busy share of every core) against its core count;
  * each broker's and the bench client's CPU time, and each broker's time spent *runnable but
    waiting for a core* (/proc/PID/task/*/schedstat, field 2): the scheduling delay a round
    pays on a box where four processes share two cores;
  * each broker's shard loop busy ratio (`sluice_shard_busy_seconds_total` against idle);
  * the leader's request-duration histograms (sum / count, so means): Produce (the acks=all
    wait is inside it) and Fetch (during the run, the two followers' replica fetches: their
    time parked at the leader plus the read); a follower's round is the run's duration over
    its fetches, and what is not at the leader is transit plus the follower's own work.

Usage: perf/cluster_stages.py --sluice NAME=BIN[,CONFIG[,SERVE_ARG...]] [--sluice ...]
                              [--rounds 3] [--duration 10] [--node-cores '0-0;1-1;0-0']
Prints one row per run and medians per binary.
"""

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import json

import cluster_bench as cb

TICKS = os.sysconf("SC_CLK_TCK")


def box_ticks():
    """(busy, total) jiffies over every core, from /proc/stat's first line."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def schedstat(pid):
    """(run ns, runnable-waiting ns) summed over every thread of a process."""
    run = wait = 0
    for path in pathlib.Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            a, b, _ = path.read_text().split()
        except (OSError, ValueError):  # a thread that ended between listing and reading
            continue
        run += int(a)
        wait += int(b)
    return run, wait


def metrics(admin_port):
    """Every unlabelled-or-labelled sample of /metrics as {line key: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


def summed(m, name, *labels):
    return sum(v for k, v in m.items()
               if k.startswith(name + "{") or k == name
               if all(lbl in k for lbl in labels))


def delta(before, after, name, *labels):
    return summed(after, name, *labels) - summed(before, name, *labels)


def mean_ms(before, after, api, stage):
    base = "sluice_request_duration_seconds"
    labels = (f'api="{api}"', f'stage="{stage}"')
    n = delta(before, after, base + "_count", *labels)
    s = delta(before, after, base + "_sum", *labels)
    return (s / n * 1000 if n else float("nan")), n


def one_run(binary, duration, workdir, config, node_cores, serve_args):
    cluster = cb.Cluster(pathlib.Path(binary), 3, workdir, config, node_cores, serve_args)
    try:
        cluster.wait_ready()
        topic = "stages"
        cb.create_topic(cluster, topic, 3, ["min.insync.replicas=2", "sluice.durability=none"])
        leader, replicas, _ = cb.leader_and_replicas(cluster, topic)
        followers = [n for n in replicas if n != leader]
        nodes = [leader] + followers
        pids = {n: cluster.pid_of_node(n) for n in nodes}
        m0 = {n: metrics(cluster.admin[n - 1]) for n in nodes}
        s0 = {n: schedstat(pids[n]) for n in nodes}
        c0 = {n: cb.cpu_seconds(pids[n]) for n in nodes}
        b0 = box_ticks()
        t0 = time.monotonic()
        cmd = [str(binary), "bench", "produce", "--bootstrap-server", cluster.bootstrap,
               "--topic", topic, "--json", "--broker-pid", str(pids[leader]),
               "--record-size", "1024", "--batch-size", "16384", "--max-in-flight", "5",
               "--acks", "all", "--duration", f"{duration}s"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The client's own runnable-wait: read while it runs (it is gone after wait4).
        client_wait = [0]
        def watch():
            while proc.poll() is None:
                try:
                    client_wait[0] = schedstat(proc.pid)[1]
                except OSError:
                    pass
                time.sleep(0.2)
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        try:
            out, err = proc.communicate(timeout=cb.BENCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        elapsed = time.monotonic() - t0
        b1 = box_ticks()
        m1 = {n: metrics(cluster.admin[n - 1]) for n in nodes}
        s1 = {n: schedstat(pids[n]) for n in nodes}
        c1 = {n: cb.cpu_seconds(pids[n]) for n in nodes}
        w.join(timeout=1)
        if proc.returncode != 0:
            raise RuntimeError(err.strip())
        rep = json.loads(out)
        # RF=1 acks=1 on the same cluster, for the ratio (its leader is wherever placement
        # puts it, as in perf/cluster_bench.py).
        cb.create_topic(cluster, "stages-rf1", 1, [])
        rf1_leader, _, _ = cb.leader_and_replicas(cluster, "stages-rf1")
        rf1 = cb.bench(cluster, "produce", "stages-rf1", cluster.pid_of_node(rf1_leader),
                       ["--record-size", "1024", "--batch-size", "16384", "--max-in-flight",
                        "5", "--acks", "1", "--duration", f"{duration}s"])
    finally:
        cluster.stop()
    row = {"mb_per_s": rep["produced"]["mb_per_s"], "p50": rep["latency"]["p50_ms"],
           "p99": rep["latency"]["p99_ms"], "elapsed": elapsed, "leader_node": leader,
           "rf1_mb_per_s": rf1["produced"]["mb_per_s"]}
    row["ratio"] = row["mb_per_s"] / row["rf1_mb_per_s"]
    row["box_cores"] = (b1[0] - b0[0]) / (b1[1] - b0[1]) * os.cpu_count()
    row["client_cores"] = rep["harness_cpu_s"] / elapsed
    for role, n in zip(["leader", "f1", "f2"], nodes):
        row[f"{role}_cores"] = (c1[n] - c0[n]) / elapsed
        row[f"{role}_rqwait_ms_per_s"] = (s1[n][1] - s0[n][1]) / 1e6 / elapsed
        busy = delta(m0[n], m1[n], "sluice_shard_busy_seconds_total")
        idle = delta(m0[n], m1[n], "sluice_shard_idle_seconds_total")
        row[f"{role}_loop_busy"] = busy / (busy + idle) if busy + idle else float("nan")
    row["client_rqwait_ms_per_s"] = client_wait[0] / 1e6 / elapsed
    ml0, ml1 = m0[leader], m1[leader]
    row["produce_total_ms"], produces = mean_ms(ml0, ml1, "Produce", "total")
    row["produce_queue_ms"], _ = mean_ms(ml0, ml1, "Produce", "queue")
    row["fetch_total_ms"], fetches = mean_ms(ml0, ml1, "Fetch", "total")
    row["fetch_queue_ms"], _ = mean_ms(ml0, ml1, "Fetch", "queue")
    gb = rep["produced"]["batch_bytes"] / 1e9
    row["kib_per_fetch"] = gb * 1e6 / (fetches / 2) / 1.024 if fetches else float("nan")
    row["produces"] = produces
    # Each follower's round: its share of the fetches over the run.
    row["round_ms"] = elapsed * 1000 / (fetches / 2) if fetches else float("nan")
    row["outside_leader_ms"] = row["round_ms"] - row["fetch_total_ms"]
    return row


COLS = ["leader_node", "rf1_mb_per_s", "mb_per_s", "ratio", "p50", "p99", "box_cores", "client_cores", "leader_cores", "f1_cores",
        "f2_cores", "leader_loop_busy", "f1_loop_busy", "leader_rqwait_ms_per_s",
        "f1_rqwait_ms_per_s", "f2_rqwait_ms_per_s", "client_rqwait_ms_per_s",
        "produce_total_ms", "fetch_total_ms", "round_ms", "outside_leader_ms", "kib_per_fetch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", action="append", required=True,
                    help="NAME=BIN[,CONFIG[,SERVE_ARG...]] (CONFIG may be empty; SERVE_ARGs "
                         "replace `sluice cluster local`'s, '-' for none)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--node-cores", help="each node's --cores, ';'-separated, e.g. '0-0;1-1'")
    args = ap.parse_args()
    arms = [cb.parse_arm(a) for a in args.sluice]
    rows = []
    for rnd in range(args.rounds):
        for name, binary, config, serve_args in arms:
            r = one_run(binary, args.duration, args.workdir, config,
                        args.node_cores.split(';') if args.node_cores else None, serve_args)
            r["arm"], r["round"] = name, rnd + 1
            rows.append(r)
            print(f"{name} round {rnd + 1}: " + " ".join(f"{c}={r[c]:.3g}" for c in COLS),
                  file=sys.stderr)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average at the end: {' '.join(load)}")
    print("| arm | round | " + " | ".join(COLS) + " |")
    print("|---|---:|" + "---:|" * len(COLS))
    for r in rows:
        print(f"| {r['arm']} | {r['round']} | " + " | ".join(f"{r[c]:.3g}" for c in COLS) + " |")
    for name, *_ in arms:
        mine = [r for r in rows if r["arm"] == name]
        print(f"| **{name}** | median | " +
              " | ".join(f"{statistics.median(r[c] for r in mine):.3g}" for c in COLS) + " |")


if __name__ == "__main__":
    main()
