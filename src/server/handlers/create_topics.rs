//! CreateTopics: partitions, replication factor 1, per-topic configs, `validate_only`.

use crate::config::topic_config_spec::TOPIC_CONFIG_SPECS;
use crate::metadata::TopicMeta;
use crate::server::config_sources::{broker_levels, topic_config_source};
use crate::server::access::{cluster_allowed, permitted};
use crate::server::authorization::{AclOperation, ResourceType};
use crate::server::context::RequestContext;
use crate::metadata::NewTopicSpec;
use crate::shard::topics::{TopicOpError, check_topic_assignments, create_topics};
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

/// The checks made before a topic goes to the metadata writer (authorization, partition
/// count): the spec to create, or the topic's error.
fn admit(ctx: &RequestContext<'_>, topic: &CreatableTopic) -> Result<NewTopicSpec, TopicOpError> {
    let name = topic.name.0.to_string();
    // CREATE on the cluster covers every topic; else CREATE on this one.
    if !cluster_allowed(ctx, AclOperation::Create) && !permitted(ctx, ResourceType::Topic, &name)
    {
        return Err(TopicOpError {
            code: ResponseError::TopicAuthorizationFailed.code(),
            message: String::new(),
        });
    }
    let partitions = partition_count(ctx, topic)?;
    let mut overrides = BTreeMap::new();
    for c in &topic.configs {
        if let Some(v) = &c.value {
            overrides.insert(c.name.to_string(), v.to_string());
        }
    }
    Ok(NewTopicSpec {
        name,
        partitions,
        replication_factor: topic.replication_factor,
        overrides,
    })
}

/// Every admitted topic of the request is created in one go (`shard::topics::create_topics`:
/// one metadata write, one message per owning shard), so a request of 100 topics costs
/// about what one does.
pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let admitted: Vec<Result<NewTopicSpec, TopicOpError>> =
        request.topics.iter().map(|t| admit(ctx, t)).collect();
    let specs: Vec<NewTopicSpec> = admitted
        .iter()
        .filter_map(|a| a.as_ref().ok().cloned())
        .collect();
    let mut created = create_topics(ctx.shard, specs, request.validate_only)
        .await
        .into_iter();
    let mut results = Vec::with_capacity(request.topics.len());
    for (topic, admitted) in request.topics.into_iter().zip(admitted) {
        // error_message is null unless there is an error (the codec's default is "").
        let result = CreatableTopicResult::default()
            .with_error_message(None)
            .with_name(topic.name)
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = admitted.and_then(|_| {
            created.next().unwrap_or_else(|| {
                Err(TopicOpError {
                    code: ResponseError::UnknownServerError.code(),
                    message: "no answer from the metadata writer".into(),
                })
            })
        });
        results.push(match outcome {
            Ok(meta) => result
                .with_topic_id(meta.id)
                .with_error_code(0)
                .with_num_partitions(meta.partitions)
                .with_replication_factor(1)
                .with_configs(Some(created_configs(ctx, &meta))),
            // Authorization failures carry no message, as before.
            Err(e) if e.message.is_empty() => result.with_error_code(e.code),
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(StrBytes::from_string(e.message))),
        });
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(results)
}
