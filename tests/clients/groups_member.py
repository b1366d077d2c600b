#!/usr/bin/env python3
"""One consumer-group member, run as its own process by groups_scenarios.py.

It subscribes to one topic with confluent-kafka or kafka-python and reports, one JSON object
per stdout line, everything the orchestrator needs to judge the group's behaviour:

  {"event": "assignment", "kind": "assign"|"revoke"|"lost", "delta": [...], "partitions": [...]}
  {"event": "record", "p": P, "o": OFFSET, "ms": MS_SINCE_START}
  {"event": "committed", "p": P, "o": NEXT_OFFSET}   (only with --commit, after the commit returned)

`partitions` is the member's whole assignment after the change, so eager and cooperative
(incremental) rebalances read the same way. The process stops cleanly on SIGTERM (closing
the consumer, which leaves the group) and is SIGKILLed by the orchestrator to simulate a crash.
"""

import argparse
import json
import signal
import sys
import time

RETRIABLE_COMMIT_ERRORS = set()

START = time.monotonic()
STOP = False


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def on_term(_signum, _frame):
    global STOP
    STOP = True


class Assignment:
    def __init__(self):
        self.owned = set()

    def assign(self, parts):
        self.owned |= set(parts)
        emit(event="assignment", kind="assign", delta=sorted(parts), partitions=sorted(self.owned))

    def revoke(self, parts, kind="revoke"):
        self.owned -= set(parts)
        emit(event="assignment", kind=kind, delta=sorted(parts), partitions=sorted(self.owned))


def run_confluent(args):
    from confluent_kafka import Consumer, KafkaError, KafkaException

    # Commit refusals that only mean "a rebalance moved on meanwhile".
    global RETRIABLE_COMMIT_ERRORS
    RETRIABLE_COMMIT_ERRORS = {
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._ASSIGNMENT_LOST,
    }

    restart_clock()

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if args.group_protocol == "consumer":
        # KIP-848: the broker assigns and sets the timings; librdkafka refuses the classic
        # settings with this protocol.
        config["group.protocol"] = "consumer"
    elif not args.defaults:
        config.update(
            {
                "session.timeout.ms": args.session_ms,
                "heartbeat.interval.ms": args.heartbeat_ms,
                "partition.assignment.strategy": args.strategy,
            }
        )
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)
    state = Assignment()

    def on_assign(c, parts):
        state.assign([tp.partition for tp in parts])

    def on_revoke(c, parts):
        state.revoke([tp.partition for tp in parts])

    def on_lost(c, parts):
        state.revoke([tp.partition for tp in parts], kind="lost")

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    while not STOP:
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            emit(event="error", error=str(msg.error()))
            continue
        emit(event="record", p=msg.partition(), o=msg.offset(), ms=ms_since_start())
        if args.process_ms:
            time.sleep(args.process_ms / 1000.0)
        if args.commit:
            try:
                consumer.commit(message=msg, asynchronous=False)
            except KafkaException as e:
                # A commit racing a rebalance (a stale member epoch, a rebalance in progress)
                # is refused by design; the record is redelivered to its next owner.
                if e.args[0].code() not in RETRIABLE_COMMIT_ERRORS:
                    raise
                emit(event="commit-refused", p=msg.partition(), o=msg.offset() + 1, error=str(e))
                continue
            emit(event="committed", p=msg.partition(), o=msg.offset() + 1)
    consumer.close()
    emit(event="closed")


def run_kafka_python(args):
    from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    restart_clock()

    state = Assignment()

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            state.revoke([tp.partition for tp in revoked])

        def on_partitions_assigned(self, assigned):
            state.assign([tp.partition for tp in assigned])

    config = {
        "bootstrap_servers": args.bootstrap,
        "group_id": args.group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    if not args.defaults:
        config.update(
            {"session_timeout_ms": args.session_ms, "heartbeat_interval_ms": args.heartbeat_ms}
        )
    consumer = KafkaConsumer(**config)
    consumer.subscribe([args.topic], listener=Listener())
    while not STOP:
        batches = consumer.poll(timeout_ms=100)
        for tp, records in batches.items():
            for rec in records:
                if STOP:
                    break
                emit(event="record", p=rec.partition, o=rec.offset, ms=ms_since_start())
                if args.process_ms:
                    time.sleep(args.process_ms / 1000.0)
                if args.commit:
                    offsets = {
                        TopicPartition(rec.topic, rec.partition): OffsetAndMetadata(
                            rec.offset + 1, "", -1
                        )
                    }
                    consumer.commit(offsets)
                    emit(event="committed", p=rec.partition, o=rec.offset + 1)
    consumer.close()
    emit(event="closed")


def restart_clock():
    """Times count from creating the consumer, after the client library is imported."""
    global START
    START = time.monotonic()


def ms_since_start():
    return int((time.monotonic() - START) * 1000)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--instance-id")
    parser.add_argument("--strategy", default="range")
    parser.add_argument("--session-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-ms", type=int, default=500)
    parser.add_argument("--commit", action="store_true", help="commit each record after processing")
    parser.add_argument("--process-ms", type=int, default=0, help="simulated work per record")
    parser.add_argument("--defaults", action="store_true", help="client's default group settings")
    parser.add_argument("--group-protocol", choices=["classic", "consumer"], default="classic")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    emit(event="started")
    if args.client == "confluent":
        run_confluent(args)
    else:
        run_kafka_python(args)


if __name__ == "__main__":
    main()
