//! AlterShareGroupOffsets (KIP-932, v0): sets a share group's start offset (SPSO) on the
//! partitions named, dropping whatever was in flight there, durably through each
//! partition's share-state log (in cluster mode the metadata log). As in Kafka, only while the share group has no members
//! (NON_EMPTY_GROUP otherwise); a group not yet run may be set up ahead. In cluster mode
//! each partition's restart is a metadata-log record its leader applies, wherever it is
//! (decision 0025); the partitions go one after the other, one Raft round each.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as PartitionAnswer,
    AlterShareGroupOffsetsResponseTopic as TopicAnswer,
};
use kafka_protocol::messages::{AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::share::{offsets_changeable, reset_partition};

fn refuse(code: ResponseError, message: &str) -> AlterShareGroupOffsetsResponse {
    AlterShareGroupOffsetsResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let group = request.group_id.0.to_string();
    if let Err((code, message)) = offsets_changeable(ctx, &group, false).await {
        return refuse(code, message);
    }
    let snapshot = ctx.shard.metadata.load();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let name = t.topic_name.0.to_string();
        let topic = snapshot.topics.get(&name);
        let readable = permitted(ctx, ResourceType::Topic, &name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let code = match topic {
                _ if !readable => ResponseError::TopicAuthorizationFailed.code(),
                Some(meta) if (0..meta.partitions).contains(&p.partition_index) => {
                    if p.start_offset < 0 {
                        ResponseError::InvalidRequest.code()
                    } else {
                        let start = Some(p.start_offset);
                        reset_partition(ctx.shard, &group, &name, p.partition_index, start).await
                    }
                }
                _ => ResponseError::UnknownTopicOrPartition.code(),
            };
            partitions.push(
                PartitionAnswer::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            TopicAnswer::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(topic.map(|m| m.id).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(topics)
}
