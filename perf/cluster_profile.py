#!/usr/bin/env python3
"""Where a replication round goes (issue 17): one RF=3 acks=all produce on a local 3-node
cluster (as perf/cluster_bench.py starts it), with `perf record` on the leader and one
follower while it runs, and the leader's Fetch request count from /metrics (during the run
those are the two followers' replica fetches), so a CPU figure can be put per round.

Usage: perf/cluster_profile.py [--sluice target/release/sluice] [--seconds 12]
                               [--out /tmp/repl] [--no-perf] [--config node.toml]
                               [--switches]
Writes OUT-leader.data and OUT-follower.data (read them with `perf report -i FILE
--no-children --sort comm,symbol`) and prints one line: MB/s, p99, CPU-s/GB of the leader and
the followers, replica fetches per MB per follower and KiB per fetch, load average.
With --switches (instead of the CPU profiles) it records every `sched:sched_switch` on the
box over the same window and prints, for the leader and each follower, the switches out per
replica fetch round by thread (the shard thread, io_uring's io-wq workers `iou-wrk-*`, the
blocking pool) and kind (S: the thread went to sleep, a wake-up follows; R: preempted).
"""

import argparse
import collections
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time
import urllib.request

import cluster_bench as cb

PERF_FREQUENCY_HZ = 299
# The first seconds of a run are the producer's ramp-up: recorded from this far in.
PERF_START_DELAY_S = 2


def request_counts(admin_port):
    """(Fetch requests, all requests, request receives) the broker counted so far: its
    request-duration histograms' counts and `sluice_request_receives_total` (None before
    session 24's binaries, which do not count receives)."""
    url = f"http://127.0.0.1:{admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    fetches = requests = 0.0
    receives = None
    for line in text.splitlines():
        if line.startswith("sluice_request_duration_seconds_count") and 'stage="total"' in line:
            count = float(line.rsplit(" ", 1)[1])
            requests += count
            if 'api="Fetch"' in line:
                fetches += count
        elif line.startswith("sluice_request_receives_total"):
            receives = (receives or 0.0) + float(line.rsplit(" ", 1)[1])
    return fetches, requests, receives


