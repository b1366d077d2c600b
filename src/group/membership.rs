//! Cluster mode: replicated group membership (issue 17, decision 0024). The coordinator
//! proposes a `GroupMembership` record when a classic group reaches Stable (a new
//! generation, or a static member replaced) and when it empties, and when a KIP-848
//! group's epochs, members or assignments change (its heartbeat waits for that commit, as
//! Kafka's does for its records); every node applies it here into `stored_memberships`.
//! The broker that takes a group's coordinator slot over loads the stored membership at
//! the group's first request under the slot's new epoch (`take_over`), with fresh
//! sessions: members that heartbeat keep their generation or member epoch and their
//! assignment, no rebalance.
//!
//! Owns: when to store, what the take-over loads, and the stored memberships of a
//! snapshot image. Must not: talk to the quorum (the replicator does) or change a group's
//! generation itself.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;

use super::coordinator::GroupCoordinator;
use super::offset_log_writer::WriteError;
use super::state::Group;
use crate::metadata::group_membership::{
    GroupMembership, GroupMembershipsImage, MAX_GROUP_MEMBERSHIP_BYTES, MembershipApplied,
    MembershipVersion,
};

/// Longest a SyncGroup or ConsumerGroupHeartbeat answer waits for its membership record
/// to commit (the replicator enforces it); past it the answer is COORDINATOR_NOT_AVAILABLE
/// and the client retries. Below the clients' request timeouts (30 s) and Sluice's own
/// proposal timeout (10 s), above a healthy commit (milliseconds) by far.
pub const MEMBERSHIP_COMMIT_WAIT_MS: u64 = 5_000;

impl GroupCoordinator {
    /// Cluster mode: NOT_COORDINATOR unless this broker coordinates `group_id`; when the
    /// group's membership here is from another coordinator epoch (or none), it is
    /// replaced by the stored one first. Returns the slot's epoch (`None` on a single node),
    /// which a group created afterwards must be given (`adopt`).
    pub(super) fn take_over(
        &self,
        groups: &mut HashMap<String, Group>,
        group_id: &str,
        now: Instant,
    ) -> Result<Option<i32>, ResponseError> {
        let Some(replicator) = self.replicator() else {
            return Ok(None);
        };
        let epoch = replicator
            .coordinator_epoch(group_id)
            .ok_or(ResponseError::NotCoordinator)?;
        let stored_memberships = self.inner.stored_memberships.borrow();
        // A share group's record is `share_membership`'s to load (one id, one group type).
        let stored = stored_memberships
            .get(group_id)
            .filter(|s| s.share.is_none());
        let group = match groups.get_mut(group_id) {
            Some(g) if g.coordinator_epoch == Some(epoch) => return Ok(Some(epoch)),
            Some(g) => g,
            None => {
                let Some(stored) = stored.filter(|s| !s.is_empty()) else {
                    return Ok(Some(epoch));
                };
                let Some(g) = self.new_group(group_id) else {
                    return Err(ResponseError::InvalidGroupId);
                };
                tracing::debug!(group = %group_id, generation = stored.generation, "loading a stored membership");
                groups.entry(group_id.to_string()).or_insert(g)
            }
        };
        group.load_membership(stored, now);
        group.stored_mark = stored.map(Group::membership_mark);
        if let Some(s) = stored.filter(|s| !s.members.is_empty()) {
            tracing::info!(group = %group_id, generation = s.generation, members = s.members.len(), "took the classic group over as Stable");
        }
        if let Some(c) = stored.and_then(|s| s.consumer.as_ref()) {
            tracing::info!(group = %group_id, group_epoch = c.group_epoch, members = c.members.len(), "took the consumer-protocol group over");
        }
        group.coordinator_epoch = Some(epoch);
        Ok(Some(epoch))
    }

