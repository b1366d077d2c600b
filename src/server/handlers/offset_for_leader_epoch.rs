//! OffsetForLeaderEpoch: this single node has been every partition's only leader, in epoch
//! 0, so epoch 0 ends at the log end offset and any other epoch is unknown (-1, -1), which
//! is what Kafka answers for epochs outside its leader-epoch cache. Clients use it to check
//! for log truncation after a leader change; here nothing is ever truncated that way.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::Lookup;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

/// The only leader epoch this broker has ever had for any partition.
pub const LEADER_EPOCH: i32 = 0;
/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED: i32 = -1;
const UNDEFINED_OFFSET: i64 = -1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let shard = ctx.shard;
    let snapshot = shard.metadata.load_full();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        let describable = permitted(ctx, ResourceType::Topic, &name);
        let known = snapshot.topic(&name).map(|t| t.partitions);
        let calls = topic.partitions.into_iter().map(|p| {
            let name = name.clone();
            async move {
                let answer = EpochEndOffset::default().with_partition(p.partition);
                if !describable {
                    return answer
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(UNDEFINED_OFFSET);
                }
                let in_range = known.is_some_and(|n| (0..n).contains(&p.partition));
                if !in_range {
                    return answer
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(UNDEFINED_OFFSET);
                }
                // A client that believes in a newer epoch than ours has seen a leader we
                // never were; an older one cannot exist (-1 means "not checked").
                if p.current_leader_epoch > LEADER_EPOCH {
                    return answer
                        .with_error_code(ResponseError::UnknownLeaderEpoch.code())
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(UNDEFINED_OFFSET);
                }
                if p.leader_epoch != LEADER_EPOCH {
                    return answer
                        .with_error_code(0)
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(UNDEFINED_OFFSET);
                }
                let partition = p.partition;
                let owner = shard.owner_of_partition(&name, partition);
                let end = shard
                    .invoke_on(owner, move |s| async move {
                        match s.partitions.get(&name, partition) {
                            Lookup::Online(p) => Ok(p.log_end_offset()),
                            Lookup::Offline(_) => Err(ResponseError::KafkaStorageError.code()),
                            Lookup::Missing => Err(ResponseError::UnknownTopicOrPartition.code()),
                        }
                    })
                    .await
                    .unwrap_or(Err(ResponseError::BrokerNotAvailable.code()));
                match end {
                    Ok(end) => answer
                        .with_error_code(0)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_end_offset(end),
                    Err(code) => answer
                        .with_error_code(code)
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(UNDEFINED_OFFSET),
                }
            }
        });
        let partitions = futures_util::future::join_all(calls).await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
