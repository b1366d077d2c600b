#!/usr/bin/env python3
"""An exactly-once pipeline with confluent-kafka (issue 16), in three steps the Rust test
`exactly_once_pipeline.rs` drives:

  seed       writes N input records `in-<i>` (i = 0..N-1) over the input topic's partitions.
  transform  consumes the input read_committed in a group and, per batch, produces
             `out:in-<i>` to the output topic in one transaction together with the group's
             offsets (send_offsets_to_transaction). Prints `committed <records>` after each
             commit (the test SIGKILLs it at random moments and starts it again) and exits 0
             once the group's committed offsets reach the end of the input.
  verify     reads the output read_committed and checks it holds each input exactly once,
             and that the group's committed offsets are the input's end.

Exits non-zero on the first failed check; `verify` ends with "all checks passed".
"""

import argparse
import collections
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import roundtrip_common as rc

TIMEOUT_S = 30.0
# Records per transaction, at most: small, so a run has many transactions to be killed in.
BATCH_MAX = 50
# How long `transform` may run before it gives up (the test's own limit is longer).
TRANSFORM_LIMIT_S = 240.0
# The same static member id for every incarnation: a restarted transformer takes the
# killed one's place at once instead of waiting out its session.
INSTANCE_ID = "eos-transformer"


def seed(args):
    p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                  "linger.ms": 5})
    for i in range(args.count):
        p.produce(args.input, value=f"in-{i}".encode(), partition=i % args.partitions)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(TIMEOUT_S)
    rc.check(left == 0, f"seed: {left} input records not acknowledged")
    print(f"ok seeded {args.count} input records")
    print("all checks passed")


def input_end(consumer, args):
    ends = {}
    for partition in range(args.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(args.input, partition),
                                                 timeout=TIMEOUT_S)
        ends[partition] = high
    return ends


def committed_offsets(consumer, args):
    parts = [TopicPartition(args.input, p) for p in range(args.partitions)]
    return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=TIMEOUT_S)}


def rewind_to_committed(consumer):
    """After an aborted transaction: back to the group's committed offsets."""
    assignment = consumer.assignment()
    if not assignment:
        return
    for tp in consumer.committed(assignment, timeout=TIMEOUT_S):
        consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))


def transform(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "group.instance.id": INSTANCE_ID,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 10000,
    })
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.transactional_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 2,
    })
    producer.init_transactions(TIMEOUT_S)
    consumer.subscribe([args.input])
    ends = input_end(consumer, args)
    committed_total = 0
    deadline = time.monotonic() + TRANSFORM_LIMIT_S
    while time.monotonic() < deadline:
        batch = [m for m in consumer.consume(num_messages=BATCH_MAX, timeout=0.5)
                 if m.error() is None]
        if batch:
            producer.begin_transaction()
            try:
                for m in batch:
                    producer.produce(args.output, value=b"out:" + m.value(),
                                     partition=m.partition())
                positions = consumer.position(consumer.assignment())
                producer.send_offsets_to_transaction(
                    positions, consumer.consumer_group_metadata(), TIMEOUT_S)
                producer.commit_transaction(TIMEOUT_S)
            except KafkaException as e:
                error = e.args[0]
                if not error.txn_requires_abort():
                    raise
                print(f"aborting: {error}", flush=True)
                producer.abort_transaction(TIMEOUT_S)
                rewind_to_committed(consumer)
                continue
            committed_total += len(batch)
            print(f"committed {committed_total}", flush=True)
            continue
        committed = committed_offsets(consumer, args)
        if all(committed.get(p, -1) >= end for p, end in ends.items()):
            print(f"ok the group's offsets reached the input's end {ends}")
            print("all checks passed")
            return
    rc.check(False, f"transform: not done within {TRANSFORM_LIMIT_S} s")


def read_all(args, isolation, expected):
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": rc.unique_topic("eos-verify"),
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(args.output, p, 0) for p in range(args.partitions)])
    values = []
    at_end = set()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and (len(at_end) < args.partitions or
                                           len(values) < expected):
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
                continue
            raise KafkaException(m.error())
        at_end.discard(m.partition())
        values.append(m.value().decode())
    c.close()
    return values


def verify(args):
    committed = read_all(args, "read_committed", args.count)
    counts = collections.Counter(committed)
    expected = {f"out:in-{i}" for i in range(args.count)}
    missing = sorted(expected - counts.keys())
    duplicated = sorted(v for v, n in counts.items() if n > 1)
    unexpected = sorted(counts.keys() - expected)
    rc.check(not missing, f"{len(missing)} inputs missing from the output, e.g. {missing[:5]}")
    rc.check(not duplicated, f"{len(duplicated)} inputs twice in the output, e.g. {duplicated[:5]}")
    rc.check(not unexpected, f"unexpected output records, e.g. {unexpected[:5]}")
    rc.check(len(committed) == args.count, f"{len(committed)} output records, want {args.count}")
    print(f"ok read_committed output holds each of the {args.count} inputs exactly once")
    uncommitted = read_all(args, "read_uncommitted", args.count)
    print(f"ok read_uncommitted sees {len(uncommitted)} records "
          f"({len(uncommitted) - args.count} from aborted transactions)")
    reader = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group})
    ends = input_end(reader, args)
    offsets = committed_offsets(reader, args)
    rc.check(offsets == ends, f"group offsets {offsets}, input ends {ends}")
    print(f"ok the group's committed offsets are the input's end {ends}")
    reader.close()
    print("all checks passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["seed", "transform", "verify"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    {"seed": seed, "transform": transform, "verify": verify}[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
