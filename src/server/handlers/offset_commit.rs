//! OffsetCommit (v2–v9): forwarded to the owning shard, which checks member and generation
//! (generation -1 = simple commit for groups without members) and answers only after the
//! offsets are fdatasync'ed to the group's log.
//!
//! As Kafka 4.x does, partitions of a topic that does not exist, or past its partition
//! count, are answered UNKNOWN_TOPIC_OR_PARTITION here and never reach the coordinator;
//! the rest of the request is committed as usual.

use crate::metadata::MetadataSnapshot;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::time::Instant;

fn all_failed(request: &OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| failed_topic(t.name.clone(), t.partitions.iter().map(|p| p.partition_index), code))
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn failed_topic(
    name: TopicName,
    partitions: impl Iterator<Item = i32>,
    code: i16,
) -> OffsetCommitResponseTopic {
    OffsetCommitResponseTopic::default()
        .with_name(name)
        .with_partitions(
            partitions
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect(),
        )
}

/// Takes out of `request` every partition the cluster does not have, and returns them as
/// UNKNOWN_TOPIC_OR_PARTITION answers.
/// Takes out the partitions that cannot be committed: of topics the principal may not READ
/// (TOPIC_AUTHORIZATION_FAILED) or that do not exist (UNKNOWN_TOPIC_OR_PARTITION).
fn take_unknown_partitions(
    request: &mut OffsetCommitRequest,
    snapshot: &MetadataSnapshot,
    readable: impl Fn(&str) -> bool,
) -> Vec<OffsetCommitResponseTopic> {
    let mut unknown = Vec::new();
    let mut known_topics: Vec<OffsetCommitRequestTopic> = Vec::with_capacity(request.topics.len());
    for mut topic in std::mem::take(&mut request.topics) {
        if !readable(&topic.name.0) {
            let partitions = topic.partitions.iter().map(|p| p.partition_index);
            let code = ResponseError::TopicAuthorizationFailed.code();
            unknown.push(failed_topic(topic.name.clone(), partitions, code));
            continue;
        }
        let count = snapshot.topic(&topic.name.0).map_or(0, |t| t.partitions);
        let (known, missing): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| p.partition_index >= 0 && p.partition_index < count);
        if !missing.is_empty() {
            unknown.push(failed_topic(
                topic.name.clone(),
                missing.iter().map(|p| p.partition_index),
                ResponseError::UnknownTopicOrPartition.code(),
            ));
        }
        if !known.is_empty() {
            topic.partitions = known;
            known_topics.push(topic);
        }
    }
    request.topics = known_topics;
    unknown
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    mut request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return all_failed(&request, ResponseError::GroupAuthorizationFailed.code());
    }
    let snapshot = ctx.shard.metadata.load_full();
    let readable = |topic: &str| permitted(ctx, ResourceType::Topic, topic);
    let unknown = take_unknown_partitions(&mut request, &snapshot, readable);
    if request.topics.is_empty() && !unknown.is_empty() {
        // Nothing left to commit: Kafka answers without asking the coordinator.
        return OffsetCommitResponse::default().with_topics(unknown);
    }
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    // Kept for the error path: the request itself moves to the owning shard.
    let fallback = all_failed(&request, ResponseError::CoordinatorNotAvailable.code());
    let mut response = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            s.groups.offset_commit(request, Instant::now()).await
        })
        .await
        .unwrap_or(fallback);
    // One entry per topic, as Kafka's response builder merges them.
    for topic in unknown {
        match response.topics.iter_mut().find(|t| t.name == topic.name) {
            Some(answered) => answered.partitions.extend(topic.partitions),
            None => response.topics.push(topic),
        }
    }
    response
}
