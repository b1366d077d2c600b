//! The transaction driver: every transactional request and timer action that must reach
//! other shards, run on the shard that coordinates the transactional id. It takes the id's
//! lease from this shard's `txn::TxnCoordinator`, decides with the state machine in
//! `txn::state`, persists each decision before acting on it, and then acts: allocates
//! producer ids (shard 0), writes COMMIT/ABORT markers on each partition's owning shard and
//! completes transactional offset commits on each group's shard.
//!
//! Ordering that makes crashes safe: PrepareCommit / PrepareAbort is durable before the
//! first marker is written, and Complete* is written only after every marker and group
//! completion succeeded. A crash in between leaves the id preparing; `complete_preparing`
//! (at start and on the timer) finishes it, writing the same markers again — a second
//! marker for a transaction already ended changes nothing a reader can see.
//!
//! Owns: those sequences. Must not: hold a lease across anything but its own id's work, or
//! know about the wire (handlers map `TxnError` to codes).

use std::rc::Rc;

use super::{Lookup, Shard, now_ms};
use crate::group::TxnOffset;
use crate::metadata::coordinator_slots::{GROUP_SLOT_TOPIC, coordinator_slot};
use crate::txn::fault::{self, CrashPoint};
use crate::txn::state::{COORDINATOR_EPOCH, TxnGroupOffset, check_timeout};
use crate::txn::{Lease, TxnError, TxnMetadata, TxnState};

/// How often the shard looks for timed-out transactions and unfinished completions (Kafka
/// checks every `transaction.abort.timed.out.transaction.cleanup.interval.ms`, 10 s).
pub const TXN_TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(1_000);

impl Shard {
    /// The shard that coordinates `transactional_id`.
    pub fn owner_of_transactional_id(&self, transactional_id: &str) -> usize {
        crate::txn::owner_shard(transactional_id, self.count())
    }
}

/// Cluster mode: only the broker `ClusterState::coordinator` names (FindCoordinator's
/// answer) changes a transactional id's state; elsewhere NOT_COORDINATOR sends the client
/// back to FindCoordinator. Every node holds every id's replicated state (decision 0022),
/// but one that has not yet applied everything committed before its start
/// (`caught_up_since_start`) may hold an old one: COORDINATOR_NOT_AVAILABLE, retried,
/// until it has. The timer acts on the same ids only, so a new coordinator finishes and
/// times out the transactions of the one before, and a former one leaves them alone.
pub(super) fn check_coordinator(shard: &Shard, transactional_id: &str) -> Result<(), TxnError> {
    let snapshot = shard.metadata.load();
    let Some(cluster) = snapshot.cluster.as_deref() else {
        return Ok(());
    };
    if cluster.coordinator(transactional_id) != Some(shard.config.node_id) {
        return Err(TxnError::NotCoordinator);
    }
    let caught_up = shard.cluster.as_ref().is_some_and(|c| {
        c.caught_up_since_start
            .load(std::sync::atomic::Ordering::Acquire)
    });
    if caught_up {
        Ok(())
    } else {
        Err(TxnError::CoordinatorNotAvailable)
    }
}

impl Shard {
    /// Whether this broker coordinates `transactional_id` now (always on a single node):
    /// ListTransactions lists only those, as Kafka's brokers do.
    pub fn coordinates_transactional_id(&self, transactional_id: &str) -> bool {
        check_coordinator(self, transactional_id).is_ok()
    }
}

/// A producer id from shard 0's allocator (persisted in blocks: never reused).
pub(super) async fn allocate_producer_id(shard: &Rc<Shard>) -> Result<i64, TxnError> {
    let allocated = shard
        .invoke_on(0, |s| async move {
            s.metadata_writer
                .as_ref()
                .map(|w| w.allocate_producer_id().map_err(|e| e.to_string()))
        })
        .await;
    match allocated {
        Ok(Some(Ok(id))) => Ok(id),
        _ => Err(TxnError::CoordinatorNotAvailable),
    }
}

pub(super) fn current(lease: &Lease) -> Result<TxnMetadata, TxnError> {
    lease
        .current
        .clone()
        .ok_or(TxnError::InvalidProducerIdMapping)
}

