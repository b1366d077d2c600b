//! What ShareFetch and ShareAcknowledge share (KIP-932): the share-session step on the
//! group's coordinator shard, and acknowledging, releasing and acquiring records on each
//! partition's owning shard, where a waiting ShareFetch takes its turn behind the group's
//! earlier fetches.
//!
//! Owns: the hops and the mapping of partition results to Kafka error codes. Must not:
//! hold share state itself (the group coordinator and `partition::share` do).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_channel::oneshot;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::config::group_config::ShareGroupConfig;
use crate::group::share::sessions::{SessionPartition, SessionUpdate};
use crate::metadata::share_state_reset::ResetScope;
use crate::partition::Partition;
use crate::partition::share::{
    ACK_RENEW, AckError, AcquiredRange, ShareAcquire, ShareError, ShareFetchBudget,
};
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::share_dlq::forward_dead_letters;
use crate::shard::{Lookup, Shard, propose_share_state_reset};

/// The group's share configs (GROUP config resource over Kafka's defaults).
pub fn share_config(shard: &Shard, group_id: &str) -> ShareGroupConfig {
    let metadata = shard.metadata.load();
    ShareGroupConfig::with_overrides(metadata.group_configs.get(group_id).map(|c| &**c))
}

/// A topic's name from its id (None: unknown id).
pub fn topic_name(shard: &Shard, topic_id: &Uuid) -> Option<String> {
    shard
        .metadata
        .load()
        .topic_by_id(topic_id)
        .map(|t| t.name.clone())
}

