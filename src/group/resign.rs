//! Cluster mode: a broker that lost a coordinator slot lets go of what it held (issue 17,
//! decisions 0024 and 0028). Fencing (a broker briefly unreachable) and the coordinator
//! evening-out move slots away from brokers that stay up. Kafka's coordinator unloads every
//! group of a `__consumer_offsets` partition it resigns (GroupCoordinator.onResignation,
//! the new coordinator's `onUnloaded`): it cancels their timers, answers their pending
//! requests NOT_COORDINATOR and frees them. Here the tick does the same for every group
//! whose slot is no longer this broker's under the epoch it was loaded at, before it loads
//! what moved here (`take_over_stored`): a classic or KIP-848 group keeps only its
//! committed offsets (replicated on every node), a share group goes, and the share
//! sessions it held for partitions this broker leads become leader sessions (0025), so
//! members fetching here keep them. When the slot comes back the stored state is loaded as
//! before (`take_over`, `take_over_share`).
//!
//! Owns: deciding what was resigned and unloading it. Must not: answer requests or store
//! anything (a resigned group has nothing this broker may write).

use std::time::Instant;

use super::coordinator::GroupCoordinator;
use super::share::sessions::MAX_LEADER_SHARE_SESSION_GROUPS;

impl GroupCoordinator {
    /// Unloads every group (of any kind) this broker loaded under a slot epoch it no longer
    /// holds; returns how many. Nothing happens on a single node.
    pub(super) fn unload_resigned(&self, now: Instant) -> usize {
        let Some(replicator) = self.replicator() else {
            return 0;
        };
        // Loaded under `epoch` and the slot is now elsewhere or under another epoch.
        let resigned = |id: &str, epoch: Option<i32>| {
            epoch.is_some_and(|e| replicator.coordinator_epoch(id) != Some(e))
        };
        let mut unloaded = 0;
        for g in self.inner.groups.borrow_mut().values_mut() {
            if resigned(&g.id, g.coordinator_epoch) {
                tracing::info!(group = %g.id, generation = g.generation, members = g.members.len(),
                    "coordinator slot moved away: unloading the group");
                g.unload_membership(now);
                unloaded += 1;
            }
        }
        let share_ids: Vec<String> = self
            .inner
            .share_groups
            .borrow()
            .iter()
            .filter(|(id, g)| resigned(id, g.coordinator_epoch))
            .map(|(id, _)| id.clone())
            .collect();
        for id in share_ids {
            let Some(group) = self.inner.share_groups.borrow_mut().remove(&id) else {
                continue;
            };
            tracing::info!(group = %id, group_epoch = group.group_epoch, members = group.members.len(),
                "coordinator slot moved away: unloading the share group");
            self.keep_as_leader_sessions(&id, group.sessions);
            unloaded += 1;
        }
        unloaded
    }

    /// The share sessions a resigned group's members opened here, kept as this broker's
    /// sessions as a partition leader (as `adopt_leader_sessions` does the other way), within
    /// `MAX_LEADER_SHARE_SESSION_GROUPS`; past it they go and the members open new ones.
    fn keep_as_leader_sessions(&self, group_id: &str, sessions: super::share::ShareSessions) {
        if sessions.is_empty() {
            return;
        }
        let mut leader = self.inner.leader_share_sessions.borrow_mut();
        let room = leader.len() < MAX_LEADER_SHARE_SESSION_GROUPS;
        match leader.get_mut(group_id) {
            Some(existing) => existing.absorb(sessions),
            None if room => {
                leader.insert(group_id.to_string(), sessions);
            }
            None => {
                tracing::warn!(group = %group_id, limit = MAX_LEADER_SHARE_SESSION_GROUPS,
                    "too many groups with leader share sessions: the resigned group's sessions are dropped");
            }
        }
    }
}
