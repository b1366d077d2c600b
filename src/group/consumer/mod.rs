//! The next-generation consumer group protocol (KIP-848) for one group: members heartbeat
//! (ConsumerGroupHeartbeat) with their subscription and owned partitions, and the
//! coordinator computes the assignment itself (a sticky uniform assignor) and hands it out
//! incrementally — a partition moves only after its previous owner has acknowledged the
//! revocation, so no partition ever has two owners.
//!
//! Simplifications against Kafka: one server assignor (`uniform`, also answering to
//! `range`), no regex subscriptions, no rack awareness; a member that does not revoke within
//! its rebalance timeout is fenced (removed).
//!
//! Owns: membership, epochs and reconciliation of one consumer group. Must not: do I/O, read
//! the clock (`now` is an argument) or look up topics — the caller passes the topics it
//! knows as `TopicsView`.
//!
//! This file holds the group's data and what the rest of the coordinator reads from it;
//! members come and go in `heartbeat` (heartbeats and session expiry), and the assignor and
//! reconciliation are in `assignor`; `stored` is the group as the metadata log keeps it in
//! cluster mode. Calls go one way: `heartbeat` uses `assignor`, all use this file.

mod assignor;
mod heartbeat;
mod stored;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::{GroupId, TopicName};
use uuid::Uuid;

use super::wire::sb;
use crate::config::group_config::GroupTimeouts;

/// How often members heartbeat (Kafka's `group.consumer.heartbeat.interval.ms` is 5 s; a
/// shorter interval makes reconciliation, which takes a few heartbeats, quicker).
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: i32 = 1_000;
/// A member silent this long is removed (Kafka's `group.consumer.session.timeout.ms`).
pub const CONSUMER_SESSION_TIMEOUT_MS: u64 = 45_000;
/// The assignor used whatever the client asks for (Kafka's default server assignor).
pub const UNIFORM_ASSIGNOR: &str = "uniform";
/// Member epochs a heartbeat uses to leave (dynamic and static member).
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;
/// Subscribed topics one member may list.
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;

/// Topics known to the cluster: name -> (topic id, partition count).
pub type TopicsView = HashMap<String, (Uuid, i32)>;

/// topic -> partitions.
type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// Partitions in a topic -> partitions map.
fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    pub subscribed: BTreeSet<String>,
    rebalance_timeout: Duration,
    /// What the member has been told to own.
    pub assigned: Partitions,
    /// Told to give these up; still theirs until a heartbeat no longer lists them.
    pending_revocation: Partitions,
    revocation_deadline: Option<Instant>,
    session_deadline: Instant,
    /// The assignment last sent, so an unchanged one is not repeated.
    sent: Option<Partitions>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// member id -> partitions the assignor wants it to own.
    target: BTreeMap<String, Partitions>,
    /// Partition counts of subscribed topics the target was computed with.
    topics_seen: BTreeMap<String, i32>,
    /// Completed target computations (rebalances), for metrics.
    pub rebalances_total: u64,
    /// The group's session timeout and heartbeat interval (its GROUP configs, else the
    /// broker defaults), refreshed from metadata on every heartbeat.
    pub timeouts: Option<GroupTimeouts>,
}

/// The broker's defaults for every consumer group without configs of its own.
pub const DEFAULT_TIMEOUTS: GroupTimeouts = GroupTimeouts {
    session_timeout_ms: CONSUMER_SESSION_TIMEOUT_MS as i32,
    heartbeat_interval_ms: CONSUMER_HEARTBEAT_INTERVAL_MS,
};

/// Who is asking, for ConsumerGroupDescribe.
pub struct ClientIdentity<'a> {
    pub client_id: &'a str,
    pub client_host: &'a str,
}

impl ConsumerGroup {
    fn session_timeout(&self) -> Duration {
        let ms = self.timeouts.unwrap_or(DEFAULT_TIMEOUTS).session_timeout_ms;
        Duration::from_millis(ms.max(0) as u64)
    }

    fn heartbeat_interval_ms(&self) -> i32 {
        self.timeouts
            .unwrap_or(DEFAULT_TIMEOUTS)
            .heartbeat_interval_ms
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// The member's last answer was not delivered: its next one carries its assignment.
    pub fn resend_assignment(&mut self, member_id: &str) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.sent = None;
        }
    }

    /// "Empty", "Assigning", "Reconciling" or "Stable", as Kafka names them.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch != self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// OffsetCommit's check for a member of this group (Kafka: STALE_MEMBER_EPOCH when the
    /// epoch is not the member's current one).
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        let Some(m) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if epoch != m.member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// ConsumerGroupDescribe's view of this group.
    pub fn describe(&self, group_id: &str, topics: &TopicsView) -> DescribedGroup {
        let tps = |p: &Partitions| -> DescribedAssignment {
            DescribedAssignment::default().with_topic_partitions(
                p.iter()
                    .map(|(t, ps)| {
                        DescribedTopicPartitions::default()
                            .with_topic_id(topics.get(t).map(|(id, _)| *id).unwrap_or_default())
                            .with_topic_name(TopicName(sb(t)))
                            .with_partitions(ps.iter().copied().collect())
                    })
                    .collect(),
            )
        };
        let members = self
            .members
            .values()
            .map(|m| {
                DescribedMember::default()
                    .with_member_id(sb(&m.member_id))
                    .with_instance_id(m.instance_id.as_deref().map(sb))
                    .with_rack_id(m.rack_id.as_deref().map(sb))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(sb(&m.client_id))
                    .with_client_host(sb(&m.client_host))
                    .with_subscribed_topic_names(
                        m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                    )
                    .with_assignment(tps(&m.assigned))
                    .with_target_assignment(tps(&self
                        .target
                        .get(&m.member_id)
                        .cloned()
                        .unwrap_or_default()))
            })
            .collect();
        DescribedGroup::default()
            .with_error_code(0)
            .with_group_id(GroupId(sb(group_id)))
            .with_group_state(sb(self.state_name()))
            .with_group_epoch(self.group_epoch)
            .with_assignment_epoch(self.assignment_epoch)
            .with_assignor_name(sb(UNIFORM_ASSIGNOR))
            .with_members(members)
            .with_authorized_operations(i32::MIN)
    }

    /// Partitions assigned right now, for tests: member id -> count.
    pub fn assigned_counts(&self) -> BTreeMap<String, usize> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), count(&m.assigned)))
            .collect()
    }
}
