#!/usr/bin/env python3
"""confluent-kafka (librdkafka) on a cluster reached only over SASL_SSL (decision 0021).

Produces to every partition of an existing topic with acks=all over SASL_SSL (SCRAM), then
checks what Metadata over that listener says: every broker is listed at an address of the
listener the client came in on (librdkafka could not reach a leader otherwise) and every
partition's ISR holds all of its replicas.

Usage: cluster_sasl_ssl.py --bootstrap HOST:PORT --user U --password P --ssl-ca CA_FILE
       --topic T --count N --ports P1,P2,P3
"""
import argparse
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--ssl-ca", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    # The SASL_SSL ports of every broker: all Metadata may name.
    p.add_argument("--ports", required=True)
    args = p.parse_args()
    security = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": args.user,
        "sasl.password": args.password,
        "ssl.ca.location": args.ssl_ca,
    }
    admin = AdminClient(security)
    metadata = admin.list_topics(args.topic, timeout=30)
    ports = sorted(int(p) for p in args.ports.split(","))
    listed = sorted(b.port for b in metadata.brokers.values())
    check(listed == ports, f"Metadata over SASL_SSL lists the SASL_SSL ports {listed}")
    partitions = sorted(metadata.topics[args.topic].partitions)
    check(len(partitions) > 0, f"{args.topic} has partitions {partitions}")

    producer = Producer({**security, "acks": "all", "enable.idempotence": True})
    delivered = []
    for i in range(args.count):
        producer.produce(args.topic, partition=partitions[i % len(partitions)],
                         key=f"k{i}", value=f"v{i}" * 20,
                         on_delivery=lambda err, msg: delivered.append(err))
    left = producer.flush(60)
    errors = [str(e) for e in delivered if e is not None]
    check(left == 0 and len(delivered) == args.count and not errors,
          f"produced {args.count} messages with acks=all over SASL_SSL {errors[:3]}")

    metadata = admin.list_topics(args.topic, timeout=30)
    for index, partition in sorted(metadata.topics[args.topic].partitions.items()):
        check(sorted(partition.isrs) == sorted(partition.replicas)
              and len(partition.replicas) == 3,
              f"partition {index}: ISR {partition.isrs} of replicas {partition.replicas}")
    print("all checks passed")


if __name__ == "__main__":
    main()
