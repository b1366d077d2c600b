"""Shared checks for the Python real-client scripts.

Owns: the test message set (keys, values, headers), the assertions made on what was
consumed back, and the per-topic round trip the client scripts run (create, produce,
consume, verify, ListOffsets). Must not: talk to a broker itself; each client script passes
in its own I/O.
"""

import argparse
import sys
import uuid

# Messages produced per codec run; enough for several batches per partition.
MESSAGE_COUNT = 240
# Distinct keys; each must always land in the same partition.
KEY_COUNT = 12
PARTITION_COUNT = 3
# Upper bound on one consume phase; a healthy local broker needs well under a second.
CONSUME_TIMEOUT_S = 60.0


class CheckFailed(Exception):
    """A behaviour the broker got wrong; the message says which and how."""


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise CheckFailed(message)


def unique_topic(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def expected_messages(tag, count=MESSAGE_COUNT):
    """(key, value, headers) triples; headers carry the sequence number, a binary value, a
    repeated header name and an empty value, so a broker that mangles any of them is caught."""
    out = []
    for i in range(count):
        key = f"key-{i % KEY_COUNT}".encode()
        # Variable sizes (1..~1.3 KiB) so batches are not all the same shape.
        value = f"{tag}-{i}:".encode() + bytes((i * 7 + j) % 256 for j in range((i * 37) % 1300))
        headers = [
            ("seq", str(i).encode()),
            ("bin", bytes([0, 1, 127, 128, 255])),
            ("dup", b"first"),
            ("dup", b"second"),
            ("empty", b""),
        ]
        out.append((key, value, headers))
    return out


def seq_of(headers):
    for name, value in headers:
        if name == "seq":
            return int(value.decode())
    raise CheckFailed(f"consumed record has no `seq` header: {headers!r}")


def normalize_headers(headers):
    """Clients differ (None vs [], str vs bytes values); compare as a list of (str, bytes)."""
    out = []
    for name, value in headers or []:
        if isinstance(name, bytes):
            name = name.decode()
        if value is None:
            value = b""
        if isinstance(value, str):
            value = value.encode()
        out.append((name, bytes(value)))
    return out


def verify_roundtrip(label, expected, consumed, delivered=None):
    """Checks `consumed`, a list of (partition, offset, key, value, headers), against
    `expected` (from expected_messages). `delivered` optionally maps seq -> (partition, offset)
    from the producer's acknowledgements."""
    check(
        len(consumed) == len(expected),
        f"{label}: consumed {len(consumed)} records, produced {len(expected)}",
    )
    seqs = [seq_of(normalize_headers(h)) for (_, _, _, _, h) in consumed]
    check(len(set(seqs)) == len(seqs), f"{label}: no duplicate records")
    check(set(seqs) == set(range(len(expected))), f"{label}: every produced record came back")

    by_partition = {}
    key_partition = {}
    intact = True
    for partition, offset, key, value, headers in consumed:
        headers = normalize_headers(headers)
        seq = seq_of(headers)
        exp_key, exp_value, exp_headers = expected[seq]
        if key != exp_key or value != exp_value or headers != exp_headers:
            intact = False
            print(
                f"     record seq={seq} p={partition} o={offset}: key {key!r} vs {exp_key!r}, "
                f"value len {len(value or b'')} vs {len(exp_value)}, headers {headers!r} vs "
                f"{exp_headers!r}",
                flush=True,
            )
        by_partition.setdefault(partition, []).append((offset, seq))
        key_partition.setdefault(key, set()).add(partition)
    check(intact, f"{label}: keys, values and headers intact")
    check(
        all(len(parts) == 1 for parts in key_partition.values()),
        f"{label}: each key always lands in one partition "
        f"({ {k.decode(): sorted(p) for k, p in key_partition.items()} })",
    )
    check(
        set(by_partition) <= set(range(PARTITION_COUNT)),
        f"{label}: records only in partitions 0..{PARTITION_COUNT - 1}",
    )
    check(
        len(by_partition) > 1,
        f"{label}: keys spread over more than one partition ({sorted(by_partition)})",
    )
    for partition, rows in sorted(by_partition.items()):
        offsets = [o for o, _ in rows]
        seqs_in_partition = [s for _, s in rows]
        check(
            offsets == list(range(len(offsets))),
            f"{label}: partition {partition} offsets are 0..{len(offsets) - 1} with no gap",
        )
        check(
            seqs_in_partition == sorted(seqs_in_partition),
            f"{label}: partition {partition} keeps produce order ({len(rows)} records)",
        )
    if delivered is not None:
        mismatched = [
            (seq, delivered.get(seq), (p, o))
            for (p, o, _, _, h) in consumed
            for seq in [seq_of(normalize_headers(h))]
            if delivered.get(seq) != (p, o)
        ]
        check(
            not mismatched,
            f"{label}: acknowledged partition/offset equals consumed partition/offset"
            + (f" (first mismatches {mismatched[:3]})" if mismatched else ""),
        )


def roundtrip_args(description):
    """The round-trip scripts' command line: --bootstrap and --skip-watermark-check."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    parser.add_argument(
        "--skip-watermark-check",
        action="store_true",
        help="only for trying this script on brokers with a known ListOffsets bug (tansu 0.6)",
    )
    return parser.parse_args()


def roundtrip(
    client, topic, label, create_topic, produce, consume_all, skip_watermarks, watermark_names
):
    """One round trip of `label`'s message set through a fresh `topic` with `client`.

    The client's own I/O: `create_topic(topic)`; `produce(topic, messages)` returning the
    delivered {seq: (partition, offset)}; `consume_all(topic, count)` returning (consumed
    tuples, ListOffsets (first, last) per partition), the pair `watermark_names` names in
    the check's message.
    """
    print(f"--- {client} {label}: topic {topic}", flush=True)
    create_topic(topic)
    messages = expected_messages(label)
    delivered = produce(topic, messages)
    consumed, watermarks = consume_all(topic, len(messages))
    verify_roundtrip(f"{client} {label}", messages, consumed, delivered)
    per_partition = [sum(1 for c in consumed if c[0] == p) for p in range(PARTITION_COUNT)]
    if skip_watermarks:
        print(f"skip {topic}: ListOffsets check (--skip-watermark-check)", flush=True)
        return
    check(
        watermarks == [(0, n) for n in per_partition],
        f"{topic}: ListOffsets ({watermark_names}) per partition {watermarks} match records "
        f"consumed {per_partition}",
    )


def run_main(main):
    """Runs `main()`; exits 1 with one clear line on a failed check or any error."""
    try:
        main()
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as error:  # any client error is a failed run, with its type shown
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from error
    print("all checks passed", flush=True)


def read_partitions(bootstrap, topic, partitions, isolation, expected, timeout_s, keep):
    """Reads partitions 0..partitions-1 of `topic` from offset 0 with a fresh confluent-kafka
    consumer at `isolation`; returns `keep(message)` of each record, in arrival order, once
    `expected` were read and nothing more came for 2 s (or at `timeout_s`)."""
    import time

    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_topic("reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = []
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            if len(seen) >= expected:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 2.0:
                    break
            continue
        if m.error():
            if m.error().code() == -191:  # partition EOF
                continue
            raise KafkaException(m.error())
        idle_since = None
        seen.append(keep(m))
    c.close()
    return seen
