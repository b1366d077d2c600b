#!/usr/bin/env python3
"""The broker's Fetch request stages from a /metrics dump (Prometheus buckets): per stage,
the mean and how many requests took over 1 ms and over 2.5 ms, so a catch-up fetch's tail
can be put on the broker (processing, or the whole request with its send) or outside it
(perf/fetch_tail.sh, issue 22).  Usage: perf/fetch_stages.py METRICS_FILE"""
import re
import sys

buckets, sums = {}, {}
pattern = re.compile(
    r'sluice_request_duration_seconds_(bucket|sum|count)\{api="Fetch",stage="(\w+)"'
    r'(?:,le="([^"]+)")?\} (\S+)')
for line in open(sys.argv[1]):
    m = pattern.match(line)
    if not m:
        continue
    kind, stage, le, value = m.groups()
    if kind == "bucket":
        buckets.setdefault(stage, {})[le] = float(value)
    else:
        sums.setdefault(stage, {})[kind] = float(value)
out = []
for stage in ("processing", "total"):
    if stage not in buckets:
        continue
    n = buckets[stage].get("+Inf", 0)
    over_1ms = n - buckets[stage].get("0.001", n)
    over_2_5ms = n - buckets[stage].get("0.0025", n)
    mean_ms = sums[stage]["sum"] / max(sums[stage]["count"], 1) * 1e3
    out.append(f"{stage} mean {mean_ms:.3f} ms, >1 ms {int(over_1ms)}, >2.5 ms {int(over_2_5ms)} of {int(n)}")
print("; ".join(out))
