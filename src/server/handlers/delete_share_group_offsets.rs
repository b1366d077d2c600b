//! DeleteShareGroupOffsets (KIP-932, v0): drops a share group's state on every partition
//! of the topics named, durably, so its next fetch starts where `share.auto.offset.reset`
//! says. As in Kafka, only for an existing share group without members. In cluster mode
//! one metadata-log record per topic drops them at whichever brokers lead its partitions
//! (decision 0025).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as TopicAnswer;
use kafka_protocol::messages::{DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::metadata::share_state_reset::ResetScope;
use crate::server::share::{offsets_changeable, reset_partition, reset_through_log};

fn refuse(code: ResponseError, message: &str) -> DeleteShareGroupOffsetsResponse {
    DeleteShareGroupOffsetsResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let group = request.group_id.0.to_string();
    if let Err((code, message)) = offsets_changeable(ctx, &group, true).await {
        return refuse(code, message);
    }
    let snapshot = ctx.shard.metadata.load();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.topic_name.0.to_string();
        let topic = snapshot.topics.get(&name);
        let code = match topic {
            _ if !permitted(ctx, ResourceType::Topic, &name) => {
                ResponseError::TopicAuthorizationFailed.code()
            }
            None => ResponseError::UnknownTopicOrPartition.code(),
            // Cluster mode: one record drops the topic's states at every leader.
            Some(_) if ctx.shard.cluster.is_some() => {
                let scope = ResetScope::Topic { topic: name.clone() };
                reset_through_log(ctx.shard, &group, scope).await
            }
            Some(meta) => {
                let mut first_error = 0;
                for partition in 0..meta.partitions {
                    let code = reset_partition(ctx.shard, &group, &name, partition, None).await;
                    if first_error == 0 {
                        first_error = code;
                    }
                }
                first_error
            }
        };
        topics.push(
            TopicAnswer::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(topic.map(|m| m.id).unwrap_or_default())
                .with_error_code(code),
        );
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(topics)
}
