//! Cluster mode: share groups outlive their coordinator (issue 17, decision 0028). A share
//! group's epochs, target assignment and members go into the same numbered whole-group
//! `GroupMembership` snapshots as classic and KIP-848 groups (decision 0024), in its
//! `share` part, whenever they change (a ShareGroupHeartbeat that changed them is answered
//! once committed; expiries at the tick), as Kafka's coordinator writes ShareGroup* records
//! to `__consumer_offsets`. The broker that takes the group's coordinator slot over loads
//! it: ListGroups, DescribeGroups and ShareGroupDescribe show it with its group epoch, and
//! members heartbeating on keep their member epochs. DeleteGroups stores the group's
//! tombstone, so a new group of that name starts at epoch 1. Only at metadata format
//! level 4 or above (decision 0027): below it nothing is stored and a share group lives in
//! its coordinator's memory, as before.
//!
//! Owns: when a share group is stored, loaded and forgotten. Must not: talk to the quorum
//! (the replicator does) or change the group's membership itself (`share` does).

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;

use super::coordinator::GroupCoordinator;
use super::membership::membership_write_error;
use super::offset_log_writer::WriteError;
use super::replicated::OffsetsReplicator;
use super::share::{SHARE_SESSION_TIMEOUT_MS, ShareGroup, ShareSessions};
use crate::metadata::group_membership::{GroupMembership, MembershipVersion, ShareMembership};

/// The metadata format level whose `GroupMembership` may carry a share group
/// (`format_level::required_level`).
pub const SHARE_GROUP_RECORD_LEVEL: i16 = 4;

type Write = LocalBoxFuture<'static, Result<(), WriteError>>;

/// A record of `share` (None: the group's tombstone).
fn share_record(share: Option<ShareMembership>) -> GroupMembership {
    GroupMembership {
        generation: 0,
        protocol_type: String::new(),
        protocol_name: String::new(),
        leader: String::new(),
        members: Vec::new(),
        consumer: None,
        share,
        version: MembershipVersion::default(),
    }
}

impl GroupCoordinator {
    /// The metadata log, when share groups are stored in it (cluster mode at format level 4
    /// or above).
    fn share_replicator(&self) -> Option<Rc<dyn OffsetsReplicator>> {
        self.replicator()
            .filter(|r| r.format_level() >= SHARE_GROUP_RECORD_LEVEL)
    }

    /// Cluster mode: NOT_COORDINATOR unless this broker coordinates `group_id`; when its
    /// share group here is from another slot epoch (or absent), the stored one replaces it
    /// (or, at level 4 with nothing stored, it goes: it was deleted or never existed since).
    /// Returns the slot's epoch (None on a single node) for a group created afterwards.
    pub(super) fn take_over_share(
        &self,
        group_id: &str,
        now: Instant,
    ) -> Result<Option<i32>, ResponseError> {
        let Some(replicator) = self.replicator() else {
            return Ok(None);
        };
        let epoch = replicator
            .coordinator_epoch(group_id)
            .ok_or(ResponseError::NotCoordinator)?;
        let mut share_groups = self.inner.share_groups.borrow_mut();
        let current = share_groups.get_mut(group_id);
        if current
            .as_ref()
            .is_some_and(|g| g.coordinator_epoch == Some(epoch))
        {
            return Ok(Some(epoch));
        }
        let stored_memberships = self.inner.stored_memberships.borrow();
        match stored_memberships
            .get(group_id)
            .and_then(|m| m.share.as_ref())
        {
            Some(stored) => {
                let timeout = Duration::from_millis(SHARE_SESSION_TIMEOUT_MS as u64);
                let sessions = self.adopt_leader_sessions(group_id);
                let mut group = ShareGroup::load(stored, sessions, timeout, now);
                group.coordinator_epoch = Some(epoch);
                tracing::info!(group = %group_id, group_epoch = group.group_epoch,
                    members = group.members.len(), "took the share group over");
                share_groups.insert(group_id.to_string(), group);
            }
            None if replicator.format_level() >= SHARE_GROUP_RECORD_LEVEL => {
                share_groups.remove(group_id);
            }
            // Below level 4 nothing is stored: the group in memory stays (as before).
            None => {
                if let Some(g) = current {
                    g.coordinator_epoch = Some(epoch);
                }
            }
        }
        Ok(Some(epoch))
    }

