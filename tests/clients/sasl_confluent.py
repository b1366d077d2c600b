#!/usr/bin/env python3
"""confluent-kafka (librdkafka) over a SASL_PLAINTEXT listener with SCRAM (issue 20).

Produces keyed messages, consumes them back through a consumer group, commits and reads the
committed offsets back; then checks a wrong password is refused (no metadata, an
authentication error) instead of being served.

Usage: sasl_confluent.py --bootstrap HOST:PORT --user U --password P [--mechanism M]
       [--ssl-ca CA_FILE (SASL_SSL)]
"""
import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

MESSAGE_COUNT = 200
CONSUME_TIMEOUT_S = 60


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        sys.exit(1)


def sasl(args, password=None):
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL" if args.ssl_ca else "SASL_PLAINTEXT",
        "sasl.mechanism": args.mechanism,
        "sasl.username": args.user,
        "sasl.password": password or args.password,
    }
    if args.ssl_ca:
        config["ssl.ca.location"] = args.ssl_ca
    return config


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mechanism", default="SCRAM-SHA-512")
    # A SASL_SSL listener: the CA file its certificate chains to.
    p.add_argument("--ssl-ca")
    args = p.parse_args()
    topic = f"sasl-confluent-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"

    producer = Producer({**sasl(args), "acks": "all", "enable.idempotence": True})
    delivered = []
    for i in range(MESSAGE_COUNT):
        producer.produce(topic, key=f"k{i % 5}", value=f"v{i}",
                         on_delivery=lambda err, msg: delivered.append(err))
    left = producer.flush(30)
    check(left == 0 and len(delivered) == MESSAGE_COUNT and all(e is None for e in delivered),
          f"{args.mechanism}: produced {MESSAGE_COUNT} messages (acks=all, idempotent)")

    consumer = Consumer({**sasl(args), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values = []
    deadline = time.time() + CONSUME_TIMEOUT_S
    while len(values) < MESSAGE_COUNT and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            check(False, f"consume: {msg.error()}")
        values.append(msg.value().decode())
    check(sorted(values) == sorted(f"v{i}" for i in range(MESSAGE_COUNT)),
          f"consumed all {MESSAGE_COUNT} messages back through group {group}")
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    check(committed[0].offset == MESSAGE_COUNT,
          f"committed offset read back: {committed[0].offset}")
    consumer.close()

    # A wrong password: librdkafka reports an authentication error (from the broker's
    # SASL_AUTHENTICATION_FAILED) through error_cb, and no metadata ever arrives.
    errors = []
    bad = Producer({**sasl(args, password="not-the-password"), "log_level": 0,
                    "error_cb": lambda e: errors.append(e)})
    deadline = time.time() + 10
    while time.time() < deadline and not any(
            e.code() == KafkaError._AUTHENTICATION for e in errors):
        bad.poll(0.5)
    check(any(e.code() == KafkaError._AUTHENTICATION for e in errors),
          f"a wrong password is refused with an authentication error: {errors[:1]}")
    try:
        bad.list_topics(timeout=2)
        got_metadata = True
    except Exception:
        got_metadata = False
    check(not got_metadata, "and gets no metadata")
    print("all checks passed")


if __name__ == "__main__":
    main()