    /// Takes over every group with a stored membership whose slot this broker now holds
    /// and has not loaded yet (the tick, ListGroups), so a group taken over shows in
    /// ListGroups / DescribeGroups / ConsumerGroupDescribe before its members' first
    /// request here, and its members' sessions run from the take-over.
    pub(super) fn take_over_stored(&self, now: Instant) {
        let Some(replicator) = self.replicator() else {
            return;
        };
        // (group, is a share group)
        let due: Vec<(String, bool)> = {
            let stored = self.inner.stored_memberships.borrow();
            let groups = self.inner.groups.borrow();
            let share_groups = self.inner.share_groups.borrow();
            stored
                .groups_to_load()
                .filter_map(|(id, m)| {
                    let epoch = replicator.coordinator_epoch(id)?;
                    let loaded = if m.share.is_some() {
                        share_groups.get(id).map(|g| g.coordinator_epoch)
                    } else {
                        groups.get(id).map(|g| g.coordinator_epoch)
                    };
                    (loaded != Some(Some(epoch))).then(|| (id.clone(), m.share.is_some()))
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        for (group_id, share) in due {
            // Only this broker's slots were selected: NOT_COORDINATOR cannot come back,
            // and an unnameable id is kept out of the table by `take_over` itself.
            if share {
                let _ = self.take_over_share(&group_id, now);
            } else {
                let _ = self.take_over(&mut self.inner.groups.borrow_mut(), &group_id, now);
            }
        }
    }

    /// `take_over` for a read (DescribeGroups, ConsumerGroupDescribe): loads the group if
    /// this broker coordinates it and has not yet; no answer changes otherwise.
    pub(super) fn take_over_for_read(&self, group_id: &str, now: Instant) {
        if self.replicator().is_none() {
            return;
        }
        let mut groups = self.inner.groups.borrow_mut();
        let _ = self.take_over(&mut groups, group_id, now);
    }

    /// Proposes the membership of every group this broker coordinates whose Stable
    /// generation, KIP-848 state (or emptiness) was not stored yet. Fire and forget: a
    /// record lost with its coordinator costs a rebalance at the next one, never a wrong
    /// generation (the apply refuses a record of a coordinator or slot epoch no longer
    /// current).
    pub(super) fn store_memberships(&self, group_ids: Option<&str>) {
        for (group_id, write) in self.membership_writes(group_ids) {
            compio::runtime::spawn(async move {
                if let Err(e) = write.await {
                    tracing::debug!(group = %group_id, error = %e, "group membership not stored");
                }
            })
            .detach();
        }
    }

    /// Proposes `group_id`'s membership if it changed and resolves once the record is
    /// committed (at once when nothing changed, or on a single node), or with the error
    /// Kafka answers when its group metadata append fails (`membership_write_error`). A
    /// failed write is proposed again at the next tick.
    pub(super) async fn store_membership_now(&self, group_id: &str) -> Result<(), ResponseError> {
        let Some((_, write)) = self.membership_writes(Some(group_id)).pop() else {
            return Ok(());
        };
        let result = write.await;
        if let Err(e) = &result {
            tracing::debug!(group = %group_id, error = %e, "group membership not stored");
            if let Some(g) = self.inner.groups.borrow_mut().get_mut(group_id) {
                g.stored_mark = None;
            }
        }
        result.map_err(|e| membership_write_error(e.code))
    }

    /// The writes `store_memberships` and `store_membership_now` make: one per selected
    /// group whose membership differs from the one last proposed.
    fn membership_writes(
        &self,
        group_ids: Option<&str>,
    ) -> Vec<(String, LocalBoxFuture<'static, Result<(), WriteError>>)> {
        let Some(replicator) = self.replicator() else {
            return Vec::new();
        };
        let mut groups = self.inner.groups.borrow_mut();
        let mut to_store = Vec::new();
        let selected: Vec<&mut Group> = match group_ids {
            Some(id) => groups.get_mut(id).into_iter().collect(),
            None => groups.values_mut().collect(),
        };
        for group in selected {
            let Some(epoch) = group.coordinator_epoch else {
                continue;
            };
            let Some(membership) = group.membership_to_store() else {
                continue;
            };
            let mark = Group::membership_mark(&membership);
            // An empty group that never stored members has nothing to clear.
            let nothing_to_clear = membership.is_empty() && group.stored_mark.is_none();
            if group.stored_mark == Some(mark) || nothing_to_clear {
                continue;
            }
            if replicator.coordinator_epoch(&group.id) != Some(epoch) {
                continue;
            }
            group.stored_mark = Some(mark);
            let Some(membership) = self.numbered(&*replicator, &group.id, epoch, membership) else {
                continue;
            };
            to_store.push((group.id.clone(), epoch, membership));
        }
        drop(groups);
        to_store
            .into_iter()
            .map(|(group_id, epoch, membership)| {
                let write = replicator.store_membership(group_id.clone(), epoch, membership);
                (group_id, write)
            })
            .collect()
    }

    /// `membership` numbered as the next snapshot this shard takes under slot `epoch`, or
    /// None (with a warning) when it is too large to replicate. Numbered as it is taken:
    /// of two snapshots of a group that commit in the other order, every node keeps this
    /// later one (`StoredMemberships::apply`).
    pub(super) fn numbered(
        &self,
        replicator: &dyn super::replicated::OffsetsReplicator,
        group_id: &str,
        epoch: i32,
        mut membership: GroupMembership,
    ) -> Option<GroupMembership> {
        let sequence = self.inner.membership_sequence.get() + 1;
        self.inner.membership_sequence.set(sequence);
        membership.version = MembershipVersion {
            coordinator_epoch: epoch,
            applied_index: replicator.applied_index(),
            sequence,
        };
        let bytes = membership.encoded_len();
        if bytes > MAX_GROUP_MEMBERSHIP_BYTES {
            tracing::warn!(
                group = %group_id,
                bytes,
                limit = MAX_GROUP_MEMBERSHIP_BYTES,
                "group membership too large to replicate: a coordinator move will start it over"
            );
            return None;
        }
        Some(membership)
    }

    /// Applies a committed `GroupMembership` record (every node, in log order): the
    /// group's stored membership is replaced unless the stored one is a newer snapshot
    /// (an empty one leaves a tombstone).
    pub fn apply_membership(&self, group_id: &str, membership: GroupMembership) {
        let version = membership.version;
        let applied = self
            .inner
            .stored_memberships
            .borrow_mut()
            .apply(group_id, membership);
        if let MembershipApplied::Superseded { stored } = applied {
            tracing::debug!(group = %group_id, ?version, ?stored, "an older membership snapshot committed after a newer one: ignored");
        }
    }

    /// Every stored membership of this shard, for a snapshot image.
    pub fn stored_memberships(&self) -> GroupMembershipsImage {
        self.inner.stored_memberships.borrow().image()
    }

    /// A snapshot image was installed: the stored memberships are exactly the image's.
    pub fn install_memberships(&self, image: HashMap<String, GroupMembership>) {
        self.inner.stored_memberships.borrow_mut().install(image);
    }
}

/// Kafka's answer when a group's metadata append fails (GroupMetadataManager's
/// `appendGroupMetadataErrorToResponseError`): NOT_COORDINATOR when this broker lost the
/// group, COORDINATOR_NOT_AVAILABLE for no quorum, a timeout or anything else the client
/// should retry.
pub(super) fn membership_write_error(code: i16) -> ResponseError {
    if code == ResponseError::NotCoordinator.code() {
        ResponseError::NotCoordinator
    } else {
        ResponseError::CoordinatorNotAvailable
    }
}
