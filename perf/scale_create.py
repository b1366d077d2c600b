#!/usr/bin/env python3
"""One partition count of the scale run, step by step, for profiling (issue 19 point 1):
creates COUNT partitions (perf/scale.py's topics of 10 in CreateTopics of 100 topics) on a
fresh broker and prints create s and broker CPU-s, clean stop s, restart after the clean
stop, restart after SIGKILL and idle RSS. The broker's pid is written to WORK/sluice-scale.pid
so `perf record -p` can attach during creation.

  .venv/bin/python perf/scale_create.py target/release/sluice 100000 [WORK]
"""
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402

binary, count = sys.argv[1], int(sys.argv[2])
work = sys.argv[3] if len(sys.argv) > 3 else "/tmp"
data = os.path.join(work, f"sluice-scale-data-{count}")
shutil.rmtree(data, ignore_errors=True)
b = scale.Broker(binary, data, os.path.join(work, f"sluice-scale-broker-{count}.log"))
print("ready s", round(b.start(), 2), "pid", b.proc.pid, flush=True)
with open(os.path.join(work, "sluice-scale.pid"), "w") as f:
    f.write(str(b.proc.pid))
c0, t0 = b.cpu_seconds(), time.monotonic()
scale.create_partitions(b, count)
print("create s", round(time.monotonic() - t0, 1), "CPU-s", round(b.cpu_seconds() - c0, 1), flush=True)
time.sleep(5)
print("idle RSS MiB", round(b.rss_mib()), flush=True)
print("clean stop s", round(b.stop(signal.SIGTERM), 1), flush=True)
print("restart (clean) s", round(b.start(), 1), flush=True)
b.stop(signal.SIGKILL)
print("restart (SIGKILL) s", round(b.start(), 1), flush=True)
b.stop(signal.SIGTERM)
shutil.rmtree(data, ignore_errors=True)
