#!/usr/bin/env python3
"""Transactions across brokers with confluent-kafka (librdkafka 2.x) on a Sluice cluster.

The topic (--topic, made by the caller) has partitions led by every broker, so one
transaction writes to partitions led by the transaction coordinator's broker and by the
others. A transactional producer commits a transaction over every partition, aborts one,
and commits a third; a read_committed consumer must then read exactly the committed records
of every partition, in order, and none of the aborted ones. Exits non-zero on the first
failed check (or a client error: a transactional produce refused by a leader surfaces as
an abortable error at commit).
"""

import argparse

from confluent_kafka import Producer

import roundtrip_common as rc

PER_PARTITION = 4
TIMEOUT_S = 30.0
TAGS_COMMITTED = ("committed1", "committed2")


def produce_round(p, topic, partitions, tag):
    for partition in range(partitions):
        for i in range(PER_PARTITION):
            p.produce(topic, key=f"k{i}".encode(), value=f"{tag}-{partition}-{i}".encode(),
                      partition=partition)
    remaining = p.flush(TIMEOUT_S)
    rc.check(remaining == 0, f"{tag}: every record of the round delivered ({remaining} left)")


def consume_committed(bootstrap, topic, partitions, expected):
    return rc.read_partitions(
        bootstrap,
        topic,
        partitions,
        "read_committed",
        expected,
        TIMEOUT_S,
        lambda m: (m.partition(), m.value().decode()),
    )


def main():
    parser = argparse.ArgumentParser(description="transactions across a cluster's brokers")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--transactional-id", required=True)
    args = parser.parse_args()
    topic, partitions = args.topic, args.partitions

    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "transaction.timeout.ms": 60000,
            "linger.ms": 5,
        }
    )
    p.init_transactions(TIMEOUT_S)
    rc.check(True, "init_transactions")

    p.begin_transaction()
    produce_round(p, topic, partitions, "committed1")
    p.commit_transaction(TIMEOUT_S)
    rc.check(True, f"commit of a transaction over {partitions} partitions")

    p.begin_transaction()
    produce_round(p, topic, partitions, "aborted")
    p.abort_transaction(TIMEOUT_S)
    rc.check(True, f"abort of a transaction over {partitions} partitions")

    p.begin_transaction()
    produce_round(p, topic, partitions, "committed2")
    p.commit_transaction(TIMEOUT_S)
    rc.check(True, "commit of a transaction after the aborted one")

    committed = [f"{t}-{part}-{i}" for t in TAGS_COMMITTED for part in range(partitions)
                 for i in range(PER_PARTITION)]
    seen = consume_committed(args.bootstrap, topic, partitions, len(committed))
    values = [v for _, v in seen]
    aborted = sorted(v for v in values if v.startswith("aborted-"))
    rc.check(sorted(values) == sorted(committed),
             f"read_committed reads exactly the {len(committed)} committed records "
             f"(read {len(values)}; aborted among them: {aborted[:3]})")
    for part in range(partitions):
        in_part = [v for pp, v in seen if pp == part]
        want = [f"{t}-{part}-{i}" for t in TAGS_COMMITTED for i in range(PER_PARTITION)]
        rc.check(in_part == want, f"partition {part}: the committed records, in order")


if __name__ == "__main__":
    rc.run_main(main)
