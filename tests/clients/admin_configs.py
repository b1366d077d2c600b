#!/usr/bin/env python3
"""Topic and broker configs through real admin clients (issue 15 items 1 and 2).

confluent-kafka: create a topic with Kafka 4.x configs (compression.type, timestamp
bounds), describe it (values, sources, synonyms), APPEND compact to cleanup.policy with
incremental_alter_configs; set log.retention.ms live on the BROKER resource with
incremental_alter_configs, describe it back (DYNAMIC_BROKER_CONFIG on the broker and on a
topic without an override), then DELETE it. kafka-python: describe_configs of the BROKER
resource and read Kafka's names (num.partitions, log.retention.ms, advertised.listeners).
Exits non-zero with a clear message on the first failed check.
"""

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

import roundtrip_common as rc

TIMEOUT_S = 30.0


def confluent_topic_configs(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = rc.unique_topic("configs")
    configs = {
        "compression.type": "zstd",
        "message.timestamp.after.max.ms": "3600000",
        "preallocate": "true",
    }
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    futures[topic].result(timeout=TIMEOUT_S)
    rc.check(True, f"{topic}: created with compression.type=zstd and timestamp bounds")

    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(
        timeout=TIMEOUT_S
    )
    rc.check(
        described["compression.type"].value == "zstd",
        f"compression.type described as {described['compression.type'].value}",
    )
    rc.check(
        described["compression.type"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
        "compression.type is a topic override",
    )
    retention = described["retention.ms"]
    rc.check(
        retention.value == "604800000" and retention.source == ConfigSource.DEFAULT_CONFIG.value,
        f"retention.ms default {retention.value} (source {retention.source})",
    )
    for key in ["min.insync.replicas", "segment.jitter.ms", "unclean.leader.election.enable"]:
        rc.check(key in described, f"{key} listed by describe_configs")

    alter = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND
            )
        ],
    )
    admin.incremental_alter_configs([alter])[alter].result(timeout=TIMEOUT_S)
    described = admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(
        timeout=TIMEOUT_S
    )
    policy = described["cleanup.policy"].value
    rc.check(policy == "delete,compact", f"cleanup.policy after APPEND compact: {policy}")


def confluent_dynamic_broker_config(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    node_id = str(next(iter(admin.list_topics(timeout=TIMEOUT_S).brokers)))
    topic = rc.unique_topic("dynamic-broker")
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=TIMEOUT_S
    )
    broker = ConfigResource(ResourceType.BROKER, node_id)
    topic_resource = ConfigResource(ResourceType.TOPIC, topic)

    def alter(operation, value):
        change = ConfigResource(
            ResourceType.BROKER,
            node_id,
            incremental_configs=[
                ConfigEntry("log.retention.ms", value, incremental_operation=operation)
            ],
        )
        admin.incremental_alter_configs([change])[change].result(timeout=TIMEOUT_S)

    def described(resource, key):
        configs = admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource]
        entry = configs.result(timeout=TIMEOUT_S)[key]
        return entry.value, entry.source

    alter(AlterConfigOpType.SET, "7200000")
    dynamic = ConfigSource.DYNAMIC_BROKER_CONFIG.value
    got = described(broker, "log.retention.ms")
    rc.check(got == ("7200000", dynamic), f"broker log.retention.ms after SET: {got}")
    got = described(topic_resource, "retention.ms")
    rc.check(got == ("7200000", dynamic), f"topic retention.ms inherits it live: {got}")
    alter(AlterConfigOpType.DELETE, None)
    got = described(topic_resource, "retention.ms")
    rc.check(
        got == ("604800000", ConfigSource.DEFAULT_CONFIG.value),
        f"topic retention.ms after DELETE on the broker: {got}",
    )


def kafka_python_broker_configs(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        broker = admin._client.cluster.brokers().pop()
        node_id = str(getattr(broker, "node_id", getattr(broker, "nodeId", 0)))
        described = admin.describe_configs(
            [KpConfigResource(ConfigResourceType.BROKER, node_id)], config_filter="all"
        )
        rc.check(isinstance(described, dict), f"describe_configs answered {type(described)}")
        per_name = next(iter(described.values()), {})
        configs = per_name.get(node_id, {})
        entries = {
            key: (data.get("value") if isinstance(data, dict) else data)
            for key, data in configs.items()
        }
        for key in ["num.partitions", "log.retention.ms", "advertised.listeners", "log.dirs"]:
            rc.check(key in entries, f"broker config {key} = {entries.get(key)}")
        rc.check(entries.get("log.retention.ms") == "604800000", "log.retention.ms default")
    finally:
        admin.close()


def main():
    args = rc.roundtrip_args(__doc__)
    confluent_topic_configs(args.bootstrap)
    confluent_dynamic_broker_config(args.bootstrap)
    kafka_python_broker_configs(args.bootstrap)


if __name__ == "__main__":
    rc.run_main(main)
