#!/usr/bin/env python3
"""kafka-python (a pure-Python protocol implementation) against a Sluice cluster (issue 17).

Creates a replicated topic (replication factor 3, min.insync.replicas=2) with
KafkaAdminClient, waits until Metadata shows every partition with three replicas all in
sync and leaders on more than one broker, produces keyed records with acks=all (kafka-python
sends each partition's batches to its leader, found from Metadata), consumes them all back in
a consumer group whose coordinator FindCoordinator names, commits, and checks the committed
offsets through a second consumer of the same group. Exits non-zero with a clear message on
the first failed check.
"""

import argparse
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

PARTITIONS = 3
REPLICATION_FACTOR = 3
MESSAGES = 300
TIMEOUT_S = 30.0
REQUEST_TIMEOUT_MS = 30000


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise SystemExit(1)


def wait_for_full_isr(admin, topic, brokers):
    """Partition metadata once every partition has a leader and a full ISR."""
    deadline = time.monotonic() + TIMEOUT_S
    partitions = []
    while time.monotonic() < deadline:
        described = admin.describe_topics([topic])
        partitions = described[0].get("partitions", []) if described else []
        if len(partitions) == PARTITIONS and all(
            p["leader_id"] >= 0
            and len(p["replica_nodes"]) == REPLICATION_FACTOR
            and sorted(p["isr_nodes"]) == sorted(p["replica_nodes"])
            for p in partitions
        ):
            return partitions
        time.sleep(0.2)
    check(False, f"{topic}: every partition with a leader and {REPLICATION_FACTOR} in-sync "
                 f"replicas within {TIMEOUT_S}s (last seen {partitions})")
    return partitions


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--brokers", type=int, default=3)
    args = parser.parse_args()
    topic = f"kp-cluster-{int(time.time() * 1000) % 1000000}"
    servers = args.bootstrap.split(",")

    admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=REQUEST_TIMEOUT_MS)
    admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=REPLICATION_FACTOR,
                  topic_configs={"min.insync.replicas": "2"})],
        timeout_ms=REQUEST_TIMEOUT_MS,
    )
    brokers = admin.describe_cluster()["brokers"]
    check(len(brokers) == args.brokers, f"DescribeCluster lists {len(brokers)} brokers")
    partitions = wait_for_full_isr(admin, topic, brokers)
    leaders = {p["partition_index"]: p["leader_id"] for p in partitions}
    check(len(set(leaders.values())) > 1, f"leaders {sorted(leaders.items())} on several brokers")

    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5,
                             request_timeout_ms=REQUEST_TIMEOUT_MS)
    futures = [producer.send(topic, key=f"k{i % 30}".encode(), value=f"v{i}".encode())
               for i in range(MESSAGES)]
    producer.flush(timeout=TIMEOUT_S)
    placed = {}
    for i, f in enumerate(futures):
        meta = f.get(timeout=TIMEOUT_S)
        placed[f"v{i}"] = (meta.partition, meta.offset)
    producer.close()
    check(len(placed) == MESSAGES, f"{MESSAGES} records acknowledged by acks=all")
    per_partition = {}
    for partition, offset in placed.values():
        per_partition.setdefault(partition, []).append(offset)
    check(all(sorted(o) == list(range(len(o))) for o in per_partition.values()),
          "acknowledged offsets are gap-free from 0 in every partition")

    group = f"{topic}-group"
    consumer = KafkaConsumer(topic, bootstrap_servers=servers, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             request_timeout_ms=REQUEST_TIMEOUT_MS)
    seen = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(seen) < MESSAGES and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                seen[r.value.decode()] = (r.partition, r.offset)
    check(len(seen) == MESSAGES, f"consumed {len(seen)} of {MESSAGES} distinct records")
    check(seen == placed, "every record read back at the partition and offset its ack named")
    consumer.commit()
    consumer.close()

    probe = KafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False,
                          request_timeout_ms=REQUEST_TIMEOUT_MS)
    committed = {p: probe.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    probe.close()
    expected = {p: len(per_partition.get(p, [])) for p in range(PARTITIONS)}
    check(committed == expected, f"committed offsets {committed} are the log ends {expected}")
    admin.close()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
