//! CreateTopics: partitions, replication factor 1, per-topic configs, `validate_only`.

use crate::server::context::RequestContext;
use crate::shard::topics::create_topic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Kafka's config source code for a topic-level override (DescribeConfigs' TOPIC_CONFIG).
const CONFIG_SOURCE_TOPIC: i8 = 1;
const CONFIG_SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let partitions = if topic.num_partitions == -1 {
            ctx.shard.config.default_partitions
        } else {
            topic.num_partitions
        };
        let mut overrides = BTreeMap::new();
        for c in &topic.configs {
            if let Some(v) = &c.value {
                overrides.insert(c.name.to_string(), v.to_string());
            }
        }
        // error_message is null unless there is an error (the codec's default is "").
        let mut result = CreatableTopicResult::default()
            .with_error_message(None)
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !topic.assignments.is_empty() {
            result = result
                .with_error_code(kafka_protocol::ResponseError::InvalidReplicaAssignment.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "manual replica assignment is not supported on a single node",
                )));
            results.push(result);
            continue;
        }
        match create_topic(
            ctx.shard,
            name,
            partitions,
            topic.replication_factor,
            overrides,
            request.validate_only,
        )
        .await
        {
            Ok(meta) => {
                let configs = crate::config::TOPIC_CONFIG_KEYS
                    .iter()
                    .filter_map(|key| {
                        meta.config.get(key).map(|value| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_static_str(key))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_read_only(false)
                                .with_config_source(if meta.overrides.contains_key(*key) {
                                    CONFIG_SOURCE_TOPIC
                                } else {
                                    CONFIG_SOURCE_DEFAULT
                                })
                                .with_is_sensitive(false)
                        })
                    })
                    .collect();
                result = result
                    .with_topic_id(meta.id)
                    .with_error_code(0)
                    .with_num_partitions(meta.partitions)
                    .with_replication_factor(1)
                    .with_configs(Some(configs));
            }
            Err(e) => {
                result = result
                    .with_error_code(e.code)
                    .with_error_message(Some(StrBytes::from_string(e.message)));
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(results)
}
