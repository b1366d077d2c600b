//! Topic, broker and group configs over the raw protocol, checked against Kafka 4.x:
//! CreateTopics accepts every standard topic config, bad values get INVALID_CONFIG,
//! DescribeConfigs lists every config with documentation, synonyms and null error messages,
//! IncrementalAlterConfigs APPEND/SUBTRACT edit list configs, and the timestamp bounds
//! refuse out-of-range records with INVALID_TIMESTAMP.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ProduceResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

const CLIENT_ID: &str = "topic-configs-test";
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const OP_SET: i8 = 0;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

/// Every Kafka 4.x topic config with a valid value different from its default.
const EVERY_STANDARD_CONFIG: &[(&str, &str)] = &[
    ("cleanup.policy", "compact,delete"),
    ("compression.type", "zstd"),
    ("compression.gzip.level", "6"),
    ("compression.lz4.level", "10"),
    ("compression.zstd.level", "5"),
    ("delete.retention.ms", "1000"),
    ("file.delete.delay.ms", "1000"),
    ("flush.messages", "1000"),
    ("flush.ms", "2000"),
    ("follower.replication.throttled.replicas", "0:0"),
    ("index.interval.bytes", "8192"),
    ("leader.replication.throttled.replicas", "*"),
    ("local.retention.bytes", "-1"),
    ("local.retention.ms", "-1"),
    ("max.compaction.lag.ms", "100000"),
    ("max.message.bytes", "2000000"),
    ("message.timestamp.after.max.ms", "3600000"),
    ("message.timestamp.before.max.ms", "86400000"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.3"),
    ("min.compaction.lag.ms", "10"),
    ("min.insync.replicas", "1"),
    ("preallocate", "true"),
    ("remote.log.copy.disable", "true"),
    ("remote.log.delete.on.disable", "true"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "1000000000"),
    ("retention.ms", "3600000"),
    ("segment.bytes", "1048576"),
    ("segment.index.bytes", "1048576"),
    ("segment.jitter.ms", "100"),
    ("segment.ms", "600000"),
    ("unclean.leader.election.enable", "true"),
];

fn create_topic(broker: &Broker, name: &str, configs: &[(&str, &str)]) -> CreateTopicsResponse {
    let topic = CreatableTopic::default()
        .with_name(wire::topic_name(name))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        );
    call(
        broker,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
        7,
    )
}

fn describe(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    documentation: bool,
) -> DescribeConfigsResponse {
    call(
        broker,
        &DescribeConfigsRequest::default()
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(sb(name))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(true)
            .with_include_documentation(documentation),
        4,
    )
}

fn config<'a>(
    response: &'a DescribeConfigsResponse,
    name: &str,
) -> &'a DescribeConfigsResourceResult {
    response.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("`{name}` not described"))
}

