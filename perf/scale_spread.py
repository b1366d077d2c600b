#!/usr/bin/env python3
"""Produce and fetch spread over many partitions against one partition (issue 19 point 3:
"produce and fetch spread over 1,000 active partitions at 80 % or more of the one-partition
throughput"), as same-run ratios.

Both sides send exactly the same thing: RECORDS records of 1 KiB with null keys (so no key
decides a partition and every batch is full), in full 16 KiB batches (16 records a batch,
one batch per Produce request by default, 5 requests in flight, acks=1), one producer. The only
difference is the partition each batch goes to: always partition 0, or round-robin over
SPREAD partitions (so each of the 1,000 partitions receives RECORDS/1000 records in full
batches). The harness encodes the same 8 batch templates either way (unkeyed partitions
share them). Then one consumer reads everything back from offset 0 with the same bytes per
Fetch request on both sides: fetch.max.bytes 50 MiB, and a partition limit of 50 MiB
divided by the partition count (50 MiB for one partition, 52 KiB each for 1,000), so one
request carries about as much either way (it reads RECORDS records from offset 0). Before
the measured produce, an unmeasured warm-up writes two full batches to every partition, so
what is measured is active partitions, not their first files. Each run has a fresh broker and data
directory. Runs alternate (1, SPREAD, 1, SPREAD, ...) for ROUNDS rounds so that the box's
load, which other engineers' builds change minute by minute, hits both sides alike; the
medians and the ratio of the medians are printed, with each round's ratio.

  .venv/bin/python perf/scale_spread.py target/release/sluice [--spread 1000] [--rounds 3]
      [--records 2000000] [--bench-binary OTHER] [--config LABEL=FILE ...] [--crabka PATH]
      [--partitions-per-request N] [--max-in-flight N]

--partitions-per-request (default 1) is the measured produce's request shape. 1 is
librdkafka's (confluent-kafka, kcat): one partition's batch per Produce request. 0 is the
Java producer's: its sender drains one ready batch of every partition a broker leads into
one request, up to max.request.size (1 MiB, ~61 full 16 KiB batches). One partition is the
same either way (a request takes one batch per partition), so only the spread side changes.
--max-in-flight (default 5, the Java producer's and an idempotent librdkafka producer's) is
the requests outstanding on the connection, both sides; librdkafka without idempotence
allows 1,000,000.

--bench-binary runs `sluice bench` from another build (to A/B a broker with one harness).
--crabka PATH runs the same rounds against Crabka 0.3.8 (`crabka-peer`, started as
perf/compare.py starts it) instead of BINARY's broker; BINARY is then only the harness. That
is the on-disk peer's own 1 vs SPREAD ratio on this box, a floor for what the workload
allows (session 22).
Each run line and table also give the harness's own CPU-s/GB (`harness_cpu_s_per_gb`):
`sluice bench` shares the two cores with the broker.
--config (repeatable) A/Bs broker config files with one binary in one sitting: each round
runs every config on 1 and SPREAD partitions in turn, and each config gets its own table
(e.g. `--config io_uring=inline0.toml --config inline20k=inline20k.toml`).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402


FETCH_MAX_BYTES = 50 * 1024 * 1024
# Records per run (1 KiB each). The read-back must take enough Fetch round trips to be a
# throughput: at 600,000 records over 1,000 partitions it was ~12 answers of 50 MiB, 0.6 s,
# and the fetch ratio moved 59-112 % round to round (sessions 33, 35); 2,000,000 gives ~40
# answers and 2 GB each way (session 35: 97 % and 106 %).
DEFAULT_RECORDS = 2_000_000
WARMUP_BATCHES = 2
# Lets the first background flush (and its state file creations) finish before measuring.
WARMUP_SETTLE_S = 2


class Crabka:
    """Crabka 0.3.8 on a fresh log directory, started as perf/compare.py starts it."""

    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.port = scale.free_port()
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.port}",
             "--controller", f"127.0.0.1:{scale.free_port()}", "--log-dir", self.data_dir],
            stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while time.monotonic() - started < scale.READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                sys.exit(f"crabka exited with {self.proc.returncode}; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                # Let it finish starting (metadata) before the first CreateTopics.
                time.sleep(0.5)
                return
            except OSError:
                time.sleep(0.05)
        sys.exit(f"crabka not listening within {scale.READY_TIMEOUT_S} s")

    def stop(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=scale.READY_TIMEOUT_S)

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"


def run(binary, bench_binary, work, partitions, records, config_file=None, crabka=None,
        per_request=1, in_flight=5):
    """The produce and the consume `sluice bench` JSON reports, on a fresh broker (started
    with `--config config_file` when one is given; Crabka at path `crabka` if given)."""
    data = os.path.join(work, f"spread-{partitions}")
    shutil.rmtree(data, ignore_errors=True)
    log_path = os.path.join(work, f"spread-{partitions}.log")
    if crabka:
        broker = Crabka(crabka, data, log_path)
    else:
        extra = ["--config", config_file] if config_file else []
        broker = scale.Broker(binary, data, log_path, extra)
    broker.start()
    common = ["--topic", "spread", "--partitions", str(partitions), "--records", str(records),
              "--record-size", "1024", "--bootstrap-server", broker.bootstrap(),
              "--broker-pid", str(broker.proc.pid), "--json"]
    # Warm-up, not measured: WARMUP_BATCHES full batches per partition, so every partition
    # has its segment, index and state files before the measured run (a partition's files
    # are created on its first append and first flush: 4,000 inode creations for 1,000
    # partitions, which is creation cost, not the steady state of active partitions).
    warmup = [c if c != str(records) else str(WARMUP_BATCHES * 16 * partitions) for c in common]
    subprocess.run([bench_binary, "bench", "produce", *warmup, "--acks", "1",
                    "--batch-size", "16384", "--keys", "0"], capture_output=True, text=True,
                   check=True)
    time.sleep(WARMUP_SETTLE_S)
    produce = subprocess.run([bench_binary, "bench", "produce", *common, "--acks", "1",
                              "--batch-size", "16384", "--keys", "0",
                              "--partitions-per-request", str(per_request),
                              "--max-in-flight", str(in_flight)],
                             capture_output=True, text=True)
    consume = subprocess.run([bench_binary, "bench", "consume", *common,
                              "--fetch-max-bytes", str(FETCH_MAX_BYTES),
                              "--fetch-partition-max-bytes", str(FETCH_MAX_BYTES // partitions)],
                             capture_output=True, text=True)
    broker.stop(signal.SIGTERM)
    shutil.rmtree(data, ignore_errors=True)
    out = []
    for side, proc in (("produce", produce), ("consume", consume)):
        if proc.returncode != 0:
            sys.exit(f"bench {side} failed: {proc.stderr.strip()}")
        out.append(json.loads(proc.stdout))
    return out


def summary(report, key):
    """MB/s, broker CPU-s/GB and the harness's own CPU-s/GB of one `sluice bench` report."""
    side = report[key]
    return (side["mb_per_s"], (report.get("broker") or {}).get("cpu_s_per_gb", float("nan")),
            report.get("harness_cpu_s_per_gb", float("nan")))




