"""confluent-kafka's ShareConsumer (librdkafka 2.16, KIP-932) across a partition leader
failover in a 3-node Sluice cluster (decision 0025). The Rust driver
(tests/cluster_share_state.rs) creates the RF=3 topic, picks groups its leader
coordinates, runs `before` for each, SIGKILLs the leader, waits for the next one and runs
`after` for a group the new leader coordinates.

  before BOOTSTRAP TOPIC GROUP DIR  (before-no-produce: the records are there already)
      produces TOTAL records, acknowledges the first half it receives (ACCEPT) and
      releases the rest it receives (RELEASE), commit_sync, writes what it did to DIR
  after BOOTSTRAP TOPIC GROUP DIR
      a new member reads what is left: no accepted record again, every other record
      delivered, each released one with delivery count 2 (its first delivery counted)

  elsewhere BOOTSTRAP TOPIC GROUP DIR
      the group's coordinator is not the partition's leader: one ShareConsumer reads all
      TOTAL records once (it heartbeats to the coordinator, fetches at the leader)

Prints "ok ..." per check and "all checks passed" at the end; exits non-zero on a failure.
"""

import json
import os
import sys
import time

from confluent_kafka import Producer, ShareConsumer

DEADLINE_S = 60
TOTAL = 200


def ok(message):
    print(f"ok {message}", flush=True)


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def consumer(bootstrap, group, topic, explicit):
    conf = {"bootstrap.servers": bootstrap, "group.id": group}
    if explicit:
        conf["share.acknowledgement.mode"] = "explicit"
    c = ShareConsumer(conf)
    c.subscribe([topic])
    return c


def produce_all(bootstrap, topic):
    """TOTAL records rec-0.. with acks=all; fails the script if any is not delivered."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(TOTAL):
        producer.produce(topic, value=f"rec-{i}".encode())
        producer.poll(0)
    if producer.flush(30) != 0:
        fail("producer could not deliver everything")


def before(bootstrap, topic, group, state_dir, produce=True):
    if produce:
        produce_all(bootstrap, topic)
        ok(f"produced {TOTAL} records")
    c = consumer(bootstrap, group, topic, explicit=True)
    accepted, released = [], []
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len(accepted) + len(released) < TOTAL:
        for m in c.poll(0.5):
            if m.error():
                fail(f"consumer error: {m.error()}")
            if m.delivery_count() != 1:
                fail(f"offset {m.offset()} delivered with count {m.delivery_count()} first")
            if len(accepted) < TOTAL // 2:
                c.acknowledge(m)
                accepted.append(m.offset())
            else:
                c.acknowledge(m, 2)  # RELEASE: back to the group, its delivery counted
                released.append(m.offset())
        # Half of the partition is enough: the rest stays unread until after the kill.
        if len(accepted) >= TOTAL // 2 and released:
            break
    result = c.commit_sync()
    for tp, err in result.items():
        if err is not None:
            fail(f"commit of acknowledgements failed on {tp}: {err}")
    if len(accepted) < TOTAL // 2 or not released:
        fail(f"only {len(accepted)} accepted and {len(released)} released")
    ok(f"accepted {len(accepted)} and released {len(released)} records (commit_sync answered)")
    with open(os.path.join(state_dir, "before.json"), "w") as f:
        json.dump({"accepted": accepted, "released": released}, f)
    # Left without close(): its leader is killed under this member next.
    print("all checks passed", flush=True)
    os._exit(0)


def after(bootstrap, topic, group, state_dir):
    with open(os.path.join(state_dir, "before.json")) as f:
        was = json.load(f)
    accepted, released = set(was["accepted"]), set(was["released"])
    c = consumer(bootstrap, group, topic, explicit=False)
    got = {}
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len(got) < TOTAL - len(accepted):
        for m in c.poll(0.5):
            if m.error():
                fail(f"consumer error: {m.error()}")
            got.setdefault(m.offset(), m.delivery_count())
    # A little longer: an accepted record delivered again would come now.
    end = time.time() + 2
    while time.time() < end:
        for m in c.poll(0.5):
            if not m.error():
                got.setdefault(m.offset(), m.delivery_count())
    c.commit_sync()
    c.close()
    again = accepted & set(got)
    if again:
        fail(f"{len(again)} accepted records were delivered again: {sorted(again)[:10]}")
    ok("no accepted record was delivered again after the leader failover")
    missing = set(range(TOTAL)) - accepted - set(got)
    if missing:
        fail(f"{len(missing)} records were never delivered: {sorted(missing)[:10]}")
    ok(f"every other record was delivered ({len(got)})")
    counts = {got[o] for o in released}
    if counts != {2}:
        fail(f"released records came back with delivery counts {counts}, not 2")
    ok(f"the {len(released)} released records came back with delivery count 2")
    rest = {got[o] for o in got if o not in released}
    if not rest <= {1, 2}:
        fail(f"records never released came with delivery counts {rest}")
    ok(f"the records never released came with delivery counts {sorted(rest)}")


def elsewhere(bootstrap, topic, group, _state_dir):
    """The group's coordinator does not lead the partition: every record arrives once."""
    produce_all(bootstrap, topic)
    c = consumer(bootstrap, group, topic, explicit=False)
    got = []
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline and len(set(got)) < TOTAL:
        for m in c.poll(0.5):
            if m.error():
                fail(f"consumer error: {m.error()}")
            got.append(m.offset())
    c.commit_sync()
    c.close()
    if sorted(got) != list(range(TOTAL)):
        fail(f"got {len(set(got))} of {TOTAL} records ({len(got)} deliveries)")
    ok(f"all {TOTAL} records, each once, from a leader that does not coordinate the group")


def main():
    scenario, bootstrap, topic, group, state_dir = sys.argv[1:6]
    {
        "before": before,
        "before-no-produce": lambda *a: before(*a, produce=False),
        "after": after,
        "elsewhere": elsewhere,
    }[scenario](bootstrap, topic, group, state_dir)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