fn value_of(response: &DescribeConfigsResponse, name: &str) -> String {
    config(response, name)
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn alter(broker: &Broker, topic: &str, ops: &[(&str, i8, &str)]) -> (i16, Option<String>) {
    let response: IncrementalAlterConfigsResponse = call(
        broker,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(sb(topic))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(sb(k))
                                .with_config_operation(*op)
                                .with_value(Some(sb(v)))
                        })
                        .collect(),
                ),
        ]),
        1,
    );
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn create_topics_accepts_every_standard_config_and_describe_shows_them_as_overrides() {
    let broker = Broker::start();
    let created = create_topic(&broker, "every-config", EVERY_STANDARD_CONFIG);
    let result = &created.topics[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    assert_eq!(result.error_message, None, "no error message on success");
    let described = describe(&broker, RESOURCE_TOPIC, "every-config", false);
    assert_eq!(described.results[0].error_code, 0);
    assert_eq!(described.results[0].error_message, None);
    for (key, value) in EVERY_STANDARD_CONFIG {
        let c = config(&described, key);
        assert_eq!(c.value.as_deref(), Some(*value), "{key}");
        assert_eq!(c.config_source, SOURCE_TOPIC, "{key}");
        assert_eq!(
            c.synonyms[0].source, SOURCE_TOPIC,
            "{key} synonyms start with the override"
        );
        assert_eq!(
            c.documentation, None,
            "{key}: documentation only when asked"
        );
    }
    // Kafka 3.x configs are still accepted by old scripts.
    let legacy = create_topic(
        &broker,
        "legacy-configs",
        &[
            ("message.format.version", "2.8-IV1"),
            ("message.downconversion.enable", "false"),
        ],
    );
    assert_eq!(
        legacy.topics[0].error_code, 0,
        "{:?}",
        legacy.topics[0].error_message
    );
}

#[test]
fn describe_lists_every_config_with_documentation_types_and_synonyms() {
    let broker = Broker::start();
    assert_eq!(create_topic(&broker, "plain", &[]).topics[0].error_code, 0);
    let described = describe(&broker, RESOURCE_TOPIC, "plain", true);
    let result = &described.results[0];
    assert_eq!((result.error_code, &result.error_message), (0, &None));
    for (key, _) in EVERY_STANDARD_CONFIG {
        let c = config(&described, key);
        let doc = c
            .documentation
            .as_ref()
            .unwrap_or_else(|| panic!("{key}: null doc"));
        assert!(!doc.is_empty(), "{key}: empty doc");
        assert_eq!(c.config_source, SOURCE_DEFAULT, "{key}");
    }
    assert!(
        !result
            .configs
            .iter()
            .any(|c| c.name.as_str() == "message.format.version")
    );
    let retention = config(&described, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert_eq!(retention.config_type, 5, "LONG");
    let names: Vec<(&str, i8)> = retention
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(names, vec![("log.retention.ms", SOURCE_DEFAULT)]);
    assert_eq!(config(&described, "cleanup.policy").config_type, 7, "LIST");
    assert_eq!(config(&described, "preallocate").config_type, 1, "BOOLEAN");
    assert_eq!(
        config(&described, "min.cleanable.dirty.ratio").config_type,
        6,
        "DOUBLE"
    );
    assert_eq!(value_of(&described, "compression.type"), "producer");
    assert!(
        config(&described, "preallocate")
            .documentation
            .as_ref()
            .is_some_and(|d| d.contains("single-node")),
        "stored-only configs say they have no effect"
    );
    let unknown = describe(&broker, RESOURCE_TOPIC, "missing", false);
    assert_eq!(
        unknown.results[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn invalid_values_are_refused_with_invalid_config_and_a_message() {
    let broker = Broker::start();
    for (key, value, says) in [
        ("retention.ms", "-5", "Value must be at least -1"),
        ("compression.type", "brotli", "String must be one of"),
        ("cleanup.policy", "compact,erase", "String must be one of"),
        ("min.cleanable.dirty.ratio", "2", "no more than 1"),
        ("preallocate", "maybe", "true or false"),
        ("segment.ms", "soon", "Not a number"),
        (
            "leader.replication.throttled.replicas",
            "0-1",
            "[partitionId]:[brokerId]",
        ),
        ("remote.storage.enable", "true", "Tiered Storage"),
        ("no.such.config", "1", "Unknown topic config name"),
    ] {
        let created = create_topic(&broker, "refused", &[(key, value)]);
        let r = &created.topics[0];
        assert_eq!(
            r.error_code,
            ResponseError::InvalidConfig.code(),
            "{key}={value}"
        );
        let message = r.error_message.as_deref().unwrap_or_default();
        assert!(message.contains(says), "{key}={value}: {message}");
    }
    assert_eq!(create_topic(&broker, "kept", &[]).topics[0].error_code, 0);
    let (code, message) = alter(&broker, "kept", &[("compression.zstd.level", OP_SET, "99")]);
    assert_eq!(code, ResponseError::InvalidConfig.code(), "{message:?}");
    let conflict = create_topic(
        &broker,
        "lags",
        &[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ],
    );
    assert_eq!(
        conflict.topics[0].error_code,
        ResponseError::InvalidConfig.code()
    );
}

#[test]
fn append_and_subtract_edit_list_configs_only() {
    let broker = Broker::start();
    assert_eq!(create_topic(&broker, "lists", &[]).topics[0].error_code, 0);
    let policy = |b: &Broker| {
        value_of(
            &describe(b, RESOURCE_TOPIC, "lists", false),
            "cleanup.policy",
        )
    };
    assert_eq!(
        alter(
            &broker,
            "lists",
            &[("cleanup.policy", OP_APPEND, "compact")]
        ),
        (0, None)
    );
    assert_eq!(policy(&broker), "delete,compact");
    assert_eq!(
        alter(
            &broker,
            "lists",
            &[("cleanup.policy", OP_APPEND, "compact")]
        )
        .0,
        0
    );
    assert_eq!(policy(&broker), "delete,compact", "APPEND de-duplicates");
    assert_eq!(
        alter(
            &broker,
            "lists",
            &[("cleanup.policy", OP_SUBTRACT, "delete")]
        )
        .0,
        0
    );
    assert_eq!(policy(&broker), "compact");
    assert_eq!(
        alter(
            &broker,
            "lists",
            &[("cleanup.policy", OP_SUBTRACT, "delete")]
        )
        .0,
        0
    );
    assert_eq!(
        policy(&broker),
        "compact",
        "SUBTRACT of an absent value changes nothing"
    );
    let throttled = "leader.replication.throttled.replicas";
    assert_eq!(
        alter(&broker, "lists", &[(throttled, OP_APPEND, "0:0,1:0")]).0,
        0
    );
    let described = describe(&broker, RESOURCE_TOPIC, "lists", false);
    assert_eq!(value_of(&described, throttled), "0:0,1:0");
    let (code, message) = alter(&broker, "lists", &[("retention.ms", OP_APPEND, "5")]);
    assert_eq!(code, ResponseError::InvalidConfig.code());
    assert!(message.unwrap_or_default().contains("retention.ms"));
    let (code, _) = alter(&broker, "lists", &[("cleanup.policy", OP_APPEND, "erase")]);
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let (code, _) = alter(
        &broker,
        "lists",
        &[("retention.ms", OP_SET, "5"), ("retention.ms", OP_SET, "6")],
    );
    assert_eq!(code, ResponseError::InvalidRequest.code(), "duplicate keys");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn produce_at(broker: &Broker, topic: &str, timestamps: &[i64]) -> ProduceResponse {
    let records: Vec<_> = timestamps
        .iter()
        .enumerate()
        // offset - sequence constant: kafka-protocol keeps the records in one batch.
        .map(|(i, ts)| kafka_protocol::records::Record {
            sequence: i as i32 - 1,
            ..wire::plain_record(i as i64, *ts, Bytes::from_static(b"v"))
        })
        .collect();
    let batch = wire::encode_batch(&records).freeze();
    call(broker, &wire::produce_request(topic, 0, batch, -1), 9)
}

#[test]
fn timestamps_outside_the_bounds_are_refused_with_invalid_timestamp() {
    let broker = Broker::start();
    let bounds = [
        ("message.timestamp.before.max.ms", "3600000"),
        ("message.timestamp.after.max.ms", "60000"),
    ];
    assert_eq!(
        create_topic(&broker, "bounded", &bounds).topics[0].error_code,
        0
    );
    let now = now_ms();
    let ok = produce_at(&broker, "bounded", &[now, now - 1000]);
    assert_eq!(ok.responses[0].partition_responses[0].error_code, 0);

    let refused = produce_at(
        &broker,
        "bounded",
        &[now, now - 2 * 3_600_000, now + 600_000],
    );
    let p = &refused.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(
        p.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1, 2], "the two out-of-range records");
    assert!(
        p.record_errors[0]
            .batch_index_error_message
            .as_deref()
            .is_some_and(|m| m.contains("is out of range")),
        "{:?}",
        p.record_errors
    );

    // The 3.x difference bound applies both ways; LogAppendTime topics ignore the bounds.
    let legacy = [("message.timestamp.difference.max.ms", "60000")];
    assert_eq!(
        create_topic(&broker, "legacy-bound", &legacy).topics[0].error_code,
        0
    );
    let old = produce_at(&broker, "legacy-bound", &[now - 3_600_000]);
    assert_eq!(old.responses[0].partition_responses[0].error_code, 32);
    let append_time = [
        ("message.timestamp.type", "LogAppendTime"),
        bounds[0],
        bounds[1],
    ];
    assert_eq!(
        create_topic(&broker, "append-time", &append_time).topics[0].error_code,
        0
    );
    let any = produce_at(&broker, "append-time", &[now - 10 * 3_600_000]);
    assert_eq!(any.responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn broker_resource_shows_kafka_names_and_sources() {
    let broker = Broker::start();
    // The cluster-wide default resource ("") lists only its dynamic configs: none yet
    // (tests/dynamic_broker_configs.rs covers setting them).
    let defaults = describe(&broker, RESOURCE_BROKER, "", true);
    assert_eq!(defaults.results[0].error_code, 0);
    assert!(defaults.results[0].configs.is_empty());
    {
        let described = describe(&broker, RESOURCE_BROKER, "0", true);
        let result = &described.results[0];
        assert_eq!((result.error_code, &result.error_message), (0, &None));
        for key in [
            "advertised.listeners",
            "listeners",
            "num.partitions",
            "default.replication.factor",
            "log.retention.ms",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.dirs",
            "auto.create.topics.enable",
            "message.max.bytes",
            "broker.id",
            "node.id",
            "log.flush.interval.ms",
            "socket.request.max.bytes",
        ] {
            let c = config(&described, key);
            assert!(c.documentation.is_some(), "{key}");
            assert!(c.config_source == 4 || c.config_source == 5, "{key}");
        }
        assert_eq!(value_of(&described, "num.partitions"), "1");
        assert_eq!(value_of(&described, "log.retention.ms"), "604800000");
        assert_eq!(
            config(&described, "log.retention.ms").config_source,
            SOURCE_DEFAULT
        );
        assert_eq!(value_of(&described, "default.replication.factor"), "1");
        assert_eq!(
            config(&described, "log.dirs").config_source,
            4,
            "set on the command line"
        );
    }
    let response: IncrementalAlterConfigsResponse = call(
        &broker,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(sb("0"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(sb("num.partitions"))
                        .with_config_operation(OP_SET)
                        .with_value(Some(sb("3"))),
                ]),
        ]),
        1,
    );
    // Read from the config file at start-up only: refused as Kafka refuses a static key.
    let refused = &response.responses[0];
    assert_eq!(refused.error_code, ResponseError::InvalidRequest.code());
    assert!(
        refused
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("num.partitions")),
        "the refusal names the key: {:?}",
        refused.error_message
    );
    let other = describe(&broker, RESOURCE_BROKER, "7", false);
    assert_eq!(
        other.results[0].error_code,
        ResponseError::InvalidRequest.code()
    );
}

fn alter_group(broker: &Broker, group: &str, ops: &[(&str, i8, &str)]) -> (i16, Option<String>) {
    let response: IncrementalAlterConfigsResponse = call(
        broker,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_GROUP)
                .with_resource_name(sb(group))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(sb(k))
                                .with_config_operation(*op)
                                .with_value(Some(sb(v)))
                        })
                        .collect(),
                ),
        ]),
        1,
    );
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