def parse_configs(values):
    """`LABEL=FILE` pairs, in order; no --config is one unlabelled run with the defaults."""
    configs = []
    for value in values or []:
        label, sep, path = value.partition("=")
        if not sep or not label or not os.path.isfile(path):
            sys.exit(f"--config wants LABEL=FILE with an existing file, got {value!r}")
        configs.append((label, os.path.abspath(path)))
    return configs or [("", None)]


def print_table(label, spread, rows):
    med = {p: [statistics.median(col) for col in zip(*v)] for p, v in rows.items()}
    one, many = med[1], med[spread]
    print()
    if label:
        print(f"config {label}:")
    print("| partitions | produce MB/s | broker CPU-s/GB | harness CPU-s/GB | fetch MB/s "
          "| broker CPU-s/GB | harness CPU-s/GB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| 1 | {one[0]:.1f} | {one[1]:.2f} | {one[2]:.2f} | {one[3]:.1f} | {one[4]:.2f} "
          f"| {one[5]:.2f} |")
    print(f"| {spread:,} | {many[0]:.1f} ({many[0] / one[0]:.0%}) | {many[1]:.2f} "
          f"| {many[2]:.2f} | {many[3]:.1f} ({many[3] / one[3]:.0%}) | {many[4]:.2f} "
          f"| {many[5]:.2f} |")
    ratios = [(m[0] / o[0], m[3] / o[3]) for o, m in zip(rows[1], rows[spread])]
    print("per-round ratios (produce, fetch):",
          ", ".join(f"({p:.0%}, {f:.0%})" for p, f in ratios))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--spread", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--bench-binary")
    parser.add_argument("--crabka", metavar="PATH",
                        help="measure Crabka 0.3.8 (crabka-peer) instead of BINARY's broker")
    parser.add_argument("--partitions-per-request", type=int, default=1,
                        help="the produce's request shape: 1 librdkafka's, 0 the Java producer's")
    parser.add_argument("--max-in-flight", type=int, default=5,
                        help="produce requests outstanding (both sides)")
    parser.add_argument("--config", action="append", metavar="LABEL=FILE",
                        help="broker config file to A/B (repeatable)")
    args = parser.parse_args()
    bench_binary = args.bench_binary or args.binary
    configs = parse_configs(args.config)
    work = tempfile.mkdtemp(prefix="sluice-spread-")
    rows = {label: {1: [], args.spread: []} for label, _ in configs}
    try:
        for r in range(args.rounds):
            for label, config_file in configs:
                for partitions in (1, args.spread):
                    produced, consumed = run(args.binary, bench_binary, work, partitions,
                                             args.records, config_file, args.crabka,
                                             args.partitions_per_request,
                                             args.max_in_flight)
                    row = (*summary(produced, "produced"), *summary(consumed, "consumed"))
                    rows[label][partitions].append(row)
                    tag = f"{label} " if label else ""
                    print(f"round {r + 1} {tag}partitions {partitions}: produce {row[0]:.1f} "
                          f"MB/s ({row[1]:.2f} broker, {row[2]:.2f} harness CPU-s/GB), fetch "
                          f"{row[3]:.1f} MB/s ({row[4]:.2f} broker, {row[5]:.2f} harness "
                          f"CPU-s/GB), load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for label, _ in configs:
        print_table(label, args.spread, rows[label])


if __name__ == "__main__":
    main()
