//! Cluster mode (issue 17, decision 0018): committed offsets go through the
//! metadata Raft log instead of the group's own file. The coordinator still decides what
//! to write (membership, generation, limits) and queues it as for a file
//! (`offset_log_writer::enqueue`); the queued records are handed to an `OffsetsReplicator`
//! (the shard layer's, which proposes them) and acknowledged once the quorum committed them
//! and this node applied them. Every node applies every group's records here
//! (`apply_replicated`), so the broker that coordinates a group after a failover serves
//! the offsets the old one acknowledged.
//!
//! Owns: the replicated path of `enqueue`, applying replicated records, the offsets of a
//! snapshot image, and the NOT_COORDINATOR answer of a node that does not coordinate a
//! group. Must not: talk to the quorum (the replicator does) or write group files.

use std::rc::Rc;

use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;

use super::coordinator::GroupCoordinator;
use super::offset_log::{GroupOffsets, LogRecord};
use super::offset_log_writer::{WriteAck, WriteError};
use super::state::Group;

/// Who asks for a replicated write: the coordinator (checked at apply time against the
/// group's coordinator then), or the transaction coordinator's commit marker, which may run
/// on another broker (Kafka's WriteTxnMarkers) and is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOrigin {
    Coordinator,
    TxnMarker,
}

/// Cluster mode's way to the metadata log, given to each shard's coordinator at start-up.
pub trait OffsetsReplicator {
    /// Whether this node coordinates `group_id` in its applied metadata (and has applied
    /// everything the quorum committed: a node replaying its log is not asked yet).
    fn coordinates(&self, group_id: &str) -> bool;
    /// Whether this node coordinates every group of coordinator slot `slot` (as
    /// `coordinates`): a transaction's marker for the slot is ended only there.
    fn coordinates_slot(&self, slot: usize) -> bool;
    /// The epoch of `group_id`'s coordinator slot when this node coordinates it (as
    /// `coordinates`), else `None` (decision 0024).
    fn coordinator_epoch(&self, group_id: &str) -> Option<i32>;
    /// The index of the last metadata log entry this node applied (what numbers a
    /// membership snapshot, `MembershipVersion`).
    fn applied_index(&self) -> u64;
    /// The finalized metadata format level (decision 0027): which records may be written
    /// (a share group's membership from level 4).
    fn format_level(&self) -> i16;
    /// Proposes `group_id`'s classic membership as this node stored it under slot epoch
    /// `epoch`; resolves once committed and applied here, or with the error.
    fn store_membership(
        &self,
        group_id: String,
        epoch: i32,
        membership: crate::metadata::group_membership::GroupMembership,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>>;
    /// Proposes `records` for `group_id`; resolves once they are committed and applied on
    /// this node, or with the Kafka error to answer.
    fn replicate(
        &self,
        group_id: String,
        records: Vec<LogRecord>,
        origin: WriteOrigin,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>>;
    /// Proposes `changes` for `group_id` as this group's coordinator (a transaction's
    /// pending offsets and their end, which have no offsets-log record shape); resolves
    /// once committed and applied here, or with the Kafka error to answer.
    fn replicate_changes(
        &self,
        group_id: String,
        changes: Vec<crate::metadata::group_offsets::OffsetChange>,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>>;
}

impl GroupCoordinator {
    /// Cluster mode: offsets go through `replicator` from now on. Offsets loaded from group
    /// files are dropped: the metadata log (replayed after this) is the only source.
    pub fn replicate_through(&self, replicator: Rc<dyn OffsetsReplicator>) {
        let mut groups = self.inner.groups.borrow_mut();
        if groups.values().any(|g| !g.offsets.is_empty()) {
            tracing::warn!(
                shard = self.inner.shard_id,
                "cluster mode ignores the group offsets files in __consumer_offsets"
            );
        }
        groups.clear();
        *self.inner.replicator.borrow_mut() = Some(replicator);
    }

    pub(super) fn replicator(&self) -> Option<Rc<dyn OffsetsReplicator>> {
        self.inner.replicator.borrow().clone()
    }

    pub fn is_replicated(&self) -> bool {
        self.inner.replicator.borrow().is_some()
    }

    /// Cluster mode: NOT_COORDINATOR when another broker coordinates `group_id` (the client
    /// asks FindCoordinator again). Always Ok on a single node.
    pub(super) fn check_coordinator(&self, group_id: &str) -> Result<(), ResponseError> {
        match self.replicator() {
            Some(r) if !r.coordinates(group_id) => Err(ResponseError::NotCoordinator),
            _ => Ok(()),
        }
    }

    /// The replicated form of `enqueue`: Some(ack) in cluster mode.
    pub(super) fn enqueue_replicated(
        &self,
        group: &Group,
        records: &mut Vec<LogRecord>,
        origin: WriteOrigin,
    ) -> Option<WriteAck> {
        let replicator = self.replicator()?;
        let (tx, rx) = futures_channel::oneshot::channel();
        let write = replicator.replicate(group.id.clone(), std::mem::take(records), origin);
        compio::runtime::spawn(async move {
            let _ = tx.send(write.await);
        })
        .detach();
        Some(rx)
    }

    /// Applies a committed record's changes to `group_id` (every node, in log order). A
    /// group that empties and has no members is forgotten.
    pub fn apply_replicated(&self, group_id: &str, records: &[LogRecord]) {
        let mut groups = self.inner.groups.borrow_mut();
        if !groups.contains_key(group_id) {
            let Some(group) = self.new_group(group_id) else {
                tracing::warn!(group = %group_id, "replicated offsets of an unnameable group skipped");
                return;
            };
            groups.insert(group_id.to_string(), group);
        }
        let Some(g) = groups.get_mut(group_id) else {
            return;
        };
        for record in records {
            record.apply(&mut g.offsets);
        }
        if g.is_removable() {
            groups.remove(group_id);
        }
    }

    /// Every group's committed offsets on this shard, for a snapshot image.
    pub fn replicated_offsets(&self) -> Vec<(String, GroupOffsets)> {
        let groups = self.inner.groups.borrow();
        let mut out: Vec<(String, GroupOffsets)> = groups
            .values()
            .filter(|g| !g.offsets.is_empty())
            .map(|g| (g.id.clone(), g.offsets.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A snapshot image replaced the state: every group of this shard gets the image's
    /// offsets (none if the image has none for it); membership stays.
    pub fn install_replicated(&self, mut image: std::collections::HashMap<String, GroupOffsets>) {
        let mut groups = self.inner.groups.borrow_mut();
        for g in groups.values_mut() {
            g.offsets = image.remove(&g.id).unwrap_or_default();
        }
        for (group_id, offsets) in image {
            if let Some(mut group) = self.new_group(&group_id) {
                group.offsets = offsets;
                groups.insert(group_id, group);
            }
        }
        groups.retain(|_, g| !g.is_removable());
    }
}
