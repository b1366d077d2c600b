//! Cluster mode's transactional offsets (decision 0022, "Offsets of a transaction"): as in
//! Kafka, the group's coordinator holds a transaction's offsets, not the transaction's
//! coordinator. TxnOffsetCommit proposes them as `TxnPending` changes of the group's
//! `GroupOffsets` records (checked at apply against the group's coordinator, like any
//! commit), so every node holds them and the group's next coordinator has them after a
//! failover. The transaction's marker reaches the group's coordinator (Kafka's marker on the
//! group's `__consumer_offsets` partition; here the group's coordinator slot), which
//! proposes a `TxnEnd`: applied, it makes exactly the producer's pending offsets committed,
//! or drops them. A repeated marker finds nothing pending and proposes nothing.
//!
//! Owns: the checks before proposing, applying the transactional changes, the slot's end
//! and the pending offsets of a snapshot image. Must not: decide a transaction's outcome
//! (its coordinator does) or hold the `groups` borrow across an `.await`.

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::ResponseError;

use super::coordinator::{GroupCoordinator, MAX_GROUPS_PER_SHARD};
use super::offset_log::{LogRecord, OffsetEntry};
use super::state::{Group, PendingTxnOffset};
use super::txn_guard::{Proposing, TXN_END_DRAIN_TIMEOUT};
use super::txn_offsets::{
    MAX_PENDING_TXN_OFFSETS_PER_PRODUCER, TxnCommitter, TxnOffset, offset_refusal,
};
use crate::metadata::coordinator_slots::coordinator_slot;
use crate::metadata::group_offsets::OffsetChange;

/// Pending offsets one group holds over all its producers' open transactions: each
/// producer is bounded by `MAX_PENDING_TXN_OFFSETS_PER_PRODUCER`, this bounds a group many
/// transactional producers commit to (every node keeps them in memory and in snapshots).
pub const MAX_PENDING_TXN_OFFSETS_PER_GROUP: usize = 100_000;
const _: () = assert!(MAX_PENDING_TXN_OFFSETS_PER_PRODUCER <= MAX_PENDING_TXN_OFFSETS_PER_GROUP);
/// How often a marker looks whether the proposals it waits for were answered (rare: only
/// a marker that arrives while its producer's offsets are being proposed waits at all).
const TXN_END_DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(1);

impl GroupCoordinator {
    /// TxnOffsetCommit at the group's coordinator, cluster mode: the member check (KIP-447)
    /// and the bounds, then the accepted offsets are proposed and answered once applied
    /// here. Each offset's code, in request order. The transaction itself was verified by
    /// the caller at the transaction's coordinator.
    pub async fn replicate_txn_offsets(
        &self,
        group_id: &str,
        committer: &TxnCommitter,
        guard: u64,
        offsets: Vec<TxnOffset>,
        now: Instant,
    ) -> Vec<i16> {
        let wall = self.wall_ms(now);
        let (mut codes, changes) = {
            let mut groups = self.inner.groups.borrow_mut();
            let check = self.check_txn_committer(&mut groups, group_id, committer, now);
            txn_changes(
                groups.get(group_id),
                check,
                committer.producer_id,
                offsets,
                wall,
            )
        };
        if changes.is_empty() {
            return codes;
        }
        let Some(replicator) = self.replicator() else {
            refuse_accepted(&mut codes, ResponseError::CoordinatorNotAvailable.code());
            return codes;
        };
        let Some(proposing) = Proposing::enter(
            &self.inner.txn_guards,
            group_id,
            committer.producer_id,
            guard,
        ) else {
            // The transaction's marker came between the verification and here.
            refuse_accepted(&mut codes, ResponseError::InvalidTxnState.code());
            return codes;
        };
        let proposed = replicator
            .replicate_changes(group_id.to_string(), changes)
            .await;
        drop(proposing);
        if let Err(e) = proposed {
            tracing::warn!(group = %group_id, error = %e, "transactional offsets not replicated");
            refuse_accepted(&mut codes, e.code);
        }
        codes
    }

    /// Whether this broker coordinates the group and the committer may commit to it.
    fn check_txn_committer(
        &self,
        groups: &mut HashMap<String, Group>,
        group_id: &str,
        committer: &TxnCommitter,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        // A group taken over loads its stored members first (decision 0024).
        self.take_over(groups, group_id, now)?;
        let full = groups.len() >= MAX_GROUPS_PER_SHARD;
        match groups.get_mut(group_id) {
            Some(g) if committer.generation_id >= 0 => g.check_commit(
                &committer.member_id,
                committer.group_instance_id.as_deref(),
                committer.generation_id,
                now,
            ),
            Some(_) => Ok(()),
            // The apply creates the group, as the single node's path does.
            None if full => Err(ResponseError::CoordinatorNotAvailable),
            None => Ok(()),
        }
    }

