//! A group's membership as the metadata log stores it (cluster mode, decision 0024): what a
//! classic group's Stable generation looks like as a `GroupMembership` record, and loading
//! one on the broker that takes the group's coordinator slot over, as Kafka's coordinator
//! loads GroupMetadata from its `__consumer_offsets` partition: Stable, with every member's
//! session starting now, so members that heartbeat keep their generation. A KIP-848
//! group's part is `consumer::stored`'s; this file puts it in the same record.
//!
//! Owns: the conversion both ways. Must not: decide when to store or load (the
//! coordinator's `membership` does).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::super::consumer::ConsumerGroup;
use super::{Group, GroupState, Member, join_error, sync_error};
use crate::metadata::group_membership::{GroupMembership, MemberRecord, MembershipVersion};

impl Group {
    /// What should be stored for this group now: its KIP-848 members' state, its Stable
    /// classic generation (or the one the leader's SyncGroup completed, whose record
    /// makes it Stable), or an empty membership once it has no members; `None` while a
    /// classic group rebalances (the last stored generation stands, as Kafka stores only
    /// completed generations).
    pub fn membership_to_store(&self) -> Option<GroupMembership> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        if let Some(consumer) = self.consumer.membership_to_store() {
            return Some(GroupMembership {
                generation: self.generation,
                protocol_type: String::new(),
                protocol_name: String::new(),
                leader: String::new(),
                members: Vec::new(),
                consumer: Some(consumer),
                share: None,
                version: MembershipVersion::default(),
            });
        }
        // The generation the leader's SyncGroup completed is stored before the group is
        // Stable (its record is what makes it so).
        let completed = self.state == GroupState::Stable
            || (self.state == GroupState::CompletingRebalance && self.sync_held);
        if completed {
            return Some(GroupMembership {
                generation: self.generation,
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                protocol_name: protocol.clone(),
                leader: self.leader.clone().unwrap_or_default(),
                members: self
                    .members_in_join_order()
                    .into_iter()
                    .map(|m| MemberRecord {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        session_timeout_ms: m.session_timeout.as_millis() as u64,
                        rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                        metadata: BASE64.encode(m.metadata_for(&protocol)),
                        assignment: BASE64.encode(&m.assignment),
                    })
                    .collect(),
                consumer: None,
                share: None,
                version: MembershipVersion::default(),
            });
        }
        (self.state == GroupState::Empty && self.members.is_empty()).then(|| GroupMembership {
            generation: self.generation,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: String::new(),
            members: Vec::new(),
            consumer: None,
            share: None,
            version: MembershipVersion::default(),
        })
    }

    /// A fingerprint of a stored membership, all of it: a classic group's changes when a
    /// generation completes or a static member is replaced, a KIP-848 group's at every
    /// epoch, subscription or assignment change. Not its version: a stored snapshot and
    /// the same membership taken again are the same.
    pub fn membership_mark(membership: &GroupMembership) -> u64 {
        let GroupMembership {
            generation,
            protocol_type,
            protocol_name,
            leader,
            members,
            consumer,
            share,
            version: _,
        } = membership;
        let mut hasher = DefaultHasher::new();
        (
            generation,
            protocol_type,
            protocol_name,
            leader,
            members,
            consumer,
            share,
        )
            .hash(&mut hasher);
        hasher.finish()
    }

    /// This broker no longer coordinates the group (its slot moved to another broker while
    /// this one stayed up): as Kafka's `onGroupUnloaded`, every member parked in JoinGroup
    /// or SyncGroup is answered NOT_COORDINATOR now (its client asks FindCoordinator and
    /// goes to the new coordinator) instead of at the rebalance timeout, and the membership,
    /// its timers and the KIP-848 state go, so no timer fires on it here and nothing of it is
    /// stored or shown again. Committed offsets stay: every node applies them (0018). A
    /// group with nothing else left is forgotten by the caller's tick (`is_forgettable`).
    pub fn unload_membership(&mut self, now: Instant) {
        for (id, m) in &mut self.members {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.tx.send(join_error(ResponseError::NotCoordinator, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.tx.send(sync_error(ResponseError::NotCoordinator));
            }
        }
        self.load_membership(None, now);
        // A KIP-848 group's epochs go too (a later take-over loads them from the store);
        // its rebalance count is a metric of this broker and stays.
        let rebalances_total = self.consumer.rebalances_total;
        self.consumer = ConsumerGroup::default();
        self.consumer.rebalances_total = rebalances_total;
        self.generation = 0;
        self.protocol_type = None;
        self.protocol_name = None;
        self.empty_since_ms = None;
        self.coordinator_epoch = None;
        self.stored_mark = None;
    }

    /// Drops the membership this broker held from an earlier time it coordinated the group
    /// (a waiting request is answered COORDINATOR_NOT_AVAILABLE by its caller) and loads
    /// `stored`, if it has members: KIP-848 members with their member epochs, or a classic
    /// generation as Stable, sessions starting `now`. Offsets stay. A member whose stored
    /// bytes are not base64 (never written so) gets empty ones, which only its own rejoin
    /// would mend.
    pub fn load_membership(&mut self, stored: Option<&GroupMembership>, now: Instant) {
        self.consumer
            .load(stored.and_then(|s| s.consumer.as_ref()), now);
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.rebalance_deadline = None;
        self.initial_delay = None;
        self.new_member_added = false;
        self.sync_held = false;
        self.leader = None;
        self.state = GroupState::Empty;
        if self.consumer.has_members() {
            self.empty_since_ms = None;
        }
        let Some(stored) = stored.filter(|s| !s.members.is_empty()) else {
            return;
        };
        self.generation = stored.generation;
        self.protocol_type = Some(stored.protocol_type.clone());
        self.protocol_name = Some(stored.protocol_name.clone());
        self.leader = Some(stored.leader.clone());
        for record in &stored.members {
            let decode = |s: &str| Bytes::from(BASE64.decode(s).unwrap_or_default());
            let session_timeout = Duration::from_millis(record.session_timeout_ms);
            let member = Member {
                member_id: record.member_id.clone(),
                group_instance_id: record.group_instance_id.clone(),
                client_id: record.client_id.clone(),
                client_host: record.client_host.clone(),
                session_timeout,
                rebalance_timeout: Duration::from_millis(record.rebalance_timeout_ms),
                protocols: vec![(stored.protocol_name.clone(), decode(&record.metadata))],
                assignment: decode(&record.assignment),
                session_deadline: now + session_timeout,
                join_waiter: None,
                sync_waiter: None,
                join_seq: self.next_join_seq,
            };
            self.next_join_seq += 1;
            if let Some(instance) = &record.group_instance_id {
                self.static_members
                    .insert(instance.clone(), record.member_id.clone());
            }
            self.members.insert(record.member_id.clone(), member);
        }
        self.state = GroupState::Stable;
        self.empty_since_ms = None;
    }
}
