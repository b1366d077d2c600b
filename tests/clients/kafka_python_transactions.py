#!/usr/bin/env python3
"""Transactions with kafka-python's transactional producer.

Commit a transaction over the 3 partitions of a fresh topic, abort one, commit another;
a read_committed consumer sees exactly the committed records and a read_uncommitted one all
of them. Exits non-zero on the first failed check.
"""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

import roundtrip_common as rc

PARTITIONS = 3
PER_PARTITION = 4
TIMEOUT_S = 30.0


def produce_round(producer, topic, tag):
    for partition in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.send(topic, value=f"{tag}-{partition}-{i}".encode(), partition=partition)
    producer.flush(TIMEOUT_S)


def consume_all(bootstrap, topic, isolation, expected):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    seen = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        got = [r.value.decode() for records in batch.values() for r in records]
        seen.extend(got)
        if not got and len(seen) >= expected:
            break
    consumer.close()
    return seen


def main():
    args = rc.roundtrip_args("kafka-python transactions")
    bootstrap = args.bootstrap
    topic = rc.unique_topic("kp-txn")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap,
                             transactional_id=rc.unique_topic("kp-tx"))
    producer.init_transactions()
    rc.check(True, "init_transactions")
    producer.begin_transaction()
    produce_round(producer, topic, "c1")
    producer.commit_transaction()
    producer.begin_transaction()
    produce_round(producer, topic, "ab")
    producer.abort_transaction()
    producer.begin_transaction()
    produce_round(producer, topic, "c2")
    producer.commit_transaction()
    producer.close()
    rc.check(True, "commit, abort, commit")

    def values(tag):
        return [f"{tag}-{p}-{i}" for p in range(PARTITIONS) for i in range(PER_PARTITION)]

    committed = values("c1") + values("c2")
    seen = consume_all(bootstrap, topic, "read_committed", len(committed))
    rc.check(sorted(seen) == sorted(committed),
             f"read_committed sees exactly the {len(committed)} committed records (saw {len(seen)})")
    everything = committed + values("ab")
    seen = consume_all(bootstrap, topic, "read_uncommitted", len(everything))
    rc.check(sorted(seen) == sorted(everything),
             f"read_uncommitted sees all {len(everything)} records (saw {len(seen)})")


if __name__ == "__main__":
    rc.run_main(main)
