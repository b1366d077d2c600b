#!/usr/bin/env python3
"""Transaction latency across brokers on a local Sluice cluster (decision 0022).

Against a running 3-node cluster (`sluice cluster local --nodes 3 --dir DIR`), creates a
6-partition RF=3 topic (min.insync.replicas=2) whose leaders spread over the brokers, finds
the coordinator of a transactional id, and times N transactions of each kind, alternating:
  * here:  one record to each of 2 partitions the coordinator's broker leads (verification
           in process, markers on the coordinator's own shards);
  * there: one record to each of 2 partitions led by the two other brokers (each produce
           verified with AddPartitionsToTxn at the coordinator's broker, markers sent with
           WriteTxnMarkers).
A transaction is begin, produce, flush, commit (librdkafka: AddPartitionsToTxn to the
coordinator, Produce to the leaders, EndTxn). Prints p50/p90/p99/max in milliseconds.
Usage: perf/txn_cluster_latency.py --bootstrap 127.0.0.1:9092 [--count 200]
"""

import argparse
import socket
import struct
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30.0


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return f"p50 {pick(0.5):.2f}  p90 {pick(0.9):.2f}  p99 {pick(0.99):.2f}  max {samples[-1]:.2f} ms"


def transaction_coordinator(address, transactional_id):
    """FindCoordinator v1 (key type 1, TRANSACTION) by hand: the coordinator's node id."""
    host, port = address.rsplit(":", 1)
    client = b"txn-latency"
    key = transactional_id.encode()
    body = struct.pack(">hhih", 10, 1, 1, len(client)) + client
    body += struct.pack(">h", len(key)) + key + struct.pack(">b", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        answer = s.recv(size, socket.MSG_WAITALL)
    # correlation id, throttle time, error code, error message (nullable string), node id
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
    topic = f"txnlat-{int(time.time() * 1000) % 1000000}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=6, replication_factor=3,
                  config={"min.insync.replicas": "2"})],
        operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        parts = admin.list_topics(topic=topic, timeout=TIMEOUT_S).topics[topic].partitions
        leaders = {p: m.leader for p, m in parts.items()}
        if len(set(leaders.values())) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    transactional_id = f"{topic}-id"
    coordinator = transaction_coordinator(args.bootstrap.split(",")[0], transactional_id)
    here = [p for p, l in sorted(leaders.items()) if l == coordinator][:2]
    there = []
    for broker in sorted(set(leaders.values()) - {coordinator}):
        there += [p for p, l in sorted(leaders.items()) if l == broker][:1]
    print(f"leaders {leaders}; coordinator {coordinator}; here {here}; there {there}", flush=True)
    if len(here) < 2 or len(there) < 2:
        raise SystemExit("leaders did not spread over three brokers")

    p = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": transactional_id,
                  "linger.ms": 0})
    p.init_transactions(TIMEOUT_S)

    def one(partitions):
        started = time.perf_counter()
        p.begin_transaction()
        for partition in partitions:
            p.produce(topic, value=b"x" * 100, partition=partition)
        p.flush(TIMEOUT_S)
        p.commit_transaction(TIMEOUT_S)
        return (time.perf_counter() - started) * 1000.0

    for _ in range(10):  # warm-up: connections, links
        one(here)
        one(there)
    timed = {"here": [], "there": []}
    for _ in range(args.count):
        timed["here"].append(one(here))
        timed["there"].append(one(there))
    for kind, samples in timed.items():
        print(f"{kind:5} ({len(samples)} transactions): {percentiles(samples)}", flush=True)


if __name__ == "__main__":
    main()
