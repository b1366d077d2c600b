//! TxnOffsetCommit: offsets a transaction commits for a consumer group. The id's
//! coordinating shard first confirms the producer is current and the group is in its open
//! transaction; the group's shard then holds the offsets until the transaction's marker
//! (`group::txn_offsets`): visible to OffsetFetch only after a commit.

use crate::group::{TxnCommitter, TxnOffset};
use crate::server::context::RequestContext;
use crate::shard::transactions;
use crate::txn::TxnError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use std::time::Instant;

/// PRODUCER_FENCED exists from v3 (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const PRODUCER_FENCED_SINCE_VERSION: i16 = 3;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let transactional_id = request.transactional_id.0.to_string();
    let group_id = request.group_id.0.to_string();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
    let group = group_id.clone();
    let verified = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            transactions::verify_group(&s, &transactional_id, producer_id, epoch, &group)
        })
        .await
        .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
    let offsets: Vec<TxnOffset> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TxnOffset {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let count = offsets.len();
    let codes: Vec<i16> = match verified {
        Err(e) => vec![e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION); count],
        Ok(()) => {
            let committer = TxnCommitter {
                producer_id,
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
                generation_id: if ctx.version >= 3 {
                    request.generation_id
                } else {
                    -1
                },
            };
            let group_owner = ctx.shard.owner_of_group(&group_id);
            ctx.shard
                .invoke_on(group_owner, move |s| async move {
                    s.groups
                        .txn_offset_commit(&group_id, &committer, offsets, Instant::now())
                })
                .await
                .unwrap_or_else(|_| vec![ResponseError::CoordinatorNotAvailable.code(); count])
        }
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(0))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
