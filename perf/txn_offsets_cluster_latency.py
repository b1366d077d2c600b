#!/usr/bin/env python3
"""send_offsets_to_transaction latency across brokers on a local Sluice cluster (decision
0022, "Offsets of a transaction").

Against a running 3-node cluster (`sluice cluster local --nodes 3 --dir DIR`), creates a
1-partition RF=3 topic led by the transactional id's coordinator, picks two group ids by
FindCoordinator: one coordinated by the id's coordinator ("here") and one by another broker
("there"), and times N transactions of each, alternating: begin, produce one 100-byte record
(to a partition the coordinator's broker leads, so only the offsets differ), flush,
send_offsets_to_transaction (librdkafka: AddOffsetsToTxn to the id's coordinator,
TxnOffsetCommit to the group's, which verifies at the id's coordinator: in process here,
AddPartitionsToTxn over the inter-broker link there), commit (EndTxn; the group's end in
process here, WriteTxnMarkers to the group's coordinator there). Prints p50/p90/p99/max ms.
Usage: perf/txn_offsets_cluster_latency.py --bootstrap 127.0.0.1:9092 [--count 200]
"""

import argparse
import socket
import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30.0
KEY_GROUP, KEY_TRANSACTION = 0, 1
GROUP_CANDIDATES = 200


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return f"p50 {pick(0.5):.2f}  p90 {pick(0.9):.2f}  p99 {pick(0.99):.2f}  max {samples[-1]:.2f} ms"


def coordinator(address, key, key_type):
    """FindCoordinator v1 by hand: the coordinator's node id."""
    host, port = address.rsplit(":", 1)
    client = b"txn-offsets-latency"
    encoded = key.encode()
    body = struct.pack(">hhih", 10, 1, 1, len(client)) + client
    body += struct.pack(">h", len(encoded)) + encoded + struct.pack(">b", key_type)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        answer = s.recv(size, socket.MSG_WAITALL)
    error = struct.unpack(">h", answer[8:10])[0]
    message_length = struct.unpack(">h", answer[10:12])[0]
    at = 12 + max(message_length, 0)
    if error != 0:
        raise SystemExit(f"FindCoordinator error {error}")
    return struct.unpack(">i", answer[at:at + 4])[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    first = args.bootstrap.split(",")[0]
    run = int(time.time() * 1000) % 1000000
    transactional_id = f"txnoff-{run}"
    txn_coordinator = coordinator(first, transactional_id, KEY_TRANSACTION)
    groups = {}
    for i in range(GROUP_CANDIDATES):
        group = f"txnoff-{run}-g{i}"
        kind = "here" if coordinator(first, group, KEY_GROUP) == txn_coordinator else "there"
        groups.setdefault(kind, group)
        if len(groups) == 2:
            break
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = f"txnoff-{run}"
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=3,
                  config={"min.insync.replicas": "2"})],
        operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    partition = None
    while partition is None and time.monotonic() < deadline:
        parts = admin.list_topics(topic=topic, timeout=TIMEOUT_S).topics[topic].partitions
        partition = next((p for p, m in sorted(parts.items()) if m.leader == txn_coordinator),
                         None)
        time.sleep(0.2)
    print(f"coordinator {txn_coordinator}; groups {groups}; partition {partition}", flush=True)
    if len(groups) < 2 or partition is None:
        raise SystemExit("no group on each side, or no partition led by the coordinator")

    p = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": transactional_id,
                  "linger.ms": 0})
    p.init_transactions(TIMEOUT_S)
    metadata = {}
    for kind, group in groups.items():
        c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": group})
        metadata[kind] = (c, c.consumer_group_metadata())
    offset = [0]

    def one(kind):
        offset[0] += 1
        started = time.perf_counter()
        p.begin_transaction()
        p.produce(topic, value=b"x" * 100, partition=partition)
        p.flush(TIMEOUT_S)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, offset[0])], metadata[kind][1],
                                      TIMEOUT_S)
        p.commit_transaction(TIMEOUT_S)
        return (time.perf_counter() - started) * 1000.0

    for _ in range(10):  # warm-up: connections, links
        one("here")
        one("there")
    timed = {"here": [], "there": []}
    for _ in range(args.count):
        timed["here"].append(one("here"))
        timed["there"].append(one("there"))
    for kind, samples in timed.items():
        print(f"{kind:5} ({len(samples)} transactions): {percentiles(samples)}", flush=True)


if __name__ == "__main__":
    main()
