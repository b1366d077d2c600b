//! One classic consumer group: members, the rebalance state machine (Kafka's
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable), static membership (KIP-345)
//! and its committed offsets in memory.
//!
//! Owns: the membership rules and the wire answers to JoinGroup/SyncGroup/Heartbeat/LeaveGroup
//! for this group. Must not: do I/O or read the clock — `now` comes from the caller, and
//! durable offsets are written by the coordinator through `GroupLog`.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, JoinGroupResponse, SyncGroupResponse,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::protocol::StrBytes;

use super::offset_log::{GroupOffsets, LogRecord};

/// Members one group may have (Kafka's `group.max.size`); more get GROUP_MAX_SIZE_REACHED.
pub const MAX_MEMBERS_PER_GROUP: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The state names Kafka puts on the wire (DescribeGroups, ListGroups filter).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Group timing settings taken from the broker config.
#[derive(Clone, Copy, Debug)]
pub struct GroupTimings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
}

/// A JoinGroup/SyncGroup answer: now, or later through a oneshot that another member's
/// request or the coordinator's `tick` completes.
pub enum Pending<T> {
    Ready(T),
    Waiting(oneshot::Receiver<T>),
}

struct JoinWaiter {
    tx: oneshot::Sender<JoinGroupResponse>,
    version: i16,
}

struct SyncWaiter {
    tx: oneshot::Sender<SyncGroupResponse>,
    version: i16,
}

/// What a JoinGroup request says about the member, decoded once by the coordinator.
pub struct JoinArgs {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub version: i16,
}

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    session_deadline: Instant,
    join_waiter: Option<JoinWaiter>,
    sync_waiter: Option<SyncWaiter>,
    /// Order of joining: the leader falls to the longest-standing member.
    join_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

struct InitialDelay {
    deadline: Instant,
    /// Rebalance-timeout budget left for further extensions.
    remaining: Duration,
}

/// Log writes queued or in flight for this group (see `GroupCoordinator::flush_loop`).
pub struct GroupLog {
    pub path: std::path::PathBuf,
    pub file: Option<Rc<compio::fs::File>>,
    /// Bytes known to be durably in the file: the next append position.
    pub durable_len_bytes: u64,
    pub pending: Vec<PendingWrite>,
    /// A flush task is running for this log: only it writes, compacts or removes the file.
    pub flushing: bool,
    /// A write failed part-way: cut the file back to `durable_len_bytes` before appending.
    pub needs_truncate: bool,
}

pub struct PendingWrite {
    pub records: Vec<LogRecord>,
    pub done: Option<oneshot::Sender<Result<(), String>>>,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: HashMap<String, Member>,
    /// group.instance.id -> current member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with their deadline.
    pending_members: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    new_member_added: bool,
    next_join_seq: u64,
    pub offsets: GroupOffsets,
    /// Wall-clock time the group last became Empty at run time (KIP-211 expiry base).
    pub empty_since_ms: Option<i64>,
    pub rebalances_total: u64,
    pub log: GroupLog,
    /// Members using the KIP-848 protocol (a group has those or classic members, never both).
    pub consumer: super::consumer::ConsumerGroup,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn join_error(code: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code.code())
        .with_generation_id(-1)
        .with_protocol_name(Some(StrBytes::default()))
        .with_member_id(sb(member_id))
}

pub fn sync_error(code: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code.code())
}

