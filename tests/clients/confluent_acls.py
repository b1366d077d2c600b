#!/usr/bin/env python3
"""confluent-kafka against Sluice's authorizer (issue 20). The broker runs with
`authorizer = "standard"` and `allow_everyone_if_no_acl_found = true`, and every connection
is User:ANONYMOUS (no SASL here):

* AdminClient.create_acls / describe_acls / delete_acls round-trip bindings;
* with READ and WRITE allowed on a topic, a producer and a consumer group round-trip records;
* a topic whose only ACL DENYs WRITE fails delivery with TOPIC_AUTHORIZATION_FAILED and is
  absent from list_topics (no DESCRIBE).

Exits non-zero with a clear message on the first failed check.
"""

import argparse

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

import roundtrip_common as rc

TIMEOUT_S = 30.0
ANONYMOUS = "User:ANONYMOUS"


def binding(topic, operation, permission):
    return AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        ANONYMOUS,
        "*",
        operation,
        permission,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    allowed = rc.unique_topic("acl-allowed")
    denied = rc.unique_topic("acl-denied")
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in (allowed, denied)],
        request_timeout=TIMEOUT_S,
    )
    for f in futures.values():
        f.result(timeout=TIMEOUT_S)

    acls = [
        binding(allowed, AclOperation.READ, AclPermissionType.ALLOW),
        binding(allowed, AclOperation.WRITE, AclPermissionType.ALLOW),
        binding(denied, AclOperation.WRITE, AclPermissionType.DENY),
    ]
    for f in admin.create_acls(acls, request_timeout=TIMEOUT_S).values():
        f.result(timeout=TIMEOUT_S)
    every = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
        AclOperation.ANY, AclPermissionType.ANY,
    )
    described = admin.describe_acls(every, request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    rc.check(sorted(map(str, described)) == sorted(map(str, acls)),
             f"describe_acls returns the {len(acls)} created bindings")

    delivered, failed = [], []

    def report(err, msg):
        (failed if err else delivered).append((msg.topic(), err))

    producer = Producer({"bootstrap.servers": args.bootstrap, "message.timeout.ms": 10000})
    for i in range(10):
        producer.produce(allowed, value=f"v{i}".encode(), on_delivery=report)
    producer.produce(denied, value=b"nope", on_delivery=report)
    producer.flush(TIMEOUT_S)
    rc.check(len(delivered) == 10 and all(t == allowed for t, _ in delivered),
             f"10 records delivered to {allowed} (READ+WRITE allowed)")
    codes = [err.code() for _, err in failed]
    rc.check(codes == [KafkaError.TOPIC_AUTHORIZATION_FAILED],
             f"the record for {denied} fails with TOPIC_AUTHORIZATION_FAILED: {failed}")

    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    rc.check(allowed in topics and denied not in topics,
             f"list_topics shows {allowed} and hides {denied} (no DESCRIBE)")

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": rc.unique_topic("acl-group"),
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([allowed])
    values = []
    while len(values) < 10:
        msg = consumer.poll(TIMEOUT_S)
        rc.check(msg is not None, f"a record from {allowed} within {TIMEOUT_S}s")
        rc.check(msg.error() is None, f"no consumer error ({msg.error()})")
        values.append(msg.value())
    consumer.commit(asynchronous=False)
    consumer.close()
    rc.check(values == [f"v{i}".encode() for i in range(10)], "the group consumed all 10 in order")

    deleted = admin.delete_acls([every], request_timeout=TIMEOUT_S)
    removed = [b for f in deleted.values() for b in f.result(timeout=TIMEOUT_S)]
    rc.check(len(removed) == len(acls), f"delete_acls removed the {len(acls)} bindings")


if __name__ == "__main__":
    rc.run_main(main)
