#!/usr/bin/env python3
"""Kafka 4.x admin calls of single-node tooling (issue 15 items 6-8), with real clients.

confluent-kafka AdminClient: create_partitions with a replica assignment naming this broker
(accepted) and an unknown broker 10 (INVALID_REPLICA_ASSIGNMENT). kafka-python's admin:
the broker version it infers (4.0, from ListOffsets v10), elect_leaders (nothing to elect
on one node), describe_topic_partitions with its cursor, describe_features.

Usage: python admin_kafka4.py --bootstrap HOST:PORT
"""

import argparse
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KafkaPythonNewTopic

from roundtrip_common import CheckFailed, check, unique_topic

# Upper bound on one admin call.
TIMEOUT_S = 30


def confluent_replica_assignments(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    node = admin.describe_cluster(request_timeout=TIMEOUT_S).result(TIMEOUT_S).nodes[0].id
    topic = unique_topic("assigned")
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    grown = admin.create_partitions(
        [NewPartitions(topic, 3, replica_assignment=[[node], [node]])])[topic]
    grown.result(TIMEOUT_S)
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
    check(len(metadata.partitions) == 3, "confluent create_partitions with [[node], [node]] grows to 3")
    check(all(p.replicas == [node] for p in metadata.partitions.values()),
          "every partition's replicas are [node]")
    refused = admin.create_partitions(
        [NewPartitions(topic, 4, replica_assignment=[[10]])])[topic]
    try:
        refused.result(TIMEOUT_S)
        check(False, "an assignment naming broker 10 is refused")
    except KafkaException as e:
        error = e.args[0]
        check(error.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT,
              f"broker 10 is INVALID_REPLICA_ASSIGNMENT ({error})")
        check("broker 10" in error.str(), "the message names broker 10")
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
    check(len(metadata.partitions) == 3, "the refused request added nothing")


def kafka_python_admin(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        version = admin._client.check_version()
        check(tuple(version[:2]) >= (4, 0), f"kafka-python infers broker version 4.0+ ({version})")
        topic = unique_topic("elect")
        admin.create_topics([KafkaPythonNewTopic(topic, 5, 1)])
        answer = admin.elect_leaders(0, {topic: [0, 1]})
        codes = [p.error_code for r in answer.replica_election_results for p in r.partition_result]
        check(codes == [84, 84], f"elect_leaders: ELECTION_NOT_NEEDED for both ({codes})")
        page = admin.describe_topic_partitions([topic], response_partition_limit=3)
        first = [p["partition_index"] for p in page["topics"][0]["partitions"]]
        check(first == [0, 1, 2], f"describe_topic_partitions first page {first}")
        cursor = page["next_cursor"]
        check(cursor is not None and cursor["partition_index"] == 3, f"cursor {cursor}")
        rest = admin.describe_topic_partitions([topic], response_partition_limit=3, cursor=cursor)
        second = [p["partition_index"] for p in rest["topics"][0]["partitions"]]
        check(second == [3, 4] and rest["next_cursor"] is None, f"second page {second}")
        features = admin.describe_features()
        metadata_version = features.get("metadata.version", {})
        check(metadata_version.get("finalized") == (25, 25)
              and metadata_version.get("supported") == (7, 25),
              f"describe_features metadata.version ({features})")
        check(admin.update_features({"metadata.version": 25}) == {"metadata.version": "OK"},
              "update_features to the current level is OK")
    finally:
        admin.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()
    try:
        confluent_replica_assignments(args.bootstrap)
        kafka_python_admin(args.bootstrap)
    except CheckFailed as e:
        print(f"FAILED: {e}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
