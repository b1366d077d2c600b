//! OffsetForLeaderEpoch (KIP-101/279/320): a partition's leader answers, from its
//! leader-epoch cache, the largest epoch at most the one asked about and the offset where
//! it ends (its log end for the current epoch; -1/-1 for an epoch newer than any it knows).
//! Followers use it to truncate a divergent tail before fetching (cluster mode), clients to
//! detect truncation after a leader change. The `current_leader_epoch` is fenced as Fetch
//! fences it. A single node has only epoch 0, which ends at the log end.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::cluster_view;
use crate::server::context::RequestContext;
use crate::shard::Lookup;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

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
                let (partition, current, requested) =
                    (p.partition, p.current_leader_epoch, p.leader_epoch);
                let owner = shard.owner_of_partition(&name, partition);
                let end = shard
                    .invoke_on(owner, move |s| async move {
                        let led = match s.led(&name, partition) {
                            Lookup::Online(p) => p,
                            Lookup::Offline(_) => return Err(ResponseError::KafkaStorageError.code()),
                            // A follower or a non-replica: only leaders answer.
                            Lookup::Missing => return Err(ResponseError::NotLeaderOrFollower.code()),
                        };
                        let snapshot = s.metadata.load();
                        let epoch = cluster_view::leader_epoch(&snapshot, &name, partition);
                        cluster_view::check_leader_epoch(current, epoch)?;
                        Ok(led.end_offset_for_epoch(requested))
                    })
                    .await
                    .unwrap_or(Err(ResponseError::BrokerNotAvailable.code()));
                match end {
                    Ok((epoch, end)) => answer
                        .with_error_code(0)
                        .with_leader_epoch(epoch)
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
