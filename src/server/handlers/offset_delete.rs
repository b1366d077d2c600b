//! OffsetDelete: forwarded to the owning shard; refused per partition
//! (GROUP_SUBSCRIBED_TO_TOPIC) while the group has members, otherwise deleted durably.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use std::time::Instant;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // Topics without READ are answered per partition, as Kafka does.
    let mut request = request;
    let mut refused = Vec::new();
    request.topics.retain(|t| {
        let readable = permitted(ctx, ResourceType::Topic, &t.name.0);
        if !readable {
            refused.push(refused_topic(t));
        }
        readable
    });
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups.offset_delete(request, Instant::now()).await
        })
        .await
        .map(|mut response| {
            response.topics.extend(refused);
            response
        })
        .unwrap_or_else(|_| {
            OffsetDeleteResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        })
}

fn refused_topic(
    topic: &kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic,
) -> OffsetDeleteResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            OffsetDeleteResponsePartition::default()
                .with_partition_index(p.partition_index)
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        })
        .collect();
    OffsetDeleteResponseTopic::default()
        .with_name(topic.name.clone())
        .with_partitions(partitions)
}
