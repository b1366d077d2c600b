#!/usr/bin/env python3
"""Round trip through the broker with kafka-python (pure Python protocol implementation).

For each codec (none, gzip, snappy, lz4, zstd) with idempotence off, and once with
idempotence on: create a 3-partition topic with KafkaAdminClient, produce keyed records with
headers, consume them all back by assignment and check order, key placement and content, and
that ListOffsets agrees. Codecs need python-snappy, lz4 and zstandard; a missing one is a
failure with an install hint, never a silent skip.
"""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import codec as kafka_codec

import roundtrip_common as rc

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_AVAILABLE = {
    "none": lambda: True,
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}
CODEC_PACKAGE = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}
REQUEST_TIMEOUT_MS = 30000


def create_topic(admin, bootstrap, name):
    admin.create_topics(
        {name: {"num_partitions": rc.PARTITION_COUNT, "replication_factor": 1}},
        timeout_ms=REQUEST_TIMEOUT_MS,
        wait_for_metadata=True,
    )
    probe = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        deadline = time.monotonic() + REQUEST_TIMEOUT_MS / 1000
        partitions = None
        while time.monotonic() < deadline:
            partitions = probe.partitions_for_topic(name)
            if partitions:
                break
            time.sleep(0.1)
    finally:
        probe.close()
    rc.check(
        partitions == set(range(rc.PARTITION_COUNT)),
        f"created {name} has partitions {sorted(partitions or [])} in metadata",
    )


def produce(bootstrap, topic, messages, extra_config):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        **extra_config,
    )
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in messages
        ]
        producer.flush(timeout=60)
        delivered = {}
        for seq, future in enumerate(futures):
            meta = future.get(timeout=60)
            delivered[seq] = (meta.partition, meta.offset)
    finally:
        producer.close(timeout=10)
    rc.check(
        len(delivered) == len(messages),
        f"{topic}: {len(delivered)}/{len(messages)} sends acknowledged",
    )
    return delivered


def consume_all(bootstrap, topic, expected_count):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(rc.PARTITION_COUNT)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        consumed = []
        deadline = time.monotonic() + rc.CONSUME_TIMEOUT_S
        while len(consumed) < expected_count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                consumed.extend(
                    (r.partition, r.offset, r.key, r.value, r.headers) for r in records
                )
        # Anything beyond the expected count would be a duplicate; give it a moment to show.
        for records in consumer.poll(timeout_ms=1000).values():
            consumed.extend((r.partition, r.offset, r.key, r.value, r.headers) for r in records)
        beginning = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        watermarks = [(beginning[tp], end[tp]) for tp in partitions]
        return consumed, watermarks
    finally:
        consumer.close()


def roundtrip(admin, bootstrap, label, extra_config, skip_watermarks):
    rc.roundtrip(
        "kafka-python",
        rc.unique_topic(f"kp-{label}"),
        label,
        create_topic=lambda topic: create_topic(admin, bootstrap, topic),
        produce=lambda topic, messages: produce(bootstrap, topic, messages, extra_config),
        consume_all=lambda topic, count: consume_all(bootstrap, topic, count),
        skip_watermarks=skip_watermarks,
        watermark_names="earliest, latest",
    )


def main():
    args = rc.roundtrip_args(__doc__.splitlines()[0])
    import kafka

    print(f"kafka-python {kafka.__version__}", flush=True)
    for codec in CODECS:
        rc.check(
            CODEC_AVAILABLE[codec](),
            f"kafka-python can use codec {codec}"
            + (f" (pip install {CODEC_PACKAGE[codec]})" if codec in CODEC_PACKAGE else ""),
        )
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        for codec in CODECS:
            roundtrip(
                admin,
                args.bootstrap,
                codec,
                {
                    "compression_type": None if codec == "none" else codec,
                    "enable_idempotence": False,
                },
                args.skip_watermark_check,
            )
        roundtrip(
            admin,
            args.bootstrap,
            "idempotent",
            {"compression_type": "gzip", "enable_idempotence": True},
            args.skip_watermark_check,
        )
    finally:
        admin.close()


if __name__ == "__main__":
    rc.run_main(main)
