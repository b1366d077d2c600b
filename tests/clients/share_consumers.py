"""confluent-kafka's ShareConsumer (KIP-932) against Sluice's share groups.

Scenarios (first argument), each on its own topic and group:
  disjoint BOOTSTRAP   three members on a one-partition topic receive disjoint records and
                       together all of them, while a producer keeps appending
  redeliver BOOTSTRAP  a member killed (SIGKILL) holding unacknowledged records: another
                       member receives them with delivery count 2 as soon as the killed
                       member's connection drops (its share session ends with it, as in
                       Kafka), long before their acquisition locks would expire
  before BOOTSTRAP DIR / after BOOTSTRAP DIR
                       the two halves of the broker-SIGKILL check the Rust driver runs around
                       a kill and restart: acknowledged records never come back, the rest do
  hold BOOTSTRAP TOPIC GROUP
                       (helper for redeliver) poll until records arrive, print them, then
                       wait to be killed without acknowledging

Prints "ok ..." per check and "all checks passed" at the end; exits non-zero on a failure.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Producer, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

DEADLINE_S = 60
# The redeliver check's lock: longer than its deadline, so only the end of the killed
# member's share session (its connection) can release the records in time.
HELD_LOCK_MS = 600000


def ok(message):
    print(f"ok {message}", flush=True)


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def setup(bootstrap, topic, group, configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    entries = [
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
        for k, v in [("share.auto.offset.reset", "earliest")] + configs
    ]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()


def produce(bootstrap, topic, first, count):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(first, first + count):
        producer.produce(topic, value=f"rec-{i}".encode())
        producer.poll(0)
    if producer.flush(30) != 0:
        fail("producer could not deliver everything")


def consumer(bootstrap, group, topic, explicit=False):
    conf = {"bootstrap.servers": bootstrap, "group.id": group}
    if explicit:
        conf["share.acknowledgement.mode"] = "explicit"
    c = ShareConsumer(conf)
    c.subscribe([topic])
    return c


def values(messages):
    out = []
    for m in messages:
        if m.error():
            fail(f"consumer error: {m.error()}")
        out.append((m.offset(), m.value().decode(), m.delivery_count()))
    return out


def disjoint(bootstrap):
    topic, group, total = "share-disjoint", "share-disjoint-group", 3000
    setup(bootstrap, topic, group, [])
    received = {name: [] for name in ("a", "b", "c")}
    stop = threading.Event()

    def member(name):
        c = consumer(bootstrap, group, topic)
        while not stop.is_set():
            received[name].extend(values(c.poll(0.5)))
        c.commit_sync()
        c.close()

    threads = [threading.Thread(target=member, args=(n,)) for n in received]
    for t in threads:
        t.start()
    time.sleep(2)  # all three joined before records flow
    for wave in range(30):
        produce(bootstrap, topic, wave * 100, 100)
        time.sleep(0.05)
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        if sum(len(r) for r in received.values()) >= total:
            break
        time.sleep(0.2)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    offsets = [o for r in received.values() for (o, _, _) in r]
    counts = {n: len(r) for n, r in received.items()}
    print(f"records per member: {counts}", flush=True)
    if len(offsets) != len(set(offsets)):
        fail(f"a record went to two members ({len(offsets) - len(set(offsets))} duplicates)")
    ok("no record was delivered to two members")
    if sorted(offsets) != list(range(total)):
        fail(f"members together got {len(set(offsets))} of {total} records")
    ok(f"the three members together received all {total} records")
    values_seen = sorted(v for r in received.values() for (_, v, _) in r)
    if values_seen != sorted(f"rec-{i}" for i in range(total)):
        fail("record values do not match what was produced")
    ok("every record's value is the one produced")
    if sum(1 for n in counts.values() if n > 0) < 2:
        fail(f"only one member received records: {counts}")
    ok("more than one member shared the partition's records")


def hold(bootstrap, topic, group):
    c = consumer(bootstrap, group, topic, explicit=True)
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        got = values(c.poll(0.5))
        if got:
            print(json.dumps([o for (o, _, _) in got]), flush=True)
            time.sleep(3600)
    fail("the holder got no records")


def redeliver(bootstrap):
    topic, group = "share-redeliver", "share-redeliver-group"
    setup(bootstrap, topic, group, [("share.record.lock.duration.ms", str(HELD_LOCK_MS))])
    produce(bootstrap, topic, 0, 20)
    holder = subprocess.Popen(
        [sys.executable, __file__, "hold", bootstrap, topic, group],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = holder.stdout.readline()
    held = json.loads(line) if line.strip() else []
    if not held:
        holder.kill()
        fail("the first member reported no records")
    ok(f"the first member acquired {len(held)} records and holds them")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed_at = time.time()
    c = consumer(bootstrap, group, topic)
    got = []
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len({o for (o, _, _) in got}) < 20:
        got.extend(values(c.poll(0.5)))
    c.commit_sync()
    c.close()
    by_offset = {o: d for (o, _, d) in got}
    if sorted(by_offset) != list(range(20)):
        fail(f"the second member got offsets {sorted(by_offset)}")
    ok("the second member received every record")
    counts = {by_offset[o] for o in held}
    if counts != {2}:
        fail(f"held records came back with delivery counts {counts}, not 2")
    ok("the killed member's records came back with delivery count 2")
    elapsed = time.time() - killed_at
    ok(f"released when its connection dropped ({elapsed:.1f}s after the kill; "
       f"the locks last {HELD_LOCK_MS / 1000:.0f}s)")


def before(bootstrap, state_dir):
    topic, group, total = "share-crash", "share-crash-group", 200
    setup(bootstrap, topic, group, [])
    produce(bootstrap, topic, 0, total)
    c = consumer(bootstrap, group, topic, explicit=True)
    acked = []
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len(acked) < total // 2:
        for m in c.poll(0.5):
            if m.error():
                fail(f"consumer error: {m.error()}")
            if len(acked) < total // 2:
                c.acknowledge(m)
                acked.append(m.offset())
            else:
                c.acknowledge(m, 2)  # RELEASE: back to the group
    result = c.commit_sync()
    for tp, err in result.items():
        if err is not None:
            fail(f"commit of acknowledgements failed on {tp}: {err}")
    ok(f"acknowledged {len(acked)} records durably (commit_sync answered)")
    with open(os.path.join(state_dir, "acked.json"), "w") as f:
        json.dump(acked, f)
    # Left without close(): the broker is killed under this member next.
    print("all checks passed", flush=True)
    os._exit(0)


def after(bootstrap, state_dir):
    topic, group, total = "share-crash", "share-crash-group", 200
    with open(os.path.join(state_dir, "acked.json")) as f:
        acked = set(json.load(f))
    c = consumer(bootstrap, group, topic)
    got = []
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len({o for (o, _, _) in got}) < total - len(acked):
        got.extend(values(c.poll(0.5)))
    c.commit_sync()
    c.close()
    again = acked & {o for (o, _, _) in got}
    if again:
        fail(f"{len(again)} acknowledged records were delivered again: {sorted(again)[:10]}")
    ok("no acknowledged record was delivered again after the broker SIGKILL")
    everything = acked | {o for (o, _, _) in got}
    if everything != set(range(total)):
        fail(f"{total - len(everything)} records were lost")
    ok(f"no record was lost: {len(acked)} acknowledged before + {len(got)} after = {total}")


def main():
    scenario, bootstrap = sys.argv[1], sys.argv[2]
    if scenario == "hold":
        hold(bootstrap, sys.argv[3], sys.argv[4])
        return
    {
        "disjoint": lambda: disjoint(bootstrap),
        "redeliver": lambda: redeliver(bootstrap),
        "before": lambda: before(bootstrap, sys.argv[3]),
        "after": lambda: after(bootstrap, sys.argv[3]),
    }[scenario]()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
