"""Leader failover under load (tests/cluster_failover.rs, issue 17 stage 3).

produce: an idempotent acks=all confluent-kafka producer writes "F", "F+1", ... (F is
  --first, 0 by default, so two producers' values differ) to one partition until a line arrives on stdin; every delivery is printed as
  "ack <value> <offset> <wall ms>" or "err <value> <error>", then "done" after the flush.
  Errors the client retries by itself never reach the callback.
verify: reads the partition from the beginning to its high watermark and prints
  "rec <offset> <value>" for each record, then "end <count>".
consume: a committing consumer group member (tests/cluster_offsets.rs and the failover
  loop's group); fill: writes --count records (see their docstrings).
"""

import argparse
import json
import logging
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def produce(args):
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            # Failover takes seconds; the producer retries within this bound.
            "message.timeout.ms": 120000,
            "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 200,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 200,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    stop = threading.Event()

    def wait_stdin():
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_stdin, daemon=True).start()

    def delivered(err, msg):
        value = msg.value().decode()
        if err is not None:
            out(f"err {value} {err}")
        else:
            out(f"ack {value} {msg.offset()} {int(time.time() * 1000)}")

    i = args.first
    while not stop.is_set():
        try:
            producer.produce(args.topic, value=str(i).encode(), partition=0, on_delivery=delivered)
            i += 1
        except BufferError:
            pass
        producer.poll(0.002)
    left = producer.flush(120)
    out(f"done {i} {left}")