def fetch_requests(admin_port):
    """The broker's Fetch requests so far (its request-duration histogram's count)."""
    return request_counts(admin_port)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=str(cb.ROOT / "target" / "release" / "sluice"))
    ap.add_argument("--seconds", type=int, default=12, help="length of the produce run")
    ap.add_argument("--out", default=str(pathlib.Path(tempfile.gettempdir()) / "repl"))
    ap.add_argument("--no-perf", action="store_true", help="only the counts, no perf record")
    ap.add_argument("--config", help="a TOML file every node's `sluice serve` reads")
    ap.add_argument("--serve-arg", action="append",
                    help="`sluice serve` arguments instead of those `sluice cluster local` adds")
    ap.add_argument("--switches", action="store_true",
                    help="count context switches per round by thread instead of profiling")
    args = ap.parse_args()
    if args.seconds <= PERF_START_DELAY_S + 2:
        ap.error(f"--seconds must be above {PERF_START_DELAY_S + 2}")

    cluster = cb.Cluster(pathlib.Path(args.sluice), 3, tempfile.gettempdir(), args.config,
                         serve_args=None if args.serve_arg is None
                         else [a for a in args.serve_arg if a])
    try:
        cluster.wait_ready()
        cb.create_topic(cluster, "repl", 3, ["min.insync.replicas=2", "sluice.durability=none"])
        leader, replicas, _ = cb.leader_and_replicas(cluster, "repl")
        followers = [n for n in replicas if n != leader]
        _, requests_before, receives_before = request_counts(cluster.admin[leader - 1])
        fetches_before = fetch_requests(cluster.admin[leader - 1])
        cpu_before = {n: cb.cpu_seconds(cluster.pid_of_node(n)) for n in replicas}
        bench = subprocess.Popen([
            args.sluice, "bench", "produce", "--bootstrap-server", cluster.bootstrap,
            "--topic", "repl", "--json", "--broker-pid", str(cluster.pid_of_node(leader)),
            "--record-size", "1024", "--batch-size", "16384", "--max-in-flight", "5",
            "--acks", "all", "--duration", f"{args.seconds}s"], stdout=subprocess.PIPE, text=True)
        recorders = []
        window_s = args.seconds - PERF_START_DELAY_S - 2
        if args.switches:
            time.sleep(PERF_START_DELAY_S)
            fetches_at_window = fetch_requests(cluster.admin[leader - 1])
            recorders.append(subprocess.Popen([
                "perf", "record", "-e", "sched:sched_switch", "-a",
                "-o", f"{args.out}-switches.data", "--", "sleep", str(window_s)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(window_s)
            fetches_in_window = fetch_requests(cluster.admin[leader - 1]) - fetches_at_window
        elif not args.no_perf:
            time.sleep(PERF_START_DELAY_S)
            for node, name in ((followers[0], "follower"), (leader, "leader")):
                recorders.append(subprocess.Popen([
                    "perf", "record", "-F", str(PERF_FREQUENCY_HZ), "--call-graph", "dwarf,8192",
                    "-p", str(cluster.pid_of_node(node)), "-o", f"{args.out}-{name}.data",
                    "--", "sleep", str(args.seconds - PERF_START_DELAY_S - 2)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        out, _ = bench.communicate(timeout=cb.BENCH_TIMEOUT_S)
        for r in recorders:
            r.wait()
        time.sleep(1.0)  # the followers fetch the tail
        report = json.loads(out)
        fetches = fetch_requests(cluster.admin[leader - 1]) - fetches_before
        gb = report["produced"]["batch_bytes"] / 1e9
        cpu = {n: (cb.cpu_seconds(cluster.pid_of_node(n)) - cpu_before[n]) / gb for n in replicas}
        per_follower = fetches / len(followers)
        print(f"{report['produced']['mb_per_s']:.1f} MB/s, p99 {report['latency']['p99_ms']:.2f} ms; "
              f"leader {cpu[leader]:.2f} CPU-s/GB, followers "
              + ", ".join(f"{cpu[n]:.2f}" for n in followers)
              + f"; {per_follower / (gb * 1e3):.1f} replica fetches per MB per follower, "
              f"{gb * 1e9 / max(per_follower, 1) / 1024:.1f} KiB per fetch; "
              f"load average {os.getloadavg()[0]:.2f}")
        _, requests_after, receives_after = request_counts(cluster.admin[leader - 1])
        if receives_after is not None:
            per_receive = ((requests_after - requests_before)
                           / max(receives_after - receives_before, 1))
            print(f"leader: {per_receive:.2f} requests per receive")
        if args.switches:
            roles = {cluster.pid_of_node(leader): "leader"}
            for i, n in enumerate(followers):
                roles[cluster.pid_of_node(n)] = f"follower{i + 1}"
            print_switches(f"{args.out}-switches.data", roles,
                           fetches_in_window / len(followers))
    finally:
        cluster.stop()


def thread_kind(comm):
    """The shard thread, an io-wq worker, or another (blocking pool, tokio, ...)."""
    if comm.startswith("iou-wrk"):
        return "io-wq"
    if comm.startswith("iou-sqp"):
        return "sqpoll"
    return comm


def print_switches(data, roles, rounds):
    """Switches out of each node's threads per replica fetch round (one follower's fetch)."""
    script = subprocess.run(
        ["perf", "script", "-i", data, "-F", "pid,tid,comm,trace"],
        capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    switch = re.compile(r"(\d+)/\d+\s+prev_comm=(.*?) prev_pid=\d+ prev_prio=\d+ prev_state=(\S)")
    for line in script.splitlines():
        m = switch.search(line)
        if m is None or int(m.group(1)) not in roles:
            continue
        counts[(roles[int(m.group(1))], thread_kind(m.group(2)), m.group(3))] += 1
    print(f"context switches out per replica round ({rounds:.0f} rounds per follower in the window):")
    for role in sorted(set(r for r, _, _ in counts)):
        items = sorted(((k, s, c) for (r, k, s), c in counts.items() if r == role),
                       key=lambda x: -x[2])
        total = sum(c for _, _, c in items)
        parts = ", ".join(f"{k} {s} {c / rounds:.2f}" for k, s, c in items)
        print(f"  {role}: {total / rounds:.2f} ({parts})")


if __name__ == "__main__":
    main()
