//! ShareFetch (KIP-932, v1 and v2): one request carries a member's acknowledgements for
//! records it holds and asks for more. Steps: the share-session step on the group's shard
//! (epoch rules, the session's partitions), then the acknowledgements on each partition's
//! shard, then — unless the session is closing — acquisition from every partition of the
//! session, waiting up to `max_wait_ms` when nothing is available: woken by an append, an
//! acknowledgement or release, or a lock's expiry on one of the session's partitions.
//!
//! v2 (Kafka 4.2): acknowledgements may RENEW locks (KIP-1222). A request flagged
//! `IsRenewAck` only acknowledges: it acquires nothing and answers at once, and Kafka
//! requires its fetch sizes and wait to be 0 (else INVALID_REQUEST). The acquire mode
//! (KIP-1206) is checked, and both modes are served alike: acquisition here always stops
//! at `max_records` (what record-limit asks, and what batch-optimized allows).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::ShareFetchResponse;
use uuid::Uuid;

use crate::group::share::sessions::{FINAL_EPOCH, OPEN_EPOCH, SessionPartition};
use crate::protocol::share_v2::{
    ACQUIRE_MODE_BATCH_OPTIMIZED, ACQUIRE_MODE_RECORD_LIMIT, RENEW_VERSION, ShareFetchRequestV2,
    ShareFetchResponseV2,
};
use crate::server::context::RequestContext;
use crate::server::share::{
    self, Acquired, SharePartitionRef, share_config, topic_name, update_session,
};

/// Longest wait a ShareFetch may ask for.
const MAX_SHARE_FETCH_WAIT_MS: i32 = 30_000;
/// Records one ShareFetch acquires when the request sets no positive `max_records`.
const DEFAULT_MAX_RECORDS: usize = 500;
/// Records one ShareFetch may acquire whatever it asks (Kafka's in-flight window bound).
const MAX_RECORDS_PER_FETCH: usize = crate::partition::share::MAX_IN_FLIGHT_RECORDS;

/// Per partition of the answer: acknowledge error, fetch error, what was acquired.
#[derive(Default)]
struct PartitionAnswer {
    acknowledge_error: i16,
    error: i16,
    acquired: Acquired,
    acknowledged: bool,
}

fn refuse(code: ResponseError) -> ShareFetchResponseV2 {
    ShareFetchResponseV2 {
        base: ShareFetchResponse::default().with_error_code(code.code()),
    }
}

/// Whether the v2 fields are acceptable: a known acquire mode, and a renewal that asks
/// for no records (KIP-1222: a renew-only fetch has zero wait, sizes and records).
fn v2_fields_valid(request: &ShareFetchRequestV2) -> bool {
    let mode_known = matches!(
        request.share_acquire_mode,
        ACQUIRE_MODE_BATCH_OPTIMIZED | ACQUIRE_MODE_RECORD_LIMIT
    );
    let r = &request.base;
    let fetches_nothing =
        r.max_wait_ms == 0 && r.min_bytes == 0 && r.max_bytes == 0 && r.max_records == 0;
    mode_known && (!request.is_renew_ack || fetches_nothing)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ShareFetchRequestV2,
) -> ShareFetchResponseV2 {
    if !v2_fields_valid(&request) {
        return refuse(ResponseError::InvalidRequest);
    }
    let renew_only = request.is_renew_ack;
    let renew_allowed = ctx.version >= RENEW_VERSION;
    let request = request.base;
    let admitted = share::member_permitted(
        ctx,
        request.group_id.as_ref().map(|g| g.0.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
        request.topics.iter().map(|t| t.topic_id),
    );
    let (group_id, member_id) = match admitted {
        Ok(ids) => ids,
        Err(code) => return refuse(code),
    };
    let epoch = request.share_session_epoch;
    let listed: Vec<SessionPartition> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let forget: Vec<SessionPartition> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
        .collect();
    let add = if epoch == FINAL_EPOCH { Vec::new() } else { listed };
    let connection = ctx.connection.borrow().share_sessions.connection();
    let step = update_session(ctx.shard, &group_id, &member_id, epoch, add, forget, true, connection);
    let session = match step.await {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    if epoch == OPEN_EPOCH {
        // Opened on this connection: its close ends the session (`share_close`).
        ctx.connection.borrow_mut().share_sessions.opened(&group_id, &member_id);
    }
    let config = share_config(ctx.shard, &group_id);
    let at = |topic: String, partition: i32| SharePartitionRef {
        group_id: group_id.clone(),
        member_id: member_id.clone(),
        topic,
        partition,
        config,
    };
    let mut answers: BTreeMap<SessionPartition, PartitionAnswer> = BTreeMap::new();
    for t in &request.topics {
        for p in t.partitions.iter().filter(|p| !p.acknowledgement_batches.is_empty()) {
            let code = match topic_name(ctx.shard, &t.topic_id) {
                Some(name) => {
                    let batches = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                        .collect();
                    let target = at(name, p.partition_index);
                    share::acknowledge(ctx.shard, target, batches, renew_allowed).await
                }
                None => ResponseError::UnknownTopicId.code(),
            };
            let answer = answers.entry((t.topic_id, p.partition_index)).or_default();
            answer.acknowledge_error = code;
            answer.acknowledged = true;
        }
    }
    if epoch == FINAL_EPOCH {
        for (topic_id, partition) in &session {
            if let Some(name) = topic_name(ctx.shard, topic_id) {
                share::release_member(ctx.shard, at(name, *partition)).await;
            }
        }
    } else if !renew_only {
        let max_records = match request.max_records {
            n if n > 0 => (n as usize).min(MAX_RECORDS_PER_FETCH),
            _ => DEFAULT_MAX_RECORDS,
        };
        let wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_SHARE_FETCH_WAIT_MS) as u64);
        let budget = Budget {
            max_records,
            max_bytes: request.max_bytes.max(0) as u32,
            deadline: Instant::now() + wait,
        };
        acquire_session(ctx, &session, &at, budget, &mut answers).await;
    }
    encode(ctx, answers, config.record_lock_duration_ms)
}

