#!/usr/bin/env python3
"""Share-group (KIP-932) against classic-group consumption throughput on one Sluice broker.

Starts `sluice serve` on a fresh data dir, produces RECORDS records of VALUE_BYTES bytes to a
one-partition topic, then times, each on its own group and from offset 0:
  classic   one confluent-kafka Consumer (classic group, auto commit)
  share-1   one ShareConsumer (implicit acknowledgement: every record acknowledged)
  share-3   three ShareConsumers sharing the one partition
and prints records/s for each. Usage:
  perf/share_vs_classic.py [--sluice target/debug/sluice] [--records 200000]
(run with a Python that has confluent-kafka >= 2.16, e.g. /work/main/.venv/bin/python).
"""

import argparse
import pathlib
import socket
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
VALUE_BYTES = 100
TOPIC = "share-perf"
RUN_TIMEOUT_S = 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(1)  # every shard serving, not only the first listener
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("broker did not start")


def earliest(admin, group):
    entry = ConfigEntry("share.auto.offset.reset", "earliest",
                        incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result()


def classic(bootstrap, records):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "perf-classic",
                  "auto.offset.reset": "earliest", "fetch.max.bytes": 52428800})
    c.subscribe([TOPIC])
    got, start = 0, None
    deadline = time.time() + RUN_TIMEOUT_S
    while got < records and time.time() < deadline:
        for m in c.consume(1000, 1.0):
            if m.error() is None:
                start = start or time.time()
                got += 1
    elapsed = time.time() - start
    c.close()
    return got, elapsed


def share(bootstrap, records, members, group):
    counts = [0] * members
    first = []
    stop = threading.Event()

    def member(i):
        c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
        c.subscribe([TOPIC])
        while not stop.is_set():
            for m in c.poll(0.5):
                if m.error() is None:
                    if not first:
                        first.append(time.time())
                    counts[i] += 1
        c.close()

    threads = [threading.Thread(target=member, args=(i,)) for i in range(members)]
    for t in threads:
        t.start()
    deadline = time.time() + RUN_TIMEOUT_S
    while sum(counts) < records and time.time() < deadline:
        time.sleep(0.01)
    end = time.time()
    stop.set()
    for t in threads:
        t.join()
    return sum(counts), end - first[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=str(ROOT / "target" / "debug" / "sluice"))
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    port, admin_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen(
            [args.sluice, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port)
            bootstrap = f"127.0.0.1:{port}"
            admin = AdminClient({"bootstrap.servers": bootstrap})
            for f in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
                f.result()
            for g in ("perf-share-1", "perf-share-3"):
                earliest(admin, g)
            p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10,
                          "batch.num.messages": 1000})
            value = b"x" * VALUE_BYTES
            for _ in range(args.records):
                while True:
                    try:
                        p.produce(TOPIC, value=value)
                        break
                    except BufferError:
                        p.poll(0.1)
            p.flush(60)
            print(f"{args.records} records of {VALUE_BYTES} B, one partition, {args.sluice}")
            for name, run in [
                ("classic", lambda: classic(bootstrap, args.records)),
                ("share-1", lambda: share(bootstrap, args.records, 1, "perf-share-1")),
                ("share-3", lambda: share(bootstrap, args.records, 3, "perf-share-3")),
            ]:
                got, elapsed = run()
                print(f"{name:8} {got:>8} records in {elapsed:6.2f} s = {got / elapsed:>9.0f} records/s")
        finally:
            broker.kill()
            broker.wait()


if __name__ == "__main__":
    main()
