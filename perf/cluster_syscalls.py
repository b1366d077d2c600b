#!/usr/bin/env python3
"""What the RF=3 leader does per replica fetch, counted (issue 17, session 23): one RF=3
acks=all produce on a local 3-node cluster (as perf/cluster_bench.py starts it), and over a
window of it every system call, io_uring submission (by opcode) and context switch of the
leader, divided by the leader's Fetch requests in the same window (the two followers'
replica fetches). Counts, not samples: the load of a shared box moves them little, unlike
CPU time.

Usage: perf/cluster_syscalls.py --sluice BIN [--seconds 10] [--out /tmp/syscalls.data]
Prints MB/s, the leader's CPU per fetch (its produce work included), then one line per
(kind, what, thread) with its count per replica fetch, largest first.
"""

import argparse
import collections
import json
import pathlib
import re
import subprocess
import tempfile
import time

import cluster_bench as cb
from cluster_profile import fetch_requests

# x86-64 numbers of the calls a broker's shard makes on this path.
SYSCALL_NAMES = {0: "read", 1: "write", 3: "close", 44: "sendto", 45: "recvfrom",
                 54: "setsockopt", 72: "fcntl", 98: "getrusage", 202: "futex",
                 228: "clock_gettime", 275: "splice", 296: "pwritev", 426: "io_uring_enter",
                 451: "cachestat"}
# The produce's first seconds are its ramp-up; counting starts after them, and stops
# before the producer's last seconds.
START_DELAY_S = 2
END_MARGIN_S = 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--seconds", type=int, default=10, help="length of the produce run")
    ap.add_argument("--out", default=str(pathlib.Path(tempfile.gettempdir()) / "syscalls.data"))
    args = ap.parse_args()
    if args.seconds <= START_DELAY_S + END_MARGIN_S:
        ap.error(f"--seconds must be above {START_DELAY_S + END_MARGIN_S}")
    cluster = cb.Cluster(pathlib.Path(args.sluice), 3, tempfile.gettempdir(), None)
    try:
        cluster.wait_ready()
        cb.create_topic(cluster, "repl", 3, ["min.insync.replicas=2", "sluice.durability=none"])
        leader, _, _ = cb.leader_and_replicas(cluster, "repl")
        pid = cluster.pid_of_node(leader)
        bench = subprocess.Popen([
            args.sluice, "bench", "produce", "--bootstrap-server", cluster.bootstrap,
            "--topic", "repl", "--json", "--record-size", "1024", "--batch-size", "16384",
            "--max-in-flight", "5", "--acks", "all", "--duration", f"{args.seconds}s"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(START_DELAY_S)
        fetches_before = fetch_requests(cluster.admin[leader - 1])
        cpu_before = cb.cpu_seconds(pid)
        window_s = args.seconds - START_DELAY_S - END_MARGIN_S
        subprocess.run([
            "perf", "record", "-e", "raw_syscalls:sys_enter", "-e", "io_uring:io_uring_submit_req",
            "-e", "sched:sched_switch", "-p", str(pid), "-o", args.out, "--", "sleep",
            str(window_s)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        fetches = fetch_requests(cluster.admin[leader - 1]) - fetches_before
        cpu = cb.cpu_seconds(pid) - cpu_before
        report = json.loads(bench.communicate(timeout=cb.BENCH_TIMEOUT_S)[0])
        print(f"{report['produced']['mb_per_s']:.1f} MB/s; {fetches:.0f} replica fetches in "
              f"{window_s} s; leader {1e6 * cpu / max(fetches, 1):.1f} us CPU per fetch "
              "(its produce work included)")
        print_counts(args.out, max(fetches, 1))
    finally:
        cluster.stop()


def print_counts(data, fetches):
    script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for line in script.splitlines():
        thread = line.split()[0][:12] if line.split() else "?"
        if m := re.search(r"sys_enter:\s+NR (\d+)", line):
            nr = int(m.group(1))
            counts[("syscall", SYSCALL_NAMES.get(nr, str(nr)), thread)] += 1
        elif m := re.search(r"opcode (\w+)", line):
            counts[("io_uring", m.group(1), thread)] += 1
        elif m := re.search(r"prev_state=(\S+)", line):
            counts[("switch", m.group(1), thread)] += 1
    for (kind, what, thread), n in counts.most_common(24):
        print(f"  {kind:8} {what:16} {thread:12} {n / fetches:6.2f} per replica fetch")


if __name__ == "__main__":
    main()
