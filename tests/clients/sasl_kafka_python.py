#!/usr/bin/env python3
"""kafka-python over a SASL_PLAINTEXT listener with PLAIN (issue 20): produce, consume
through a group, commit and read the commit back; a wrong password is refused.

Usage: sasl_kafka_python.py --bootstrap HOST:PORT --user U --password P
"""
import argparse
import sys
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

MESSAGE_COUNT = 100
CONSUME_TIMEOUT_S = 60


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        sys.exit(1)


def sasl(args, password=None):
    config = dict(bootstrap_servers=args.bootstrap,
                  security_protocol="SASL_SSL" if args.ssl_ca else "SASL_PLAINTEXT",
                  sasl_mechanism="PLAIN", sasl_plain_username=args.user,
                  sasl_plain_password=password or args.password)
    if args.ssl_ca:
        config["ssl_cafile"] = args.ssl_ca
    return config


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    # A SASL_SSL listener: the CA file its certificate chains to.
    p.add_argument("--ssl-ca")
    args = p.parse_args()
    topic = f"sasl-kafka-python-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"

    producer = KafkaProducer(acks="all", **sasl(args))
    futures = [producer.send(topic, key=b"k", value=f"v{i}".encode()) for i in range(MESSAGE_COUNT)]
    producer.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    check(offsets == list(range(MESSAGE_COUNT)), f"PLAIN: produced {MESSAGE_COUNT} messages")
    producer.close()

    consumer = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, **sasl(args))
    values = []
    deadline = time.time() + CONSUME_TIMEOUT_S
    while len(values) < MESSAGE_COUNT and time.time() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            values.extend(r.value.decode() for r in records)
    check(values == [f"v{i}" for i in range(MESSAGE_COUNT)],
          f"consumed all {MESSAGE_COUNT} messages in order through group {group}")
    consumer.commit()
    committed = consumer.committed(TopicPartition(topic, 0))
    check(committed == MESSAGE_COUNT, f"committed offset read back: {committed}")
    consumer.close()

    refused = None
    try:
        bad = KafkaProducer(request_timeout_ms=5000, max_block_ms=5000,
                            **sasl(args, password="wrong"))
        bad.send(topic, b"x").get(timeout=10)
    except KafkaError as e:
        refused = e
    check(refused is not None, f"a wrong password is refused: {type(refused).__name__}")
    print("all checks passed")


if __name__ == "__main__":
    main()
