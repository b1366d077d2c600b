//! CreatePartitions: grow a topic (never shrink), with `validate_only`.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use crate::shard::topics::{TopicOpError, check_new_partition_assignments, create_partitions};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

/// Checks a topic's manual assignments (if any) against the partitions it would add. A
/// topic that is unknown or would not grow is left to `create_partitions`, whose errors
/// (UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS) Kafka reports first.
fn check_assignments(
    ctx: &RequestContext<'_>,
    topic: &CreatePartitionsTopic,
) -> Result<(), TopicOpError> {
    let Some(assignments) = &topic.assignments else {
        return Ok(());
    };
    crate::server::cluster_view::refuse_manual_assignments(ctx.shard)?;
    let existing = match ctx.shard.metadata.load().topic(&topic.name.0) {
        Some(meta) if topic.count > meta.partitions => meta.partitions,
        _ => return Ok(()),
    };
    let assignments: Vec<Vec<i32>> = assignments
        .iter()
        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
        .collect();
    check_new_partition_assignments(
        ctx.shard.config.node_id,
        topic.count - existing,
        &assignments,
    )
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if !permitted(ctx, ResourceType::Topic, &topic.name.0) {
            let code = ResponseError::TopicAuthorizationFailed.code();
            results.push(result.with_error_code(code));
            continue;
        }
        if let Err(e) = check_assignments(ctx, &topic) {
            results.push(
                result
                    .with_error_code(e.code)
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            );
            continue;
        }
        let result = match create_partitions(
            ctx.shard,
            topic.name.0.to_string(),
            topic.count,
            request.validate_only,
        )
        .await
        {
            Ok(_) => result.with_error_code(0),
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(StrBytes::from_string(e.message))),
        };
        results.push(result);
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