/// InitProducerId with a transactional id: a new id gets a fresh producer id at epoch 0;
/// a known one has any decided transaction finished, an open one fenced and aborted, and
/// its epoch bumped (a new producer id when the epoch is exhausted). `expected` is the
/// KIP-360 (producer id, epoch) a producer re-initialising itself sends.
pub async fn init_producer_id(
    shard: &Rc<Shard>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), TxnError> {
    check_timeout(timeout_ms)?;
    check_coordinator(shard, transactional_id)?;
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let Some(meta) = lease.current.clone() else {
        // As Kafka: an id the coordinator does not know starts afresh, whatever producer id
        // the client remembers (its state may be gone with a wiped data directory).
        let producer_id = allocate_producer_id(shard).await?;
        let meta = TxnMetadata::new(
            transactional_id.to_string(),
            producer_id,
            timeout_ms,
            now_ms(),
        );
        lease.persist(meta).await?;
        return Ok((producer_id, 0));
    };
    if let Some((producer_id, epoch)) = expected {
        meta.check_reinit(producer_id, epoch)?;
    }
    if meta.state.is_preparing() {
        complete(shard, &mut lease).await?;
    }
    if current(&lease)?.state == TxnState::Ongoing {
        // The previous incarnation's transaction can never finish: fence it and abort it.
        fence_and_abort(shard, &mut lease).await?;
    }
    let meta = current(&lease)?;
    let now = now_ms();
    let mut next = if meta.can_bump_epoch() {
        meta.bumped(now)
    } else {
        meta.with_new_producer_id(allocate_producer_id(shard).await?, now)
    };
    next.timeout_ms = timeout_ms;
    next.state = TxnState::Empty;
    let answer = (next.producer_id, next.producer_epoch);
    lease.persist(next).await?;
    Ok(answer)
}

/// AddPartitionsToTxn (client form): opens the transaction or widens it.
pub async fn add_partitions(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[(String, i32)],
) -> Result<(), TxnError> {
    check_coordinator(shard, transactional_id)?;
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let meta = current(&lease)?;
    meta.check_producer(producer_id, producer_epoch)?;
    let known = partitions.iter().all(|p| meta.partitions.contains(p));
    if meta.state == TxnState::Ongoing && known {
        return Ok(());
    }
    let next = meta.with_added(partitions, None, now_ms())?;
    lease.persist(next).await
}

/// AddOffsetsToTxn: the group whose offsets the transaction will commit.
pub async fn add_offsets(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group_id: &str,
) -> Result<(), TxnError> {
    check_coordinator(shard, transactional_id)?;
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let meta = current(&lease)?;
    meta.check_producer(producer_id, producer_epoch)?;
    if meta.state == TxnState::Ongoing && meta.groups.contains(group_id) {
        return Ok(());
    }
    let next = meta.with_added(&[], Some(group_id), now_ms())?;
    lease.persist(next).await
}

