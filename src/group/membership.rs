//! Cluster mode: replicated classic group membership (issue 17, decision 0024). The
//! coordinator proposes a `GroupMembership` record when a classic group reaches Stable (a
//! new generation, or a static member replaced) and when it empties; every node applies
//! it here into `stored_memberships`. The broker that takes a group's coordinator slot
//! over loads the stored membership at the group's first request under the slot's new
//! epoch (`take_over`), as Stable with fresh sessions: members that heartbeat keep their
//! generation and assignment, no rebalance.
//!
//! Owns: when to store, what the take-over loads, and the stored memberships of a
//! snapshot image. Must not: talk to the quorum (the replicator does) or change a group's
//! generation itself.

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::ResponseError;

use super::coordinator::GroupCoordinator;
use super::state::Group;
use crate::metadata::group_membership::{
    GroupMembership, GroupMembershipsImage, MAX_GROUP_MEMBERSHIP_BYTES,
};

impl GroupCoordinator {
    /// Cluster mode: NOT_COORDINATOR unless this broker coordinates `group_id`; when the
    /// group's classic membership here is from another coordinator epoch (or none), it is
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
        let stored = stored_memberships.get(group_id);
        let group = match groups.get_mut(group_id) {
            Some(g) if g.coordinator_epoch == Some(epoch) => return Ok(Some(epoch)),
            Some(g) => g,
            None => {
                let Some(stored) = stored.filter(|s| !s.members.is_empty()) else {
                    return Ok(Some(epoch));
                };
                let Some(g) = self.new_group(group_id) else {
                    return Err(ResponseError::InvalidGroupId);
                };
                tracing::debug!(group = %group_id, generation = stored.generation, "loading a stored membership");
                groups.entry(group_id.to_string()).or_insert(g)
            }
        };
        // KIP-848 members are not stored: such a group keeps what it has (its members
        // rejoin a new coordinator, as before).
        if !group.consumer.has_members() {
            group.load_membership(stored, now);
            group.stored_mark = stored.map(Group::membership_mark);
            if let Some(s) = stored.filter(|s| !s.members.is_empty()) {
                tracing::info!(group = %group_id, generation = s.generation, members = s.members.len(), "took the group over as Stable");
            }
        }
        group.coordinator_epoch = Some(epoch);
        Ok(Some(epoch))
    }

    /// Proposes the membership of every group this broker coordinates whose Stable
    /// generation (or emptiness) was not stored yet. Fire and forget: a record lost with
    /// its coordinator costs a rebalance at the next one, never a wrong generation (the
    /// apply refuses a record of a coordinator or slot epoch no longer current).
    pub(super) fn store_memberships(&self, group_ids: Option<&str>) {
        let Some(replicator) = self.replicator() else {
            return;
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
            if group.consumer.has_members() {
                continue;
            }
            let Some(membership) = group.membership_to_store() else {
                continue;
            };
            let mark = Group::membership_mark(&membership);
            // An empty group that never stored members has nothing to clear.
            let nothing_to_clear = membership.members.is_empty() && group.stored_mark.is_none();
            if group.stored_mark == Some(mark) || nothing_to_clear {
                continue;
            }
            if replicator.coordinator_epoch(&group.id) != Some(epoch) {
                continue;
            }
            group.stored_mark = Some(mark);
            let bytes = membership.encoded_len();
            if bytes > MAX_GROUP_MEMBERSHIP_BYTES {
                tracing::warn!(
                    group = %group.id,
                    bytes,
                    limit = MAX_GROUP_MEMBERSHIP_BYTES,
                    "classic group membership too large to replicate: a coordinator move will rebalance it"
                );
                continue;
            }
            to_store.push((group.id.clone(), epoch, membership));
        }
        drop(groups);
        for (group_id, epoch, membership) in to_store {
            let write = replicator.store_membership(group_id.clone(), epoch, membership);
            compio::runtime::spawn(async move {
                if let Err(e) = write.await {
                    tracing::debug!(group = %group_id, error = %e, "group membership not stored");
                }
            })
            .detach();
        }
    }

    /// Applies a committed `GroupMembership` record (every node, in log order): the
    /// group's stored membership is replaced (an empty one forgets it).
    pub fn apply_membership(&self, group_id: &str, membership: GroupMembership) {
        let mut stored = self.inner.stored_memberships.borrow_mut();
        if membership.members.is_empty() {
            stored.remove(group_id);
        } else {
            stored.insert(group_id.to_string(), membership);
        }
    }

    /// Every stored membership of this shard, for a snapshot image.
    pub fn stored_memberships(&self) -> GroupMembershipsImage {
        let stored = self.inner.stored_memberships.borrow();
        let mut out: GroupMembershipsImage =
            stored.iter().map(|(g, m)| (g.clone(), m.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A snapshot image was installed: the stored memberships are exactly the image's.
    pub fn install_memberships(&self, image: HashMap<String, GroupMembership>) {
        *self.inner.stored_memberships.borrow_mut() = image;
    }
}
