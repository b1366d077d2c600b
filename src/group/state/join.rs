//! JoinGroup for one classic group: who may join, new and rejoining members, and static
//! members replacing their previous incarnation (KIP-345).
//!
//! Owns: the JoinGroup answers and the member table's growth. Must not: end a join phase
//! (that is `rebalance`) or read the clock.

use std::time::Instant;

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::JoinGroupResponse;

use super::{
    Group, GroupState, GroupTimings, JoinArgs, JoinWaiter, MAX_MEMBERS_PER_GROUP, Member, Pending,
    join_error, sync_error,
};

impl Group {
    /// Whether a joining member's protocols fit the group (Kafka's INCONSISTENT_GROUP_PROTOCOL).
    fn supports(&self, args: &JoinArgs) -> bool {
        if args.protocol_type.is_empty() || args.protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(args.protocol_type.as_str()) {
            return false;
        }
        let candidates = self.candidate_protocols();
        args.protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    fn add_member(
        &mut self,
        member_id: String,
        args: JoinArgs,
        now: Instant,
    ) -> Pending<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(args.protocol_type.clone());
        }
        if let Some(instance) = &args.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        let seq = self.next_join_seq;
        self.next_join_seq += 1;
        self.members.insert(
            member_id.clone(),
            Member {
                member_id,
                group_instance_id: args.group_instance_id,
                client_id: args.client_id,
                client_host: args.client_host,
                session_timeout: args.session_timeout,
                rebalance_timeout: args.rebalance_timeout,
                protocols: args.protocols,
                assignment: Bytes::new(),
                session_deadline: now + args.session_timeout,
                join_waiter: Some(JoinWaiter {
                    tx,
                    version: args.version,
                }),
                sync_waiter: None,
                join_seq: seq,
            },
        );
        Pending::Waiting(rx)
    }

    pub fn join(
        &mut self,
        args: JoinArgs,
        now: Instant,
        timings: &GroupTimings,
        wall_ms: i64,
    ) -> Pending<JoinGroupResponse> {
        if !self.supports(&args) {
            return Pending::Ready(join_error(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }
        if args.member_id.is_empty() {
            return self.join_unknown_member(args, now, timings, wall_ms);
        }
        let member_id = args.member_id.clone();
        if let Some(instance) = &args.group_instance_id {
            match self.static_members.get(instance) {
                Some(current) if *current != member_id => {
                    return Pending::Ready(join_error(ResponseError::FencedInstanceId, &member_id));
                }
                Some(_) => {}
                None if !self.pending_members.contains_key(&member_id) => {
                    return Pending::Ready(join_error(ResponseError::UnknownMemberId, &member_id));
                }
                None => {}
            }
        }
        if !self.members.contains_key(&member_id) {
            if self.pending_members.remove(&member_id).is_none() {
                return Pending::Ready(join_error(ResponseError::UnknownMemberId, &member_id));
            }
            return self.add_member_and_rebalance(member_id, args, now, timings, wall_ms);
        }
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|m| m.protocols == args.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(join_error(ResponseError::UnknownMemberId, &member_id))
            }
            GroupState::CompletingRebalance if unchanged => {
                // A lost JoinGroup answer: send the same one again.
                Pending::Ready(self.join_response(&member_id, args.version, is_leader, false))
            }
            GroupState::Stable if unchanged && !is_leader => {
                // A follower with nothing new to say does not disturb the group.
                Pending::Ready(self.join_response(&member_id, args.version, false, false))
            }
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => {
                let rx = self.update_member_awaiting_join(&member_id, args, now);
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now, timings);
                }
                self.try_complete_join(now, wall_ms);
                rx
            }
        }
    }

    fn join_unknown_member(
        &mut self,
        args: JoinArgs,
        now: Instant,
        timings: &GroupTimings,
        wall_ms: i64,
    ) -> Pending<JoinGroupResponse> {
        if self.members.len() + self.pending_members.len() >= MAX_MEMBERS_PER_GROUP {
            return Pending::Ready(join_error(ResponseError::GroupMaxSizeReached, ""));
        }
        let suffix = uuid::Uuid::new_v4();
        if let Some(instance) = args.group_instance_id.clone() {
            let new_id = format!("{instance}-{suffix}");
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old_id, new_id, args, now, timings, wall_ms);
            }
            // Static members are known by their instance id: no MEMBER_ID_REQUIRED round trip.
            return self.add_member_and_rebalance(new_id, args, now, timings, wall_ms);
        }
        let new_id = format!("{}-{suffix}", args.client_id);
        if args.version >= 4 {
            // KIP-394: hand out the id first, so a client that retries does not leave a
            // trail of phantom members behind.
            self.pending_members
                .insert(new_id.clone(), now + args.session_timeout);
            return Pending::Ready(join_error(ResponseError::MemberIdRequired, &new_id));
        }
        self.add_member_and_rebalance(new_id, args, now, timings, wall_ms)
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        args: JoinArgs,
        now: Instant,
        timings: &GroupTimings,
        wall_ms: i64,
    ) -> Pending<JoinGroupResponse> {
        let rx = self.add_member(member_id, args, now);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, timings);
        }
        self.try_complete_join(now, wall_ms);
        rx
    }

    /// Stores the rejoining member's (possibly new) protocols and parks its JoinGroup.
    fn update_member_awaiting_join(
        &mut self,
        member_id: &str,
        args: JoinArgs,
        now: Instant,
    ) -> Pending<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = args.protocols;
            m.session_timeout = args.session_timeout;
            m.rebalance_timeout = args.rebalance_timeout;
            m.client_id = args.client_id;
            m.client_host = args.client_host;
            m.session_deadline = now + m.session_timeout;
            if let Some(old) = m.join_waiter.replace(JoinWaiter {
                tx,
                version: args.version,
            }) {
                let _ = old
                    .tx
                    .send(join_error(ResponseError::RebalanceInProgress, member_id));
            }
        }
        Pending::Waiting(rx)
    }

    /// KIP-345: a known group.instance.id joins with a fresh member id. The old id is fenced;
    /// in a Stable group with unchanged protocols the member simply gets the current
    /// generation back (no rebalance) and fetches its assignment with SyncGroup.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        args: JoinArgs,
        now: Instant,
        timings: &GroupTimings,
        wall_ms: i64,
    ) -> Pending<JoinGroupResponse> {
        let Some(mut member) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(new_id, args, now, timings, wall_ms);
        };
        if let Some(w) = member.join_waiter.take() {
            let _ =
                w.tx.send(join_error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.tx.send(sync_error(ResponseError::FencedInstanceId));
        }
        let unchanged = member.protocols == args.protocols;
        member.member_id = new_id.clone();
        member.session_deadline = now + args.session_timeout;
        member.session_timeout = args.session_timeout;
        member.rebalance_timeout = args.rebalance_timeout;
        member.client_id = args.client_id.clone();
        member.client_host = args.client_host.clone();
        if let Some(instance) = &member.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if self.state == GroupState::Stable && unchanged {
            let is_leader = self.leader.as_deref() == Some(new_id.as_str());
            return Pending::Ready(self.join_response(&new_id, args.version, is_leader, is_leader));
        }
        let rx = self.update_member_awaiting_join(&new_id, args, now);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, timings);
        }
        self.try_complete_join(now, wall_ms);
        rx
    }
}