    /// Applies a committed record's transactional changes to `group_id` (every node, in log
    /// order). Bounds are the proposer's; a record past them (another build) is skipped
    /// for the offsets that do not fit, the same on every node.
    pub fn apply_replicated_txn(&self, group_id: &str, changes: &[OffsetChange]) {
        let mut groups = self.inner.groups.borrow_mut();
        if !groups.contains_key(group_id) {
            let Some(group) = self.new_group(group_id) else {
                tracing::warn!(group = %group_id, "replicated transactional offsets of an unnameable group skipped");
                return;
            };
            groups.insert(group_id.to_string(), group);
        }
        let Some(g) = groups.get_mut(group_id) else {
            return;
        };
        for change in changes {
            apply_txn_change(g, change);
        }
        if g.is_removable() {
            groups.remove(group_id);
        }
    }

    /// The marker for a transaction reached this broker for coordinator slot `slot`: every
    /// group of the slot on this shard holding offsets of `producer_id` gets a `TxnEnd`,
    /// answered once applied here. Err(code) when one could not be (NOT_COORDINATOR when
    /// this broker does not coordinate the group: the transaction's coordinator retries).
    pub async fn end_txn_in_slot(
        &self,
        slot: usize,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), i16> {
        let replicator = self
            .replicator()
            .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        // Another broker's answer "nothing pending" could come from a state behind the
        // coordinator's: only the slot's coordinator (which applied every TxnPending it
        // acknowledged, and every one before it took the slot over) may say so.
        if !replicator.coordinates_slot(slot) {
            return Err(ResponseError::NotCoordinator.code());
        }
        self.end_txn_guards(slot, producer_id).await?;
        let held: Vec<String> = {
            let groups = self.inner.groups.borrow();
            groups
                .values()
                .filter(|g| g.pending_txn_offsets.contains_key(&producer_id))
                .filter(|g| coordinator_slot(&g.id) == slot)
                .map(|g| g.id.clone())
                .collect()
        };
        if held.is_empty() {
            return Ok(());
        }
        let ends = held.into_iter().map(|group_id| {
            let replicator = replicator.clone();
            async move {
                if !replicator.coordinates(&group_id) {
                    return Err(ResponseError::NotCoordinator.code());
                }
                let end = OffsetChange::TxnEnd {
                    producer_id,
                    commit,
                };
                replicator
                    .replicate_changes(group_id, vec![end])
                    .await
                    .map_err(|e| e.code)
            }
        });
        futures_util::future::join_all(ends)
            .await
            .into_iter()
            .collect()
    }

