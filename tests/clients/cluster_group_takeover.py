"""A group keeps its generation (classic) or member epochs (--group-protocol consumer, KIP-848)
across a coordinator kill (tests/cluster_groups.rs, decision 0024).

A producer writes one record to each of --partitions partitions of --topic every 100 ms
for the whole run. Two confluent-kafka consumers (eager range assignor, manual commits)
join --group on --topic and commit synchronously after every message, each client in its
own thread (as applications run them). Once
both hold partitions and each has committed, the script prints
"ready <member id 1> <member id 2>" and keeps polling (heartbeats) until a line arrives on
stdin: the test killed the group's coordinator. From then on every assignment callback
(on_assign / on_revoke / on_lost) is counted, and so is every successful commit (they go
to the new coordinator, with the generation of before). After --after seconds more of
polling it prints "after <member id 1> <member id 2>", "callbacks_after_kill <n>",
"commits_after_kill <n>" and "committed <partition> <offset>" for each partition, then
closes both consumers. RDKAFKA_DEBUG (e.g. "cgrp,protocol,broker") turns on the
consumers' librdkafka debug log (stderr).
"""

import argparse
import os
import select
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


PRINT_LOCK = threading.Lock()


def out(line):
    with PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--after", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--group-protocol", choices=["classic", "consumer"], default="classic")
    args = parser.parse_args()

    state = {"killed": False, "callbacks_after_kill": 0}
    assigned = {0: [], 1: []}
    # Guards state, assigned and the commit counters: the callbacks run in the consumers'
    # threads (inside poll), the main thread reads.
    lock = threading.Lock()

    def callbacks(index):
        def on_assign(consumer, partitions):
            out(f"assign {index} {[p.partition for p in partitions]}")
            with lock:
                # Eager (classic range) hands out the whole set; KIP-848 adds to it.
                assigned[index] = sorted(set(assigned[index]) | {p.partition for p in partitions})
                if state["killed"]:
                    state["callbacks_after_kill"] += 1

        def on_revoke(consumer, partitions):
            out(f"revoke {index} {[p.partition for p in partitions]}")
            with lock:
                # Eager revokes everything; KIP-848 only the partitions named.
                assigned[index] = sorted(set(assigned[index]) - {p.partition for p in partitions})
                if state["killed"]:
                    state["callbacks_after_kill"] += 1

        def on_lost(consumer, partitions):
            out(f"lost {index} {[p.partition for p in partitions]}")
            with lock:
                assigned[index] = sorted(set(assigned[index]) - {p.partition for p in partitions})
                if state["killed"]:
                    state["callbacks_after_kill"] += 1

        return on_assign, on_revoke, on_lost

    consumers = []
    for index in range(2):
        debug = {"debug": os.environ["RDKAFKA_DEBUG"]} if os.environ.get("RDKAFKA_DEBUG") else {}
        config = {
            **debug,
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": f"takeover-{index}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000,
        }
        if args.group_protocol == "consumer":
            # KIP-848: the broker assigns and sets the session (45 s) and heartbeat
            # interval; librdkafka refuses the classic settings with this protocol.
            config["group.protocol"] = "consumer"
        else:
            config.update(
                {
                    "partition.assignment.strategy": "range",
                    # Longer than a kill, its fencing and the move of the group to another
                    # broker: the members must not expire before they find it.
                    "session.timeout.ms": 45000,
                    "heartbeat.interval.ms": 500,
                }
            )
        consumer = Consumer(config)
        on_assign, on_revoke, on_lost = callbacks(index)
        consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        consumers.append(consumer)

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    # One thread per client, as an application runs them: a synchronous commit blocks only
    # its own consumer. In one shared loop, a commit that librdkafka keeps re-sending while
    # it looks for the new coordinator stopped the producer too; with nothing produced each
    # fetch waited its full fetch.wait.max.ms, and FindCoordinator, queued behind it on the
    # same connection, came back after the commit's 100 ms retry backoff every time: the
    # retry sat on the address-less coordinator handle when the answer changed its address,
    # failed with _TRANSPORT and marked the new coordinator dead again (a client livelock
    # seen lasting 25 s, and past the 45 s session in the failing runs).
    stop = threading.Event()
    committed_before = [False, False]
    commits_after = [0, 0]

    def produce():
        produced = 0
        while not stop.is_set():
            for partition in range(args.partitions):
                producer.produce(args.topic, value=str(produced).encode(), partition=partition)
                produced += 1
            producer.poll(0.1)

    def consume(index, consumer):
        while not stop.is_set():
            msg = consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            try:
                consumer.commit(message=msg, asynchronous=False)
                with lock:
                    committed_before[index] = True
                    if state["killed"]:
                        commits_after[index] += 1
            except KafkaException as e:
                out(f"commit_error {index} {e}")

    threads = [threading.Thread(target=produce)] + [
        threading.Thread(target=consume, args=(index, consumer))
        for index, consumer in enumerate(consumers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.time() + args.timeout
    ready_at = None
    killed_at = None
    while time.time() < deadline:
        time.sleep(0.05)
        with lock:
            if ready_at is None and all(committed_before) and all(assigned.values()):
                ready_at = time.time()
                out(f"ready {consumers[0].memberid()} {consumers[1].memberid()}")
            if ready_at is not None and not state["killed"]:
                readable, _, _ = select.select([sys.stdin], [], [], 0)
                if readable:
                    sys.stdin.readline()
                    state["killed"] = True
                    killed_at = time.time()
            if killed_at is not None and all(commits_after) and time.time() - killed_at >= args.after:
                break
    stop.set()
    for thread in threads:
        thread.join()
    out(f"after {consumers[0].memberid()} {consumers[1].memberid()}")
    out(f"callbacks_after_kill {state['callbacks_after_kill']}")
    out(f"commits_after_kill {min(commits_after)}")
    positions = []
    for index, consumer in enumerate(consumers):
        parts = [TopicPartition(args.topic, p) for p in assigned[index]]
        try:
            for tp in consumer.committed(parts, timeout=10):
                positions.append((tp.partition, tp.offset))
        except KafkaException as e:
            out(f"committed_error {index} {e}")
    for partition, offset in sorted(positions):
        out(f"committed {partition} {offset}")
    for consumer in consumers:
        consumer.close()
    producer.flush(10)
    out("done")


if __name__ == "__main__":
    main()
