//! A KIP-848 group as the metadata log stores it (cluster mode, decision 0024): the
//! group's epochs, target assignment and members as a `ConsumerMembership`, and loading
//! one on the broker that takes the group's coordinator slot over, as Kafka's coordinator
//! replays its ConsumerGroup* records: every member keeps its member epoch and
//! assignment, its session starts now, and what it was last sent counts as sent (a member
//! that reports owning something else gets its assignment again, `record_owned`).
//!
//! Owns: the conversion both ways. Must not: decide when to store or load (the
//! coordinator's `membership` does) or read the clock (`now` is an argument).

use std::time::{Duration, Instant};

use super::{ConsumerGroup, ConsumerMember};
use crate::metadata::group_membership::{
    ConsumerMemberRecord, ConsumerMembership, partitions_from_record as from_record,
    partitions_to_record as to_record,
};

impl ConsumerGroup {
    /// What the metadata log keeps of this group; `None` without members (an emptied
    /// group stores the classic empty record, which forgets it).
    pub fn membership_to_store(&self) -> Option<ConsumerMembership> {
        if self.members.is_empty() {
            return None;
        }
        Some(ConsumerMembership {
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
                .map(|m| ConsumerMemberRecord {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_epoch: m.member_epoch,
                    previous_epoch: m.previous_epoch,
                    subscribed: m.subscribed.iter().cloned().collect(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                    assigned: to_record(&m.assigned),
                    pending_revocation: to_record(&m.pending_revocation),
                    target: self
                        .target
                        .get(&m.member_id)
                        .map(to_record)
                        .unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Replaces this group's members by `stored` (none: the group is empty). Sessions, and
    /// a pending revocation's deadline, start `now`; the group's timeouts stay as they are
    /// (the next heartbeat refreshes them from its configs).
    pub fn load(&mut self, stored: Option<&ConsumerMembership>, now: Instant) {
        self.members.clear();
        self.target.clear();
        self.topics_seen.clear();
        let Some(stored) = stored else {
            return;
        };
        self.group_epoch = stored.group_epoch;
        self.assignment_epoch = stored.assignment_epoch;
        self.topics_seen = stored.topics_seen.iter().cloned().collect();
        let session_deadline = now + self.session_timeout();
        for record in &stored.members {
            let rebalance_timeout = Duration::from_millis(record.rebalance_timeout_ms);
            let assigned = from_record(&record.assigned);
            let pending_revocation = from_record(&record.pending_revocation);
            let revocation_deadline =
                (!pending_revocation.is_empty()).then(|| now + rebalance_timeout);
            let member = ConsumerMember {
                member_id: record.member_id.clone(),
                instance_id: record.instance_id.clone(),
                rack_id: record.rack_id.clone(),
                client_id: record.client_id.clone(),
                client_host: record.client_host.clone(),
                member_epoch: record.member_epoch,
                previous_epoch: record.previous_epoch,
                subscribed: record.subscribed.iter().cloned().collect(),
                rebalance_timeout,
                sent: Some(assigned.clone()),
                assigned,
                pending_revocation,
                revocation_deadline,
                session_deadline,
            };
            self.target
                .insert(record.member_id.clone(), from_record(&record.target));
            self.members.insert(record.member_id.clone(), member);
        }
    }
}
