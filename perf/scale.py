#!/usr/bin/env python3
"""Partition-count scale run (issue 19 point 3): for each partition count, on a fresh broker
and data directory, measures

  * the time to create N partitions (topics of 10 partitions, CreateTopics in batches),
  * the broker's CPU seconds spent creating them,
  * idle RSS once they exist,
  * restart to ready (/v1/ready answers 200) after a clean shutdown (SIGTERM) and after SIGKILL,
  * the broker's CPU seconds per GB produced with that many partitions present (after the
    SIGKILL restart: 200,000 records of 1 KiB to one more topic of one partition, created
    by an unmeasured first run, 16 KiB batches, acks=1, `sluice bench --broker-pid`): what
    the idle partitions cost a producer,
  * produce and catch-up fetch MB/s spread over `--spread` partitions against one partition
    (`sluice bench`, 1 KiB records, 16 KiB batches, acks=1), each on a fresh broker
    (`--spread 0` skips it; perf/scale_spread.py is the fair same-run A/B).

  perf/scale.py target/release/sluice 1000 10000 [100000] [--spread 1000] [--json OUT]

`--json OUT` writes the rows for perf/scale_plot.py.

Needs confluent-kafka (the test venv has it: .venv/bin/python perf/scale.py ...). Prints one
Markdown table row per count; quote them with the machine's load beside them.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS_PER_TOPIC = 10
TOPICS_PER_REQUEST = 100
READY_TIMEOUT_S = 900
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, data_dir, log_path, extra_args=()):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.extra_args = list(extra_args)
        self.port, self.admin = free_port(), free_port()
        self.proc = None

    def start(self):
        """Starts the broker and returns seconds until /v1/ready answers 200."""
        log = open(self.log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir,
             "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                sys.exit(f"broker exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/v1/ready", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"broker not ready within {READY_TIMEOUT_S} s")

    def stop(self, sig):
        """Sends `sig` and returns seconds until the process is gone."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=READY_TIMEOUT_S)
        return time.monotonic() - started

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mib(self):
        status = open(f"/proc/{self.proc.pid}/status").read()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"


def create_partitions(broker, count):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap()})
    topics = [f"scale-{i:06d}" for i in range(count // PARTITIONS_PER_TOPIC)]
    for start in range(0, len(topics), TOPICS_PER_REQUEST):
        batch = [NewTopic(t, num_partitions=PARTITIONS_PER_TOPIC, replication_factor=1)
                 for t in topics[start:start + TOPICS_PER_REQUEST]]
        for name, future in admin.create_topics(batch, request_timeout=600).items():
            future.result()  # raises on any topic that failed


def bench(binary, work, partitions):
    """(produce MB/s, fetch MB/s) for 300k 1 KiB records over `partitions`, fresh broker."""
    data = os.path.join(work, f"bench-{partitions}")
    broker = Broker(binary, data, os.path.join(work, "bench.log"))
    broker.start()
    common = ["--topic", "spread", "--partitions", str(partitions), "--records", "300000",
              "--record-size", "1024", "--bootstrap-server", broker.bootstrap()]
    produce = subprocess.run([binary, "bench", "produce", *common, "--acks", "1",
                              "--batch-size", "16384", "--keys", str(max(partitions, 1))],
                             capture_output=True, text=True)
    consume = subprocess.run([binary, "bench", "consume", *common,
                              "--fetch-partition-max-bytes", "1048576"],
                             capture_output=True, text=True)
    broker.stop(signal.SIGTERM)
    shutil.rmtree(data, ignore_errors=True)
    rate = lambda out: float((re.search(r"([0-9.]+) MB/s", out) or [None, "nan"])[1])
    return rate(produce.stdout + produce.stderr), rate(consume.stdout + consume.stderr)


def produce_cpu_per_gb(broker):
    """Broker CPU-s per GB for 200k 1 KiB records to a one-partition topic, created by a
    first, unmeasured run of 1,000 records: the measured run is the producer's steady cost
    beside the idle partitions, not the one-time CreateTopics and first full Metadata answer
    (at 100k partitions ~0.35 CPU-s, which in a 0.2 GB run read as +1.7 CPU-s/GB)."""
    def run(records, measured):
        cmd = [broker.binary, "bench", "produce", "--topic", "scale-load",
               "--partitions", "1", "--records", str(records), "--record-size", "1024",
               "--acks", "1", "--batch-size", "16384",
               "--bootstrap-server", broker.bootstrap(), "--json"]
        if measured:
            cmd += ["--broker-pid", str(broker.proc.pid)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"bench failed: {out.stderr.strip()}")
        return json.loads(out.stdout)
    run(1000, False)
    return run(200000, True)["broker"]["cpu_s_per_gb"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("counts", nargs="+", type=int)
    parser.add_argument("--spread", type=int, default=1000)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-scale-")
    rows = []
    try:
        print("| partitions | create s | create CPU-s | idle RSS MiB | clean stop s "
              "| restart (clean) s | restart (SIGKILL) s | produce CPU-s/GB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for count in args.counts:
            data = os.path.join(work, f"data-{count}")
            broker = Broker(args.binary, data, os.path.join(work, f"broker-{count}.log"))
            broker.start()
            cpu_before = broker.cpu_seconds()
            started = time.monotonic()
            create_partitions(broker, count)
            create_s = time.monotonic() - started
            create_cpu = broker.cpu_seconds() - cpu_before
            time.sleep(5)
            rss = broker.rss_mib()
            stop_s = broker.stop(signal.SIGTERM)
            clean_ready = broker.start()
            broker.stop(signal.SIGKILL)
            kill_ready = broker.start()
            cpu_per_gb = produce_cpu_per_gb(broker)
            broker.stop(signal.SIGTERM)
            shutil.rmtree(data, ignore_errors=True)
            rows.append({"partitions": count, "create_s": create_s, "create_cpu_s": create_cpu,
                         "idle_rss_mib": rss, "clean_stop_s": stop_s,
                         "restart_clean_s": clean_ready, "restart_sigkill_s": kill_ready,
                         "produce_cpu_s_per_gb": cpu_per_gb})
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)
            print(f"| {count:,} | {create_s:.1f} | {create_cpu:.1f} | {rss:.0f} | {stop_s:.1f} "
                  f"| {clean_ready:.1f} | {kill_ready:.1f} | {cpu_per_gb:.2f} |", flush=True)
        if args.spread <= 0:
            return
        one = bench(args.binary, work, 1)
        spread = bench(args.binary, work, args.spread)
        print()
        print(f"| partitions | produce MB/s | fetch MB/s |\n|---:|---:|---:|")
        print(f"| 1 | {one[0]:.1f} | {one[1]:.1f} |")
        print(f"| {args.spread} | {spread[0]:.1f} ({spread[0] / one[0]:.0%}) "
              f"| {spread[1]:.1f} ({spread[1] / one[1]:.0%}) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
