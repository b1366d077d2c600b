//! The share group's assignor (Kafka's SimpleAssignor in spirit): every partition of a
//! subscribed topic goes to at least one subscriber and every subscriber gets at least one
//! partition of each topic it subscribes to. With more members than partitions, members
//! share partitions — the share-partition state hands each record to one member only, so
//! sharing is safe, and it is what lets a one-partition topic feed many workers.
//!
//! Owns: computing the target assignment. Must not: change members' epochs.

use std::collections::BTreeMap;

use super::{Partitions, ShareGroup};
use crate::group::consumer::TopicsView;

impl ShareGroup {
    /// Partition counts of the topics members subscribe to, as the cluster has them now.
    pub(super) fn subscribed_topic_counts(&self, topics: &TopicsView) -> BTreeMap<String, i32> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .filter_map(|t| topics.get(t).map(|(_, count)| (t.clone(), *count)))
            .collect()
    }

    /// Recomputes the target when membership, subscriptions or partition counts changed.
    pub(super) fn refresh_target(&mut self, topics: &TopicsView) {
        let counts = self.subscribed_topic_counts(topics);
        if self.assignment_epoch == self.group_epoch && counts == self.topics_seen {
            return;
        }
        if counts != self.topics_seen && self.assignment_epoch == self.group_epoch {
            // A topic grew (or appeared): a new group epoch, as Kafka bumps it on metadata.
            self.group_epoch += 1;
        }
        let mut target: BTreeMap<String, Partitions> = self
            .members
            .keys()
            .map(|id| (id.clone(), Partitions::new()))
            .collect();
        for (topic, &partition_count) in &counts {
            // Members in id order: the same inputs always give the same answer.
            let subscribers: Vec<&String> = self
                .members
                .values()
                .filter(|m| m.subscribed.contains(topic))
                .map(|m| &m.member_id)
                .collect();
            for (member_index, partition) in spread(subscribers.len(), partition_count) {
                if let Some(parts) = target.get_mut(subscribers[member_index]) {
                    parts.entry(topic.clone()).or_default().insert(partition);
                }
            }
        }
        self.target = target;
        self.topics_seen = counts;
        self.assignment_epoch = self.group_epoch;
    }

    /// The partitions the assignor gives `member_id`.
    pub(super) fn target_of(&self, member_id: &str) -> Partitions {
        self.target.get(member_id).cloned().unwrap_or_default()
    }
}

/// (member index, partition) pairs spreading `partitions` over `members`: round-robin
/// partitions over members when there are at least as many partitions, else round-robin
/// members over partitions (so partitions are shared as evenly as possible).
pub(super) fn spread(members: usize, partitions: i32) -> Vec<(usize, i32)> {
    if members == 0 || partitions <= 0 {
        return Vec::new();
    }
    let partition_count = partitions as usize;
    if members <= partition_count {
        (0..partitions).map(|p| (p as usize % members, p)).collect()
    } else {
        (0..members)
            .map(|m| (m, (m % partition_count) as i32))
            .collect()
    }
}
