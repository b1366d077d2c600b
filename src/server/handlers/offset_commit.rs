//! OffsetCommit (v2–v9): forwarded to the owning shard, which checks member and generation
//! (generation -1 = simple commit for groups without members) and answers only after the
//! offsets are fdatasync'ed to the group's log.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::time::Instant;

fn all_failed(request: &OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    // Kept for the error path: the request itself moves to the owning shard.
    let fallback = all_failed(&request, ResponseError::CoordinatorNotAvailable.code());
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups.offset_commit(request, Instant::now()).await
        })
        .await
        .unwrap_or(fallback)
}
