#!/usr/bin/env python3
"""Real clients move a partition and elect its preferred leader on a Sluice cluster
(issue 17, decision 0019).

kafka-python's KafkaAdminClient creates a one-replica topic; confluent-kafka's idempotent
acks=all producer writes to it; kafka-python moves it to the two other brokers with
AlterPartitionReassignments and watches ListPartitionReassignments until it is done while
the producer goes on; Metadata then shows replicas = ISR = the target, led by one of them.
kafka-python reorders the replicas so the other new replica is preferred, confluent-kafka's
AdminClient.elect_leaders (PREFERRED) makes it the leader, and a second elect_leaders
answers ELECTION_NOT_NEEDED. A confluent-kafka consumer then reads every acknowledged record
exactly once, in order. Exits non-zero with a clear message on the first failed check.
"""

import argparse
import time

from confluent_kafka import Consumer, ElectionType, KafkaError, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic

TOPIC = "real-clients-moved"
TIMEOUT_S = 60.0


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise SystemExit(1)


def partition0(admin):
    described = admin.describe_topics([TOPIC])
    partitions = described[0].get("partitions", []) if described else []
    found = next((p for p in partitions if p["partition_index"] == 0), None)
    if found is None or found.get("error_code", 0) != 0:
        return None
    return {
        "leader": found["leader_id"],
        "replicas": list(found["replica_nodes"]),
        "isr": list(found["isr_nodes"]),
    }


def wait_for(admin, what, ok):
    deadline = time.monotonic() + TIMEOUT_S
    p = None
    while time.monotonic() < deadline:
        p = partition0(admin)
        if p is not None and ok(p):
            return p
        time.sleep(0.2)
    check(False, f"{what} within {TIMEOUT_S}s (last seen {p})")
    return p


class Acks:
    def __init__(self):
        self.acked = []
        self.failed = []

    def __call__(self, err, msg):
        if err is None:
            self.acked.append(msg.value().decode())
        else:
            self.failed.append(str(err))


def produce(producer, acks, tag, count):
    for i in range(count):
        producer.produce(TOPIC, value=f"{tag}-{i}".encode(), partition=0, on_delivery=acks)
        producer.poll(0)
    producer.flush(TIMEOUT_S)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=30000)
    admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    first = wait_for(admin, "the topic with a leader", lambda p: p["leader"] >= 0)
    old = first["leader"]
    cadmin = AdminClient({"bootstrap.servers": args.bootstrap})
    brokers = sorted(cadmin.list_topics(timeout=TIMEOUT_S).brokers)
    check(len(brokers) == 3, f"three brokers: {brokers}")
    target = [b for b in brokers if b != old]

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 60000,
    })
    acks = Acks()
    produce(producer, acks, "before", 300)

    tp = TopicPartition(TOPIC, 0)
    result = admin.alter_partition_reassignments({tp: target})
    check(result.get(tp) is None, f"AlterPartitionReassignments to {target}: {result}")
    deadline = time.monotonic() + TIMEOUT_S
    batch = 0
    while True:
        # The producer goes on while the replicas move (and the leader with them).
        produce(producer, acks, f"during{batch}", 20)
        batch += 1
        ongoing = admin.list_partition_reassignments()
        if tp not in ongoing:
            break
        entry = ongoing[tp]
        check(entry["adding_replicas"] == target and entry["removing_replicas"] == [old],
              f"in progress: {entry}")
        check(time.monotonic() < deadline, f"the move completes within {TIMEOUT_S}s")
        time.sleep(0.2)
    moved = wait_for(admin, f"replicas = ISR = {target}",
                     lambda p: p["replicas"] == target and sorted(p["isr"]) == target)
    check(moved["leader"] in target, f"led by a new replica: {moved}")

    other = next(b for b in target if b != moved["leader"])
    result = admin.alter_partition_reassignments({tp: [other, moved["leader"]]})
    check(result.get(tp) is None, f"reorder to [{other}, {moved['leader']}]: {result}")
    wait_for(admin, f"{other} preferred", lambda p: p["replicas"][0] == other)

    ctp = CTopicPartition(TOPIC, 0)
    elected = cadmin.elect_leaders(ElectionType.PREFERRED, [ctp]).result(TIMEOUT_S)
    check(all(e is None for e in elected.values()), f"elect_leaders (preferred): {elected}")
    wait_for(admin, f"{other} leads", lambda p: p["leader"] == other)
    again = cadmin.elect_leaders(ElectionType.PREFERRED, [ctp]).result(TIMEOUT_S)
    codes = [e.code() if e is not None else None for e in again.values()]
    check(codes == [KafkaError.ELECTION_NOT_NEEDED], f"elected again: {again}")

    produce(producer, acks, "after", 100)
    check(not acks.failed, f"no delivery failed: {acks.failed[:3]}")
    produced = 300 + 20 * batch + 100
    check(len(acks.acked) == produced, f"{len(acks.acked)} of {produced} records acknowledged")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "real-clients-moved-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([CTopicPartition(TOPIC, 0, 0)])
    read = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(read) < len(acks.acked) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        read.append(msg.value().decode())
    consumer.close()
    check(read == acks.acked,
          f"read {len(read)} records = the {len(acks.acked)} acknowledged, once each, in order")
    admin.close()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
