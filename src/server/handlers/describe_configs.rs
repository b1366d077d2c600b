//! DescribeConfigs: topic configs (overrides marked as such, the rest as broker defaults)
//! and the broker's own settings.

use crate::config::{BrokerConfig, TOPIC_CONFIG_KEYS};
use crate::server::config_resources::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;

fn topic_config_type(key: &str) -> i8 {
    match key {
        "message.timestamp.type" | "cleanup.policy" | "sluice.durability" => TYPE_STRING,
        "index.interval.bytes" | "segment.index.bytes" | "max.message.bytes" => TYPE_INT,
        _ => TYPE_LONG,
    }
}

/// The broker settings shown under Kafka's names, where one exists.
fn broker_entries(config: &BrokerConfig) -> Vec<(String, String, i8)> {
    let mut out = vec![
        (
            "broker.id".to_string(),
            config.node_id.to_string(),
            TYPE_INT,
        ),
        (
            "log.dirs".to_string(),
            config.data_dir.display().to_string(),
            TYPE_STRING,
        ),
        (
            "listeners".to_string(),
            format!("PLAINTEXT://{}", config.listen),
            TYPE_STRING,
        ),
        (
            "auto.create.topics.enable".to_string(),
            config.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "num.partitions".to_string(),
            config.default_partitions.to_string(),
            TYPE_INT,
        ),
        (
            "socket.request.max.bytes".to_string(),
            config.max_request_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "max.connections".to_string(),
            config.max_connections.to_string(),
            TYPE_INT,
        ),
        (
            "group.initial.rebalance.delay.ms".to_string(),
            config.group_initial_rebalance_delay_ms.to_string(),
            TYPE_INT,
        ),
        (
            "offsets.retention.minutes".to_string(),
            (config.offsets_retention_ms / 60_000).to_string(),
            TYPE_INT,
        ),
    ];
    // Topic defaults appear on the broker as `log.<key>` (Kafka's naming, roughly).
    for key in TOPIC_CONFIG_KEYS {
        if let Some(v) = config.log.get(key) {
            out.push((format!("log.{key}"), v, topic_config_type(key)));
        }
    }
    out
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    match keys {
        None => true,
        Some(list) => list.iter().any(|k| k.as_str() == name),
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entry = |name: String, value: String, source: i8, config_type: i8| {
            let mut e = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false);
            if ctx.version >= 3 {
                e = e.with_config_type(config_type);
            }
            e
        };
        match resource.resource_type {
            RESOURCE_TOPIC => match snapshot.topic(resource.resource_name.as_str()) {
                Some(topic) => {
                    let configs = TOPIC_CONFIG_KEYS
                        .iter()
                        .filter(|k| wanted(&resource.configuration_keys, k))
                        .filter_map(|k| {
                            let source = if topic.overrides.contains_key(*k) {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            topic
                                .config
                                .get(k)
                                .map(|v| entry(k.to_string(), v, source, topic_config_type(k)))
                        })
                        .collect();
                    result = result.with_error_code(0).with_configs(configs);
                }
                None => {
                    result = result
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(StrBytes::from_static_str("unknown topic")));
                }
            },
            RESOURCE_BROKER => {
                let name = resource.resource_name.as_str();
                if !name.is_empty() && name != ctx.shard.config.node_id.to_string() {
                    result = result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_static_str("unknown broker id")));
                } else {
                    let configs = broker_entries(&ctx.shard.config)
                        .into_iter()
                        .filter(|(k, _, _)| wanted(&resource.configuration_keys, k))
                        .map(|(k, v, t)| entry(k, v, SOURCE_STATIC_BROKER, t))
                        .collect();
                    result = result.with_error_code(0).with_configs(configs);
                }
            }
            _ => {
                result = result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "only topic and broker configs exist here",
                    )));
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
