#!/usr/bin/env python3
"""confluent-kafka (librdkafka 2.x) against a 3-node Sluice cluster (issue 17, stage 1).

Creates a 6-partition topic through the admin API, checks that Metadata lists every broker
and spreads the partition leaders over all of them, produces keyed records with an
idempotent acks=all producer (librdkafka sends each partition's batches to its leader),
then consumes them all back in a consumer group (FindCoordinator names the coordinator's
broker) and commits. Exits non-zero with a clear message on the first failed check.
"""

import argparse
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
BROKERS = 3
MESSAGES = 600
TIMEOUT_S = 30.0


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise SystemExit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    topic = f"spread-{int(time.time() * 1000) % 1000000}"

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    futures[topic].result(timeout=TIMEOUT_S)
    meta = admin.list_topics(topic=topic, timeout=TIMEOUT_S)
    check(len(meta.brokers) == BROKERS, f"metadata lists {len(meta.brokers)} brokers")
    leaders = {p: part.leader for p, part in meta.topics[topic].partitions.items()}
    check(len(leaders) == PARTITIONS, f"{topic} has {len(leaders)} partitions")
    check(
        set(leaders.values()) == set(meta.brokers.keys()),
        f"leaders {sorted(leaders.items())} spread over brokers {sorted(meta.brokers)}",
    )

    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    for i in range(MESSAGES):
        producer.produce(topic, key=f"k{i % 24}", value=f"v{i}", on_delivery=on_delivery)
        producer.poll(0)
    left = producer.flush(TIMEOUT_S)
    check(left == 0 and not failures, f"{MESSAGES} records acknowledged ({failures[:3]})")

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"{topic}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(seen) < MESSAGES and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        seen[msg.value().decode()] = (msg.key().decode(), msg.partition())
    check(len(seen) == MESSAGES, f"consumed {len(seen)} of {MESSAGES} distinct records")
    by_key = {}
    for key, partition in seen.values():
        by_key.setdefault(key, set()).add(partition)
    check(all(len(p) == 1 for p in by_key.values()), "every key stayed in one partition")
    check(
        len({p for _, p in seen.values()}) == PARTITIONS,
        "records came from every partition",
    )
    consumer.commit(asynchronous=False)
    committed = consumer.committed(
        [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=TIMEOUT_S
    )
    total = sum(tp.offset for tp in committed if tp.offset >= 0)
    check(total == MESSAGES, f"committed offsets add up to {total}")
    consumer.close()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
