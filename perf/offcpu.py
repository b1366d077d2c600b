#!/usr/bin/env python3
"""Where a broker's threads spend a benchmark: on CPU, waiting for a CPU (runnable but not
running: the run-queue delay a loaded machine adds to every tail), or off CPU (sleeping or
blocked). Samples /proc/PID/task/*/schedstat and the per-thread context-switch counts before
and after a command, and prints one line per thread name (io-wq workers and pool threads
summed), so a tail can be put on the shard thread, on io-wq workers or on CPU contention.

Usage: perf/offcpu.py PID -- COMMAND...   (e.g. a `sluice bench` run against that broker)
"""

import re
import subprocess
import sys
import time


def snapshot(pid):
    out = {}
    for task in __import__("os").listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                run_ns, wait_ns, slices = (int(x) for x in f.read().split())
            vol = invol = 0
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol = int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        out[task] = (comm, run_ns, wait_ns, slices, vol, invol)
    return out


def group(comm):
    # iou-wrk-1234, tokio-runtime-w, sluice-shard-0 ...: drop the per-thread number so
    # workers of one kind add up.
    return re.sub(r"[-_]?\d+$", "", comm) or comm


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    before = snapshot(pid)
    started = time.monotonic()
    res = subprocess.run(sys.argv[3:], capture_output=True, text=True)
    elapsed = time.monotonic() - started
    after = snapshot(pid)
    sums = {}
    for task, (comm, run, wait, slices, vol, invol) in after.items():
        b = before.get(task, (comm, 0, 0, 0, 0, 0))
        g = sums.setdefault(group(comm), [0, 0, 0, 0, 0, 0])
        g[0] += 1
        g[1] += run - b[1]
        g[2] += wait - b[2]
        g[3] += slices - b[3]
        g[4] += vol - b[4]
        g[5] += invol - b[5]
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr[-2000:])
    print(f"\nthreads of pid {pid} over {elapsed:.1f} s "
          "(run-queue wait = runnable but not on a CPU)")
    print(f"{'thread':<22}{'n':>4}{'on-CPU s':>10}{'runq wait s':>13}{'wait/slice us':>15}"
          f"{'slices':>9}{'vol cs':>9}{'invol cs':>10}")
    for name, (n, run, wait, slices, vol, invol) in sorted(sums.items(), key=lambda kv: -kv[1][1]):
        if run == 0 and wait == 0:
            continue
        per = wait / slices / 1e3 if slices else 0.0
        print(f"{name:<22}{n:>4}{run / 1e9:>10.2f}{wait / 1e9:>13.3f}{per:>15.1f}"
              f"{slices:>9}{vol:>9}{invol:>10}")
    sys.exit(res.returncode)


if __name__ == "__main__":
    main()
