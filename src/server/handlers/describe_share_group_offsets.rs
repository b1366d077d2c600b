//! DescribeShareGroupOffsets (KIP-932, v0): each share group's start offset (SPSO) on the
//! partitions asked for — or on every partition it has state on when no topics are given —
//! read from the share-partition state on each partition's owning shard. A partition the
//! group has not consumed yet answers start offset -1, as Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as GroupAnswer,
    DescribeShareGroupOffsetsResponsePartition as PartitionAnswer,
    DescribeShareGroupOffsetsResponseTopic as TopicAnswer,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::Lookup;

/// Start offset Kafka reports for a partition without share state.
const NO_START_OFFSET: i64 = -1;

/// (topic, partition) -> start offset, or an error code.
type Starts = BTreeMap<(String, i32), Result<i64, i16>>;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for g in request.groups {
        let group = g.group_id.0.to_string();
        if !permitted(ctx, ResourceType::Group, &group) {
            groups.push(
                GroupAnswer::default()
                    .with_group_id(g.group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            );
            continue;
        }
        let starts = match g.topics {
            Some(topics) => {
                let mut starts = Starts::new();
                for t in topics {
                    for p in t.partitions {
                        let answer = start_offset(ctx, &group, &t.topic_name.0, p).await;
                        starts.insert((t.topic_name.0.to_string(), p), answer);
                    }
                }
                starts
            }
            None => every_partition(ctx, &group).await,
        };
        groups.push(answer_group(ctx, g.group_id, starts));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

async fn start_offset(ctx: &RequestContext<'_>, group: &str, topic: &str, partition: i32) -> Result<i64, i16> {
    let owner = ctx.shard.owner_of_partition(topic, partition);
    let (group, topic) = (group.to_string(), topic.to_string());
    ctx.shard
        .invoke_on(owner, move |s| async move {
            match s.partitions.get(&topic, partition) {
                Lookup::Online(p) => match p.share_counts() {
                    Ok(counts) => Ok(counts
                        .into_iter()
                        .find(|(g, _)| *g == group)
                        .map_or(NO_START_OFFSET, |(_, c)| c.start_offset)),
                    Err(_) => Err(ResponseError::KafkaStorageError.code()),
                },
                Lookup::Offline(_) => Err(ResponseError::KafkaStorageError.code()),
                Lookup::Missing => Err(ResponseError::UnknownTopicOrPartition.code()),
            }
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()))
}

/// Every partition of every shard where the group has share state.
async fn every_partition(ctx: &RequestContext<'_>, group: &str) -> Starts {
    let group = group.to_string();
    let per_shard = ctx
        .shard
        .invoke_on_all(move |s| {
            let group = group.clone();
            async move {
                let mut found = Vec::new();
                for (topic, partition, p) in s.partitions.all_online() {
                    let Ok(counts) = p.share_counts() else { continue };
                    if let Some((_, c)) = counts.into_iter().find(|(g, _)| *g == group) {
                        found.push((topic, partition, c.start_offset));
                    }
                }
                found
            }
        })
        .await;
    per_shard
        .into_iter()
        .flatten()
        .flatten()
        .map(|(t, p, start)| ((t, p), Ok(start)))
        .collect()
}

fn answer_group(ctx: &RequestContext<'_>, group_id: kafka_protocol::messages::GroupId, starts: Starts) -> GroupAnswer {
    let metadata = ctx.shard.metadata.load();
    let mut topics: Vec<TopicAnswer> = Vec::new();
    for ((topic, partition), start) in starts {
        if topics.last().is_none_or(|t| t.topic_name.0.as_str() != topic) {
            let topic_id = metadata.topics.get(&topic).map(|t| t.id).unwrap_or_default();
            topics.push(
                TopicAnswer::default()
                    .with_topic_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_topic_id(topic_id),
            );
        }
        let (start_offset, error_code) = match start {
            Ok(o) => (o, 0),
            Err(code) => (NO_START_OFFSET, code),
        };
        if let Some(t) = topics.last_mut() {
            t.partitions.push(
                PartitionAnswer::default()
                    .with_partition_index(partition)
                    .with_start_offset(start_offset)
                    .with_leader_epoch(0)
                    .with_error_code(error_code),
            );
        }
    }
    GroupAnswer::default().with_group_id(group_id).with_topics(topics)
}
