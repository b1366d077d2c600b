//! Dynamic broker configs (KIP-226) over the raw protocol, checked against Kafka 4.x:
//! IncrementalAlterConfigs / AlterConfigs on the BROKER resource (this node's id, or "" for
//! the cluster-wide default) change the defaults of every topic without its own override,
//! live; DescribeConfigs shows where each value comes from; DELETE reverts to the next
//! level; static keys refuse the whole resource with INVALID_REQUEST; validate_only changes
//! nothing; the configs survive a restart.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as LegacyResource, AlterableConfig as LegacyConfig,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ProduceResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

const CLIENT_ID: &str = "dynamic-broker-configs-test";
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigSource` codes.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
/// The test broker's node id (Sluice's default).
const NODE: &str = "0";
const CLUSTER: &str = "";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

/// Creates a one-partition topic and returns the configs CreateTopics answered with:
/// (name, value, source).
fn create_topic(
    broker: &Broker,
    name: &str,
    configs: &[(&str, &str)],
) -> Vec<(String, Option<String>, i8)> {
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
    let response: CreateTopicsResponse = call(
        broker,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000),
        7,
    );
    let created = response.topics.into_iter().next().expect("one topic");
    assert_eq!(created.error_code, 0, "create {name}");
    created
        .configs
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.map(|v| v.to_string()),
                c.config_source,
            )
        })
        .collect()
}

/// One IncrementalAlterConfigs resource: (key, operation, value).
fn alter(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> AlterConfigsResourceResponse {
    let configs = changes
        .iter()
        .map(|(k, op, v)| {
            AlterableConfig::default()
                .with_name(sb(k))
                .with_config_operation(*op)
                .with_value(v.map(sb))
        })
        .collect();
    let response: IncrementalAlterConfigsResponse = call(
        broker,
        &IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(sb(name))
                    .with_configs(configs),
            ])
            .with_validate_only(validate_only),
        1,
    );
    response.responses.into_iter().next().expect("one resource")
}

fn alter_ok(broker: &Broker, name: &str, changes: &[(&str, i8, Option<&str>)]) {
    let r = alter(broker, RESOURCE_BROKER, name, changes, false);
    assert_eq!(
        (r.error_code, r.error_message),
        (0, None),
        "alter broker `{name}` {changes:?}"
    );
}

fn describe(broker: &Broker, resource_type: i8, name: &str) -> Vec<DescribeConfigsResourceResult> {
    let response: DescribeConfigsResponse = call(
        broker,
        &DescribeConfigsRequest::default()
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(sb(name))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(true),
        4,
    );
    let result = response.results.into_iter().next().expect("one result");
    assert_eq!(
        result.error_code, 0,
        "describe `{name}`: {:?}",
        result.error_message
    );
    result.configs
}

/// (value, source, synonyms as (name, value, source)) of one config.
type Described = (String, i8, Vec<(String, String, i8)>);

fn config_of(broker: &Broker, resource_type: i8, name: &str, key: &str) -> Option<Described> {
    let configs = describe(broker, resource_type, name);
    let c = configs.into_iter().find(|c| c.name.as_str() == key)?;
    let synonyms = c
        .synonyms
        .iter()
        .map(|s| {
            let value = s.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (s.name.to_string(), value, s.source)
        })
        .collect();
    let value = c.value.map(|v| v.to_string()).unwrap_or_default();
    Some((value, c.config_source, synonyms))
}

fn syn(name: &str, value: &str, source: i8) -> (String, String, i8) {
    (name.to_string(), value.to_string(), source)
}

/// Produces one record whose value is `value_bytes` long: the partition's error code.
fn produce(broker: &Broker, topic: &str, value_bytes: usize) -> i16 {
    let record = wire::plain_record(0, 0, Bytes::from(vec![b'x'; value_bytes]));
    let batch = wire::encode_batch(&[record]).freeze();
    let response: ProduceResponse = call(broker, &wire::produce_request(topic, 0, batch, -1), 9);
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn broker_levels_feed_topic_defaults_live_and_delete_reverts() {
    let broker = Broker::start();
    create_topic(&broker, "plain", &[]);
    create_topic(
        &broker,
        "own",
        &[("max.message.bytes", "100000"), ("retention.ms", "1000")],
    );
    assert_eq!(produce(&broker, "plain", 5_000), 0);

    // The cluster-wide default: both the description and the produce path use it.
    alter_ok(
        &broker,
        CLUSTER,
        &[
            ("message.max.bytes", OP_SET, Some("3000")),
            ("log.retention.ms", OP_SET, Some("123456")),
        ],
    );
    let too_large = ResponseError::MessageTooLarge.code();
    assert_eq!(produce(&broker, "plain", 5_000), too_large);
    assert_eq!(
        produce(&broker, "own", 5_000),
        0,
        "a topic override beats the default"
    );
    let (value, source, synonyms) =
        config_of(&broker, RESOURCE_TOPIC, "plain", "retention.ms").expect("retention.ms");
    assert_eq!((value.as_str(), source), ("123456", SOURCE_DYNAMIC_DEFAULT));
    assert_eq!(
        synonyms,
        vec![
            syn("log.retention.ms", "123456", SOURCE_DYNAMIC_DEFAULT),
            syn("log.retention.ms", "604800000", SOURCE_DEFAULT),
        ]
    );
    // A topic created afterwards inherits it too.
    create_topic(&broker, "later", &[]);
    assert_eq!(produce(&broker, "later", 5_000), too_large);

    // This broker's own value beats the cluster default; the topic override beats both.
    alter_ok(
        &broker,
        NODE,
        &[("log.retention.ms", OP_SET, Some("654321"))],
    );
    let (value, source, synonyms) =
        config_of(&broker, RESOURCE_TOPIC, "plain", "retention.ms").expect("retention.ms");
    assert_eq!((value.as_str(), source), ("654321", SOURCE_DYNAMIC_BROKER));
    assert_eq!(
        synonyms,
        vec![
            syn("log.retention.ms", "654321", SOURCE_DYNAMIC_BROKER),
            syn("log.retention.ms", "123456", SOURCE_DYNAMIC_DEFAULT),
            syn("log.retention.ms", "604800000", SOURCE_DEFAULT),
        ]
    );
    let (value, source, synonyms) =
        config_of(&broker, RESOURCE_TOPIC, "own", "retention.ms").expect("retention.ms");
    assert_eq!((value.as_str(), source), ("1000", SOURCE_TOPIC));
    assert_eq!(synonyms[0], syn("retention.ms", "1000", SOURCE_TOPIC));
    assert_eq!(synonyms[1].2, SOURCE_DYNAMIC_BROKER);

    // The BROKER resources show their own levels.
    let (value, source, synonyms) =
        config_of(&broker, RESOURCE_BROKER, NODE, "log.retention.ms").expect("per broker");
    assert_eq!((value.as_str(), source), ("654321", SOURCE_DYNAMIC_BROKER));
    assert_eq!(synonyms.len(), 3);
    let defaults = describe(&broker, RESOURCE_BROKER, CLUSTER);
    let mut names: Vec<_> = defaults.iter().map(|c| c.name.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["log.retention.ms", "message.max.bytes"]);
    assert!(
        defaults
            .iter()
            .all(|c| c.config_source == SOURCE_DYNAMIC_DEFAULT && !c.read_only)
    );

    // DELETE reverts to the next level down.
    alter_ok(&broker, NODE, &[("log.retention.ms", OP_DELETE, None)]);
    let (value, source, _) =
        config_of(&broker, RESOURCE_TOPIC, "plain", "retention.ms").expect("retention.ms");
    assert_eq!((value.as_str(), source), ("123456", SOURCE_DYNAMIC_DEFAULT));
    alter_ok(
        &broker,
        CLUSTER,
        &[
            ("message.max.bytes", OP_DELETE, None),
            ("log.retention.ms", OP_DELETE, None),
        ],
    );
    assert_eq!(produce(&broker, "plain", 5_000), 0);
    let (value, source, _) =
        config_of(&broker, RESOURCE_TOPIC, "plain", "retention.ms").expect("retention.ms");
    assert_eq!((value.as_str(), source), ("604800000", SOURCE_DEFAULT));
    assert!(describe(&broker, RESOURCE_BROKER, CLUSTER).is_empty());
}

#[test]
fn static_unknown_and_invalid_keys_are_refused_per_resource() {
    let broker = Broker::start();
    create_topic(&broker, "t", &[]);
    // One static key refuses the whole resource, as Kafka does.
    let r = alter(
        &broker,
        RESOURCE_BROKER,
        NODE,
        &[
            ("log.retention.ms", OP_SET, Some("5000")),
            ("node.id", OP_SET, Some("3")),
        ],
        false,
    );
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(
        message.contains("Cannot update these configs dynamically") && message.contains("node.id"),
        "{message}"
    );
    let (value, ..) = config_of(&broker, RESOURCE_TOPIC, "t", "retention.ms").expect("retention");
    assert_eq!(value, "604800000", "nothing of a refused resource applies");

    let unknown = alter(
        &broker,
        RESOURCE_BROKER,
        CLUSTER,
        &[("no.such.key", OP_SET, Some("1"))],
        false,
    );
    assert_eq!(unknown.error_code, ResponseError::InvalidConfig.code());
    let bad_value = alter(
        &broker,
        RESOURCE_BROKER,
        CLUSTER,
        &[("log.segment.bytes", OP_SET, Some("10"))],
        false,
    );
    assert_eq!(bad_value.error_code, ResponseError::InvalidConfig.code());
    let bad_codec = alter(
        &broker,
        RESOURCE_BROKER,
        NODE,
        &[("compression.type", OP_SET, Some("brotli"))],
        false,
    );
    assert_eq!(bad_codec.error_code, ResponseError::InvalidConfig.code());
    let other_broker = alter(
        &broker,
        RESOURCE_BROKER,
        "77",
        &[("log.retention.ms", OP_SET, Some("1"))],
        false,
    );
    assert_eq!(
        other_broker.error_code,
        ResponseError::InvalidRequest.code()
    );
    // Static settings describe as read-only, dynamic ones as writable.
    let configs = describe(&broker, RESOURCE_BROKER, NODE);
    let read_only = |k: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == k)
            .map(|c| c.read_only)
    };
    assert_eq!(read_only("node.id"), Some(true));
    assert_eq!(read_only("log.retention.ms"), Some(false));
}

#[test]
fn validate_only_changes_nothing_and_list_configs_append() {
    let broker = Broker::start();
    create_topic(&broker, "t", &[]);
    let r = alter(
        &broker,
        RESOURCE_BROKER,
        CLUSTER,
        &[("message.max.bytes", OP_SET, Some("3000"))],
        true,
    );
    assert_eq!((r.error_code, r.error_message), (0, None));
    assert_eq!(
        produce(&broker, "t", 5_000),
        0,
        "validate_only applied nothing"
    );
    assert!(describe(&broker, RESOURCE_BROKER, CLUSTER).is_empty());
    // A validation failure is still reported under validate_only.
    let r = alter(
        &broker,
        RESOURCE_BROKER,
        CLUSTER,
        &[("message.max.bytes", OP_SET, Some("-5"))],
        true,
    );
    assert_eq!(r.error_code, ResponseError::InvalidConfig.code());

    alter_ok(
        &broker,
        NODE,
        &[("log.cleanup.policy", OP_APPEND, Some("compact"))],
    );
    let (value, source, _) =
        config_of(&broker, RESOURCE_TOPIC, "t", "cleanup.policy").expect("cleanup.policy");
    assert_eq!(
        (value.as_str(), source),
        ("delete,compact", SOURCE_DYNAMIC_BROKER)
    );
    // Kafka's older unit synonyms: hours become milliseconds.
    alter_ok(
        &broker,
        CLUSTER,
        &[("log.retention.hours", OP_SET, Some("2"))],
    );
    let (value, source, synonyms) =
        config_of(&broker, RESOURCE_TOPIC, "t", "retention.ms").expect("retention.ms");
    assert_eq!(
        (value.as_str(), source),
        ("7200000", SOURCE_DYNAMIC_DEFAULT)
    );
    assert_eq!(
        synonyms[0],
        syn("log.retention.hours", "2", SOURCE_DYNAMIC_DEFAULT)
    );
}

#[test]
fn legacy_alter_configs_replaces_the_level() {
    let broker = Broker::start();
    create_topic(&broker, "t", &[]);
    alter_ok(&broker, NODE, &[("log.retention.ms", OP_SET, Some("5000"))]);
    let response: AlterConfigsResponse = call(
        &broker,
        &AlterConfigsRequest::default().with_resources(vec![
            LegacyResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(sb(NODE))
                .with_configs(vec![
                    LegacyConfig::default()
                        .with_name(sb("message.max.bytes"))
                        .with_value(Some(sb("3000"))),
                ]),
        ]),
        2,
    );
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(
        produce(&broker, "t", 5_000),
        ResponseError::MessageTooLarge.code()
    );
    let (value, source, _) =
        config_of(&broker, RESOURCE_TOPIC, "t", "retention.ms").expect("retention.ms");
    assert_eq!(
        (value.as_str(), source),
        ("604800000", SOURCE_DEFAULT),
        "replaced, not merged"
    );
}

#[test]
fn dynamic_broker_configs_survive_a_restart() {
    let mut broker = Broker::start();
    create_topic(&broker, "t", &[]);
    alter_ok(
        &broker,
        CLUSTER,
        &[("message.max.bytes", OP_SET, Some("3000"))],
    );
    alter_ok(
        &broker,
        NODE,
        &[("log.retention.ms", OP_SET, Some("654321"))],
    );
    broker.terminate();
    broker.spawn();
    assert_eq!(
        produce(&broker, "t", 5_000),
        ResponseError::MessageTooLarge.code()
    );
    let (value, source, _) =
        config_of(&broker, RESOURCE_TOPIC, "t", "retention.ms").expect("retention.ms");
    assert_eq!((value.as_str(), source), ("654321", SOURCE_DYNAMIC_BROKER));
    let (value, source, _) =
        config_of(&broker, RESOURCE_BROKER, CLUSTER, "message.max.bytes").expect("default");
    assert_eq!((value.as_str(), source), ("3000", SOURCE_DYNAMIC_DEFAULT));
}

/// `.log` segment files of partition 0 of `topic`.
fn segment_count(broker: &Broker, topic: &str) -> usize {
    let dir = broker.data_dir.join(format!("{topic}-0"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count()
}

#[test]
fn a_dynamic_segment_size_reaches_the_partitions_on_their_shards() {
    let broker = Broker::start();
    create_topic(&broker, "rolls", &[]);
    create_topic(&broker, "keeps", &[("segment.bytes", "1073741824")]);
    for topic in ["rolls", "keeps"] {
        for _ in 0..3 {
            assert_eq!(produce(&broker, topic, 1_000), 0);
        }
        assert_eq!(segment_count(&broker, topic), 1, "{topic} before");
    }
    alter_ok(
        &broker,
        NODE,
        &[("log.segment.bytes", OP_SET, Some("2048"))],
    );
    for topic in ["rolls", "keeps"] {
        for _ in 0..8 {
            assert_eq!(produce(&broker, topic, 1_000), 0);
        }
    }
    // About two 1 kB batches per 2 kB segment: several rolls, whatever the exact framing.
    let rolled = segment_count(&broker, "rolls");
    assert!(rolled >= 4, "the new default rolls segments: {rolled}");
    assert_eq!(
        segment_count(&broker, "keeps"),
        1,
        "the topic override wins"
    );
}

#[test]
fn create_topics_answers_each_config_with_the_level_it_came_from() {
    let broker = Broker::start();
    alter_ok(
        &broker,
        CLUSTER,
        &[("log.retention.ms", OP_SET, Some("1234567"))],
    );
    alter_ok(
        &broker,
        NODE,
        &[("log.segment.bytes", OP_SET, Some("2097152"))],
    );
    let configs = create_topic(&broker, "created-sources", &[("cleanup.policy", "compact")]);
    let find = |key: &str| {
        configs
            .iter()
            .find(|(name, _, _)| name == key)
            .map(|(_, value, source)| (value.clone(), *source))
    };
    assert_eq!(
        find("retention.ms"),
        Some((Some("1234567".to_string()), SOURCE_DYNAMIC_DEFAULT))
    );
    assert_eq!(
        find("segment.bytes"),
        Some((Some("2097152".to_string()), SOURCE_DYNAMIC_BROKER))
    );
    assert_eq!(
        find("cleanup.policy"),
        Some((Some("compact".to_string()), SOURCE_TOPIC))
    );
    assert_eq!(
        find("max.message.bytes").map(|(_, source)| source),
        Some(SOURCE_DEFAULT)
    );
}
