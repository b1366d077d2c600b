#!/usr/bin/env python3
"""What replicating share-partition state costs (decision 0025): one confluent-kafka
ShareConsumer on an RF=3 partition of a local 3-node cluster.

Starts `sluice cluster local --nodes 3` with the given binary on a fresh directory, creates
a one-partition RF=3 topic, produces RECORDS records of 100 bytes, picks a share group its
leader coordinates (ShareFetch is served only there in cluster mode), then measures:
  consume   records/s of CONSUMERS ShareConsumers of one group (default 1, each on its own
            thread) in implicit mode (every record acknowledged; each acknowledgement is
            a durable write of the group's state: a local fdatasync before decision 0025,
            a metadata-log record on a majority after; with several consumers the writes
            arriving while one is in flight go as one record, `partition::share::coalesce`)
  commit    commit_sync latency in explicit mode: COMMITS rounds of poll (at most
            COMMIT_BATCH records), acknowledge each record, commit_sync (p50/p90/p99/max in ms)
Run it once per build to compare (A/B, same machine, same load):
  perf/share_cluster_cost.py --sluice /work/main/target/debug/sluice
  perf/share_cluster_cost.py --sluice target/debug/sluice
(with a Python that has confluent-kafka >= 2.16, e.g. /work/main/.venv/bin/python).
"""

import argparse
import pathlib
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

TOPIC = "share-cost"
VALUE = b"v" * 100
RUN_TIMEOUT_S = 300
# Records acknowledged per commit_sync round.
COMMIT_BATCH = 20


def free_base_port():
    """A base port whose Kafka, controller (+100) and admin (+200) ports are free."""
    for base in range(20000, 60000, 7):
        ports = [base + off + i for off in (0, 100, 200) for i in range(3)]
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise SystemExit("no free ports")


def find_coordinator(bootstrap, group):
    """FindCoordinator v1 for `group` through the first broker: the coordinator's node id
    (asked, not computed: where a group goes is the coordinator placement's business)."""
    host, port = bootstrap.split(",")[0].split(":")
    client, key = b"share-cost", group.encode()
    body = (struct.pack(">hhih", 10, 1, 1, len(client)) + client
            + struct.pack(">h", len(key)) + key + b"\x00")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        answer = s.recv(size, socket.MSG_WAITALL)
    # correlation id, throttle_time_ms, error_code, error_message (nullable string), node_id
    error = struct.unpack(">h", answer[8:10])[0]
    message_len = struct.unpack(">h", answer[10:12])[0]
    at = 12 + max(message_len, 0)
    return None if error else struct.unpack(">i", answer[at:at + 4])[0]


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return (f"p50 {pick(0.5):.2f}  p90 {pick(0.9):.2f}  p99 {pick(0.99):.2f}  "
            f"max {samples[-1]:.2f} ms")


def setup(bootstrap, records):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + 60
    while True:
        try:
            admin.create_topics([NewTopic(TOPIC, 1, 3)])[TOPIC].result(timeout=10)
            break
        except Exception as e:  # the quorum may still be forming
            if "TOPIC_ALREADY_EXISTS" in str(e):  # an earlier try's, answered late
                break
            if time.time() > deadline:
                raise SystemExit(f"topic not created: {e}")
            time.sleep(0.5)
    # The whole run fits librdkafka's local queue (100,000 messages by default).
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "queue.buffering.max.messages": max(100000, records)})
    for _ in range(records):
        producer.produce(TOPIC, VALUE)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise SystemExit("produce did not complete")
    meta = admin.list_topics(TOPIC, timeout=10)
    leader = meta.topics[TOPIC].partitions[0].leader
    return admin, leader


def led_group(admin, bootstrap, name, leader):
    group = next(g for g in (f"{name}-{i}" for i in range(1000))
                 if find_coordinator(bootstrap, g) == leader)
    entry = ConfigEntry("share.auto.offset.reset", "earliest",
                        incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result()
    return group


def consume(bootstrap, group, records, consumers):
    """From the first record to the last one's acknowledgement made durable, over
    `consumers` ShareConsumers of the group reading together."""
    lock = threading.Lock()
    counts = {"got": 0, "start": None}

    def one():
        c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
        c.subscribe([TOPIC])
        deadline = time.time() + RUN_TIMEOUT_S
        while time.time() < deadline:
            with lock:
                if counts["got"] >= records:
                    break
            got = [m for m in c.poll(1.0) if m.error() is None]
            with lock:
                if got and counts["start"] is None:
                    counts["start"] = time.time()
                counts["got"] += len(got)
        c.commit_sync()
        c.close()

    threads = [threading.Thread(target=one) for _ in range(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - (counts["start"] or time.time())
    return counts["got"], elapsed


def commits(bootstrap, group, rounds, records):
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit",
                       "max.poll.records": COMMIT_BATCH})
    c.subscribe([TOPIC])
    samples, got = [], 0
    deadline = time.time() + RUN_TIMEOUT_S
    while len(samples) < rounds and got < records and time.time() < deadline:
        batch = [m for m in c.poll(1.0) if m.error() is None]
        if not batch:
            continue
        got += len(batch)
        for m in batch:
            c.acknowledge(m)
        started = time.perf_counter()
        for tp, err in c.commit_sync().items():
            if err is not None:
                raise SystemExit(f"commit_sync failed on {tp}: {err}")
        samples.append((time.perf_counter() - started) * 1000)
    c.close()
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sluice", default="target/debug/sluice")
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--consumers", type=int, default=1,
                        help="ShareConsumers of the consume phase's group (default 1)")
    args = parser.parse_args()
    base = free_base_port()
    bootstrap = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    with tempfile.TemporaryDirectory() as d:
        log = open(pathlib.Path(d) / "cluster.log", "w")
        cluster = subprocess.Popen(
            [args.sluice, "cluster", "local", "--nodes", "3", "--dir", d,
             "--base-port", str(base)], stdout=log, stderr=subprocess.STDOUT)
        try:
            admin, leader = setup(bootstrap, args.records)
            group = led_group(admin, bootstrap, "cost-consume", leader)
            got, elapsed = consume(bootstrap, group, args.records, args.consumers)
            print(f"{args.sluice}: consume x{args.consumers} {got} records in {elapsed:.2f}s = "
                  f"{got / max(elapsed, 1e-9):,.0f} records/s (leader {leader})", flush=True)
            group = led_group(admin, bootstrap, "cost-commit", leader)
            samples = commits(bootstrap, group, args.commits, args.records)
            print(f"{args.sluice}: commit_sync x{len(samples)}: {percentiles(samples)}",
                  flush=True)
        finally:
            cluster.send_signal(signal.SIGINT)
            try:
                cluster.wait(30)
            except subprocess.TimeoutExpired:
                cluster.kill()


if __name__ == "__main__":
    main()
