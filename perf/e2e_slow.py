#!/usr/bin/env python3
"""Summarises a `sluice bench e2e --slow-log` file: groups slow records into stalls (records
less than 2 ms apart in intended send time), and says for each stall's worst record where
its time went: `send` (the harness's producer wrote its batch late), `fetch` (sent on time,
answered or read late). Prints the stalls at least --min-ms long, the counts of records
over --min-ms by cause, how many were answered --min-ms or more after their batch was written
although the consumer's fetch was already waiting, and the start of each stall on
CLOCK_MONOTONIC, to look up in `perf sched timehist` of a `perf sched record -k mono` taken
during the run. That count is not the broker's share alone: it also holds records the broker
answered at once but the harness's consumer thread read late, waiting for a CPU (session 23:
most of them); `perf/e2e_stages.py` splits the two with a scheduler trace.

    perf/e2e_slow.py RUN.slow.log [--min-ms 3]
"""

import argparse

# Slow records closer than this in intended send time belong to one stall.
STALL_GAP_US = 2000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--min-ms", type=float, default=3.0)
    args = ap.parse_args()
    start_mono_ns = 0
    rows = []
    with open(args.log) as f:
        for line in f:
            if line.startswith("# start_monotonic_ns"):
                start_mono_ns = int(line.split()[2])
            if line.startswith("#") or not line.strip():
                continue
            intended, sent, fetch_sent, received, latency = line.split()
            sent = None if sent == "-" else float(sent)
            rows.append((float(intended), sent, float(fetch_sent), float(received),
                         float(latency)))
    stalls, current = [], []
    for row in rows:
        if current and row[0] - current[-1][0] > STALL_GAP_US:
            stalls.append(current)
            current = []
        current.append(row)
    if current:
        stalls.append(current)
    min_us = args.min_ms * 1000
    by_cause = {"send": 0, "fetch": 0}
    for intended, sent, _, _, latency in rows:
        if latency >= min_us:
            late_send = sent is not None and sent - intended > latency / 2
            by_cause["send" if late_send else "fetch"] += 1
    # Records read long after their batch was written although the consumer's fetch was
    # already waiting for them (its long poll should answer at once): the broker answered
    # late, or the consumer thread ran late (perf/e2e_stages.py tells them apart).
    waited = sum(1 for intended, sent, fetch_sent, received, _ in rows
                 if sent is not None and fetch_sent <= sent and received - sent >= min_us)
    print(f"{len(rows)} records >= 1 ms in {len(stalls)} stalls; records >= {args.min_ms} ms "
          f"by cause: {by_cause}; answered >= {args.min_ms} ms after their batch was written "
          f"to a fetch already waiting: {waited}")
    print("start_s   monotonic_s        worst_ms  records  batch_sent+ms  fetch_sent+ms  "
          "received+ms  cause")
    for stall in stalls:
        intended, sent, fetch_sent, received, latency = max(stall, key=lambda r: r[4])
        if latency < min_us:
            continue
        rel = lambda t: "-" if t is None else f"{(t - intended) / 1000:.3f}"
        late_send = sent is not None and sent - intended > latency / 2
        mono = (start_mono_ns + intended * 1000) / 1e9
        print(f"{intended / 1e6:8.4f}  {mono:.6f}  {latency / 1000:8.3f}  {len(stall):7d}  "
              f"{rel(sent):>13}  {rel(fetch_sent):>13}  {rel(received):>11}  "
              f"{'send' if late_send else 'fetch'}")


if __name__ == "__main__":
    main()
