#!/usr/bin/env python3
"""confluent-kafka AdminClient against Kafka 4.x offset behaviours (issue 15):

* list_offsets with OffsetSpec.max_timestamp() names the record with the largest timestamp
  inside a batch (KAFKA-16310), not the batch's last offset;
* alter_consumer_group_offsets answers UNKNOWN_TOPIC_OR_PARTITION for a topic that does not
  exist and for a partition past the topic's count, while the other partitions of the same
  request are committed.

Exits non-zero with a clear message on the first failed check.
"""

import argparse
import time

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

import roundtrip_common as rc

ADMIN_TIMEOUT_S = 30.0


def create_topic(admin, name, partitions):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        request_timeout=ADMIN_TIMEOUT_S,
    )
    futures[name].result(timeout=ADMIN_TIMEOUT_S)


def check_max_timestamp(bootstrap, admin):
    topic = rc.unique_topic("max-ts")
    create_topic(admin, topic, 1)
    base = int(time.time() * 1000) - 60_000
    # linger.ms keeps the three records in one batch: offsets 0, 1, 2 at base+5, +9, +3.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 500, "acks": "all"})
    for i, delta in enumerate([5, 9, 3]):
        producer.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=base + delta)
    rc.check(producer.flush(30) == 0, "three records with timestamps delivered")
    tp = TopicPartition(topic, 0)
    result = admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=ADMIN_TIMEOUT_S)
    info = result[tp].result(timeout=ADMIN_TIMEOUT_S)
    rc.check(
        (info.offset, info.timestamp) == (1, base + 9),
        f"list_offsets max_timestamp answers offset 1 at {base + 9}, got "
        f"offset {info.offset} at {info.timestamp}",
    )


def check_alter_offsets_unknown_topic(admin):
    topic = rc.unique_topic("alter-offsets")
    create_topic(admin, topic, 2)
    group = rc.unique_topic("alter-offsets-group")
    missing = rc.unique_topic("no-such-topic")
    request = ConsumerGroupTopicPartitions(
        group,
        [
            TopicPartition(topic, 0, 7),
            TopicPartition(topic, 5, 3),
            TopicPartition(missing, 0, 1),
        ],
    )
    future = admin.alter_consumer_group_offsets([request], request_timeout=ADMIN_TIMEOUT_S)[group]
    answered = future.result(timeout=ADMIN_TIMEOUT_S).topic_partitions
    errors = {(p.topic, p.partition): p.error for p in answered}
    rc.check(
        errors.get((topic, 0)) is None,
        f"existing partition committed: {errors.get((topic, 0))}",
    )
    for key in [(topic, 5), (missing, 0)]:
        error = errors.get(key)
        rc.check(
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART,
            f"{key} answered UNKNOWN_TOPIC_OR_PART, got {error}",
        )
    # The existing partition of that request was committed all the same.
    listed = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])],
        request_timeout=ADMIN_TIMEOUT_S,
    )[group].result(timeout=ADMIN_TIMEOUT_S)
    offsets = {(p.topic, p.partition): p.offset for p in listed.topic_partitions}
    rc.check(offsets.get((topic, 0)) == 7, f"committed offset of {topic}[0] is 7: {offsets}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    check_max_timestamp(args.bootstrap, admin)
    check_alter_offsets_unknown_topic(admin)


if __name__ == "__main__":
    rc.run_main(main)
