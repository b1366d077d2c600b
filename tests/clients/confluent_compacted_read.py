#!/usr/bin/env python3
"""Reads a whole single-partition topic with confluent-kafka (librdkafka 2.x) and prints one
line per record: `<offset> <key> <value>`, the value `<null>` for a tombstone. Used by
tests/compaction.rs to check what a real client sees of a compacted log (gaps in offsets,
batches with fewer records than their offset range, empty batches).

Usage: confluent_compacted_read.py BOOTSTRAP TOPIC
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

READ_TIMEOUT_S = 60.0


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"compacted-read-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + READ_TIMEOUT_S
    lines = []
    while True:
        if time.monotonic() > deadline:
            sys.exit(f"no end of partition within {READ_TIMEOUT_S} s; read {len(lines)} records")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                break
            sys.exit(f"consume error: {msg.error()}")
        value = "<null>" if msg.value() is None else msg.value().decode()
        lines.append(f"{msg.offset()} {msg.key().decode()} {value}")
    consumer.close()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