/// The share-session step, on the group's shard (see `group::share::sessions`), of a
/// request on `connection` (a session it opens is bound to it: `share_close`).
#[allow(clippy::too_many_arguments)]
pub async fn update_session(
    shard: &Rc<Shard>,
    group_id: &str,
    member_id: &str,
    epoch: i32,
    add: Vec<SessionPartition>,
    forget: Vec<SessionPartition>,
    may_open: bool,
    connection: u64,
) -> Result<Vec<SessionPartition>, ResponseError> {
    let owner = shard.owner_of_group(group_id);
    // Cluster mode: a broker leading partitions of a group another broker coordinates
    // serves their share fetches too (decision 0025).
    let any_member = shard
        .metadata
        .load()
        .cluster
        .as_deref()
        .is_some_and(|c| c.coordinator(group_id) != Some(shard.config.node_id));
    let (group, member) = (group_id.to_string(), member_id.to_string());
    shard
        .invoke_on(owner, move |s| async move {
            s.groups.share_session_update(
                &group,
                SessionUpdate {
                    member_id: &member,
                    epoch,
                    add: &add,
                    forget: &forget,
                    may_open,
                    any_member,
                    connection,
                    now: Instant::now(),
                },
            )
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
}

/// One partition of a share request, resolved.
#[derive(Clone)]
pub struct SharePartitionRef {
    pub group_id: String,
    pub member_id: String,
    pub topic: String,
    pub partition: i32,
    pub config: ShareGroupConfig,
}

/// Applies acknowledgement batches on the partition's shard; the partition's
/// acknowledge error code (0 when all applied). RENEW exists from v2 of ShareFetch and
/// ShareAcknowledge (KIP-1222): a v1 request carrying it (`renew_allowed` false) is
/// INVALID_REQUEST, as any type its schema does not list, and nothing is applied.
pub async fn acknowledge(
    shard: &Rc<Shard>,
    at: SharePartitionRef,
    batches: Vec<(i64, i64, Vec<i8>)>,
    renew_allowed: bool,
) -> i16 {
    if !renew_allowed
        && batches
            .iter()
            .any(|(_, _, types)| types.contains(&ACK_RENEW))
    {
        return ResponseError::InvalidRequest.code();
    }
    let owner = shard.owner_of_partition(&at.topic, at.partition);
    shard
        .invoke_on(owner, move |s| async move {
            let p = match s.led_partition(&at.topic, at.partition) {
                Ok(p) => p,
                Err(e) => return e.code(),
            };
            let outcome = p.share_acknowledge(
                &at.group_id,
                &at.member_id,
                &batches,
                &at.config,
                Instant::now(),
            );
            let outcome = outcome.await;
            // Rejected records of a group with a dead-letter topic are ARCHIVING now,
            // durably: their dead letters go out in the background.
            forward_dead_letters(&s, &p, &at.topic, at.partition, &at.group_id);
            match outcome {
                Ok(Ok(())) => 0,
                Ok(Err(AckError::InvalidRecordState)) => ResponseError::InvalidRecordState.code(),
                Ok(Err(AckError::InvalidRequest)) => ResponseError::InvalidRequest.code(),
                Err(e) => share_error(&e).code(),
            }
        })
        .await
        .unwrap_or(ResponseError::UnknownServerError.code())
}

fn share_error(e: &ShareError) -> ResponseError {
    match e {
        ShareError::TooManyGroups => ResponseError::GroupMaxSizeReached,
        ShareError::Storage(crate::storage::StorageError::OffsetOutOfRange { .. }) => {
            ResponseError::OffsetOutOfRange
        }
        ShareError::Storage(_) | ShareError::Io(_) => ResponseError::KafkaStorageError,
        // Cluster mode (decision 0025): a deposed leader's write is refused at apply, and
        // the client finds the new leader; no quorum in time is worth a retry.
        ShareError::Replication(e)
            if e.code == ResponseError::FencedLeaderEpoch.code()
                || e.code == ResponseError::NotLeaderOrFollower.code() =>
        {
            ResponseError::NotLeaderOrFollower
        }
        // A reset of the group (AlterShareGroupOffsets, DeleteShareGroupOffsets,
        // DeleteGroups) raised its state epoch while this write was in flight: refused at
        // apply, as Kafka's share coordinator refuses a stale WriteShareGroupState. Kafka's
        // SharePartition turns that into FencedStateEpochException and the share-partition
        // manager answers the partition with it (`Errors.forException`): FENCED_STATE_EPOCH,
        // not a timeout the client would retry the same way. The leader's memory already
        // holds the reset state (decision 0025), so nothing is reloaded here.
        ShareError::Replication(e) if e.code == ResponseError::FencedStateEpoch.code() => {
            ResponseError::FencedStateEpoch
        }
        ShareError::Replication(_) => ResponseError::RequestTimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::share::replicated::ReplicationError;

    fn refused(code: ResponseError) -> ShareError {
        ShareError::Replication(ReplicationError {
            code: code.code(),
            message: "refused at apply".into(),
        })
    }

    #[test]
    fn a_write_fenced_by_a_reset_answers_fenced_state_epoch() {
        assert_eq!(
            share_error(&refused(ResponseError::FencedStateEpoch)),
            ResponseError::FencedStateEpoch
        );
        // The others as before: a deposed leader sends the client to the new one, and no
        // quorum in time is worth a retry.
        assert_eq!(
            share_error(&refused(ResponseError::FencedLeaderEpoch)),
            ResponseError::NotLeaderOrFollower
        );
        assert_eq!(
            share_error(&refused(ResponseError::RequestTimedOut)),
            ResponseError::RequestTimedOut
        );
    }
}

/// Releases a member's records on one partition (its session closed).
pub async fn release_member(shard: &Rc<Shard>, at: SharePartitionRef) {
    let owner = shard.owner_of_partition(&at.topic, at.partition);
    let _ = shard
        .invoke_on(owner, move |s| async move {
            if let Lookup::Online(p) = s.led(&at.topic, at.partition) {
                // A failed write leaves the records released in memory; the next write of
                // this group's state (any acknowledgement) carries them.
                let _ = p
                    .share_release_member(&at.group_id, &at.member_id, &at.config)
                    .await;
                forward_dead_letters(&s, &p, &at.topic, at.partition, &at.group_id);
            }
        })
        .await;
}

/// What one partition handed a member.
#[derive(Default)]
pub struct Acquired {
    pub ranges: Vec<AcquiredRange>,
    pub records: Bytes,
}

/// A ShareFetch's acquisition over its session's partitions, all at once on their owning
/// shards: each partition waits its turn in its FIFO of this group's fetches
/// (`acquire_in_turn`), and the request's `max_records` is shared between them
/// (`ShareFetchBudget`). Once one partition answers with records the others stop waiting
/// (they still take what they have at once). One outcome per partition, in order.
pub async fn acquire_session(
    shard: &Rc<Shard>,
    partitions: Vec<SharePartitionRef>,
    max_records: usize,
    max_bytes: u32,
    deadline: Instant,
) -> Vec<Result<Acquired, ResponseError>> {
    let budget = Arc::new(ShareFetchBudget::new(max_records, u64::from(max_bytes)));
    let mut outcomes: Vec<Result<Acquired, ResponseError>> =
        partitions.iter().map(|_| Ok(Acquired::default())).collect();
    let mut stops = Vec::with_capacity(partitions.len());
    let mut pending = FuturesUnordered::new();
    for (i, at) in partitions.into_iter().enumerate() {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let owner = shard.owner_of_partition(&at.topic, at.partition);
        let budget = Arc::clone(&budget);
        pending.push(async move {
            let outcome = shard
                .invoke_on(owner, move |s| {
                    acquire_in_turn(s, at, budget, deadline, stop_rx)
                })
                .await
                .unwrap_or(Err(ResponseError::UnknownServerError));
            (i, outcome)
        });
    }
    while let Some((i, outcome)) = pending.next().await {
        if outcome.as_ref().is_ok_and(|a| !a.ranges.is_empty()) {
            for stop in stops.drain(..) {
                let _ = stop.send(());
            }
        }
        if let Some(slot) = outcomes.get_mut(i) {
            *slot = outcome;
        }
    }
    outcomes
}

/// One partition's part of a ShareFetch, on its owner. The fetch queues behind this group's
/// earlier fetches here (Kafka's purgatory completes them in arrival order); at its turn it
/// acquires what is available, at most what the budget has left. While it has no turn or
/// nothing is available it waits for an append, an acknowledgement or release (which also
/// ends the turn before it), a lock's expiry, `deadline` or `stop`.
async fn acquire_in_turn(
    s: Rc<Shard>,
    at: SharePartitionRef,
    budget: Arc<ShareFetchBudget>,
    deadline: Instant,
    stop: oneshot::Receiver<()>,
) -> Result<Acquired, ResponseError> {
    // A broker that does not lead the partition answers NOT_LEADER_OR_FOLLOWER (with the
    // current leader): the client fetches there instead.
    let p = s.led_partition(&at.topic, at.partition)?;
    // No place in a full queue: answered with nothing, as a fetch that timed out.
    let Some(turn) = p.share_fetch_turn(&at.group_id) else {
        return Ok(Acquired::default());
    };
    let mut stop = stop.fuse();
    let mut stopped = false;
    loop {
        // Registered before the checks below: a change landing in between wakes the wait.
        let appended = p.wait_for_high_watermark().fuse();
        let changed = p.share_state_changed().fuse();
        let now = Instant::now();
        let readiness = p
            .share_readiness(&at.group_id, &at.config, now)
            .map_err(|e| share_error(&e))?;
        // Locks the check found expired are written before anyone waits on them.
        p.share_save_released(&at.group_id)
            .await
            .map_err(|e| share_error(&e))?;
        // Records past the delivery count limit (an expiry just now, or ARCHIVING ones
        // restored after a restart) go to the group's dead-letter topic.
        forward_dead_letters(&s, &p, &at.topic, at.partition, &at.group_id);
        if readiness.acquirable && turn.is_mine() && budget.records_left() > 0 {
            let acquired = acquire_here(&p, &at, &budget, now).await?;
            if !acquired.ranges.is_empty() {
                return Ok(acquired);
            }
        }
        let spent = budget.records_left() == 0 || budget.bytes_left() == 0;
        if stopped || spent || Instant::now() >= deadline || s.shutting_down.get() {
            return Ok(Acquired::default());
        }
        let wake_at = readiness
            .next_lock_expiry
            .map_or(deadline, |expiry| expiry.min(deadline));
        let mut expiry = s.timer.sleep_until(wake_at).fuse();
        let (mut appended, mut changed) = (std::pin::pin!(appended), std::pin::pin!(changed));
        futures_util::select! {
            _ = appended => {},
            _ = changed => {},
            _ = expiry => {},
            _ = stop => stopped = true,
        }
    }
}

/// Acquires on the partition (this shard owns it) and copies the batches holding the
/// acquired records into the answer.
async fn acquire_here(
    p: &Partition,
    at: &SharePartitionRef,
    budget: &ShareFetchBudget,
    now: Instant,
) -> Result<Acquired, ResponseError> {
    let request = ShareAcquire {
        group_id: &at.group_id,
        member_id: &at.member_id,
        config: at.config,
    };
    let acquired = p
        .share_acquire(&request, budget, now)
        .await
        .map_err(|e| share_error(&e))?;
    // The batches are copied into the answer (ShareFetch's encoder has no file-region path
    // yet, unlike Fetch's).
    let mut records = Vec::new();
    for region in &acquired.regions {
        let bytes = region
            .read_to_vec()
            .await
            .map_err(|_| ResponseError::KafkaStorageError)?;
        records.extend_from_slice(&bytes);
    }
    Ok(Acquired {
        ranges: acquired.ranges,
        records: Bytes::from(records),
    })
}

/// What ShareFetch and ShareAcknowledge check first: a group and member id, then READ on the
/// group and on every topic the request names (one code for the request: a member is
/// refused whole rather than served a part of its session). The (group, member) ids.
pub fn member_permitted(
    ctx: &RequestContext<'_>,
    group_id: Option<&str>,
    member_id: Option<&str>,
    topic_ids: impl IntoIterator<Item = Uuid>,
) -> Result<(String, String), ResponseError> {
    let group_id = group_id.unwrap_or_default().to_string();
    let member_id = member_id.unwrap_or_default().to_string();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    if member_id.is_empty() {
        return Err(ResponseError::UnknownMemberId);
    }
    if !permitted(ctx, ResourceType::Group, &group_id) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let snapshot = ctx.shard.metadata.load();
    let unreadable = topic_ids.into_iter().any(|id| {
        snapshot
            .topic_by_id(&id)
            .is_some_and(|topic| !permitted(ctx, ResourceType::Topic, &topic.name))
    });
    if unreadable {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    Ok((group_id, member_id))
}

/// AlterShareGroupOffsets / DeleteShareGroupOffsets: the caller's right on the group, then
/// the group check on its coordinator shard (see `GroupCoordinator::share_offsets_changeable`:
/// no members; with `must_exist`, an existing share group). The refusal's code and message.
pub async fn offsets_changeable(
    ctx: &RequestContext<'_>,
    group_id: &str,
    must_exist: bool,
) -> Result<(), (ResponseError, &'static str)> {
    if !permitted(ctx, ResourceType::Group, group_id) {
        return Err((
            ResponseError::GroupAuthorizationFailed,
            "not authorized on the group",
        ));
    }
    // Cluster mode: the reset is proposed as the group's coordinator (the record is
    // refused otherwise), so a client that found an old coordinator looks again.
    let coordinator = ctx
        .shard
        .metadata
        .load()
        .cluster
        .as_deref()
        .map(|c| c.coordinator(group_id));
    if coordinator.is_some_and(|c| c != Some(ctx.shard.config.node_id)) {
        return Err((
            ResponseError::NotCoordinator,
            "this broker does not coordinate the group",
        ));
    }
    let owner = ctx.shard.owner_of_group(group_id);
    let group = group_id.to_string();
    let checked = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .share_offsets_changeable(&group, must_exist, Instant::now())
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    checked.map_err(|e| {
        let message = match e {
            ResponseError::NonEmptyGroup => "the share group has members",
            ResponseError::GroupIdNotFound if must_exist => "no share group with this id",
            ResponseError::GroupIdNotFound => "the group id is used by a non-share group",
            _ => "cannot change this group's offsets",
        };
        (e, message)
    })
}

/// Restarts (`Some(start)`) or drops (`None`) a group's share-partition state, durably;
/// the partition's error code (0 when done). A single node changes it on the partition's
/// owning shard; in cluster mode a restart goes through the metadata log to whichever
/// broker leads the partition (`reset_through_log`), and dropping one partition alone is
/// not offered (DeleteShareGroupOffsets drops a whole topic's: `ResetScope::Topic`).
pub async fn reset_partition(
    shard: &Rc<Shard>,
    group_id: &str,
    topic: &str,
    partition: i32,
    start_offset: Option<i64>,
) -> i16 {
    if let (true, Some(start_offset)) = (shard.cluster.is_some(), start_offset) {
        let scope = ResetScope::Partition {
            topic: topic.to_string(),
            partition,
            start_offset,
        };
        return reset_through_log(shard, group_id, scope).await;
    }
    let owner = shard.owner_of_partition(topic, partition);
    let (group, topic) = (group_id.to_string(), topic.to_string());
    shard
        .invoke_on(owner, move |s| async move {
            let p = match s.led_partition(&topic, partition) {
                Ok(p) => p,
                Err(e) => return e.code(),
            };
            let done = match start_offset {
                Some(start) => p.share_set_start_offset(&group, start).await,
                None => p.share_forget_group(&group).await,
            };
            done.map_or_else(|e| share_error(&e).code(), |()| 0)
        })
        .await
        .unwrap_or(ResponseError::UnknownServerError.code())
}

/// Cluster mode (decision 0025): this broker, the group's coordinator, proposes the reset
/// to the metadata log; every node applies it, the partitions' leaders wherever they are
/// take the new state, and the group's state epoch rises so their writes of the old one
/// are refused. The error code once applied here (0: done). As Kafka's coordinator
/// normalises a failed append to its logs: NOT_COORDINATOR if the group moved, the
/// record's own refusal (UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST,
/// GROUP_MAX_SIZE_REACHED; UNSUPPORTED_VERSION below the format level that carries
/// the record), otherwise COORDINATOR_NOT_AVAILABLE, which clients retry.
pub async fn reset_through_log(shard: &Rc<Shard>, group_id: &str, scope: ResetScope) -> i16 {
    let Err((code, message)) = propose_share_state_reset(shard, group_id, scope).await else {
        return 0;
    };
    let passed = [
        ResponseError::NotCoordinator,
        ResponseError::UnknownTopicOrPartition,
        ResponseError::InvalidRequest,
        ResponseError::InvalidGroupId,
        ResponseError::GroupMaxSizeReached,
        // The cluster's format level is below the record's (decision 0027): not retriable.
        ResponseError::UnsupportedVersion,
    ];
    if passed.iter().any(|e| e.code() == code) {
        return code;
    }
    tracing::warn!(group = group_id, code, %message, "share-state reset not applied");
    ResponseError::CoordinatorNotAvailable.code()
}
