#!/usr/bin/env python3
"""Log cleaner figures (issue 19 point 4): how fast the cleaner compacts a dirty log, whether
it keeps to its I/O budget (`[log] cleaner_io_max_bytes_per_second`, Kafka's
log.cleaner.io.max.bytes.per.second), and the produce p99 of another topic with and
without the cleaner running.

On one fresh broker (release build, `[log] cleaner_backoff_ms = 200` so a pass starts soon
after its partition becomes cleanable):
  1. `cdc`, one partition, cleanup.policy=compact, segment.bytes 16 MiB, produced KEYS keys
     x VERSIONS versions of 1 KiB values (keyed, acks=1) with min.compaction.lag.ms one hour,
     so nothing is cleanable yet;
  2. `load`, one partition, produced at a fixed RATE records/s of 1 KiB, acks=all, in back-to-
     back CHUNK-second `sluice bench` runs: BASELINE chunks with the cleaner idle, then
     min.compaction.lag.ms of `cdc` is set to 0 (IncrementalAlterConfigs) and chunks go on
     until the cleaner has been idle for two chunks. A chunk counts as "cleaning" when the
     cleaner read bytes during it (`sluice_cleaner_read_bytes_total` before and after);
  3. prints the medians of the chunks' p99 and p99.9 for idle and cleaning chunks, the
     cleaner's bytes read / written / reclaimed, its pass seconds, MB/s of dirty log cleaned
     (the dirty bytes of `cdc` over the wall time from the config change to the end of the
     last pass) and its read+write rate against the budget.

  .venv/bin/python perf/cleaner.py target/release/sluice [--keys 10000] [--versions 100]
      [--rate 5000] [--chunk 3] [--baseline 4] [--io-budget BYTES_PER_S]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, ResourceType)

CLEAN_TIMEOUT_S = 600
METRICS = ("sluice_cleaner_passes_total", "sluice_cleaner_read_bytes_total",
           "sluice_cleaner_written_bytes_total", "sluice_cleaner_reclaimed_bytes_total",
           "sluice_cleaner_pass_seconds_total")


def cleaner_metrics(broker):
    """Each cleaner counter summed over shards."""
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = dict.fromkeys(METRICS, 0.0)
    for line in text.splitlines():
        m = re.match(r"^(sluice_cleaner_\w+)(\{[^}]*\})?\s+([0-9.eE+-]+)$", line)
        if m and m.group(1) in out:
            out[m.group(1)] += float(m.group(3))
    return out


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if f.endswith(".log"))


def bench(binary, broker, args, *extra, topic="load"):
    cmd = [binary, "bench", "produce", "--topic", topic, "--partitions", "1",
           "--record-size", "1024", "--bootstrap-server", broker.bootstrap(),
           "--broker-pid", str(broker.proc.pid), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def load_chunk(binary, broker, args):
    report = bench(binary, broker, args, "--acks", "all", "--rate", str(args.rate),
                   "--duration", f"{args.chunk}s")
    lat = report["latency"]
    return lat["p99_ms"], lat["p999_ms"], report["produced"]["records_per_s"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=4)
    parser.add_argument("--io-budget", type=int, default=None)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-cleaner-")
    config = os.path.join(work, "sluice.toml")
    with open(config, "w") as f:
        f.write("[log]\ncleaner_backoff_ms = 200\n")
        if args.io_budget:
            f.write(f"cleaner_io_max_bytes_per_second = {args.io_budget}\n")
    data = os.path.join(work, "data")
    broker = scale.Broker(args.binary, data, os.path.join(work, "broker.log"),
                          ["--config", config])
    try:
        broker.start()
        bench(args.binary, broker, args, "--acks", "1", "--keys", str(args.keys),
              "--records", str(args.keys * args.versions),
              "--topic-config", "cleanup.policy=compact",
              "--topic-config", "segment.bytes=16777216",
              "--topic-config", "min.compaction.lag.ms=3600000", topic="cdc")
        bench(args.binary, broker, args, "--acks", "all", "--records", "1000")  # creates `load`
        dirty = dir_bytes(os.path.join(data, "cdc-0"))
        chunks = []  # (phase, p99, p999, records/s, cleaner read bytes in the chunk)
        for _ in range(args.baseline):
            before = cleaner_metrics(broker)
            p99, p999, rps = load_chunk(args.binary, broker, args)
            read = cleaner_metrics(broker)["sluice_cleaner_read_bytes_total"] - \
                before["sluice_cleaner_read_bytes_total"]
            chunks.append(("idle", p99, p999, rps, read))
        start_metrics = cleaner_metrics(broker)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap()})
        resource = ConfigResource(ResourceType.TOPIC, "cdc", incremental_configs=[
            ConfigEntry("min.compaction.lag.ms", "0",
                        incremental_operation=AlterConfigOpType.SET)])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result()
        enabled_at = time.monotonic()
        last_active_end, idle_after = enabled_at, 0
        # A pass reports its bytes when it ends: until the first pass has ended, every chunk
        # is taken as cleaning (the cleaner looks for work every 200 ms); after that, a chunk
        # is cleaning when a pass ended or read bytes during it.
        while idle_after < 2 and time.monotonic() - enabled_at < CLEAN_TIMEOUT_S:
            before = cleaner_metrics(broker)
            p99, p999, rps = load_chunk(args.binary, broker, args)
            after = cleaner_metrics(broker)
            read = after["sluice_cleaner_read_bytes_total"] - before["sluice_cleaner_read_bytes_total"]
            ended = after["sluice_cleaner_passes_total"] > before["sluice_cleaner_passes_total"]
            first_pending = after["sluice_cleaner_passes_total"] == start_metrics[
                "sluice_cleaner_passes_total"]
            busy = read > 0 or ended or first_pending
            chunks.append(("cleaning" if busy else "idle", p99, p999, rps, read))
            if busy:
                last_active_end, idle_after = time.monotonic(), 0
            else:
                idle_after += 1
        end_metrics = cleaner_metrics(broker)
        cleaned = dir_bytes(os.path.join(data, "cdc-0"))
        rss = broker.rss_mib()
        broker.stop(signal.SIGTERM)
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.stop(signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)

    delta = {k: end_metrics[k] - start_metrics[k] for k in METRICS}
    for phase, p99, p999, rps, read in chunks:
        print(f"chunk {phase:8s} p99 {p99:7.2f} ms  p99.9 {p999:7.2f} ms  {rps:8.0f} rec/s  "
              f"cleaner read {read / 1e6:7.1f} MB")
    print()
    print("| load (acks=all, 1 KiB) | chunks | p99 ms (median) | p99.9 ms (median) |")
    print("|---|---:|---:|---:|")
    for phase in ("idle", "cleaning"):
        rows = [c for c in chunks if c[0] == phase]
        if rows:
            print(f"| cleaner {phase} | {len(rows)} | {statistics.median(r[1] for r in rows):.2f} "
                  f"| {statistics.median(r[2] for r in rows):.2f} |")
    wall = last_active_end - enabled_at
    io = delta["sluice_cleaner_read_bytes_total"] + delta["sluice_cleaner_written_bytes_total"]
    budget = args.io_budget or 104857600
    print()
    print(f"dirty log {dirty / 1e6:.1f} MB ({args.keys} keys x {args.versions} versions) -> "
          f"{cleaned / 1e6:.1f} MB after cleaning; passes {delta['sluice_cleaner_passes_total']:.0f}")
    print(f"cleaner read {delta['sluice_cleaner_read_bytes_total'] / 1e6:.1f} MB, wrote "
          f"{delta['sluice_cleaner_written_bytes_total'] / 1e6:.1f} MB, reclaimed "
          f"{delta['sluice_cleaner_reclaimed_bytes_total'] / 1e6:.1f} MB in "
          f"{delta['sluice_cleaner_pass_seconds_total']:.1f} pass-s")
    print(f"cleaned {dirty / 1e6 / max(delta['sluice_cleaner_pass_seconds_total'], 1e-9):.1f} MB/s "
          f"of dirty log per pass-second; {dirty / 1e6 / max(wall, 1e-9):.1f} MB/s over the "
          f"{wall:.1f} s wall window (chunk-granular: from the config change to the end of "
          f"the last chunk the cleaner worked in)")
    print(f"cleaner I/O {io / 1e6 / max(delta['sluice_cleaner_pass_seconds_total'], 1e-9):.1f} MB/s "
          f"per pass-second against a budget of {budget / 1e6:.1f} MB/s; broker RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