def verify(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"verify-{time.time()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    tp = TopicPartition(args.topic, 0, 0)
    _, high = consumer.get_watermark_offsets(tp, timeout=30)
    consumer.assign([tp])
    count = 0
    last = -1
    deadline = time.time() + 120
    while last + 1 < high and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            out(f"error {msg.error()}")
            continue
        out(f"rec {msg.offset()} {msg.value().decode()}")
        last = msg.offset()
        count += 1
    out(f"end {count} {high}")
    consumer.close()


def status_line(raw, topic):
    """The "status ..." line of a librdkafka statistics report: the group side (coordinator
    state, join state, assignment) and the fetch side of partition 0 (leader, its epoch,
    fetch state, next fetch offset, high watermark, queued messages), so a group that
    stops committing says whether it lost its coordinator or its fetcher is stuck."""
    try:
        stats = json.loads(raw)
    except ValueError:
        return "status unreadable"
    group = stats.get("cgrp", {})
    part = stats.get("topics", {}).get(topic, {}).get("partitions", {}).get("0", {})
    fields = [
        ("group", group.get("state")),
        ("join", group.get("join_state")),
        ("assigned", group.get("assignment_size")),
        ("rebalances", group.get("rebalance_cnt")),
        ("leader", part.get("leader")),
        ("leader_epoch", part.get("leader_epoch")),
        ("fetch", part.get("fetch_state")),
        ("next", part.get("next_offset")),
        ("app", part.get("app_offset")),
        ("committed", part.get("committed_offset")),
        ("hw", part.get("hi_offset")),
        ("queued", part.get("fetchq_cnt")),
    ]
    return "status " + " ".join(f"{k}={v}" for k, v in fields)


def consume(args):
    """A committing consumer group member: reads the topic's partition 0 and commits the
    next offset every --commit-ms (and at the end). Prints "start <offset>" for the first
    record after each assignment, "rec <offset> <value>" for each record when
    --print-records, "attempt <offset>" before each commit and "commit <offset> <wall ms>"
    once it is acknowledged ("commit-err <offset> <error>" when refused). Commits are
    asynchronous (answered through poll), so a rebalance is never blocked behind a commit
    waiting for the coordinator. With --status-ms, prints librdkafka's view as
    "status ..." lines (see status_line) and its errors as "client-error ...". With
    --client-debug, librdkafka's debug trace (group, broker handles, metadata) goes to that
    file. Stops after --count records or at a line on stdin,
    commits, closes, then prints "done <count>"."""
    state = {"assigned": False, "committed": None}

    def on_commit(err, partitions):
        for p in partitions:
            failed = err if err is not None else p.error
            if failed is not None:
                out(f"commit-err {p.offset} {failed}")
            else:
                state["committed"] = p.offset
                out(f"commit {p.offset} {int(time.time() * 1000)}")

    config = {}
    if args.status_ms > 0:
        # Which side a stuck group is stuck on: librdkafka's own view, once a period.
        config["statistics.interval.ms"] = args.status_ms
        config["stats_cb"] = lambda raw: out(status_line(raw, args.topic))
        config["error_cb"] = lambda err: out(f"client-error {err}")
    if args.client_debug:
        # librdkafka's own trace of the group, broker handles and metadata, to a file: a
        # group stuck with every broker up says why only here (the stderr log is terse).
        trace = logging.getLogger("librdkafka")
        trace.addHandler(logging.FileHandler(args.client_debug))
        trace.setLevel(logging.DEBUG)
        trace.propagate = False
        config["debug"] = "cgrp,broker,metadata"
        config["logger"] = trace
    consumer = Consumer(
        {
            **config,
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 200,
            "retry.backoff.ms": 50,
            "topic.metadata.refresh.interval.ms": 1000,
            "on_commit": on_commit,
        }
    )
    stop = threading.Event()
    if args.count <= 0:

        def wait_stdin():
            sys.stdin.readline()
            stop.set()

        threading.Thread(target=wait_stdin, daemon=True).start()

    def on_assign(c, partitions):
        # The position of a previous assignment is not this one's: nothing to commit until
        # a record of this assignment was read (it starts at the committed offset).
        state["assigned"] = True
        state["next"] = None
        out("assigned " + ",".join(str(p.partition) for p in partitions))

    consumer.subscribe([args.topic], on_assign=on_assign)
    count = 0
    state["next"] = None
    last_commit = time.time()

    def commit():
        nonlocal last_commit
        last_commit = time.time()
        next_offset = state["next"]
        if next_offset is None or next_offset == state["committed"]:
            return
        out(f"attempt {next_offset}")
        try:
            consumer.commit(
                offsets=[TopicPartition(args.topic, 0, next_offset)], asynchronous=True
            )
        except KafkaException as e:
            out(f"commit-err {next_offset} {e}")

    while not stop.is_set() and (args.count <= 0 or count < args.count):
        msg = consumer.poll(0.1)
        if msg is not None and not msg.error():
            if state["assigned"]:
                state["assigned"] = False
                out(f"start {msg.offset()}")
            if args.print_records:
                out(f"rec {msg.offset()} {msg.value().decode()}")
            state["next"] = msg.offset() + 1
            count += 1
        if time.time() - last_commit >= args.commit_ms / 1000:
            commit()
    deadline = time.time() + 60
    while state["committed"] != state["next"] and time.time() < deadline:
        commit()
        consumer.poll(0.5)
    consumer.close()
    out(f"done {count}")


def fill(args):
    """Writes --count records "0", "1", ... to partition 0 (acks=all) and prints
    "filled <count>" once all are acknowledged."""
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})
    acked = []
    for i in range(args.count):
        producer.produce(
            args.topic, value=str(i).encode(), partition=0, on_delivery=lambda e, m: acked.append(e)
        )
        producer.poll(0)
    producer.flush(60)
    out(f"filled {sum(1 for e in acked if e is None)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "verify", "consume", "fill"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="failover")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--commit-ms", type=int, default=200)
    parser.add_argument("--print-records", action="store_true")
    parser.add_argument("--status-ms", type=int, default=0, help="consume: status period")
    parser.add_argument("--client-debug", help="consume: librdkafka's debug trace to this file")
    parser.add_argument("--first", type=int, default=0, help="the first value produced")
    args = parser.parse_args()
    modes = {"produce": produce, "verify": verify, "consume": consume, "fill": fill}
    modes[args.mode](args)


if __name__ == "__main__":
    main()