    /// Guards a TxnOffsetCommit of `producer_id` for `group_id` before its verification at
    /// the transaction's coordinator; the token goes to `replicate_txn_offsets`.
    /// COORDINATOR_NOT_AVAILABLE when the shard's guard table is full.
    pub fn begin_txn_offsets(
        &self,
        group_id: &str,
        producer_id: i64,
        now: Instant,
    ) -> Result<u64, ResponseError> {
        self.inner
            .txn_guards
            .borrow_mut()
            .begin(group_id, producer_id, now)
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// The marker's first step: offsets of `producer_id` already being proposed to groups
    /// of `slot` finish first (so the `TxnEnd` follows them in the log), then the guards
    /// end, so a proposal verified before the marker is refused. An error code (the
    /// transaction's coordinator retries) when they do not finish in time.
    async fn end_txn_guards(&self, slot: usize, producer_id: i64) -> Result<(), i16> {
        let in_slot = |group: &str| coordinator_slot(group) == slot;
        let deadline = Instant::now() + TXN_END_DRAIN_TIMEOUT;
        while self
            .inner
            .txn_guards
            .borrow()
            .proposing(producer_id, in_slot)
        {
            if Instant::now() >= deadline {
                return Err(ResponseError::RequestTimedOut.code());
            }
            compio::time::sleep(TXN_END_DRAIN_POLL).await;
        }
        self.inner.txn_guards.borrow_mut().end(producer_id, in_slot);
        Ok(())
    }

    /// Every group's pending transactional offsets on this shard, as `TxnPending` changes
    /// for a snapshot image.
    pub fn replicated_pending(&self) -> Vec<(String, Vec<OffsetChange>)> {
        let groups = self.inner.groups.borrow();
        let mut out: Vec<(String, Vec<OffsetChange>)> = groups
            .values()
            .filter(|g| !g.pending_txn_offsets.is_empty())
            .map(|g| (g.id.clone(), pending_changes(g)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A snapshot image was installed: every group of this shard holds exactly the image's
    /// pending transactional offsets.
    pub fn install_pending(&self, mut image: HashMap<String, Vec<OffsetChange>>) {
        let mut groups = self.inner.groups.borrow_mut();
        for g in groups.values_mut() {
            g.pending_txn_offsets.clear();
            for change in image.remove(&g.id).unwrap_or_default() {
                apply_txn_change(g, &change);
            }
        }
        for (group_id, changes) in image {
            if let Some(mut group) = self.new_group(&group_id) {
                for change in &changes {
                    apply_txn_change(&mut group, change);
                }
                groups.insert(group_id, group);
            }
        }
        groups.retain(|_, g| !g.is_removable());
    }
}

/// The offsets accepted so far (code 0) are refused with `code`: their proposal did not
/// happen or failed.
fn refuse_accepted(codes: &mut [i16], code: i16) {
    codes
        .iter_mut()
        .filter(|c| **c == 0)
        .for_each(|c| *c = code);
}

/// Each offset's code and the `TxnPending` changes of the accepted ones.
fn txn_changes(
    group: Option<&Group>,
    check: Result<(), ResponseError>,
    producer_id: i64,
    offsets: Vec<TxnOffset>,
    wall_ms: i64,
) -> (Vec<i16>, Vec<OffsetChange>) {
    let held_by = |pid: i64| group.and_then(|g| g.pending_txn_offsets.get(&pid));
    let mut producer_held = held_by(producer_id).map_or(0, Vec::len);
    let mut group_held: usize =
        group.map_or(0, |g| g.pending_txn_offsets.values().map(Vec::len).sum());
    let mut changes = Vec::new();
    let codes = offsets
        .into_iter()
        .map(|o| {
            if let Some(code) = offset_refusal(check, &o) {
                return code;
            }
            let replaces = held_by(producer_id).is_some_and(|h| {
                h.iter()
                    .any(|p| p.topic == o.topic && p.partition == o.partition)
            });
            if !replaces {
                if producer_held >= MAX_PENDING_TXN_OFFSETS_PER_PRODUCER
                    || group_held >= MAX_PENDING_TXN_OFFSETS_PER_GROUP
                {
                    return ResponseError::InvalidRequest.code();
                }
                producer_held += 1;
                group_held += 1;
            }
            changes.push(OffsetChange::TxnPending {
                producer_id,
                topic: o.topic,
                partition: o.partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
                commit_ms: wall_ms,
            });
            0
        })
        .collect();
    (codes, changes)
}

fn apply_txn_change(g: &mut Group, change: &OffsetChange) {
    match change {
        OffsetChange::TxnPending {
            producer_id,
            topic,
            partition,
            offset,
            leader_epoch,
            metadata,
            commit_ms,
            ..
        } => {
            let entry = OffsetEntry {
                offset: *offset,
                leader_epoch: *leader_epoch,
                metadata: metadata.clone(),
                commit_ms: *commit_ms,
            };
            let group_held: usize = g.pending_txn_offsets.values().map(Vec::len).sum();
            let pending = g.pending_txn_offsets.entry(*producer_id).or_default();
            let producer_held = pending.len();
            match pending
                .iter_mut()
                .find(|p| p.topic == *topic && p.partition == *partition)
            {
                Some(p) => p.entry = entry,
                None if producer_held >= MAX_PENDING_TXN_OFFSETS_PER_PRODUCER
                    || group_held >= MAX_PENDING_TXN_OFFSETS_PER_GROUP =>
                {
                    tracing::warn!(group = %g.id, producer_id, "pending transactional offset past the bounds skipped");
                }
                None => pending.push(PendingTxnOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    entry,
                }),
            }
            if pending.is_empty() {
                g.pending_txn_offsets.remove(producer_id);
            }
        }
        OffsetChange::TxnEnd {
            producer_id,
            commit,
        } => {
            let held = g
                .pending_txn_offsets
                .remove(producer_id)
                .unwrap_or_default();
            if *commit {
                for p in held {
                    LogRecord::Commit {
                        topic: p.topic,
                        partition: p.partition,
                        entry: p.entry,
                    }
                    .apply(&mut g.offsets);
                }
            }
        }
        _ => {}
    }
}

fn pending_changes(g: &Group) -> Vec<OffsetChange> {
    let mut producers: Vec<(&i64, &Vec<PendingTxnOffset>)> = g.pending_txn_offsets.iter().collect();
    producers.sort_by_key(|(pid, _)| **pid);
    producers
        .into_iter()
        .flat_map(|(pid, held)| {
            held.iter().map(|p| OffsetChange::TxnPending {
                producer_id: *pid,
                topic: p.topic.clone(),
                partition: p.partition,
                offset: p.entry.offset,
                leader_epoch: p.entry.leader_epoch,
                metadata: p.entry.metadata.clone(),
                commit_ms: p.entry.commit_ms,
            })
        })
        .collect()
}
