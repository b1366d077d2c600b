#!/usr/bin/env python3
"""confluent-kafka (librdkafka 2.x) against a Sluice cluster of N nodes (issue 17).

Creates a 6-partition topic (or --partitions) through the admin API, with --replication-factor
copies and min.insync.replicas=2 when replicated, checks that Metadata lists every broker,
spreads the partition leaders over all of them and (replicated) shows every ISR full, produces keyed records with an
idempotent acks=all producer (librdkafka sends each partition's batches to its leader),
then consumes them all back in a consumer group (FindCoordinator names the coordinator's
broker) and commits. Exits non-zero with a clear message on the first failed check.
"""

import argparse
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MESSAGES = 600
TIMEOUT_S = 30.0


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise SystemExit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args()
    PARTITIONS, BROKERS = args.partitions, args.brokers
    factor = args.replication_factor
    topic = f"spread-{int(time.time() * 1000) % 1000000}"

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=factor,
                  config={"min.insync.replicas": "2"} if factor > 1 else {})],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    futures[topic].result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        meta = admin.list_topics(topic=topic, timeout=TIMEOUT_S)
        parts = meta.topics[topic].partitions.values()
        full = all(len(p.replicas) == factor and sorted(p.isrs) == sorted(p.replicas)
                   for p in parts)
        if full or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(full, f"every partition has {factor} replicas, all in sync")
    if factor > 1:
        replica_sets = {tuple(sorted(p.replicas)) for p in parts}
        check(len({b for s in replica_sets for b in s}) == BROKERS,
              f"replicas spread over all {BROKERS} brokers ({sorted(replica_sets)})")
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
        producer.produce(topic, key=f"k{i % (PARTITIONS * 6)}", value=f"v{i}", on_delivery=on_delivery)
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
