//! The classic group protocol's requests: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.
//!
//! Owns: turning those requests into calls on one group's state machine (`state`), creating
//! a group on its first JoinGroup, and the wire shape of their answers. Must not: hold the
//! rebalance rules themselves (they live in `state`) or touch the offsets log.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::coordinator::{ClientInfo, GroupCoordinator, MAX_GROUPS_PER_SHARD};
use super::offset_log;
use super::state::{JoinArgs, Pending, join_error, sync_error};
use super::wire::{error_code, sb};

impl GroupCoordinator {
    /// JoinGroup. The answer is often `Waiting`: it arrives when the join phase completes.
    pub fn join_group(
        &self,
        request: JoinGroupRequest,
        client: &ClientInfo,
        version: i16,
        now: Instant,
    ) -> Pending<JoinGroupResponse> {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        if group_id.is_empty() || offset_log::escape_group_id(&group_id).is_none() {
            return Pending::Ready(join_error(ResponseError::InvalidGroupId, &member_id));
        }
        if self.is_share_group(&group_id) {
            // Kafka's answer for a classic member of a group of another type.
            return Pending::Ready(join_error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        let t = &self.inner.timings;
        if request.session_timeout_ms < t.min_session_timeout_ms
            || request.session_timeout_ms > t.max_session_timeout_ms
        {
            return Pending::Ready(join_error(ResponseError::InvalidSessionTimeout, &member_id));
        }
        let session_timeout = Duration::from_millis(request.session_timeout_ms as u64);
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance_timeout = if version >= 1 && request.rebalance_timeout_ms > 0 {
            Duration::from_millis(request.rebalance_timeout_ms as u64)
        } else {
            session_timeout
        };
        let args = JoinArgs {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            session_timeout,
            rebalance_timeout,
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            version,
        };
        let wall = self.wall_ms(now);
        let mut groups = self.inner.groups.borrow_mut();
        let epoch = match self.take_over(&mut groups, &group_id, now) {
            Ok(epoch) => epoch,
            Err(e) => return Pending::Ready(join_error(e, &member_id)),
        };
        if !groups.contains_key(&group_id) {
            if !member_id.is_empty() {
                return Pending::Ready(join_error(ResponseError::UnknownMemberId, &member_id));
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                tracing::warn!(group = %group_id, "refusing a new group: {MAX_GROUPS_PER_SHARD} groups on this shard");
                return Pending::Ready(join_error(
                    ResponseError::CoordinatorNotAvailable,
                    &member_id,
                ));
            }
            let Some(mut group) = self.new_group(&group_id) else {
                return Pending::Ready(join_error(ResponseError::InvalidGroupId, &member_id));
            };
            group.coordinator_epoch = epoch;
            groups.insert(group_id.clone(), group);
        }
        let Some(group) = groups.get_mut(&group_id) else {
            return Pending::Ready(join_error(
                ResponseError::CoordinatorNotAvailable,
                &member_id,
            ));
        };
        if group.consumer.has_members() {
            return Pending::Ready(join_error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        group.join(args, now, &self.inner.timings, wall)
    }

    /// JoinGroup, waiting for the answer.
    pub async fn join(
        &self,
        request: JoinGroupRequest,
        client: ClientInfo,
        version: i16,
        now: Instant,
    ) -> JoinGroupResponse {
        let member_id = request.member_id.to_string();
        let cancelled = join_error(ResponseError::CoordinatorNotAvailable, &member_id);
        self.join_group(request, &client, version, now)
            .wait(cancelled)
            .await
    }

    /// SyncGroup. Followers wait (`Waiting`) until the leader sends the assignments.
    pub fn sync_group(
        &self,
        request: SyncGroupRequest,
        version: i16,
        now: Instant,
    ) -> Pending<SyncGroupResponse> {
        let group_id = request.group_id.0.to_string();
        let mut groups = self.inner.groups.borrow_mut();
        if let Err(e) = self.take_over(&mut groups, &group_id, now) {
            return Pending::Ready(sync_error(e));
        }
        let Some(group) = groups.get_mut(&group_id) else {
            return Pending::Ready(sync_error(ResponseError::UnknownMemberId));
        };
        let assignments = request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect();
        group.sync(
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
            version,
            now,
        )
    }

    /// Cluster mode, after `sync_group`: when the leader's assignment completed a
    /// generation, its record is proposed now and the group becomes Stable and the held
    /// SyncGroup answers go out once it committed, or every waiting member gets COORDINATOR_NOT_AVAILABLE /
    /// NOT_COORDINATOR and the group rebalances (Kafka's answers when its group metadata
    /// append fails). The wait is bounded by the replicator (`MEMBERSHIP_COMMIT_WAIT`).
    pub(super) async fn sync_stored(&self, group_id: &str, now: Instant) {
        let Some((_, generation)) = self.group_state(group_id) else {
            return;
        };
        // Too large to store (a warning said so): it is answered as before this record.
        let stored = self.store_membership_now(group_id).await;
        let timings = self.inner.timings;
        if let Some(g) = self.inner.groups.borrow_mut().get_mut(group_id) {
            g.release_sync_answers(generation, stored, now, &timings);
        }
    }

    /// Whether `group_id`'s SyncGroup answers wait for its generation's record.
    pub(super) fn sync_held(&self, group_id: &str) -> bool {
        let groups = self.inner.groups.borrow();
        groups.get(group_id).is_some_and(|g| g.sync_held())
    }

    /// SyncGroup, waiting for the answer.
    pub async fn sync(
        &self,
        request: SyncGroupRequest,
        version: i16,
        now: Instant,
    ) -> SyncGroupResponse {
        let group_id = request.group_id.0.to_string();
        // Only the SyncGroup that completes the generation writes and releases: a
        // follower arriving meanwhile waits with the others.
        let was_held = self.sync_held(&group_id);
        let answer = self.sync_group(request, version, now);
        if !was_held && self.sync_held(&group_id) {
            self.sync_stored(&group_id, now).await;
        }
        answer
            .wait(sync_error(ResponseError::CoordinatorNotAvailable))
            .await
    }

    pub fn heartbeat(&self, request: HeartbeatRequest, now: Instant) -> HeartbeatResponse {
        let group_id = request.group_id.0.to_string();
        let mut groups = self.inner.groups.borrow_mut();
        let taken = self.take_over(&mut groups, &group_id, now);
        let result = match groups.get_mut(&group_id) {
            _ if taken.is_err() => taken.map(|_| ()),
            None => Err(ResponseError::UnknownMemberId),
            Some(group) => group.heartbeat(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
                now,
            ),
        };
        HeartbeatResponse::default().with_error_code(error_code(result))
    }

    /// LeaveGroup: v0–v2 name one member; v3+ a batch (by member id or instance id).
    pub fn leave_group(
        &self,
        request: LeaveGroupRequest,
        version: i16,
        now: Instant,
    ) -> LeaveGroupResponse {
        let group_id = request.group_id.0.to_string();
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let wall = self.wall_ms(now);
        let timings = self.inner.timings;
        let mut groups = self.inner.groups.borrow_mut();
        if let Err(e) = self.take_over(&mut groups, &group_id, now) {
            return LeaveGroupResponse::default().with_error_code(e.code());
        }
        let results: Vec<(String, Option<String>, i16)> = leaving
            .into_iter()
            .map(|(member_id, instance)| {
                let result = match groups.get_mut(&group_id) {
                    None => Err(ResponseError::UnknownMemberId),
                    Some(g) => g.leave(&member_id, instance.as_deref(), now, &timings, wall),
                };
                (member_id, instance, error_code(result))
            })
            .collect();
        if version >= 3 {
            LeaveGroupResponse::default()
                .with_error_code(0)
                .with_members(
                    results
                        .into_iter()
                        .map(|(member_id, instance, error_code)| {
                            MemberResponse::default()
                                .with_member_id(sb(&member_id))
                                .with_group_instance_id(instance.as_deref().map(sb))
                                .with_error_code(error_code)
                        })
                        .collect(),
                )
        } else {
            let error_code = results.first().map(|r| r.2).unwrap_or(0);
            LeaveGroupResponse::default().with_error_code(error_code)
        }
    }
}
