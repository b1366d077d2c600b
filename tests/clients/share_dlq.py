"""Dead-letter topics for share groups (KIP-1191) with confluent-kafka's ShareConsumer.

Scenarios (first argument):
  dlq BOOTSTRAP        REJECTed records and records past share.delivery.count.limit reach
                       the group's dead-letter topic once each, with Kafka's __dlq.errors.*
                       headers and (copy.record.enable) their key and value; the rest never
                       do; bad DLQ group configs are refused with INVALID_CONFIG
  reject BOOTSTRAP     (crash test, first half) REJECT every record of a fresh topic; the
                       broker kills itself after the dead-letter append (it runs with
                       SLUICE_FAULT_DLQ_CRASH=after_append)
  recover BOOTSTRAP    (second half, after the restart) the dead-letter topic holds every
                       rejected record exactly once and none comes back to the group

Prints "ok ..." per check and "all checks passed" at the end; exits non-zero on a failure.
"""

import sys
import time
import uuid

from confluent_kafka import (
    AcknowledgeType,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    ShareConsumer,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

DEADLINE_S = 60
LOCK_MS = 2000
CRASH_TOPIC, CRASH_GROUP, CRASH_DLQ, CRASH_RECORDS = "dlq-crash", "dlq-crash-group", "dlq.crash", 5


def ok(message):
    print(f"ok {message}", flush=True)


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def alter_group(admin, group, configs):
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()


def setup(bootstrap, topic, dlq, group, configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(topic, 1, 1),
        NewTopic(dlq, 1, 1, config={"errors.deadletterqueue.group.enable": "true"}),
    ]
    for future in admin.create_topics(topics).values():
        future.result()
    alter_group(
        admin,
        group,
        [
            ("share.auto.offset.reset", "earliest"),
            ("share.record.lock.duration.ms", str(LOCK_MS)),
            ("errors.deadletterqueue.topic.name", dlq),
        ]
        + configs,
    )
    return admin


def produce(bootstrap, topic, count):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode())
    if producer.flush(30) != 0:
        fail("producer could not deliver everything")


def share_consumer(bootstrap, group, topic):
    c = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "share.acknowledgement.mode": "explicit",
        }
    )
    c.subscribe([topic])
    return c


