//! One share group (KIP-932): its members, their subscriptions and epochs, the server-side
//! assignment of partitions to members (many members may share one partition), and the
//! share sessions its members fetch through (`sessions`).
//!
//! Owns: membership, epochs, the assignment and the sessions of one share group. Must not:
//! do I/O, read the clock (`now` is an argument), look up topics (the caller passes the
//! `TopicsView`) or know about in-flight records — those live with the partition.
//!
//! Calls go one way: `heartbeat` uses `assignor`; everything uses this file.

mod assignor;
mod heartbeat;
pub mod sessions;
mod stored;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::{GroupId, TopicName};

use super::consumer::TopicsView;
use super::wire::sb;
pub use heartbeat::{ShareHeartbeat, ShareTimeouts};
pub use sessions::ShareSessions;

/// Kafka's `group.share.max.size`: members one share group may have.
pub const MAX_SHARE_GROUP_MEMBERS: usize = 200;
/// Kafka's `group.share.session.timeout.ms`: a member silent this long is removed.
pub const SHARE_SESSION_TIMEOUT_MS: i32 = 45_000;
/// Kafka's `group.share.heartbeat.interval.ms`.
pub const SHARE_HEARTBEAT_INTERVAL_MS: i32 = 5_000;
/// The assignor's name in ShareGroupDescribe (Kafka's only share assignor).
pub const SIMPLE_ASSIGNOR: &str = "simple";
/// Longest member id accepted (clients send a base64 UUID of 22 characters).
pub const MAX_SHARE_MEMBER_ID_BYTES: usize = 64;

/// topic -> partitions.
pub type Partitions = BTreeMap<String, BTreeSet<i32>>;

pub struct ShareMember {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed: BTreeSet<String>,
    /// What the member was last told it is assigned.
    pub assigned: Partitions,
    session_deadline: Instant,
}

#[derive(Default)]
pub struct ShareGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// member id -> partitions the assignor gives it.
    target: BTreeMap<String, Partitions>,
    /// Partition counts of the subscribed topics the target was computed with.
    topics_seen: BTreeMap<String, i32>,
    /// The share sessions (ShareFetch / ShareAcknowledge) of this group's members.
    pub sessions: ShareSessions,
    /// Cluster mode: the coordinator slot's epoch this group was created or loaded under
    /// (decision 0028); another epoch means it is from an earlier time this broker
    /// coordinated it, and the stored one replaces it.
    pub coordinator_epoch: Option<i32>,
    /// Cluster mode: the fingerprint of the state last proposed to the metadata log.
    pub stored_mark: Option<u64>,
}

impl ShareGroup {
    /// "Empty" or "Stable", as Kafka names share group states (no rebalance phases: a
    /// share assignment never waits for a revocation).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// Whether `member_id` is a member right now (ShareFetch opens sessions only for them).
    pub fn is_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// Removes members whose session timed out, and share sessions of departed members
    /// left idle. Returns the removed member ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        let members = &self.members;
        self.sessions.reap(|m| members.contains_key(m), now);
        expired
    }

    fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
    }

    /// ShareGroupDescribe's view of this group.
    pub fn describe(&self, group_id: &str, topics: &TopicsView) -> DescribedGroup {
        let members = self
            .members
            .values()
            .map(|m| {
                let assignment = DescribedAssignment::default().with_topic_partitions(
                    m.assigned
                        .iter()
                        .map(|(t, ps)| {
                            DescribedTopicPartitions::default()
                                .with_topic_id(topics.get(t).map(|(id, _)| *id).unwrap_or_default())
                                .with_topic_name(TopicName(sb(t)))
                                .with_partitions(ps.iter().copied().collect())
                        })
                        .collect(),
                );
                DescribedMember::default()
                    .with_member_id(sb(&m.member_id))
                    .with_rack_id(m.rack_id.as_deref().map(sb))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(sb(&m.client_id))
                    .with_client_host(sb(&m.client_host))
                    .with_subscribed_topic_names(
                        m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                    )
                    .with_assignment(assignment)
            })
            .collect();
        DescribedGroup::default()
            .with_error_code(0)
            .with_group_id(GroupId(sb(group_id)))
            .with_group_state(sb(self.state_name()))
            .with_group_epoch(self.group_epoch)
            .with_assignment_epoch(self.assignment_epoch)
            .with_assignor_name(sb(SIMPLE_ASSIGNOR))
            .with_members(members)
            .with_authorized_operations(i32::MIN)
    }
}
