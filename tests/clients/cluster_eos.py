#!/usr/bin/env python3
"""Consume-transform-produce with confluent-kafka on a Sluice cluster whose group
coordinator and transaction coordinator are different brokers (the caller picks the ids).

The input topic (--input, one partition, made by the caller) gets 30 records. A
read_committed consumer in --group and a transactional producer (--transactional-id) copy
them to --output (made by the caller) in rounds of 10, each round's input offset given to
the transaction with send_offsets_to_transaction:
  1. commit: the group's committed offset is then 10;
  2. abort: it stays 10 (the aborted transaction's offset is dropped), and the consumer
     rewinds to it;
  3. commit: the same 10 input records again, committed offset 20.
read_committed then reads exactly the two committed rounds' records from the output.
Prints `committed <offset>` after each round. With --pause-file and --go-file, round 1
writes the first once its offsets are pending and commits once the second exists (the
caller kills the group's coordinator in between). Exits non-zero on the first failed check or
client error (librdkafka's fatal INVALID_PRODUCER_ID_MAPPING when the group's coordinator
cannot reach the transaction).
"""

import argparse
import os
import time

from confluent_kafka import Consumer, Producer, TopicPartition

import roundtrip_common as rc

ROUND = 10
SEEDED = 30
TIMEOUT_S = 30.0


def seed(args):
    p = Producer({"bootstrap.servers": args.bootstrap})
    for i in range(SEEDED):
        p.produce(args.input, value=f"in-{i}".encode(), partition=0)
    left = p.flush(TIMEOUT_S)
    rc.check(left == 0, f"seed: all {SEEDED} input records acknowledged ({left} left)")


def consume_round(consumer):
    """The next ROUND input records, in order."""
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < ROUND and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=ROUND - len(got), timeout=0.5):
            if m.error() is None:
                got.append(m)
    rc.check(len(got) == ROUND, f"consumed a round of {ROUND} input records ({len(got)})")
    return got


def committed(consumer, args):
    tps = consumer.committed([TopicPartition(args.input, 0)], timeout=TIMEOUT_S)
    return tps[0].offset


def wait_for_go(args):
    """--pause-file/--go-file: say the offsets are pending, wait for the caller (which
    kills the group's coordinator meanwhile) before ending the transaction."""
    with open(args.pause_file, "w") as f:
        f.write("pending\n")
    deadline = time.monotonic() + 2 * TIMEOUT_S
    while not os.path.exists(args.go_file):
        if time.monotonic() > deadline:
            rc.check(False, "the caller never said go")
        time.sleep(0.05)


def transactional_producer(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.transactional_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 2,
    })
    producer.init_transactions(TIMEOUT_S)
    return producer


def transform_round(consumer, producer, args, tag, commit, pause=False):
    batch = consume_round(consumer)
    producer.begin_transaction()
    for m in batch:
        producer.produce(args.output, value=f"{tag}:".encode() + m.value())
    positions = consumer.position(consumer.assignment())
    sent = [tp.offset for tp in positions if tp.topic == args.input and tp.partition == 0]
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(),
                                         TIMEOUT_S)
    if pause:
        wait_for_go(args)
    if commit:
        producer.commit_transaction(TIMEOUT_S)
    else:
        producer.abort_transaction(TIMEOUT_S)
    return batch, sent[0]


def main():
    parser = argparse.ArgumentParser(description="EOS pipeline over two coordinators")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--output-partitions", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--pause-file", help="written when round 1's offsets are pending")
    parser.add_argument("--go-file", help="round 1 commits once this exists")
    args = parser.parse_args()
    seed(args)

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    producer = transactional_producer(args)
    consumer.subscribe([args.input])

    pause = args.pause_file is not None and args.go_file is not None
    first, sent = transform_round(consumer, producer, args, "c1", commit=True, pause=pause)
    rc.check(sent == ROUND, f"round 1 sent offset {ROUND} ({sent})")
    after_commit = committed(consumer, args)
    rc.check(after_commit == sent,
             f"after the commit the group's offset is the one sent ({after_commit})")
    print(f"committed {after_commit}", flush=True)
    if pause:
        # The caller killed round 1's group coordinator, and once fenced it leaves the
        # Metadata answers (as a fenced Kafka broker does). librdkafka keeps such a
        # decommissioned broker in its coordinator cache and its next
        # send_offsets_to_transaction waits for it forever, past its own timeout
        # (confluentinc/librdkafka#5511, fix in PR #5512). A new producer of the same
        # transactional id (which fences this one, as a restarted pipeline would) starts
        # with an empty cache and finds the group's new coordinator.
        producer = transactional_producer(args)

    _, sent = transform_round(consumer, producer, args, "a", commit=False)
    rc.check(sent == 2 * ROUND, f"round 2 sent offset {2 * ROUND} ({sent})")
    after_abort = committed(consumer, args)
    rc.check(after_abort == after_commit,
             f"after the abort the group's offset is unchanged ({after_abort})")
    print(f"committed {after_abort}", flush=True)
    consumer.seek(TopicPartition(args.input, 0, after_abort))

    second, sent = transform_round(consumer, producer, args, "c2", commit=True)
    rc.check(sent == 2 * ROUND, f"round 3 sent offset {2 * ROUND} ({sent})")
    rc.check([m.offset() for m in second] == list(range(ROUND, 2 * ROUND)),
             "round 3 re-read the aborted round's input")
    final = committed(consumer, args)
    rc.check(final == sent, f"after the second commit the group's offset is {sent} ({final})")
    print(f"committed {final}", flush=True)
    consumer.close()

    want = sorted([f"c1:in-{i}" for i in range(ROUND)]
                  + [f"c2:in-{i}" for i in range(ROUND, 2 * ROUND)])
    seen = rc.read_partitions(args.bootstrap, args.output, args.output_partitions,
                              "read_committed", len(want), TIMEOUT_S,
                              lambda m: m.value().decode())
    aborted = [v for v in seen if v.startswith("a:")]
    rc.check(sorted(seen) == want,
             f"read_committed reads exactly the {len(want)} committed outputs "
             f"(read {len(seen)}; aborted among them: {aborted[:3]})")
    print("all checks passed")


if __name__ == "__main__":
    rc.run_main(main)