    /// Share sessions this broker opened for `group_id` as a partition leader while
    /// another broker coordinated it: the group's sessions now it coordinates it, so a
    /// member fetching here keeps its session across the coordinator move.
    pub(super) fn adopt_leader_sessions(&self, group_id: &str) -> ShareSessions {
        self.inner
            .leader_share_sessions
            .borrow_mut()
            .remove(group_id)
            .unwrap_or_default()
    }

    /// The proposals of every selected share group (this broker's, under its slot's
    /// epoch) whose state differs from the one last proposed, numbered as taken.
    fn share_membership_writes(&self, group_id: Option<&str>) -> Vec<(String, Write)> {
        let Some(replicator) = self.share_replicator() else {
            return Vec::new();
        };
        let mut share_groups = self.inner.share_groups.borrow_mut();
        let mut to_store = Vec::new();
        for (id, group) in share_groups.iter_mut() {
            if group_id.is_some_and(|only| only != id) {
                continue;
            }
            let Some(epoch) = group.coordinator_epoch else {
                continue;
            };
            if replicator.coordinator_epoch(id) != Some(epoch) {
                continue;
            }
            let share = group.membership_to_store();
            let mark = ShareGroup::stored_fingerprint(&share);
            if group.stored_mark == Some(mark) {
                continue;
            }
            group.stored_mark = Some(mark);
            if let Some(record) = self.numbered(&*replicator, id, epoch, share_record(Some(share)))
            {
                to_store.push((id.clone(), epoch, record));
            }
        }
        drop(share_groups);
        to_store
            .into_iter()
            .map(|(id, epoch, record)| {
                let write = replicator.store_membership(id.clone(), epoch, record);
                (id, write)
            })
            .collect()
    }

    /// The tick's stores (members expired, a group from before level 4): not waited for.
    /// A failed one is proposed again at the next tick; one lost with its coordinator
    /// leaves the successor the group as last stored, whose expired members expire there
    /// again after their session timeout.
    pub(super) fn store_share_memberships(&self) {
        for (group_id, write) in self.share_membership_writes(None) {
            let coordinator = self.clone();
            compio::runtime::spawn(async move {
                if let Err(e) = write.await {
                    tracing::debug!(group = %group_id, error = %e, "share group not stored");
                    let mut share_groups = coordinator.inner.share_groups.borrow_mut();
                    if let Some(g) = share_groups.get_mut(&group_id) {
                        g.stored_mark = None;
                    }
                }
            })
            .detach();
        }
    }

    /// Stores `group_id`'s share group if it changed and resolves once committed (at once
    /// when nothing changed, below level 4 or on a single node), or with Kafka's answer to
    /// a failed group-metadata append (NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE). A
    /// failed store is proposed again at the next tick.
    pub(super) async fn store_share_membership_now(
        &self,
        group_id: &str,
    ) -> Result<(), ResponseError> {
        let Some((_, write)) = self.share_membership_writes(Some(group_id)).pop() else {
            return Ok(());
        };
        let result = write.await;
        if let Err(e) = &result {
            tracing::debug!(group = %group_id, error = %e, "share group not stored");
            if let Some(g) = self.inner.share_groups.borrow_mut().get_mut(group_id) {
                g.stored_mark = None;
            }
        }
        result.map_err(|e| membership_write_error(e.code))
    }

    /// DeleteGroups of an Empty share group this broker coordinates: its tombstone goes
    /// through the metadata log (when share groups are stored there) before the group goes
    /// here, as Kafka writes the group's tombstones before answering. A member that joined
    /// meanwhile keeps the group (stored again at the next tick).
    pub(super) async fn forget_share_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let write = self.share_replicator().and_then(|replicator| {
            let epoch = replicator.coordinator_epoch(group_id)?;
            let record = self.numbered(&*replicator, group_id, epoch, share_record(None))?;
            Some(replicator.store_membership(group_id.to_string(), epoch, record))
        });
        if let Some(write) = write {
            write.await.map_err(|e| membership_write_error(e.code))?;
        }
        let mut share_groups = self.inner.share_groups.borrow_mut();
        match share_groups.get_mut(group_id) {
            Some(g) if g.has_members() => g.stored_mark = None,
            _ => {
                share_groups.remove(group_id);
            }
        }
        Ok(())
    }
}
