//! Cluster mode's share-partition state (issue 17, decision 0025): a partition this node
//! leads writes each share group's state change as a record of the metadata log instead of
//! its local `share-state.log`, through the `ShareStateReplicator` the shard gives it when
//! it becomes the leader, together with the states every node applied from that log. A
//! new leader so starts from what the old one last made durable: in-flight records come
//! back available with their delivery counts, acknowledged ones are never delivered again.
//!
//! Owns: the order of this partition's replicated writes (per group one proposal at a time,
//! each encoding the group's state when it goes, so the last record applied is the newest
//! state; the writes made while one is in flight go together as the next, `coalesce`).
//! Must not: talk to the quorum (the replicator does) or know about shards.

use std::cell::Cell;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::coalesce::Coalescer;
use super::durable::{self, SavedState};
use super::{MAX_IN_FLIGHT_RECORDS, ShareError, SharePartitionState};
use crate::partition::Partition;

/// Why a replicated write was not made durable: the Kafka error code the metadata log's
/// apply (or the proposal) answered, e.g. FENCED_LEADER_EPOCH for a deposed leader.
#[derive(Debug, Clone, thiserror::Error)]
#[error("share state not replicated (error {code}): {message}")]
pub struct ReplicationError {
    pub code: i16,
    pub message: String,
}

/// Writes one share group's state of one partition through the metadata log, answering
/// once a majority has applied it, and reads the states every node applied.
pub trait ShareStateReplicator {
    /// Every group's applied state on this partition (its frame, as `durable::encode`
    /// writes it); Err while this node may not have applied them all (just restarted,
    /// still replaying the metadata log).
    fn load(&self) -> Result<Vec<(String, Vec<u8>)>, ReplicationError>;

    /// `frame`: the group's state as `durable::encode` writes it; `leader_epoch`: the
    /// epoch this partition leads in (a write of an older epoch is refused at apply).
    fn replicate(
        &self,
        group_id: &str,
        leader_epoch: i32,
        frame: Vec<u8>,
    ) -> LocalBoxFuture<'static, Result<(), ReplicationError>>;
}

/// A leader's replicated writes: the replicator, whether its states were loaded, and the
/// rounds its writes are coalesced into.
pub(super) struct Replication {
    replicator: Rc<dyn ShareStateReplicator>,
    loaded: Cell<bool>,
    rounds: Rc<Coalescer>,
}

impl Partition {
    /// Cluster mode, this node now leads the partition: its share states are read from the
    /// metadata log's (`ShareStateReplicator::load`) on first use and written through it
    /// from then on, never to the local log, which may be stale (an earlier leadership of
    /// this node). The states applied later are this leader's own writes: the ones in
    /// memory are as new or newer, so they are loaded once per leadership.
    pub fn share_replicate_through(&self, replicator: Rc<dyn ShareStateReplicator>) {
        self.shares.groups.borrow_mut().clear();
        self.shares.unsaved.borrow_mut().clear();
        *self.shares.replication.borrow_mut() = Some(Rc::new(Replication {
            replicator,
            loaded: Cell::new(false),
            rounds: Rc::default(),
        }));
    }

    /// Cluster mode: the group's state here was reset through the metadata log (its
    /// coordinator's AlterShareGroupOffsets, DeleteShareGroupOffsets or DeleteGroups,
    /// `shard::share_state_reset`): a leader drops what it held for the group and takes
    /// `frame` (None: no state; the next fetch starts where `share.auto.offset.reset`
    /// says). Called as the reset is applied, with the group's state epoch raised in the
    /// same step, so this leader's writes of the old state are refused (FENCED_STATE_EPOCH)
    /// and its next write is of the new one. A leader that has not loaded its states yet
    /// reads the new one when it does; a single node or a follower has nothing here.
    pub fn share_reset_applied(&self, group_id: &str, frame: Option<&[u8]>) {
        let loaded = self
            .shares
            .replication
            .borrow()
            .as_ref()
            .is_some_and(|r| r.loaded.get());
        if !loaded {
            return;
        }
        {
            let mut groups = self.shares.groups.borrow_mut();
            match frame.and_then(durable::decode_frame) {
                Some((decoded, Some(state))) if decoded == group_id => {
                    let room = groups.contains_key(group_id)
                        || groups.len() < super::MAX_SHARE_GROUPS_PER_PARTITION;
                    if room {
                        groups.insert(group_id.to_string(), restore(&state));
                    } else {
                        tracing::warn!(
                            group = group_id,
                            "reset share state not taken: too many groups"
                        );
                    }
                }
                _ => {
                    groups.remove(group_id);
                }
            }
        }
        self.shares.unsaved.borrow_mut().remove(group_id);
        self.shares.changed.notify();
    }

    /// The replicated writes of a leader in cluster mode, its states loaded.
    pub(super) fn share_replicated(&self) -> Result<Option<Rc<Replication>>, ShareError> {
        let Some(replication) = self.shares.replication.borrow().clone() else {
            return Ok(None);
        };
        if !replication.loaded.get() {
            let saved = replication
                .replicator
                .load()
                .map_err(ShareError::Replication)?;
            let mut groups = self.shares.groups.borrow_mut();
            for (group, frame) in saved {
                match durable::decode_frame(&frame) {
                    Some((decoded, Some(state))) if decoded == group => {
                        groups.insert(group, restore(&state));
                    }
                    Some((_, None)) => {}
                    _ => tracing::error!(group, "replicated share state undecodable: skipped"),
                }
            }
            replication.loaded.set(true);
        }
        Ok(Some(replication))
    }

    /// Replicates the group's current state: returns once a proposal encoded after this
    /// call has committed, the one carrying every write of the group made while the
    /// previous proposal was in flight (`coalesce`).
    pub(super) async fn replicate_share_state(
        &self,
        replication: &Replication,
        group_id: &str,
    ) -> Result<(), ShareError> {
        let start = || {
            self.shares.unsaved.borrow_mut().remove(group_id);
            let mut frame = Vec::new();
            durable::encode(
                &mut frame,
                group_id,
                self.shares.groups.borrow().get(group_id),
            );
            replication
                .replicator
                .replicate(group_id, self.leader_epoch(), frame)
        };
        replication
            .rounds
            .write(group_id, start)
            .await
            .map_err(ShareError::Replication)
    }

    /// Cluster mode, leading: (metadata-log proposals made, share-state writes asked for)
    /// since this leadership began; None otherwise.
    pub fn share_replicated_writes(&self) -> Option<(u64, u64)> {
        let replication = self.shares.replication.borrow();
        replication.as_ref().map(|r| r.rounds.totals())
    }
}

fn restore(saved: &SavedState) -> SharePartitionState {
    SharePartitionState::restore(saved, MAX_IN_FLIGHT_RECORDS)
}
