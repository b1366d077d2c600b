//! The share group protocol's requests on the group's coordinator shard (KIP-932):
//! ShareGroupHeartbeat, ShareGroupDescribe, the share-session step of ShareFetch and
//! ShareAcknowledge, and share groups in ListGroups and DeleteGroups.
//!
//! Owns: finding or creating share groups and keeping one id to one group type. Must not:
//! hold the membership rules (in `share`) or touch records (the partition's shard does).

use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::share_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{GroupId, ShareGroupHeartbeatResponse};

use super::consumer::TopicsView;
use super::coordinator::{GroupCoordinator, MAX_GROUPS_PER_SHARD, SHARE_GROUP_TYPE};
use super::offset_log;
use super::share::sessions::{MAX_LEADER_SHARE_SESSION_GROUPS, SessionPartition, SessionUpdate};
use super::share::{ShareGroup, ShareHeartbeat, ShareTimeouts};
use super::wire::sb;

fn refuse(code: ResponseError, message: &str) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(message)))
        .with_member_epoch(-1)
}

impl GroupCoordinator {
    /// Whether a classic or consumer group already uses this id (one id, one group type).
    fn is_other_group_type(&self, group_id: &str) -> bool {
        let groups = self.inner.groups.borrow();
        groups
            .get(group_id)
            .is_some_and(|g| g.has_members() || g.consumer.has_members() || !g.offsets.is_empty())
    }

    /// Whether a share group with this id exists (other protocols refuse the id then).
    pub fn is_share_group(&self, group_id: &str) -> bool {
        self.inner.share_groups.borrow().contains_key(group_id)
    }

    /// ShareGroupHeartbeat: join, heartbeat or leave (see `share::heartbeat`). In cluster
    /// mode only at the group's coordinator, and a change of the group is answered once
    /// the metadata log has it (decision 0028), as Kafka's once its records are appended.
    pub async fn share_heartbeat(
        &self,
        group_id: &str,
        request: ShareHeartbeat<'_>,
        topics: &TopicsView,
        timeouts: ShareTimeouts,
        now: Instant,
    ) -> ShareGroupHeartbeatResponse {
        let response = self.share_heartbeat_in_memory(group_id, request, topics, timeouts, now);
        if response.error_code != 0 {
            return response;
        }
        match self.store_share_membership_now(group_id).await {
            Ok(()) => response,
            Err(code) => refuse(code, "the share group's change was not stored"),
        }
    }

    fn share_heartbeat_in_memory(
        &self,
        group_id: &str,
        request: ShareHeartbeat<'_>,
        topics: &TopicsView,
        timeouts: ShareTimeouts,
        now: Instant,
    ) -> ShareGroupHeartbeatResponse {
        if group_id.is_empty() || offset_log::escape_group_id(group_id).is_none() {
            return refuse(ResponseError::InvalidGroupId, "invalid group id");
        }
        if self.is_other_group_type(group_id) {
            return refuse(
                ResponseError::GroupIdNotFound,
                "the group is not a share group",
            );
        }
        // Cluster mode: the coordinator only (Kafka: NOT_COORDINATOR), the group loaded
        // from the metadata log if it came here with a coordinator move.
        let coordinator_epoch = match self.take_over_share(group_id, now) {
            Ok(epoch) => epoch,
            Err(code) => return refuse(code, "this broker does not coordinate the group"),
        };
        let mut share_groups = self.inner.share_groups.borrow_mut();
        if !share_groups.contains_key(group_id) {
            if request.member_epoch != 0 {
                return refuse(ResponseError::UnknownMemberId, "unknown share group");
            }
            let total = share_groups.len() + self.inner.groups.borrow().len();
            if total >= MAX_GROUPS_PER_SHARD {
                return refuse(ResponseError::CoordinatorNotAvailable, "too many groups");
            }
            let mut group = ShareGroup::default();
            group.coordinator_epoch = coordinator_epoch;
            group.sessions = self.adopt_leader_sessions(group_id);
            share_groups.insert(group_id.to_string(), group);
        }
        let Some(group) = share_groups.get_mut(group_id) else {
            return refuse(ResponseError::CoordinatorNotAvailable, "group vanished");
        };
        group.heartbeat(request, topics, timeouts, now)
    }

