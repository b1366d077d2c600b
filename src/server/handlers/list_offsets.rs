//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset whose
//! timestamp is at or after a given time. Answered by each partition's owning shard.

use crate::partition::Isolation;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::cluster_view;
use crate::server::context::RequestContext;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::rc::Rc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// (error code, timestamp, offset)
async fn lookup_local(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    target: i64,
    isolation: Isolation,
) -> (i16, i64, i64) {
    let p = match shard.led_partition(topic, partition) {
        Ok(p) => p,
        Err(e) => return (e.code(), -1, -1),
    };
    match target {
        LATEST => match isolation {
            Isolation::ReadUncommitted => (0, -1, p.high_watermark()),
            Isolation::ReadCommitted => (0, -1, p.last_stable_offset()),
        },
        EARLIEST => (0, -1, p.log_start_offset()),
        MAX_TIMESTAMP => match p.max_timestamp().await {
            Ok((ts, offset)) => (0, ts, offset),
            Err(e) => (e.kafka_error_code(), -1, -1),
        },
        t if t >= 0 => match p.offset_for_timestamp(t).await {
            Ok(Some((offset, ts))) => (0, ts, offset),
            Ok(None) => (0, -1, -1),
            Err(e) => (e.kafka_error_code(), -1, -1),
        },
        _ => (ResponseError::InvalidRequest.code(), -1, -1),
    }
}

async fn lookup_on_owner(
    shard: &Rc<Shard>,
    name: String,
    partition: i32,
    target: i64,
    isolation: Isolation,
) -> (i16, i64, i64) {
    let owner = shard.owner_of_partition(&name, partition);
    shard
        .invoke_on(owner, move |s| async move {
            lookup_local(&s, &name, partition, target, isolation).await
        })
        .await
        .unwrap_or((ResponseError::BrokerNotAvailable.code(), -1, -1))
}

pub async fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let shard = ctx.shard;
    let snapshot = shard.metadata.load_full();
    let mut topics = Vec::with_capacity(request.topics.len());
    let isolation = Isolation::from_wire(request.isolation_level);
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let describable = permitted(ctx, ResourceType::Topic, &name);
        let known = snapshot.topic(&name).map(|t| t.partitions);
        let calls = topic.partitions.iter().map(|p| {
            let (partition, target) = (p.partition_index, p.timestamp);
            let current = if ctx.version >= 4 {
                p.current_leader_epoch
            } else {
                -1
            };
            let name = name.clone();
            // leader_epoch exists from v4; older versions must leave it at its default.
            let leader_epoch = if ctx.version >= 4 {
                cluster_view::leader_epoch(&snapshot, &name, partition)
            } else {
                -1
            };
            async move {
                let (code, ts, offset) = match known {
                    _ if !describable => {
                        (ResponseError::TopicAuthorizationFailed.code(), -1, -1)
                    }
                    Some(_) if shard.cluster.is_some() && current >= 0 => {
                        match cluster_view::check_leader_epoch(current, leader_epoch) {
                            Err(code) => (code, -1, -1),
                            Ok(()) => lookup_on_owner(shard, name, partition, target, isolation).await,
                        }
                    }
                    Some(n) if partition >= 0 && partition < n => {
                        lookup_on_owner(shard, name, partition, target, isolation).await
                    }
                    _ => (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
                };
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(partition)
                    .with_error_code(code)
                    .with_timestamp(ts)
                    .with_offset(offset)
                    .with_leader_epoch(leader_epoch)
            }
        });
        let partitions = futures_util::future::join_all(calls).await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
