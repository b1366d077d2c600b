//! DescribeTopicPartitions (KIP-966): topics by name (or all when none are named), in name
//! order, with at most `response_partition_limit` partitions per answer (never more than
//! `MAX_PARTITIONS_PER_RESPONSE`, Kafka's `max.request.partition.size.limit` default). When
//! the limit cuts, `next_cursor` names the first partition left out; the client sends it
//! back as `cursor` to continue.

use crate::metadata::{MetadataSnapshot, TopicMeta};
use crate::server::access::{operations_bitfield, permitted};
use crate::server::authorization::{ResourceType, authorized_operations};
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeSet;

/// Most partitions one answer carries, whatever the request asks.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn error_topic(name: &str, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(topic_name(name)))
}

/// Partitions `from..to` of `topic`, each led by this node, its only replica; an offline
/// one (as Kafka describes it) has no leader, an empty ISR and this node offline.
fn described(
    node: BrokerId,
    snapshot: &MetadataSnapshot,
    topic: &TopicMeta,
    from: i32,
    to: i32,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = (from..to)
        .map(|p| {
            let offline = snapshot.offline_reason(&topic.name, p).is_some();
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(p)
                .with_leader_id(if offline { BrokerId(-1) } else { node })
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(if offline { Vec::new() } else { vec![node] })
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(if offline { vec![node] } else { Vec::new() })
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(false)
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations(ResourceType::Topic))
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let node = BrokerId(ctx.shard.config.node_id);
    let response = DescribeTopicPartitionsResponse::default().with_throttle_time_ms(0);
    let all = request.topics.is_empty();
    let mut names: BTreeSet<String> = if all {
        // Topics the principal may not DESCRIBE are left out of the full listing.
        snapshot
            .topics
            .keys()
            .filter(|name| permitted(ctx, ResourceType::Topic, name))
            .cloned()
            .collect()
    } else {
        request.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let cursor = request.cursor.map(|c| (c.topic_name.0.to_string(), c.partition_index.max(0)));
    if let Some((cursor_topic, _)) = &cursor {
        if !all && !names.contains(cursor_topic) {
            // Kafka refuses a cursor outside the named topics: every topic gets the error.
            let topics = names
                .iter()
                .map(|n| error_topic(n, ResponseError::InvalidRequest))
                .collect();
            return response.with_topics(topics);
        }
        names = names.split_off(cursor_topic);
    }
    let mut remaining = match request.response_partition_limit {
        limit if limit <= 0 => MAX_PARTITIONS_PER_RESPONSE,
        limit => limit.min(MAX_PARTITIONS_PER_RESPONSE),
    };
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in &names {
        if remaining == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name(name)).with_partition_index(0));
            break;
        }
        if !permitted(ctx, ResourceType::Topic, name) {
            topics.push(error_topic(name, ResponseError::TopicAuthorizationFailed));
            continue;
        }
        let Some(topic) = snapshot.topic(name) else {
            topics.push(error_topic(name, ResponseError::UnknownTopicOrPartition));
            continue;
        };
        let from = match &cursor {
            Some((cursor_topic, index)) if cursor_topic == name => (*index).min(topic.partitions),
            _ => 0,
        };
        let to = topic.partitions.min(from.saturating_add(remaining));
        topics.push(described(node, &snapshot, topic, from, to));
        remaining -= to - from;
        if to < topic.partitions {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name(name)).with_partition_index(to));
            break;
        }
    }
    for topic in topics.iter_mut().filter(|t| t.error_code == 0) {
        if let Some(name) = &topic.name {
            topic.topic_authorized_operations = operations_bitfield(ctx, ResourceType::Topic, &name.0);
        }
    }
    response.with_topics(topics).with_next_cursor(next_cursor)
}
