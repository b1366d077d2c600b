//! TxnOffsetCommit: offsets a transaction commits for a consumer group. The group's shard
//! checks the member (KIP-447: a generation fences zombie consumers) and marks the
//! partitions pending (OffsetFetch `require_stable` answers UNSTABLE_OFFSET_COMMIT); the
//! id's coordinating shard then makes the offsets part of the transaction's durable record
//! before the answer. They reach the group's offsets log, and OffsetFetch, only when the
//! transaction commits. In cluster mode (decision 0022) the group's coordinator holds them
//! instead, replicated, after the id's coordinator (wherever it runs) confirmed the group
//! is in the transaction; the transaction's marker ends them there.

use crate::group::{TxnCommitter, TxnOffset};
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::{transactions, transactions_v2, txn_routes};

/// TxnOffsetCommit v5 is transactions v2's (KIP-890): the group joins the transaction here.
const TRANSACTIONS_V2_SINCE_VERSION: i16 = 5;
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
    let codes = match refusal(ctx, &request) {
        Some(code) => vec![code; offsets.len()],
        None => commit_readable(ctx, &request, offsets).await,
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

/// The producer is current and the group in its transaction (coordinator), then the
/// member checks and pending marks (group). Each offset's code, or one code for all.
/// The whole request's refusal when the principal may not WRITE the transactional id or
/// READ the group, as Kafka checks them before any offset.
fn refusal(ctx: &RequestContext<'_>, request: &TxnOffsetCommitRequest) -> Option<i16> {
    if !permitted(ctx, ResourceType::TransactionalId, &request.transactional_id.0) {
        return Some(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return Some(ResponseError::GroupAuthorizationFailed.code());
    }
    None
}

/// Commits the offsets of topics the principal may READ; the others are answered
/// TOPIC_AUTHORIZATION_FAILED. Codes in `offsets` order.
async fn commit_readable(
    ctx: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
    offsets: Vec<TxnOffset>,
) -> Vec<i16> {
    let readable: Vec<bool> = offsets
        .iter()
        .map(|o| permitted(ctx, ResourceType::Topic, &o.topic))
        .collect();
    let allowed: Vec<TxnOffset> = offsets
        .into_iter()
        .zip(&readable)
        .filter(|(_, r)| **r)
        .map(|(o, _)| o)
        .collect();
    let allowed_codes = if ctx.shard.cluster.is_some() {
        commit_clustered(ctx, request, allowed).await
    } else {
        match check_in_group(ctx, request, allowed.clone()).await {
            Err(code) => vec![code; allowed.len()],
            Ok(codes) => persist(ctx, request, allowed, codes).await,
        }
    };
    let mut allowed_codes = allowed_codes.into_iter();
    let denied = ResponseError::TopicAuthorizationFailed.code();
    readable
        .iter()
        .map(|r| match r {
            true => allowed_codes.next().unwrap_or(denied),
            false => denied,
        })
        .collect()
}

/// Cluster mode (decision 0022): the id's coordinator, wherever it runs, confirms the
/// group is in the producer's transaction; then this broker, the group's coordinator,
/// checks the member and replicates the offsets as pending for the producer. The
/// transaction's marker ends them here. Codes in `offsets` order.
async fn commit_clustered(
    ctx: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
    offsets: Vec<TxnOffset>,
) -> Vec<i16> {
    let transactional_id = request.transactional_id.0.as_str();
    let group_id = request.group_id.0.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let implicit_add = ctx.version >= TRANSACTIONS_V2_SINCE_VERSION;
    let shard = ctx.shard;
    let owner = shard.owner_of_group(&group_id);
    // The guard comes first (decision 0022): a marker that ends the transaction between
    // the verification and the proposal ends the guard, and the proposal is refused.
    let (group, producer_id) = (group_id.clone(), producer.0);
    let guard = shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .begin_txn_offsets(&group, producer_id, Instant::now())
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    let guard = match guard {
        Ok(token) => token,
        Err(e) => return vec![e.code(); offsets.len()],
    };
    let verified = txn_routes::verify_group_offsets(
        shard,
        transactional_id,
        &group_id,
        producer,
        implicit_add,
    );
    if let Err(e) = verified.await {
        return vec![e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION); offsets.len()];
    }
    let committer = committer_of(ctx, request);
    let count = offsets.len();
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .replicate_txn_offsets(&group_id, &committer, guard, offsets, Instant::now())
                .await
        })
        .await
        .unwrap_or_else(|_| vec![ResponseError::CoordinatorNotAvailable.code(); count])
}

/// Who commits: KIP-447's member and generation from v3.
fn committer_of(ctx: &RequestContext<'_>, request: &TxnOffsetCommitRequest) -> TxnCommitter {
    TxnCommitter {
        producer_id: request.producer_id.0,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        generation_id: if ctx.version >= 3 {
            request.generation_id
        } else {
            -1
        },
    }
}

async fn check_in_group(
    ctx: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
    offsets: Vec<TxnOffset>,
) -> Result<Vec<i16>, i16> {
    let transactional_id = request.transactional_id.0.to_string();
    let group_id = request.group_id.0.to_string();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
    let group = group_id.clone();
    // Transactions v2 (v5+): the commit adds the group itself (no AddOffsetsToTxn first).
    let implicit_add = ctx.version >= TRANSACTIONS_V2_SINCE_VERSION;
    ctx.shard
        .invoke_on(owner, move |s| async move {
            if implicit_add {
                transactions_v2::add_group_implicitly(&s, &transactional_id, producer_id, epoch, &group)
                    .await
            } else {
                transactions::verify_group(&s, &transactional_id, producer_id, epoch, &group)
            }
        })
        .await
        .unwrap_or(Err(TxnError::CoordinatorNotAvailable))
        .map_err(|e| e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION))?;
    let committer = committer_of(ctx, request);
    let group_owner = ctx.shard.owner_of_group(&group_id);
    ctx.shard
        .invoke_on(group_owner, move |s| async move {
            s.groups
                .txn_offset_commit(&group_id, &committer, offsets, Instant::now())
        })
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())
}

/// Makes the offsets the group accepted part of the transaction's durable record; their
/// codes become the coordinator's error when that fails.
async fn persist(
    ctx: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
    offsets: Vec<TxnOffset>,
    mut codes: Vec<i16>,
) -> Vec<i16> {
    let accepted: Vec<TxnOffset> = offsets
        .into_iter()
        .zip(&codes)
        .filter(|(_, code)| **code == 0)
        .map(|(o, _)| o)
        .collect();
    if accepted.is_empty() {
        return codes;
    }
    let transactional_id = request.transactional_id.0.to_string();
    let group_id = request.group_id.0.to_string();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
    let persisted = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            transactions::add_txn_offsets(
                &s,
                &transactional_id,
                producer_id,
                epoch,
                &group_id,
                accepted,
            )
            .await
        })
        .await
        .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
    if let Err(e) = persisted {
        let code = e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION);
        codes.iter_mut().filter(|c| **c == 0).for_each(|c| *c = code);
    }
    codes
}