/// EndTxn: the outcome is durable (Prepare*) before any marker is written; the answer is
/// success from then on — markers that cannot be written now are retried by the timer.
pub async fn end_txn(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<(), TxnError> {
    check_coordinator(shard, transactional_id)?;
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let meta = current(&lease)?;
    meta.check_producer(producer_id, producer_epoch)?;
    match (meta.state, commit) {
        (TxnState::Ongoing, _) => {}
        // A retry of an EndTxn whose answer was lost.
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
        (s, _) if s.is_preparing() => return Err(TxnError::Concurrent),
        _ => return Err(TxnError::InvalidTxnState),
    }
    let mut next = meta.clone();
    next.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    next.update_ms = now_ms();
    lease.persist(next).await?;
    fault::crash_if_armed(CrashPoint::AfterPrepare);
    if let Err(e) = complete(shard, &mut lease).await {
        tracing::warn!(id = %transactional_id, error = %e, "transaction markers not all written; retrying on the timer");
    }
    Ok(())
}

/// Whether `producer_id`/`producer_epoch` may append transactional batches to these
/// partitions: each one's result (Kafka's produce-time verification, KIP-890 part 1).
pub fn verify_partitions(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[(String, i32)],
) -> Vec<Result<(), TxnError>> {
    let meta = shard.txns.get(transactional_id);
    let here = check_coordinator(shard, transactional_id);
    partitions
        .iter()
        .map(|p| {
            here?;
            let meta = meta.as_ref().ok_or(TxnError::InvalidProducerIdMapping)?;
            meta.check_producer(producer_id, producer_epoch)?;
            if meta.state == TxnState::Ongoing
                && (meta.partitions.contains(p) || holds_group_slot(meta, p))
            {
                Ok(())
            } else {
                Err(TxnError::InvalidTxnState)
            }
        })
        .collect()
}

/// Whether `partition` names the coordinator slot of a group in the transaction: the
/// group's coordinator verifies a TxnOffsetCommit so (Kafka's `__consumer_offsets`
/// partition, added by AddOffsetsToTxn).
fn holds_group_slot(meta: &TxnMetadata, (topic, partition): &(String, i32)) -> bool {
    topic == GROUP_SLOT_TOPIC
        && meta
            .groups
            .iter()
            .any(|g| i32::try_from(coordinator_slot(g)).is_ok_and(|s| s == *partition))
}

/// Fences the current producer (epoch bump) and aborts its open transaction.
async fn fence_and_abort(shard: &Rc<Shard>, lease: &mut Lease) -> Result<(), TxnError> {
    let meta = current(lease)?;
    let now = now_ms();
    let mut next = if meta.can_bump_epoch() {
        meta.bumped(now)
    } else {
        meta.clone()
    };
    next.state = TxnState::PrepareAbort;
    lease.persist(next).await?;
    fault::crash_if_armed(CrashPoint::AfterPrepare);
    complete(shard, lease).await
}

/// Writes the markers of a decided transaction and completes its groups' offsets, then
/// records Complete*. Any failure leaves it preparing for a later retry.
pub(super) async fn complete(shard: &Rc<Shard>, lease: &mut Lease) -> Result<(), TxnError> {
    let meta = current(lease)?;
    let commit = meta.state == TxnState::PrepareCommit;
    let (producer_id, epoch) = (meta.producer_id, meta.producer_epoch);
    // Markers go to each partition's current leader, here or on another broker.
    let partitions: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
    let markers =
        super::txn_routes::write_markers(shard, &partitions, (producer_id, epoch), commit);
    // Cluster mode: the groups' coordinators hold the offsets and end them at the marker
    // (decision 0022); records written before that keep theirs in the transaction.
    let clustered = shard.cluster.is_some();
    let groups: Vec<String> = meta.groups.iter().cloned().collect();
    let group_ends = async move {
        if clustered {
            super::txn_routes::end_group_offsets(shard, groups, (producer_id, epoch), commit).await
        } else {
            Vec::new()
        }
    };
    let with_offsets = meta
        .groups
        .iter()
        .filter(|group| !clustered || !meta.offsets_of(group).is_empty());
    let groups = with_offsets.map(|group| {
        // The offsets come from the durable transaction record, not the group's memory:
        // a restart between TxnOffsetCommit and the commit loses nothing.
        let offsets: Vec<TxnOffset> = meta
            .offsets_of(group)
            .into_iter()
            .map(|(topic, partition, o)| TxnOffset {
                topic,
                partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
            })
            .collect();
        let group = group.clone();
        let owner = shard.owner_of_group(&group);
        shard.invoke_on(owner, move |s| async move {
            s.groups
                .complete_txn_offsets(&group, producer_id, commit, offsets)
                .await
        })
    });
    let ((mut failed, groups), ended) = futures_util::future::join(
        futures_util::future::join(markers, futures_util::future::join_all(groups)),
        group_ends,
    )
    .await;
    failed.extend(ended);
    failed.extend(groups.into_iter().filter_map(|r| match r {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(gone) => Some(gone.to_string()),
    }));
    if let Some(first) = failed.first() {
        tracing::warn!(id = %meta.transactional_id, failures = failed.len(), first = %first,
            "transaction completion incomplete");
        return Err(TxnError::CoordinatorNotAvailable);
    }
    lease.persist(meta.completed(now_ms())).await
}

/// One marker on the partition's owning shard. A partition whose topic is gone needs none.
pub(super) async fn write_marker(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<(), String> {
    match shard.led(topic, partition) {
        Lookup::Online(p) => p
            .write_txn_marker(producer_id, epoch, commit, COORDINATOR_EPOCH, now_ms())
            .await
            .map(|_| fault::crash_if_armed(CrashPoint::AfterFirstMarker))
            .map_err(|e| format!("{topic}-{partition}: {e}")),
        Lookup::Offline(why) => Err(format!("{topic}-{partition} is offline: {why}")),
        Lookup::Missing => {
            let exists = shard
                .metadata
                .load()
                .topic(topic)
                .is_some_and(|t| partition < t.partitions);
            if exists {
                Err(format!("{topic}-{partition} is not open yet"))
            } else {
                Ok(())
            }
        }
    }
}

/// The timer's work: aborts transactions past their timeout (fencing their producer) and
/// finishes decided ones whose markers are not all written. Ids busy with a request are
/// left for the next tick.
pub async fn run_timer_tick(shard: &Rc<Shard>) {
    let now = now_ms();
    for id in coordinated(shard, shard.txns.expired(now)) {
        let Ok(mut lease) = shard.txns.lease(&id) else {
            continue;
        };
        if !lease.current.as_ref().is_some_and(|m| m.is_expired(now)) {
            continue;
        }
        tracing::info!(id = %id, "aborting a transaction past its timeout");
        if let Err(e) = fence_and_abort(shard, &mut lease).await {
            tracing::warn!(id = %id, error = %e, "timed-out transaction not yet aborted");
        }
    }
    complete_preparing(shard).await;
    forget_idle_ids(shard, now).await;
}

/// The ids of `ids` this broker coordinates now (all on a single node): in cluster mode
/// every node holds every id's state, and only the coordinator acts on it.
fn coordinated(shard: &Rc<Shard>, ids: Vec<String>) -> Vec<String> {
    ids.into_iter()
        .filter(|id| check_coordinator(shard, id).is_ok())
        .collect()
}

/// Forgets transactional ids idle past `transactional_id_expiration_ms` (a tombstone in the
/// log), so ids a deployment stopped using do not hold coordinator slots forever. Ids busy
/// with a request are left for the next tick.
async fn forget_idle_ids(shard: &Rc<Shard>, now: i64) {
    let expiration_ms = shard.config.transactional_id_expiration_ms;
    for id in coordinated(shard, shard.txns.idle(expiration_ms, now)) {
        let Ok(mut lease) = shard.txns.lease(&id) else {
            continue;
        };
        let Some(meta) = lease
            .current
            .clone()
            .filter(|m| m.is_idle_past(expiration_ms, now))
        else {
            continue;
        };
        tracing::info!(id = %id, "forgetting a transactional id idle past transactional_id_expiration_ms");
        if let Err(e) = lease.persist(meta.dead(now)).await {
            tracing::warn!(id = %id, error = %e, "idle transactional id not yet forgotten");
        }
    }
}

/// Finishes every decided transaction whose completion is not recorded (after a restart
/// during PrepareCommit / PrepareAbort, or a marker that failed).
pub async fn complete_preparing(shard: &Rc<Shard>) {
    for id in coordinated(shard, shard.txns.preparing()) {
        let Ok(mut lease) = shard.txns.lease(&id) else {
            continue;
        };
        if !lease
            .current
            .as_ref()
            .is_some_and(|m| m.state.is_preparing())
        {
            continue;
        }
        if let Err(e) = complete(shard, &mut lease).await {
            tracing::warn!(id = %id, error = %e, "decided transaction not yet completed");
        }
    }
}

/// After a restart: the offsets of every open transaction are marked pending again in their
/// groups (the marks are memory; the offsets are in the durable transaction record), so
/// OffsetFetch with `require_stable` keeps answering UNSTABLE_OFFSET_COMMIT until the
/// transaction ends, as before the restart.
pub async fn restore_pending_offsets(shard: &Rc<Shard>) {
    let open = shard
        .txns
        .all()
        .into_iter()
        .filter(|m| m.state == TxnState::Ongoing && !m.offsets.is_empty());
    for meta in open {
        for group in &meta.groups {
            let offsets: Vec<TxnOffset> = meta
                .offsets_of(group)
                .into_iter()
                .map(|(topic, partition, o)| TxnOffset {
                    topic,
                    partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                })
                .collect();
            let committer = crate::group::TxnCommitter {
                producer_id: meta.producer_id,
                member_id: String::new(),
                group_instance_id: None,
                // No generation: the member check happened when the offsets were committed.
                generation_id: -1,
            };
            let group = group.clone();
            let owner = shard.owner_of_group(&group);
            let restored = shard
                .invoke_on(owner, move |s| async move {
                    s.groups.txn_offset_commit(
                        &group,
                        &committer,
                        offsets,
                        std::time::Instant::now(),
                    )
                })
                .await;
            if restored.is_err() {
                tracing::warn!(id = %meta.transactional_id, "could not mark a transaction's offsets pending after restart");
            }
        }
    }
}

/// TxnOffsetCommit's durable half: the offsets become part of the transaction's record
/// (written before the answer) and go to the group's offsets log when it commits.
pub async fn add_txn_offsets(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group_id: &str,
    offsets: Vec<TxnOffset>,
) -> Result<(), TxnError> {
    // Cluster mode: the group's coordinator may not be the id's (decision 0022's "other
    // gaps"): only the id's coordinator may write its state.
    check_coordinator(shard, transactional_id)?;
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let meta = current(&lease)?;
    meta.check_producer(producer_id, producer_epoch)?;
    let offsets = offsets
        .into_iter()
        .map(|o| {
            let offset = TxnGroupOffset {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
            };
            (o.topic, o.partition, offset)
        })
        .collect();
    let next = meta.with_offsets(group_id, offsets, now_ms())?;
    lease.persist(next).await
}

/// Whether the producer's open transaction includes `group_id` (TxnOffsetCommit is
/// refused otherwise: offsets of a group the coordinator would never complete).
pub fn verify_group(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group_id: &str,
) -> Result<(), TxnError> {
    let meta = shard
        .txns
        .get(transactional_id)
        .ok_or(TxnError::InvalidProducerIdMapping)?;
    meta.check_producer(producer_id, producer_epoch)?;
    if meta.state == TxnState::Ongoing && meta.groups.contains(group_id) {
        Ok(())
    } else {
        Err(TxnError::InvalidTxnState)
    }
}
