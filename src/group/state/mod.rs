//! One classic consumer group: members, the rebalance state machine (Kafka's
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable), static membership (KIP-345)
//! and its committed offsets in memory.
//!
//! This file holds the group's data and what is read from it (protocol selection, the
//! JoinGroup answer of the current generation, subscriptions). The behaviour is split by
//! phase: `join` (JoinGroup and who the members are), `generation` (SyncGroup, Heartbeat,
//! LeaveGroup and OffsetCommit's membership check inside a generation) and `rebalance`
//! (ending and starting generations, timers). Calls go one way: `join` and `generation`
//! use `rebalance`, and all three use this file, never the reverse.
//!
//! Owns: the membership rules and the wire answers to JoinGroup/SyncGroup/Heartbeat/LeaveGroup
//! for this group. Must not: do I/O or read the clock — `now` comes from the caller, and
//! durable offsets are written by the coordinator through `GroupLog`.

mod generation;
mod join;
mod rebalance;
mod restore;

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

use super::consumer::ConsumerGroup;
use super::offset_log::{GroupOffsets, LogRecord};
use super::wire::sb;

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

impl<T> Pending<T> {
    /// Waits for the answer; `on_cancel` answers if the coordinator dropped the request.
    pub async fn wait(self, on_cancel: T) -> T {
        match self {
            Pending::Ready(r) => r,
            Pending::Waiting(rx) => rx.await.unwrap_or(on_cancel),
        }
    }
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

impl GroupLog {
    /// A log with nothing queued and no open file, `durable_len_bytes` long on disk.
    pub fn idle(path: std::path::PathBuf, durable_len_bytes: u64) -> Self {
        GroupLog {
            path,
            file: None,
            durable_len_bytes,
            pending: Vec::new(),
            flushing: false,
            needs_truncate: false,
        }
    }
}

pub struct PendingWrite {
    pub records: Vec<LogRecord>,
    pub done: Option<oneshot::Sender<Result<(), super::offset_log_writer::WriteError>>>,
}

/// How long an Empty group without offsets stays listed before it is forgotten: Kafka's
/// `offsets.retention.check.interval.ms` default, the period of the cleanup that deletes it.
pub const EMPTY_GROUP_RETENTION_MS: i64 = 600_000;

/// One offset a transaction committed, waiting for its COMMIT (or dropped on ABORT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTxnOffset {
    pub topic: String,
    pub partition: i32,
    pub entry: super::offset_log::OffsetEntry,
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
    /// TxnOffsetCommit offsets per producer id, visible only once its transaction commits.
    pub pending_txn_offsets: HashMap<i64, Vec<PendingTxnOffset>>,
    /// Wall-clock time the group last became Empty at run time (KIP-211 expiry base).
    pub empty_since_ms: Option<i64>,
    pub rebalances_total: u64,
    pub log: GroupLog,
    /// Members using the KIP-848 protocol (a group has those or classic members, never both).
    pub consumer: ConsumerGroup,
    /// Cluster mode: the epoch of the coordinator slot under which this broker holds the
    /// classic membership (`None`: not taken over yet); another epoch means the
    /// membership is from an earlier time it coordinated the group (decision 0024).
    pub coordinator_epoch: Option<i32>,
    /// Cluster mode: `membership_mark` of the membership last proposed for the group.
    pub stored_mark: Option<u64>,
    /// Cluster mode: the leader's SyncGroup completed a generation whose record is not
    /// committed yet; every SyncGroup answer waits for it (`release_sync_answers`).
    sync_held: bool,
}

/// A JoinGroup refusal. The protocol name is null, as Kafka sends from v7 (where it became
/// nullable); the JoinGroup handler writes "" for older versions.
pub fn join_error(code: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code.code())
        .with_generation_id(-1)
        .with_protocol_name(None)
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
            pending_txn_offsets: HashMap::new(),
            empty_since_ms: None,
            rebalances_total: 0,
            log,
            consumer: Default::default(),
            coordinator_epoch: None,
            stored_mark: None,
            sync_held: false,
        }
    }

    /// An Empty group with nothing left to remember may be forgotten: at once if it never
    /// had members, else [`EMPTY_GROUP_RETENTION_MS`] after it became Empty. Kafka deletes
    /// such a group only in its periodic cleanup, so ListGroups and DescribeGroups show it
    /// as Empty (with its protocol type) in between; forgetting it on the next tick made a
    /// DescribeGroups right after the last LeaveGroup answer Dead.
    pub fn is_forgettable(&self, wall_ms: i64) -> bool {
        self.is_removable()
            && self
                .empty_since_ms
                .is_none_or(|since| wall_ms.saturating_sub(since) >= EMPTY_GROUP_RETENTION_MS)
    }

    /// A group may be dropped from memory when nothing refers to it any more.
    pub fn is_removable(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && !self.consumer.has_members()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && self.pending_txn_offsets.is_empty()
            && !self.log.flushing
            && self.log.pending.is_empty()
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

    fn members_in_join_order(&self) -> Vec<&Member> {
        let mut list: Vec<&Member> = self.members.values().collect();
        list.sort_by_key(|m| m.join_seq);
        list
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