const RESOURCE_GROUP: i8 = 32;
const OP_DELETE: i8 = 1;

/// A new member's ConsumerGroupHeartbeat: the interval the coordinator tells it to use.
fn join_interval(broker: &Broker, group: &str) -> i32 {
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
    };
    let response: ConsumerGroupHeartbeatResponse = call(
        broker,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(&format!("member-{}", now_ms())))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(sb("plain"))]))
            .with_topic_partitions(Some(Vec::new())),
        1,
    );
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    response.heartbeat_interval_ms
}

#[test]
fn group_configs_are_described_altered_validated_and_used_by_the_coordinator() {
    let broker = Broker::start();
    let described = describe(&broker, RESOURCE_GROUP, "payments", true);
    assert_eq!(
        (
            described.results[0].error_code,
            &described.results[0].error_message
        ),
        (0, &None)
    );
    assert_eq!(value_of(&described, "consumer.session.timeout.ms"), "45000");
    assert_eq!(
        config(&described, "consumer.session.timeout.ms").config_source,
        SOURCE_DEFAULT
    );
    assert!(
        config(&described, "consumer.heartbeat.interval.ms")
            .documentation
            .is_some()
    );

    let set = [
        ("consumer.session.timeout.ms", OP_SET, "50000"),
        ("consumer.heartbeat.interval.ms", OP_SET, "6000"),
    ];
    assert_eq!(alter_group(&broker, "payments", &set), (0, None));
    let described = describe(&broker, RESOURCE_GROUP, "payments", false);
    let session = config(&described, "consumer.session.timeout.ms");
    assert_eq!(session.value.as_deref(), Some("50000"));
    assert_eq!(session.config_source, 8, "GROUP_CONFIG");
    assert_eq!(
        value_of(&described, "consumer.heartbeat.interval.ms"),
        "6000"
    );
    assert_eq!(
        join_interval(&broker, "payments"),
        6000,
        "the coordinator uses it"
    );
    assert_ne!(
        join_interval(&broker, "other-group"),
        6000,
        "only for that group"
    );

    for (key, value) in [
        ("consumer.session.timeout.ms", "1000"),
        ("consumer.session.timeout.ms", "600000"),
        ("consumer.heartbeat.interval.ms", "100"),
        ("consumer.no.such", "1"),
    ] {
        let (code, message) = alter_group(&broker, "payments", &[(key, OP_SET, value)]);
        assert_eq!(
            code,
            ResponseError::InvalidConfig.code(),
            "{key}={value}: {message:?}"
        );
    }
    let (code, _) = alter_group(
        &broker,
        "payments",
        &[("consumer.session.timeout.ms", OP_APPEND, "1")],
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());

    // Durable: a restart keeps the group's configs.
    let data_dir = broker.data_dir.clone();
    let mut broker = broker;
    broker.terminate();
    let restarted = Broker::start_in(&data_dir, &[]);
    let described = describe(&restarted, RESOURCE_GROUP, "payments", false);
    assert_eq!(
        value_of(&described, "consumer.heartbeat.interval.ms"),
        "6000"
    );
    assert_eq!(
        alter_group(
            &restarted,
            "payments",
            &[("consumer.heartbeat.interval.ms", OP_DELETE, "")]
        )
        .0,
        0
    );
    let described = describe(&restarted, RESOURCE_GROUP, "payments", false);
    assert_eq!(
        config(&described, "consumer.heartbeat.interval.ms").config_source,
        SOURCE_DEFAULT
    );
}

/// Kafka 4.x's defaults (KIP-1030): any past timestamp is fine, one more than an hour ahead
/// of the broker's clock is refused, and the offender is named by its index in the batch.
#[test]
fn a_stock_topic_refuses_records_stamped_more_than_an_hour_ahead() {
    let broker = Broker::start();
    assert_eq!(create_topic(&broker, "stock", &[]).topics[0].error_code, 0);
    let now = now_ms();
    let past_and_near = produce_at(&broker, "stock", &[now - 365 * 86_400_000, now + 1_800_000]);
    assert_eq!(
        past_and_near.responses[0].partition_responses[0].error_code,
        0
    );

    let future = produce_at(&broker, "stock", &[now, now + 2 * 3_600_000, now]);
    let p = &future.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1], "only the record two hours ahead");
}