    /// ShareGroupDescribe for one group: GROUP_ID_NOT_FOUND unless it is a share group
    /// (cluster mode: NOT_COORDINATOR unless this broker coordinates it, which loads it
    /// first if it came here with a coordinator move).
    pub fn share_group_describe(
        &self,
        group_id: &str,
        topics: &TopicsView,
        now: Instant,
    ) -> DescribedGroup {
        let described = DescribedGroup::default().with_group_id(GroupId(sb(group_id)));
        if let Err(code) = self.take_over_share(group_id, now) {
            return described.with_error_code(code.code());
        }
        match self.inner.share_groups.borrow().get(group_id) {
            Some(g) => g.describe(group_id, topics),
            None => described
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(sb(&format!("Group {group_id} not found.")))),
        }
    }

    /// The share-session step of ShareFetch / ShareAcknowledge: the member must belong to
    /// the group to open a session; returns the session's partitions after the update.
    pub fn share_session_update(
        &self,
        group_id: &str,
        update: SessionUpdate<'_>,
    ) -> Result<Vec<SessionPartition>, ResponseError> {
        if update.any_member {
            return self.leader_session_update(group_id, update);
        }
        // Its coordinator now: a group that came with a coordinator move is loaded first.
        let _ = self.take_over_share(group_id, update.now);
        let mut share_groups = self.inner.share_groups.borrow_mut();
        let Some(group) = share_groups.get_mut(group_id) else {
            return Err(if update.epoch == 0 {
                ResponseError::GroupIdNotFound
            } else {
                ResponseError::ShareSessionNotFound
            });
        };
        if update.epoch == 0 && !group.is_member(update.member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        group.sessions.update(update)
    }

    /// The share-session step at a broker that leads partitions of a group another broker
    /// coordinates (cluster mode, decision 0025): as Kafka's share-partition leaders, it
    /// knows no membership, so a session opens for any member id; sessions idle for
    /// `SESSION_IDLE_AFTER_LEAVE` are dropped (their records' locks expire), and at most
    /// `MAX_LEADER_SHARE_SESSION_GROUPS` groups have sessions here per shard.
    fn leader_session_update(
        &self,
        group_id: &str,
        update: SessionUpdate<'_>,
    ) -> Result<Vec<SessionPartition>, ResponseError> {
        let mut groups = self.inner.leader_share_sessions.borrow_mut();
        if !groups.contains_key(group_id) {
            if update.epoch != 0 {
                return Err(ResponseError::ShareSessionNotFound);
            }
            if groups.len() >= MAX_LEADER_SHARE_SESSION_GROUPS {
                return Err(ResponseError::ShareSessionLimitReached);
            }
        }
        let sessions = groups.entry(group_id.to_string()).or_default();
        let result = sessions.update(update);
        if sessions.is_empty() {
            groups.remove(group_id);
        }
        result
    }

    /// A connection that opened the member's share session here closed (Kafka's
    /// `ShareSessionCache` disconnect listener): the session is gone, and its partitions
    /// are returned so the member's acquired records there are released at once. None
    /// when the session is gone already or another connection reopened it.
    pub fn share_session_connection_closed(
        &self,
        group_id: &str,
        member_id: &str,
        connection: u64,
    ) -> Option<Vec<SessionPartition>> {
        if let Some(group) = self.inner.share_groups.borrow_mut().get_mut(group_id)
            && let Some(partitions) = group.sessions.close_for_connection(member_id, connection)
        {
            return Some(partitions);
        }
        let mut leader = self.inner.leader_share_sessions.borrow_mut();
        let sessions = leader.get_mut(group_id)?;
        let partitions = sessions.close_for_connection(member_id, connection);
        if sessions.is_empty() {
            leader.remove(group_id);
        }
        partitions
    }

    /// Share-group deadlines: members past their session timeout leave; idle sessions of
    /// groups coordinated elsewhere are dropped.
    pub(super) fn tick_share_groups(&self, now: Instant) {
        for g in self.inner.share_groups.borrow_mut().values_mut() {
            g.expire(now);
        }
        let mut leader = self.inner.leader_share_sessions.borrow_mut();
        for sessions in leader.values_mut() {
            sessions.reap(|_| false, now);
        }
        leader.retain(|_, sessions| !sessions.is_empty());
    }

    /// Share groups for ListGroups (type "share", KIP-848's filter).
    pub(super) fn list_share_groups(
        &self,
        states: &[String],
        types: &[String],
    ) -> Vec<ListedGroup> {
        if !types.is_empty() && !types.iter().any(|t| t == SHARE_GROUP_TYPE) {
            return Vec::new();
        }
        self.inner
            .share_groups
            .borrow()
            .iter()
            .filter(|(_, g)| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
            // Cluster mode: only the groups this broker coordinates, as for the others.
            .filter(|(id, _)| self.check_coordinator(id).is_ok())
            .map(|(id, g)| {
                ListedGroup::default()
                    .with_group_id(GroupId(sb(id)))
                    .with_protocol_type(sb(SHARE_GROUP_TYPE))
                    .with_group_state(sb(g.state_name()))
                    .with_group_type(sb(SHARE_GROUP_TYPE))
            })
            .collect()
    }

    /// DeleteGroups for a share group: None when `group_id` is not one; NON_EMPTY_GROUP
    /// while it has members; in cluster mode NOT_COORDINATOR elsewhere, and the group's
    /// tombstone is stored before it goes (`forget_share_group`). Its share-partition
    /// state is dropped by the caller.
    pub async fn delete_share_group(&self, group_id: &str, now: Instant) -> Option<i16> {
        let taken_over = self.take_over_share(group_id, now);
        let has_members = self
            .inner
            .share_groups
            .borrow()
            .get(group_id)?
            .has_members();
        if let Err(code) = taken_over {
            return Some(code.code());
        }
        if has_members {
            return Some(ResponseError::NonEmptyGroup.code());
        }
        Some(match self.forget_share_group(group_id).await {
            Ok(()) => 0,
            Err(code) => code.code(),
        })
    }

    /// AlterShareGroupOffsets / DeleteShareGroupOffsets: whether the group's start offsets
    /// may change now. Kafka's rules: only while the share group has no members; an id a
    /// classic or consumer group uses is GROUP_ID_NOT_FOUND, and so is an unknown one when
    /// `must_exist` (deleting); altering may set a share group up before it first runs.
    pub fn share_offsets_changeable(
        &self,
        group_id: &str,
        must_exist: bool,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() || offset_log::escape_group_id(group_id).is_none() {
            return Err(ResponseError::InvalidGroupId);
        }
        // Cluster mode: a group that came with a coordinator move is loaded first (the
        // reset itself is refused at apply unless this broker coordinates the group).
        let _ = self.take_over_share(group_id, now);
        if self.is_other_group_type(group_id) {
            return Err(ResponseError::GroupIdNotFound);
        }
        match self.inner.share_groups.borrow().get(group_id) {
            Some(g) if g.has_members() => Err(ResponseError::NonEmptyGroup),
            Some(_) => Ok(()),
            None if must_exist => Err(ResponseError::GroupIdNotFound),
            None => Ok(()),
        }
    }

    /// Members of every share group of this shard, for metrics: (group, members).
    pub fn share_group_members(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = self
            .inner
            .share_groups
            .borrow()
            .iter()
            .map(|(id, g)| (id.clone(), g.members.len()))
            .collect();
        out.sort();
        out
    }
}
