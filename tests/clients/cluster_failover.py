"""Leader failover under load (tests/cluster_failover.rs, issue 17 stage 3).

produce: an idempotent acks=all confluent-kafka producer writes "F", "F+1", ... (F is
  --first, 0 by default, so two producers' values differ) to one partition until a line arrives on stdin; every delivery is printed as
  "ack <value> <offset> <wall ms>" or "err <value> <error>", then "done" after the flush.
  Errors the client retries by itself never reach the callback.
verify: reads the partition from the beginning to its high watermark and prints
  "rec <offset> <value>" for each record, then "end <count>".
"""

import argparse
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "verify"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--first", type=int, default=0, help="the first value produced")
    args = parser.parse_args()
    produce(args) if args.mode == "produce" else verify(args)


if __name__ == "__main__":
    main()