impl Group {
    pub fn new(id: String, log: GroupLog) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: HashMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            new_member_added: false,
            next_join_seq: 0,
            offsets: GroupOffsets::new(),
            empty_since_ms: None,
            rebalances_total: 0,
            log,
            consumer: Default::default(),
        }
    }

    /// A group may be dropped from memory when nothing refers to it any more.
    pub fn is_removable(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && !self.consumer.has_members()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && !self.log.flushing
            && self.log.pending.is_empty()
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Protocols every member supports, in the order the leader (or anyone) listed them.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

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

    /// Each member votes for its most preferred candidate; most votes wins, ties go to the
    /// leader's preference order.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let order: Vec<&str> = match self.leader.as_ref().and_then(|l| self.members.get(l)) {
            Some(leader) => leader.protocols.iter().map(|(n, _)| n.as_str()).collect(),
            None => candidates.iter().map(String::as_str).collect(),
        };
        let mut best: Option<(&str, usize)> = None;
        for name in order {
            let v = votes.get(name).copied().unwrap_or(0);
            if v > 0 && best.is_none_or(|(_, bv)| v > bv) {
                best = Some((name, v));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn members_in_join_order(&self) -> Vec<&Member> {
        let mut list: Vec<&Member> = self.members.values().collect();
        list.sort_by_key(|m| m.join_seq);
        list
    }

    /// The JoinGroup answer for `member_id` in the current generation. The leader gets
    /// every member's metadata unless `skip_assignment` (v9, static leader rejoin).
    fn join_response(
        &self,
        member_id: &str,
        version: i16,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinGroupResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if with_members {
            self.members_in_join_order()
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(&m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.as_deref().map(sb)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata_for(&protocol))
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_error_code(0)
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.as_deref().map(sb))
            .with_protocol_name(Some(sb(&protocol)))
            .with_leader(sb(self.leader.as_deref().unwrap_or("")))
            .with_skip_assignment(skip_assignment && version >= 9)
            .with_member_id(sb(member_id))
            .with_members(members)
    }

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

    // ----- membership changes -------------------------------------------------------------

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

    /// Takes a member out and answers anything it was waiting for with `code`.
    fn remove_member(&mut self, member_id: &str, code: ResponseError) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if let Some(w) = member.join_waiter.take() {
            let _ = w.tx.send(join_error(code, member_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.tx.send(sync_error(code));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self
                .members_in_join_order()
                .first()
                .map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// After a member left or expired: rebalance (or finish the one in progress).
    fn after_member_removed(&mut self, now: Instant, timings: &GroupTimings, wall_ms: i64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, timings)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, wall_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
        // The last member leaving completes the (now empty) join at once.
        self.try_complete_join(now, wall_ms);
    }

    fn prepare_rebalance(&mut self, now: Instant, timings: &GroupTimings) {
        if self.state == GroupState::CompletingRebalance {
            // The leader's assignment for the aborted generation is void: tell the members
            // waiting in SyncGroup to rejoin.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.tx.send(sync_error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let rebalance_timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty && !timings.initial_rebalance_delay.is_zero() {
            let delay = timings.initial_rebalance_delay;
            self.initial_delay = Some(InitialDelay {
                deadline: now + delay,
                remaining: rebalance_timeout.saturating_sub(delay),
            });
            self.new_member_added = false;
            self.rebalance_deadline = None;
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now + rebalance_timeout);
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every known member has rejoined (and no member id
    /// handed out with MEMBER_ID_REQUIRED is still expected).
    fn try_complete_join(&mut self, now: Instant, wall_ms: i64) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay.is_some() {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if all_joined && self.pending_members.is_empty() {
            self.complete_join(now, wall_ms);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation moves on
    /// and every joined member gets its answer (the leader with everyone's metadata).
    fn complete_join(&mut self, now: Instant, wall_ms: i64) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            self.remove_member(&id, ResponseError::UnknownMemberId);
        }
        self.initial_delay = None;
        self.rebalance_deadline = None;
        self.new_member_added = false;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.protocol_type = None;
            self.leader = None;
            self.empty_since_ms = Some(wall_ms);
            return;
        }
        self.rebalances_total += 1;
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members_in_join_order()
                .first()
                .map(|m| m.member_id.clone());
        }
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.join_waiter.take()) else {
                continue;
            };
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let response = self.join_response(&id, waiter.version, is_leader, false);
            let _ = waiter.tx.send(response);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now + m.session_timeout;
            }
        }
    }

    // ----- requests -----------------------------------------------------------------------

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
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
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
                Pending::Waiting(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(sync_error(ResponseError::UnknownMemberId))
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

    /// Timers: expired MEMBER_ID_REQUIRED ids, initial delay, rebalance timeout, sessions.
    pub fn tick(&mut self, now: Instant, timings: &GroupTimings, wall_ms: i64) {
        if self.consumer.tick(&self.id, now) && !self.consumer.has_members() {
            self.empty_since_ms = Some(wall_ms);
        }
        let before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| *deadline > now);
        let pending_expired = self.pending_members.len() != before;

        if self.state == GroupState::PreparingRebalance {
            if let Some(delay) = &self.initial_delay {
                if delay.deadline <= now {
                    // Kafka extends the initial delay while new members keep arriving, up to
                    // the rebalance timeout.
                    if self.new_member_added && !delay.remaining.is_zero() {
                        let step = timings.initial_rebalance_delay.min(delay.remaining);
                        let remaining = delay.remaining - step;
                        self.initial_delay = Some(InitialDelay {
                            deadline: now + step,
                            remaining,
                        });
                        self.new_member_added = false;
                    } else {
                        self.initial_delay = None;
                        self.complete_join(now, wall_ms);
                    }
                }
            } else if self.rebalance_deadline.is_some_and(|d| d <= now) {
                self.complete_join(now, wall_ms);
            } else if pending_expired {
                self.try_complete_join(now, wall_ms);
            }
        }

        // Members parked in JoinGroup (during a rebalance) or SyncGroup are alive by definition.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now)
            .filter(|m| {
                let parked_in_join =
                    m.join_waiter.is_some() && self.state == GroupState::PreparingRebalance;
                !parked_in_join && m.sync_waiter.is_none()
            })
            .map(|m| m.member_id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "member session expired");
                self.remove_member(id, ResponseError::UnknownMemberId);
            }
            self.after_member_removed(now, timings, wall_ms);
        }
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

    /// Topics the members subscribe to, decoded from their `consumer` protocol metadata
    /// (KIP-429 and the eager assignors share that format). Empty set for a group without
    /// members; None when the group is not a consumer group or a subscription is unreadable.
    pub fn subscribed_topics(&self) -> Option<std::collections::HashSet<String>> {
        let mut topics = std::collections::HashSet::new();
        if self.consumer.has_members() {
            topics.extend(self.consumer.subscribed_topics());
            return Some(topics);
        }
        if self.members.is_empty() {
            return Some(topics);
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        for m in self.members.values() {
            let mut metadata = m.metadata_for(protocol);
            if metadata.len() < 2 {
                return None;
            }
            // The first two bytes are the subscription's own version; decode with the newest
            // we know for anything newer (later versions only add trailing fields).
            let version = i16::from_be_bytes([metadata[0], metadata[1]]).clamp(0, 3);
            let _ = metadata.split_to(2);
            // Member metadata comes from clients: decoded under the allocation/panic guard.
            let subscription = crate::protocol::alloc_guard::decode_guarded(|| {
                ConsumerProtocolSubscription::decode(&mut metadata, version)
            })
            .ok()?;
            topics.extend(subscription.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty() || self.consumer.has_members()
    }

    pub fn member_list(&self) -> Vec<&Member> {
        self.members_in_join_order()
    }
}
