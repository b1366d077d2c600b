//! CreateTopics: partitions, replication factor 1, per-topic configs, `validate_only`.

use crate::config::topic_config_spec::TOPIC_CONFIG_SPECS;
use crate::metadata::TopicMeta;
use crate::server::config_sources::{broker_levels, topic_config_source};
use crate::server::access::{cluster_allowed, permitted};
use crate::server::authorization::{AclOperation, ResourceType};
use crate::server::context::RequestContext;
use crate::shard::topics::{TopicOpError, check_topic_assignments, create_topic};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// The configs a created topic answers with: every Kafka topic config with its effective
/// value and where that value comes from (override, dynamic or static broker setting,
/// default), as Kafka's CreateTopics v5+ does.
fn created_configs(ctx: &RequestContext<'_>, meta: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    let snapshot = ctx.shard.metadata.load();
    TOPIC_CONFIG_SPECS
        .iter()
        .filter(|s| !s.legacy || meta.overrides.contains_key(s.name))
        .filter_map(|spec| {
            let value = meta.config.get(spec.name)?;
            let levels = broker_levels(&snapshot.dynamic_broker, &ctx.shard.config.log, spec);
            Some(
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_static_str(spec.name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_read_only(false)
                    .with_config_source(topic_config_source(meta, spec, &levels))
                    .with_is_sensitive(false),
            )
        })
        .collect()
}

/// The partition count a topic is created with: its manual assignments' (checked as Kafka's
/// controller does: replication factor and partition count must then be -1), else the
/// requested count or the broker default.
fn partition_count(ctx: &RequestContext<'_>, topic: &CreatableTopic) -> Result<i32, TopicOpError> {
    if topic.assignments.is_empty() {
        return Ok(if topic.num_partitions == -1 {
            ctx.shard.config.default_partitions
        } else {
            topic.num_partitions
        });
    }
    crate::server::cluster_view::refuse_manual_assignments(ctx.shard)?;
    if topic.replication_factor != -1 {
        return Err(TopicOpError {
            code: ResponseError::InvalidReplicationFactor.code(),
            message: "A manual partition assignment was specified, but replication factor was not set to -1.".into(),
        });
    }
    if topic.num_partitions != -1 {
        return Err(TopicOpError {
            code: ResponseError::InvalidPartitions.code(),
            message: "A manual partition assignment was specified, but numPartitions was not set to -1.".into(),
        });
    }
    let assignments: Vec<(i32, Vec<i32>)> = topic
        .assignments
        .iter()
        .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
        .collect();
    check_topic_assignments(ctx.shard.config.node_id, &assignments)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
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
        // CREATE on the cluster covers every topic; else CREATE on this one.
        if !cluster_allowed(ctx, AclOperation::Create)
            && !permitted(ctx, ResourceType::Topic, &name)
        {
            let code = ResponseError::TopicAuthorizationFailed.code();
            results.push(result.with_error_code(code));
            continue;
        }
        let partitions = match partition_count(ctx, &topic) {
            Ok(partitions) => partitions,
            Err(e) => {
                results.push(
                    result
                        .with_error_code(e.code)
                        .with_error_message(Some(StrBytes::from_string(e.message))),
                );
                continue;
            }
        };
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
                let configs = created_configs(ctx, &meta);
                result = result
                    .with_topic_id(meta.id)
                    .with_error_code(0)
                    .with_error_message(None)
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
