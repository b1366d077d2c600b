#!/usr/bin/env python3
"""Round trip through the broker with confluent-kafka (librdkafka 2.x).

For each codec (none, gzip, snappy, lz4, zstd) and once more with idempotence on: create a
3-partition topic with the admin API, produce keyed records with headers, consume them all
back by partition assignment and check order, key placement and content. Exits non-zero with
a clear message on the first failed check.
"""

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import roundtrip_common as rc

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ADMIN_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 60.0


def create_topic(admin, name):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=rc.PARTITION_COUNT, replication_factor=1)],
        operation_timeout=ADMIN_TIMEOUT_S,
        request_timeout=ADMIN_TIMEOUT_S,
    )
    futures[name].result(timeout=ADMIN_TIMEOUT_S)
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while True:
        meta = admin.list_topics(topic=name, timeout=ADMIN_TIMEOUT_S)
        topic = meta.topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) > 0:
            break
        if time.monotonic() > deadline:
            rc.check(False, f"topic {name} visible in metadata after CreateTopics")
        time.sleep(0.1)
    rc.check(
        len(topic.partitions) == rc.PARTITION_COUNT,
        f"created {name} has {len(topic.partitions)} partitions in metadata",
    )
    for pid, partition in topic.partitions.items():
        rc.check(partition.leader >= 0, f"{name}[{pid}] has a leader ({partition.leader})")


def produce(bootstrap, topic, messages, extra_config):
    config = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "batch.num.messages": 50,
        "message.timeout.ms": 30000,
        "acks": "all",
    }
    config.update(extra_config)
    producer = Producer(config)
    delivered = {}
    errors = []

    # Delivery reports do not carry headers back, so each callback remembers its sequence.
    def on_delivery_for(seq):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(err)
                return
            delivered[seq] = (msg.partition(), msg.offset())

        return on_delivery

    for seq, (key, value, headers) in enumerate(messages):
        producer.produce(
            topic, key=key, value=value, headers=headers, on_delivery=on_delivery_for(seq)
        )
        producer.poll(0)
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    rc.check(remaining == 0, f"{topic}: producer flushed everything ({remaining} left)")
    rc.check(not errors, f"{topic}: no delivery errors {errors[:3]}")
    rc.check(
        len(delivered) == len(messages),
        f"{topic}: {len(delivered)}/{len(messages)} deliveries acknowledged",
    )
    return delivered


def consume_all(bootstrap, topic, expected_count):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign(
            [TopicPartition(topic, p, 0) for p in range(rc.PARTITION_COUNT)]
        )
        consumed = []
        deadline = time.monotonic() + rc.CONSUME_TIMEOUT_S
        while len(consumed) < expected_count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                consumed.append(
                    (msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers())
                )
        # Anything beyond the expected count would be a duplicate; give it a moment to show.
        for msg in consumer.consume(num_messages=500, timeout=1.0):
            if msg.error() is None:
                consumed.append(
                    (msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers())
                )
        watermarks = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=ADMIN_TIMEOUT_S)
            for p in range(rc.PARTITION_COUNT)
        ]
        return consumed, watermarks
    finally:
        consumer.close()


def roundtrip(admin, bootstrap, label, extra_config, skip_watermarks):
    rc.roundtrip(
        "confluent-kafka",
        rc.unique_topic(f"ck-{label}"),
        label,
        create_topic=lambda topic: create_topic(admin, topic),
        produce=lambda topic, messages: produce(bootstrap, topic, messages, extra_config),
        consume_all=lambda topic, count: consume_all(bootstrap, topic, count),
        skip_watermarks=skip_watermarks,
        watermark_names="low, high",
    )


def main():
    args = rc.roundtrip_args(__doc__.splitlines()[0])
    import confluent_kafka

    print(
        f"confluent-kafka {confluent_kafka.version()}, "
        f"librdkafka {confluent_kafka.libversion()[0]}",
        flush=True,
    )
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for codec in CODECS:
        roundtrip(
            admin,
            args.bootstrap,
            codec,
            {"compression.type": codec},
            args.skip_watermark_check,
        )
    roundtrip(
        admin,
        args.bootstrap,
        "idempotent",
        {
            "enable.idempotence": True,
            "compression.type": "lz4",
            "max.in.flight.requests.per.connection": 5,
        },
        args.skip_watermark_check,
    )


if __name__ == "__main__":
    rc.run_main(main)
