//! Cluster mode: a share group's states reset by its coordinator through the metadata log
//! (`metadata::share_state_reset`, decision 0025). `propose_reset` is the coordinator's
//! side (AlterShareGroupOffsets, DeleteShareGroupOffsets, DeleteGroups); `apply_reset` is
//! every node's: on every shard the group's state epoch rises to the reset's, the states
//! the shard holds for the partitions it covers are replaced or dropped, and a partition
//! this node leads takes the new state in memory at once, wherever the coordinator is.
//! Must not: decide whether the group may be reset (its coordinator did) or talk Raft
//! (the `ClusterHandle` does).

use super::{MAX_STATE_EPOCH_GROUPS_PER_SHARD, ShareStateStore};
use crate::metadata::replicated::MetadataRecord;
use crate::metadata::share_state::ShareStateChange;
use crate::metadata::share_state_reset::{ResetScope, ShareStateReset, ShareStateResetRecord};
use crate::partition::share::{MAX_IN_FLIGHT_RECORDS, SharePartitionState, durable};
use crate::shard::{Lookup, Shard};
use kafka_protocol::ResponseError;
use std::rc::Rc;

impl ShareStateStore {
    /// Raises the group's state epoch (never lowers it). Past the limit the smallest epoch
    /// (then the smallest group id) is forgotten: the same one on every shard and node.
    pub(super) fn raise_state_epoch(&self, group: String, epoch: i64) {
        let mut epochs = self.state_epochs.borrow_mut();
        if !epochs.contains_key(&group) && epochs.len() >= MAX_STATE_EPOCH_GROUPS_PER_SHARD {
            let oldest = epochs
                .iter()
                .min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)))
                .map(|(g, _)| g.clone());
            if let Some(oldest) = oldest {
                epochs.remove(&oldest);
            }
        }
        let current = epochs.entry(group).or_insert(epoch);
        *current = (*current).max(epoch);
    }

    /// Drops the group's states on the partitions `reset` covers.
    pub(super) fn drop_group(&self, reset: &ShareStateReset) {
        let mut all = self.by_partition.borrow_mut();
        let mut dropped = 0;
        all.retain(|(topic, partition), groups| {
            if reset.covers(topic, *partition) && groups.remove(&reset.group).is_some() {
                dropped += 1;
            }
            !groups.is_empty()
        });
        self.count.set(self.count.get().saturating_sub(dropped));
    }
}

/// The coordinator's side: proposes `scope`'s reset of `group` and waits until this node
/// applied it (the proposal's error code and message otherwise: NOT_COORDINATOR if the
/// group moved, UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER after `PROPOSAL_TIMEOUT`
/// without a quorum leader).
pub async fn propose_reset(
    shard: &Rc<Shard>,
    group: &str,
    scope: ResetScope,
) -> Result<(), (i16, String)> {
    let Some(cluster) = shard.cluster.clone() else {
        return Err((
            ResponseError::UnknownServerError.code(),
            "share-state resets go through the metadata log in cluster mode only".into(),
        ));
    };
    let record = MetadataRecord::ShareStateReset(ShareStateResetRecord {
        group: group.to_string(),
        coordinator: cluster.node_id,
        scope,
    });
    crate::shard::txn_state::propose_through_leader_changes(&cluster, record).await
}

/// An applied reset, on every shard of this node. Err (GROUP_MAX_SIZE_REACHED) only if
/// the partition's owning shard could not keep an altered state (full): its leader, if
/// here, still starts from the new offset.
pub(in crate::shard) async fn apply_reset(
    shard: &Rc<Shard>,
    reset: ShareStateReset,
) -> Result<(), (i16, String)> {
    let frame = match &reset.scope {
        ResetScope::Partition { start_offset, .. } => {
            let state = SharePartitionState::new(*start_offset, MAX_IN_FLIGHT_RECORDS);
            let mut frame = Vec::new();
            durable::encode(&mut frame, &reset.group, Some(&state));
            Some(frame)
        }
        ResetScope::Topic { .. } | ResetScope::Group => None,
    };
    let outcomes = shard
        .invoke_on_all(move |s| {
            let (reset, frame) = (reset.clone(), frame.clone());
            async move { reset_here(&s, &reset, frame) }
        })
        .await;
    for outcome in outcomes {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(full)) => return Err((ResponseError::GroupMaxSizeReached.code(), full)),
            Err(gone) => return Err((ResponseError::UnknownServerError.code(), gone.to_string())),
        }
    }
    Ok(())
}

/// One shard's part of a reset. Synchronous: the epoch, the stored state and the leader's
/// state in memory change together, so a leader's write encoded after this carries the
/// new epoch and the new state, and one encoded before carries the old epoch (refused).
fn reset_here(s: &Shard, reset: &ShareStateReset, frame: Option<Vec<u8>>) -> Result<(), String> {
    s.share_states
        .raise_state_epoch(reset.group.clone(), reset.state_epoch);
    match (&reset.scope, frame) {
        (
            ResetScope::Partition {
                topic, partition, ..
            },
            Some(frame),
        ) => {
            if s.owner_of_partition(topic, *partition) != s.id {
                return Ok(());
            }
            if let Lookup::Online(p) = s.partitions.get(topic, *partition) {
                p.share_reset_applied(&reset.group, Some(&frame));
            }
            let leader_epoch = s
                .metadata
                .load()
                .cluster
                .as_deref()
                .map_or(0, |c| c.leader_epoch(topic, *partition));
            s.share_states.put(ShareStateChange {
                topic: topic.clone(),
                partition: *partition,
                group: reset.group.clone(),
                leader_epoch,
                state_epoch: reset.state_epoch,
                frame,
            })
        }
        _ => {
            s.share_states.drop_group(reset);
            // A rare admin step: the table's copy of its online partitions is affordable.
            for (topic, partition, p) in s.partitions.all_online() {
                if reset.covers(&topic, partition) {
                    p.share_reset_applied(&reset.group, None);
                }
            }
            Ok(())
        }
    }
}
