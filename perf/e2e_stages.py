#!/usr/bin/env python3
"""Splits every slow record of a `sluice bench e2e --slow-log` run into where its time went,
with a `perf record -k mono -a -e sched:sched_switch,sched:sched_wakeup` taken during the
run (`perf script -F comm,pid,tid,cpu,time,event,trace --ns` output). Works for any broker:
the broker is only seen as the thread that wakes the harness's consumer thread.

Parts of a record's latency (received - intended):
- send: the harness's producer wrote the batch late (sent - intended);
- broker: batch written -> the consumer thread woken by a broker thread (or softirq), i.e.
  the answer holding the record reached the consumer's socket;
- consumer wait: that wake-up -> the consumer thread running (run-queue wait);
- consumer: running -> the record read (decode; usually microseconds).
A record is charged to its largest part. `--consumer-tid` defaults to the harness's first
spawned thread (the bench spawns its consumer threads before its producers).

    perf/e2e_stages.py RUN.slow.log PERF_SCRIPT.txt --broker-pid PID --harness-pid PID
        [--min-ms 3] [--consumer-tid TID]
"""

import argparse
import bisect
import collections
import re

WAKE = re.compile(r"comm=.*? pid=(\d+) prio=\d+ target_cpu=(\d+)")
SWITCH = re.compile(r"next_comm=.*? next_pid=(\d+)")
# Slow records closer than this in intended send time belong to one stall (as e2e_slow.py).
STALL_GAP_US = 2000.0


def load_slow(path):
    start, rows = 0.0, []
    with open(path) as f:
        for line in f:
            if line.startswith("# start_monotonic_ns"):
                start = int(line.split()[2]) / 1e9
            if line.startswith("#") or not line.strip():
                continue
            intended, sent, _, received, latency = line.split()
            if sent == "-":
                continue
            rows.append((float(intended), float(sent), float(received), float(latency)))
    return start, rows


def load_trace(path, consumer):
    """(wakeups of the consumer: [(t, waker_pid, waker_comm)], its switch-ins: [t]), and the
    pid -> tids of every thread seen."""
    wakes, runs, tids = [], [], collections.defaultdict(set)
    with open(path) as f:
        for line in f:
            p = line.split()
            k = next((j for j, x in enumerate(p) if x.startswith("[") and x.endswith("]")), None)
            if k is None or "/" not in p[k - 1]:
                continue
            pid, tid = p[k - 1].split("/")
            tids[pid].add(int(tid))
            t = float(p[k + 1].rstrip(":"))
            if p[k + 2] == "sched:sched_wakeup:":
                m = WAKE.search(line)
                if m and m.group(1) == consumer:
                    wakes.append((t, pid, " ".join(p[:k - 1])))
            elif p[k + 2] == "sched:sched_switch:":
                m = SWITCH.search(line)
                if m and m.group(1) == consumer:
                    runs.append(t)
    return wakes, runs, tids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slow")
    ap.add_argument("script")
    ap.add_argument("--broker-pid", required=True)
    ap.add_argument("--harness-pid", required=True)
    ap.add_argument("--consumer-tid")
    ap.add_argument("--min-ms", type=float, default=3.0)
    args = ap.parse_args()
    start, rows = load_slow(args.slow)
    consumer = args.consumer_tid
    if consumer is None:
        # First pass only to learn the harness's threads.
        _, _, tids = load_trace(args.script, "-")
        consumer = str(sorted(t for t in tids[args.harness_pid] if t > int(args.harness_pid))[0])
    wakes, runs, _ = load_trace(args.script, consumer)
    wakes.sort()
    runs.sort()
    wake_t = [w[0] for w in wakes]
    min_us = args.min_ms * 1000
    by_part = collections.Counter()
    stalls = collections.defaultdict(set)
    worst = collections.defaultdict(float)
    last_intended, stall = None, 0
    for intended, sent, received, latency in rows:
        if last_intended is not None and intended - last_intended > STALL_GAP_US:
            stall += 1
        last_intended = intended
        if latency < min_us:
            continue
        t_sent, t_recv = start + sent / 1e6, start + received / 1e6
        i = bisect.bisect_left(wake_t, t_sent)
        answer = None
        while i < len(wakes) and wakes[i][0] <= t_recv:
            if wakes[i][1] == args.broker_pid or wakes[i][2].startswith("ksoftirqd"):
                answer = wakes[i][0]
                break
            i += 1
        if answer is None:
            # No wake-up by the broker: the consumer was awake when the answer came.
            parts = {"send": sent - intended, "broker or consumer (no wake-up)": received - sent}
        else:
            j = bisect.bisect_left(runs, answer)
            ran = runs[j] if j < len(runs) and runs[j] <= t_recv else t_recv
            parts = {"send": sent - intended, "broker": (answer - t_sent) * 1e6,
                     "consumer wait": (ran - answer) * 1e6, "consumer": (t_recv - ran) * 1e6}
        part = max(parts, key=parts.get)
        by_part[part] += 1
        stalls[part].add(stall)
        worst[part] = max(worst[part], parts[part] / 1000)
    total = sum(by_part.values())
    print(f"consumer tid {consumer}; {total} records >= {args.min_ms} ms; charged to:")
    for part, n in by_part.most_common():
        print(f"  {part:34s} {n:5d} records in {len(stalls[part]):3d} stalls, "
              f"largest part {worst[part]:.2f} ms")


if __name__ == "__main__":
    main()