def read_topic(bootstrap, topic, expected, settle_s=3):
    """Every record of `topic` once `expected` arrived and `settle_s` brought no more."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dlq-reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out = []
    deadline = time.time() + DEADLINE_S
    quiet_until = None
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m)
            continue
        if len(out) >= expected:
            quiet_until = quiet_until or time.time() + settle_s
            if time.time() >= quiet_until:
                break
    c.close()
    return out


def headers_of(m):
    return {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])}


def expect_invalid_config(admin, group, key, value):
    try:
        alter_group(admin, group, [(key, value)])
    except KafkaException as e:
        code = e.args[0].code()
        if code != KafkaError.INVALID_CONFIG:
            fail(f"{key}={value!r} refused with {e.args[0]}, not INVALID_CONFIG")
        ok(f"{key}={value!r} refused with INVALID_CONFIG")
        return
    fail(f"{key}={value!r} was accepted")


def dlq(bootstrap):
    topic, dlq_topic, group, total = "dlq-src", "dlq.src", "dlq-group", 30
    admin = setup(
        bootstrap,
        topic,
        dlq_topic,
        group,
        [
            ("share.delivery.count.limit", "2"),
            ("errors.deadletterqueue.copy.record.enable", "true"),
        ],
    )
    expect_invalid_config(admin, group, "errors.deadletterqueue.topic.name", "__internal")
    expect_invalid_config(admin, group, "errors.deadletterqueue.copy.record.enable", "maybe")
    produce(bootstrap, topic, total)
    # offset % 3 == 0: REJECT; == 1: RELEASE every time (dead-lettered after 2 deliveries);
    # == 2: ACCEPT.
    rejected = {o for o in range(total) if o % 3 == 0}
    exhausted = {o for o in range(total) if o % 3 == 1}
    c = share_consumer(bootstrap, group, topic)
    deliveries = {}
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        for m in c.poll(0.5):
            if m.error():
                fail(f"consumer error: {m.error()}")
            o = m.offset()
            deliveries.setdefault(o, []).append(m.delivery_count())
            kind = {0: AcknowledgeType.REJECT, 1: AcknowledgeType.RELEASE}.get(
                o % 3, AcknowledgeType.ACCEPT
            )
            c.acknowledge(m, kind)
        c.commit_sync()
        done = all(len(deliveries.get(o, [])) >= 2 for o in exhausted)
        if done and len(deliveries) == total:
            break
    # A few more polls: nothing dead-lettered or accepted may come back.
    for _ in range(4):
        for m in c.poll(0.5):
            if not m.error():
                fail(f"offset {m.offset()} was delivered again after it was settled")
    c.close()
    for o in exhausted:
        if deliveries.get(o) != [1, 2]:
            fail(f"offset {o} was delivered with counts {deliveries.get(o)}, not [1, 2]")
    ok(f"{len(exhausted)} released records were delivered twice, then no more")
    letters = read_topic(bootstrap, dlq_topic, len(rejected) + len(exhausted))
    seen = {}
    for m in letters:
        h = headers_of(m)
        o = int(h.get("__dlq.errors.offset", "-1"))
        if o in seen:
            fail(f"offset {o} was dead-lettered twice")
        seen[o] = (h, m)
    if set(seen) != rejected | exhausted:
        fail(f"dead letters for offsets {sorted(seen)}, expected {sorted(rejected | exhausted)}")
    ok(f"{len(seen)} dead letters: every rejected and exhausted record once, no accepted one")
    for o, (h, m) in seen.items():
        want = {
            "__dlq.errors.topic": topic,
            "__dlq.errors.partition": "0",
            "__dlq.errors.group": group,
            "__dlq.errors.delivery.count": "1" if o in rejected else "2",
            "__dlq.errors.message": "Offset rejected by client."
            if o in rejected
            else "Offset delivery count exceeded the threshold.",
        }
        for k, v in want.items():
            if h.get(k) != v:
                fail(f"dead letter of offset {o}: header {k}={h.get(k)!r}, expected {v!r}")
        if m.key() != f"k-{o}".encode() or m.value() != f"v-{o}".encode():
            fail(f"dead letter of offset {o} carries {m.key()!r}/{m.value()!r}")
        if m.partition() != 0:
            fail(f"dead letter of offset {o} went to partition {m.partition()}")
    ok("dead letters carry the __dlq.errors.* headers and the copied key and value")


def reject(bootstrap):
    setup(bootstrap, CRASH_TOPIC, CRASH_DLQ, CRASH_GROUP, [])
    produce(bootstrap, CRASH_TOPIC, CRASH_RECORDS)
    c = share_consumer(bootstrap, CRASH_GROUP, CRASH_TOPIC)
    got = set()
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len(got) < CRASH_RECORDS:
        for m in c.poll(0.5):
            if m.error():
                fail(f"consumer error: {m.error()}")
            got.add(m.offset())
            c.acknowledge(m, AcknowledgeType.REJECT)
    if len(got) < CRASH_RECORDS:
        fail(f"only {len(got)} records arrived")
    try:
        # The broker dies right after the dead-letter append, which may come before this
        # answer reaches us: the rejection is durable before any dead letter is written.
        c.commit_sync()
    except KafkaException as e:
        print(f"commit_sync after the crash: {e}", flush=True)
    ok(f"rejected {len(got)} records")


def recover(bootstrap):
    c = share_consumer(bootstrap, CRASH_GROUP, CRASH_TOPIC)
    # Polls touch the share-partition, which resumes the unfinished dead-lettering.
    deadline = time.time() + 5
    while time.time() < deadline:
        for m in c.poll(0.5):
            if not m.error():
                fail(f"rejected offset {m.offset()} was delivered again after the crash")
    letters = read_topic(bootstrap, CRASH_DLQ, CRASH_RECORDS)
    c.close()
    offsets = sorted(int(headers_of(m).get("__dlq.errors.offset", "-1")) for m in letters)
    if offsets != list(range(CRASH_RECORDS)):
        fail(f"dead letters after the crash for offsets {offsets}, expected each of 0..{CRASH_RECORDS} once")
    ok(f"{len(offsets)} dead letters, each rejected record exactly once across the crash")
    if any(m.key() is not None or m.value() is not None for m in letters):
        fail("copy.record.enable is off, yet a dead letter carries a key or value")
    ok("without copy.record.enable the dead letters carry headers only")


def main():
    scenario, bootstrap = sys.argv[1], sys.argv[2]
    {
        "dlq": lambda: dlq(bootstrap),
        "reject": lambda: reject(bootstrap),
        "recover": lambda: recover(bootstrap),
    }[scenario]()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
