//! A share group as the metadata log stores it (cluster mode, decision 0028): its epochs,
//! target assignment and members as a `ShareMembership`, and loading one on the broker that
//! takes the group's coordinator slot over, as Kafka's coordinator replays its ShareGroup*
//! records from `__consumer_offsets`: every member keeps its member epoch and assignment and
//! its session starts now, so members that heartbeat on are not fenced.
//!
//! Owns: the conversion both ways. Must not: decide when to store or load (the
//! coordinator's `share_membership` does) or read the clock (`now` is an argument).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use super::{ShareGroup, ShareMember, ShareSessions};
use crate::metadata::group_membership::{
    ShareMemberRecord, ShareMembership, partitions_from_record as from_record,
    partitions_to_record as to_record,
};

impl ShareGroup {
    /// What the metadata log keeps of this group: all of it but the sessions (they live
    /// with connections, and a partition's leader holds its own) and the deadlines.
    pub fn membership_to_store(&self) -> ShareMembership {
        ShareMembership {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            topics_seen: self
                .topics_seen
                .iter()
                .map(|(t, n)| (t.clone(), *n))
                .collect(),
            members: self
                .members
                .values()
                .map(|m| ShareMemberRecord {
                    member_id: m.member_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_epoch: m.member_epoch,
                    subscribed: m.subscribed.iter().cloned().collect(),
                    assigned: to_record(&m.assigned),
                    target: self
                        .target
                        .get(&m.member_id)
                        .map(to_record)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// A fingerprint of what `membership_to_store` gives: whether a change must be stored.
    pub fn stored_fingerprint(membership: &ShareMembership) -> u64 {
        let mut hasher = DefaultHasher::new();
        membership.hash(&mut hasher);
        hasher.finish()
    }

    /// The group as `stored` describes it, every member's session timing out
    /// `session_timeout` from `now` (Kafka schedules the loaded members' session timeouts
    /// at load), with `sessions` (share sessions this broker already held for the group as
    /// a partition leader, which stay valid).
    pub fn load(
        stored: &ShareMembership,
        sessions: ShareSessions,
        session_timeout: Duration,
        now: Instant,
    ) -> ShareGroup {
        let session_deadline = now + session_timeout;
        let members = stored
            .members
            .iter()
            .map(|r| {
                let member = ShareMember {
                    member_id: r.member_id.clone(),
                    rack_id: r.rack_id.clone(),
                    client_id: r.client_id.clone(),
                    client_host: r.client_host.clone(),
                    member_epoch: r.member_epoch,
                    subscribed: r.subscribed.iter().cloned().collect(),
                    assigned: from_record(&r.assigned),
                    session_deadline,
                };
                (r.member_id.clone(), member)
            })
            .collect();
        let target = stored
            .members
            .iter()
            .map(|r| (r.member_id.clone(), from_record(&r.target)))
            .collect();
        ShareGroup {
            group_epoch: stored.group_epoch,
            assignment_epoch: stored.assignment_epoch,
            members,
            target,
            topics_seen: stored.topics_seen.iter().cloned().collect(),
            sessions,
            coordinator_epoch: None,
            stored_mark: Some(Self::stored_fingerprint(stored)),
        }
    }
}
