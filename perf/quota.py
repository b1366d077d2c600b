#!/usr/bin/env python3
"""Producer byte-rate quota held under saturation (issue 20, decision 0011).

Against a running broker, sets `producer_byte_rate` on one client id with AlterClientQuotas
(v0, encoded here: neither confluent-kafka nor kafka-python has the client-quota APIs),
then a confluent-kafka producer with that client id produces as fast as it can for
`--seconds`. The rate is measured from delivery reports over the steady part (after
`--warmup` seconds: Kafka's window lets a client burst 10 s worth of quota first) and
must be within `--tolerance` of the quota. Exit status 1 when it is not. Usage:
  perf/quota.py --bootstrap 127.0.0.1:9092 [--rate 10000000] [--seconds 60] [--warmup 20]
"""

import argparse
import socket
import struct
import sys
import time

from confluent_kafka import Producer

ALTER_CLIENT_QUOTAS = 49


def string(s):
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def alter_producer_rate(bootstrap, client_id, rate):
    """AlterClientQuotas v0 for entity client-id=`client_id`; returns the entry's error code."""
    entity = struct.pack(">i", 1) + string("client-id") + string(client_id)
    ops = struct.pack(">i", 1) + string("producer_byte_rate") + struct.pack(">d?", float(rate), False)
    body = struct.pack(">i", 1) + entity + ops + struct.pack(">?", False)
    header = struct.pack(">hhi", ALTER_CLIENT_QUOTAS, 0, 1) + string("quota-perf-admin")
    request = header + body
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", recv_exactly(sock, 4))[0]
        frame = recv_exactly(sock, size)
    # correlation id, throttle_time_ms, entries count, first entry's error code
    _, _, count, code = struct.unpack(">iiih", frame[:14])
    if count != 1:
        raise SystemExit(f"AlterClientQuotas answered {count} entries")
    return code


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit("broker closed the connection")
        data += chunk
    return data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rate", type=int, default=10_000_000, help="producer_byte_rate, bytes/s")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--topic", default=f"quota-perf-{int(time.time())}")
    args = parser.parse_args()
    client_id = f"quota-perf-{int(time.time())}"
    code = alter_producer_rate(args.bootstrap, client_id, args.rate)
    if code != 0:
        raise SystemExit(f"AlterClientQuotas failed with error code {code}")

    delivered = []  # (monotonic time, bytes)
    throttles = []

    def on_delivery(err, msg):
        if err is None:
            delivered.append((time.monotonic(), len(msg.value())))

    def on_stats(_json):
        pass

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "client.id": client_id,
        "acks": 1,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 65536,
        "throttle_cb": lambda event: throttles.append(event.throttle_time),
    })
    value = b"q" * 16384
    started = time.monotonic()
    end = started + args.seconds
    while time.monotonic() < end:
        try:
            producer.produce(args.topic, value, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
    producer.flush(30)

    steady_from = started + args.warmup
    steady = [(t, n) for t, n in delivered if steady_from <= t <= end]
    if len(steady) < 2:
        raise SystemExit("too few deliveries in the steady window")
    span = steady[-1][0] - steady[0][0]
    measured = sum(n for _, n in steady[1:]) / span
    total = sum(n for _, n in delivered)
    deviation = (measured - args.rate) / args.rate
    print(f"quota {args.rate / 1e6:.2f} MB/s  measured {measured / 1e6:.3f} MB/s over {span:.1f}s "
          f"after {args.warmup:.0f}s warmup ({deviation * 100:+.2f} %); "
          f"total {total / 1e6:.1f} MB in {args.seconds:.0f}s; "
          f"throttle reports {len(throttles)}, max {max(throttles, default=0) * 1000:.0f} ms")
    if abs(deviation) > args.tolerance:
        print(f"FAIL: outside {args.tolerance * 100:.0f} %")
        sys.exit(1)


if __name__ == "__main__":
    main()
