//! Requests made inside one generation of a classic group: SyncGroup (the leader hands
//! out assignments), Heartbeat, LeaveGroup and OffsetCommit's membership check.
//!
//! Owns: the member/generation checks and their error codes. Must not: start or end a
//! generation except through `rebalance`.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::SyncGroupResponse;

use super::super::wire::sb;
use super::{Group, GroupState, GroupTimings, Pending, SyncWaiter, sync_error};

impl Group {
    fn sync_response(&self, assignment: Bytes, version: i16) -> SyncGroupResponse {
        let mut response = SyncGroupResponse::default()
            .with_error_code(0)
            .with_assignment(assignment);
        if version >= 5 {
            response.protocol_type = self.protocol_type.as_deref().map(sb);
            response.protocol_name = self.protocol_name.as_deref().map(sb);
        }
        response
    }

    /// Checks member id, static instance id and generation the way Heartbeat, SyncGroup and
    /// OffsetCommit all do.
    fn check_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = group_instance_id
            && let Some(current) = self.static_members.get(instance)
            && current != member_id
        {
            return Err(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        version: i16,
        now: Instant,
    ) -> Pending<SyncGroupResponse> {
        if self.state == GroupState::Empty || self.state == GroupState::Dead {
            return Pending::Ready(sync_error(ResponseError::UnknownMemberId));
        }
        if let Err(e) = self.check_member(member_id, group_instance_id, generation) {
            return Pending::Ready(sync_error(e));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return Pending::Ready(sync_error(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                Pending::Ready(sync_error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get_mut(member_id)
                    .map(|m| {
                        m.session_deadline = now + m.session_timeout;
                        m.assignment.clone()
                    })
                    .unwrap_or_default();
                Pending::Ready(self.sync_response(assignment, version))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.session_deadline = now + m.session_timeout;
                    m.sync_waiter = Some(SyncWaiter { tx, version });
                }
                // A leader's SyncGroup sent again while its record is proposed only waits.
                if self.leader.as_deref() == Some(member_id) && !self.sync_held {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    // Cluster mode: the group stays CompletingRebalance until the
                    // generation's record commits, and only then do the answers go, as
                    // Kafka's group until its GroupMetadata append completes: a successor
                    // never holds an older generation than one a member was told, and no
                    // member commits offsets in a generation that is not stored
                    // (REBALANCE_IN_PROGRESS meanwhile, `check_commit`).
                    self.sync_held = self.coordinator_epoch.is_some();
                    if !self.sync_held {
                        self.state = GroupState::Stable;
                        self.send_sync_answers();
                    }
                }
                Pending::Waiting(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(sync_error(ResponseError::UnknownMemberId))
            }
        }
    }

    /// Cluster mode: SyncGroup answers wait for the generation's record to commit.
    pub fn sync_held(&self) -> bool {
        self.sync_held
    }

    /// Answers every member waiting in SyncGroup with its assignment.
    fn send_sync_answers(&mut self) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            let Some(w) = m.sync_waiter.take() else {
                continue;
            };
            let assignment = m.assignment.clone();
            let _ = w.tx.send(self.sync_response(assignment, w.version));
        }
    }

    /// Cluster mode: the record of `generation`, which the leader's SyncGroup completed,
    /// has committed (`Ok`: the group is Stable and the held answers go out) or could not
    /// (`Err`: every waiting member gets the error and the group rebalances, as Kafka's
    /// resetAndPropagateAssignmentWithError and maybePrepareRebalanceOrCompleteJoin do).
    /// Nothing happens unless that generation's answers are still held: a rebalance
    /// meanwhile voided them (Kafka's callback checks state and generation alike).
    pub fn release_sync_answers(
        &mut self,
        generation: i32,
        stored: Result<(), ResponseError>,
        now: Instant,
        timings: &GroupTimings,
    ) {
        if !self.sync_held
            || self.generation != generation
            || self.state != GroupState::CompletingRebalance
        {
            return;
        }
        self.sync_held = false;
        match stored {
            Ok(()) => {
                self.state = GroupState::Stable;
                self.send_sync_answers();
            }
            Err(code) => {
                for m in self.members.values_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.tx.send(sync_error(code));
                    }
                }
                self.prepare_rebalance(now, timings);
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, group_instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        if self.state == GroupState::PreparingRebalance {
            // Tells the member to rejoin.
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for one member identity (by member id, or by instance id when the member
    /// id is unknown to the caller).
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: Instant,
        timings: &GroupTimings,
        wall_ms: i64,
    ) -> Result<(), ResponseError> {
        let target = match group_instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return Err(ResponseError::FencedInstanceId);
                }
                Some(current) => current.clone(),
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&target).is_some() {
            self.try_complete_join(now, wall_ms);
            return Ok(());
        }
        if self
            .remove_member(&target, ResponseError::UnknownMemberId)
            .is_none()
        {
            return Err(ResponseError::UnknownMemberId);
        }
        self.after_member_removed(now, timings, wall_ms);
        Ok(())
    }

    /// OffsetCommit's membership check (Kafka's rules for classic groups). `Ok` also for a
    /// simple (generation < 0) commit to a group without members.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.consumer.has_members() {
            // KIP-848 members commit with their member epoch.
            return self.consumer.check_commit(member_id, generation);
        }
        if generation < 0 && self.members.is_empty() && self.state == GroupState::Empty {
            return Ok(());
        }
        match self.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            GroupState::CompletingRebalance => {
                // A valid member would have got the new generation from JoinGroup and must
                // finish SyncGroup first.
                self.check_member(member_id, group_instance_id, generation)?;
                return Err(ResponseError::RebalanceInProgress);
            }
            _ => {}
        }
        self.check_member(member_id, group_instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        Ok(())
    }
}