#[derive(Clone, Copy)]
struct Budget {
    max_records: usize,
    max_bytes: u32,
    deadline: Instant,
}

/// Acquires from the session's partitions, all at once on their owning shards, each fetch
/// taking its turn behind the group's earlier ones there; waits (up to the deadline) while
/// none has records for it.
async fn acquire_session(
    ctx: &RequestContext<'_>,
    session: &[SessionPartition],
    at: &dyn Fn(String, i32) -> SharePartitionRef,
    budget: Budget,
    answers: &mut BTreeMap<SessionPartition, PartitionAnswer>,
) {
    let mut keys = Vec::with_capacity(session.len());
    let mut asked = Vec::with_capacity(session.len());
    for &(topic_id, partition) in session {
        match topic_name(ctx.shard, &topic_id) {
            Some(name) => {
                keys.push((topic_id, partition));
                asked.push(at(name, partition));
            }
            None => {
                answers.entry((topic_id, partition)).or_default().error =
                    ResponseError::UnknownTopicId.code()
            }
        }
    }
    if asked.is_empty() {
        // Nothing to fetch from: a long poll still waits out its time, as in Kafka, so an
        // idle member does not spin.
        ctx.shard.timer.sleep_until(budget.deadline).await;
        return;
    }
    let outcomes = share::acquire_session(
        ctx.shard,
        asked,
        budget.max_records,
        budget.max_bytes,
        budget.deadline,
    )
    .await;
    for (key, outcome) in keys.into_iter().zip(outcomes) {
        let answer = answers.entry(key).or_default();
        match outcome {
            Ok(acquired) => answer.acquired = acquired,
            Err(e) => answer.error = e.code(),
        }
    }
}

fn encode(
    ctx: &RequestContext<'_>,
    answers: BTreeMap<SessionPartition, PartitionAnswer>,
    lock_duration_ms: i32,
) -> ShareFetchResponseV2 {
    let leader = LeaderIdAndEpoch::default()
        .with_leader_id(ctx.shard.config.node_id)
        .with_leader_epoch(0);
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    let mut current: Option<Uuid> = None;
    for ((topic_id, partition), answer) in answers {
        let has_records = !answer.acquired.ranges.is_empty();
        if !has_records && !answer.acknowledged && answer.error == 0 {
            continue;
        }
        if current != Some(topic_id) {
            topics.push(ShareFetchableTopicResponse::default().with_topic_id(topic_id));
            current = Some(topic_id);
        }
        let acquired_records = answer
            .acquired
            .ranges
            .iter()
            .map(|r| {
                AcquiredRecords::default()
                    .with_first_offset(r.first_offset)
                    .with_last_offset(r.last_offset)
                    .with_delivery_count(r.delivery_count)
            })
            .collect();
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(answer.error)
            .with_acknowledge_error_code(answer.acknowledge_error)
            .with_current_leader(leader.clone())
            // Empty rather than null: librdkafka refuses a null record set (as Kafka never
            // sends one).
            .with_records(Some(answer.acquired.records))
            .with_acquired_records(acquired_records);
        if let Some(t) = topics.last_mut() {
            t.partitions.push(data);
        }
    }
    ShareFetchResponseV2 {
        base: ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(lock_duration_ms)
            .with_responses(topics),
    }
}
