#!/usr/bin/env python3
"""Transactions with confluent-kafka (librdkafka 2.x, classic transactions).

A transactional producer initialises, then: commits a transaction that writes to all 3
partitions of an output topic and sends a consumer group's offsets with it; aborts one that
writes to all 3 partitions; commits a third. A read_committed consumer must see exactly the
committed records (none of the aborted, in order per partition) and a read_uncommitted one
every record; the group's committed offset is the one sent in the committed transaction and
nothing from the aborted one. A second producer with the same transactional.id fences the
first: its next transaction fails as fenced. Exits non-zero on the first failed check.
"""


from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import roundtrip_common as rc

PARTITIONS = 3
PER_PARTITION = 5
TIMEOUT_S = 30.0


def create_topics(admin, names):
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    for name in names:
        futures[name].result(timeout=TIMEOUT_S)


def producer(bootstrap, transactional_id):
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 60000,
            "linger.ms": 5,
        }
    )


def produce_round(p, topic, tag):
    for partition in range(PARTITIONS):
        for i in range(PER_PARTITION):
            p.produce(topic, key=f"k{i}".encode(), value=f"{tag}-{partition}-{i}".encode(),
                      partition=partition)
    p.flush(TIMEOUT_S)


def consume_all(bootstrap, topic, isolation, expected):
    return rc.read_partitions(
        bootstrap,
        topic,
        PARTITIONS,
        isolation,
        expected,
        TIMEOUT_S,
        lambda m: (m.partition(), m.offset(), m.value().decode()),
    )


def main():
    args = rc.roundtrip_args("confluent-kafka transactions")
    bootstrap = args.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    out_topic = rc.unique_topic("txn-out")
    in_topic = rc.unique_topic("txn-in")
    create_topics(admin, [out_topic, in_topic])
    group = rc.unique_topic("txn-group")
    txn_id = rc.unique_topic("txn-id")

    p = producer(bootstrap, txn_id)
    p.init_transactions(TIMEOUT_S)
    rc.check(True, "init_transactions with a transactional.id")

    # A group member's metadata, as consume-transform-produce sends it.
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "enable.auto.commit": False})
    p.begin_transaction()
    produce_round(p, out_topic, "committed1")
    p.send_offsets_to_transaction(
        [TopicPartition(in_topic, 0, 42), TopicPartition(in_topic, 1, 7)],
        member.consumer_group_metadata(), TIMEOUT_S)
    p.commit_transaction(TIMEOUT_S)
    rc.check(True, "commit of a transaction over 3 partitions with offsets")

    p.begin_transaction()
    produce_round(p, out_topic, "aborted")
    p.send_offsets_to_transaction([TopicPartition(in_topic, 0, 99)],
                                  member.consumer_group_metadata(), TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    rc.check(True, "abort of a transaction over 3 partitions")

    p.begin_transaction()
    produce_round(p, out_topic, "committed2")
    p.commit_transaction(TIMEOUT_S)

    committed = [v for v in (f"{t}-{part}-{i}" for t in ("committed1", "committed2")
                             for part in range(PARTITIONS) for i in range(PER_PARTITION))]
    aborted = [f"aborted-{part}-{i}" for part in range(PARTITIONS) for i in range(PER_PARTITION)]

    rc_seen = consume_all(bootstrap, out_topic, "read_committed", len(committed))
    values = [v for _, _, v in rc_seen]
    rc.check(sorted(values) == sorted(committed),
             f"read_committed sees exactly the {len(committed)} committed records "
             f"(saw {len(values)}, aborted among them: "
             f"{sorted(set(values) & set(aborted))[:3]})")
    for part in range(PARTITIONS):
        in_part = [v for pp, _, v in rc_seen if pp == part]
        want = [f"{t}-{part}-{i}" for t in ("committed1", "committed2")
                for i in range(PER_PARTITION)]
        rc.check(in_part == want, f"partition {part}: committed records in order")

    ru_seen = consume_all(bootstrap, out_topic, "read_uncommitted",
                          len(committed) + len(aborted))
    rc.check(sorted(v for _, _, v in ru_seen) == sorted(committed + aborted),
             f"read_uncommitted sees all {len(committed) + len(aborted)} records")

    offsets = member.committed([TopicPartition(in_topic, 0), TopicPartition(in_topic, 1)],
                               timeout=TIMEOUT_S)
    rc.check([o.offset for o in offsets] == [42, 7],
             f"the committed transaction's offsets are the group's ({[o.offset for o in offsets]})")
    member.close()

    # A second producer with the same transactional.id fences the first.
    p2 = producer(bootstrap, txn_id)
    p2.init_transactions(TIMEOUT_S)
    fenced = False
    try:
        p.begin_transaction()
        p.produce(out_topic, value=b"zombie", partition=0)
        p.flush(TIMEOUT_S)
        p.commit_transaction(TIMEOUT_S)
    except KafkaException as e:
        fenced = e.args[0].fatal() or "fenced" in str(e).lower()
        print(f"zombie refused: {e}", flush=True)
    rc.check(fenced, "the older producer is fenced after a re-initialisation")
    p2.begin_transaction()
    p2.produce(out_topic, value=b"after-fence", partition=0)
    p2.commit_transaction(TIMEOUT_S)
    final = [v for _, _, v in consume_all(bootstrap, out_topic, "read_committed",
                                          len(committed) + 1)]
    rc.check("zombie" not in final and "after-fence" in final,
             "the new producer commits; the zombie's record is never visible")


if __name__ == "__main__":
    rc.run_main(main)
