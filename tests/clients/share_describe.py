"""`sluice group describe` of a share group while a confluent-kafka ShareConsumer holds
records: the member and its partition, the start offset and lag, and (with --admin) the
in-flight records by state and the highest delivery count.

  share_describe.py BOOTSTRAP ADMIN SLUICE_BIN

Prints "ok ..." per check and "all checks passed" at the end; exits non-zero on a failure.
"""

import subprocess
import sys
import time

from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

TOPIC, GROUP, TOTAL = "describe-src", "describe-group", 10


def ok(message):
    print(f"ok {message}", flush=True)


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def main():
    bootstrap, admin_addr, sluice = sys.argv[1], sys.argv[2], sys.argv[3]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        f.result()
    entries = [ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)]
    for f in admin.incremental_alter_configs(
        [ConfigResource(ResourceType.GROUP, GROUP, incremental_configs=entries)]
    ).values():
        f.result()
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(TOTAL):
        producer.produce(TOPIC, value=f"v-{i}".encode())
    producer.flush(30)
    c = ShareConsumer(
        {"bootstrap.servers": bootstrap, "group.id": GROUP, "share.acknowledgement.mode": "explicit"}
    )
    c.subscribe([TOPIC])
    got = []
    deadline = time.time() + 60
    while time.time() < deadline and len(got) < TOTAL:
        got.extend(m for m in c.poll(0.5) if not m.error())
    if len(got) < TOTAL:
        fail(f"only {len(got)} records arrived")
    # 0 accepted, 1 rejected (archived), 2..9 held: the window starts at 2.
    c.acknowledge(got[0], AcknowledgeType.ACCEPT)
    c.acknowledge(got[1], AcknowledgeType.REJECT)
    c.commit_sync()
    out = subprocess.run(
        [sluice, "group", "describe", GROUP, "--bootstrap-server", bootstrap, "--admin", admin_addr],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(out.stdout, flush=True)
    if out.returncode != 0:
        fail(f"sluice group describe failed: {out.stderr}")
    lines = out.stdout.splitlines()
    if not lines or "Type: share" not in lines[0] or "Members: 1" not in lines[0]:
        fail(f"unexpected header: {lines[:1]}")
    ok("the header names a share group with one member")
    members = [l for l in lines if l.endswith(f"{TOPIC}:0")]
    if len(members) != 1:
        fail("the member's assignment is not shown")
    ok("the member and its assigned partition are shown")
    rows = [l.split("\t") for l in lines if l.startswith(f"{TOPIC}\t0\t")]
    if len(rows) != 1:
        fail("no row for the partition")
    row = rows[0]
    # TOPIC PARTITION START END LAG AVAILABLE ACQUIRED ACKNOWLEDGED ARCHIVING ARCHIVED MAXDC MEMBERS
    start, end, lag, available, acquired = (int(x) for x in row[2:7])
    max_dc = int(row[10])
    if (start, end, lag) != (2, TOTAL, TOTAL - 2):
        fail(f"start/end/lag {start}/{end}/{lag}, expected 2/{TOTAL}/{TOTAL - 2}")
    ok("start offset, log end and lag are the share-partition's")
    if (available, acquired, max_dc) != (0, TOTAL - 2, 1):
        fail(f"available/acquired/max delivery count {available}/{acquired}/{max_dc}")
    ok("in-flight records by state and the highest delivery count come from the metrics")
    c.close()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
