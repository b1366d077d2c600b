//! Partition reassignment (KIP-455) and leader elections on request (KIP-460), applied to
//! the cluster state by every node from the same applied records, as Kafka's
//! `ReplicationControlManager` does with `PartitionReassignmentReplicas` and
//! `PartitionChangeBuilder` (decision 0019).
//!
//! A reassignment to `target` keeps the partition's replicas the union of the original and
//! the target (target first, then the replicas being removed), with `adding` = target -
//! original and `removing` = original - target, as Kafka's `PartitionRecord` carries them.
//! The new replicas follow the leader like any follower; once every adding replica is in
//! the ISR (an AlterPartition from the leader, checked when it is applied) the reassignment
//! completes: replicas = target, ISR = ISR ∩ target, a leader being removed hands over to
//! the first live in-sync target replica. Cancelling reverts to the original replicas.
//! Must not: open or delete partitions (the shards act on the applied change) or talk to
//! the quorum.

use super::replicated::ClusterState;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// Largest replica list a reassignment may name (Kafka has no explicit bound; a broker id
/// named more often than there are brokers is refused anyway, this bounds the check).
pub const MAX_REASSIGNMENT_REPLICAS: usize = 64;

/// A reassignment in progress (Kafka's `addingReplicas` / `removingReplicas`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A refused reassignment or election: Kafka's error code and message.
pub type ChangeError = (i16, String);

fn refused(error: ResponseError, message: String) -> ChangeError {
    (error.code(), message)
}

impl ClusterState {
    /// The reassignment of `topic`-`partition` in progress, if any.
    pub fn reassignment(&self, topic: &str, partition: i32) -> Option<&Reassignment> {
        self.reassignments.get(topic)?.get(&partition)
    }

    /// The replicas before the reassignment in progress (all of them when none is).
    pub fn original_replicas(&self, topic: &str, partition: i32) -> Vec<i32> {
        let adding = self
            .reassignment(topic, partition)
            .map(|r| r.adding.clone())
            .unwrap_or_default();
        self.replicas(topic, partition)
            .iter()
            .copied()
            .filter(|r| !adding.contains(r))
            .collect()
    }

    /// Whether the partition exists in the cluster state.
    fn has_partition(&self, topic: &str, partition: i32) -> bool {
        !self.replicas(topic, partition).is_empty()
    }

    /// Replaces the partition's replica list (the assignment is shared: copy on write).
    fn set_replicas(&mut self, topic: &str, partition: i32, replicas: Vec<i32>) {
        let Ok(index) = usize::try_from(partition) else {
            return;
        };
        if let Some(assigned) = self.assignments.get_mut(topic)
            && index < assigned.len()
        {
            std::sync::Arc::make_mut(assigned)[index] = replicas;
        }
    }

    /// Kafka's `validateManualPartitionAssignment`: not empty, no broker twice, every broker
    /// registered.
    fn check_target(&self, target: &[i32]) -> Result<(), ChangeError> {
        if target.is_empty() || target.len() > MAX_REASSIGNMENT_REPLICAS {
            return Err(refused(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "The manual partition assignment includes {} replicas (1 to {MAX_REASSIGNMENT_REPLICAS} allowed).",
                    target.len()
                ),
            ));
        }
        for (i, broker) in target.iter().enumerate() {
            if target[..i].contains(broker) {
                return Err(refused(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "The manual partition assignment includes broker {broker} more than once."
                    ),
                ));
            }
            if !self.brokers.contains_key(broker) {
                return Err(refused(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "The manual partition assignment includes broker {broker}, but no such broker is registered."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// AlterPartitionReassignments for one partition: `Some(target)` starts (or replaces)
    /// a reassignment, `None` cancels the one in progress. Returns whether the partition's
    /// replicas, leader or ISR changed.
    pub fn alter_reassignment(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
    ) -> Result<bool, ChangeError> {
        if !self.has_partition(topic, partition) {
            return Err(refused(
                ResponseError::UnknownTopicOrPartition,
                format!("Unable to find partition {topic}-{partition}."),
            ));
        }
        let original = self.original_replicas(topic, partition);
        let target: Vec<i32> = match target {
            Some(target) => {
                self.check_target(target)?;
                target.to_vec()
            }
            None if self.reassignment(topic, partition).is_none() => {
                return Err(refused(
                    ResponseError::NoReassignmentInProgress,
                    format!("No ongoing reassignment for partition {topic}-{partition}."),
                ));
            }
            // A cancel reverts to the original replicas.
            None => original.clone(),
        };
        // Kafka's PartitionReassignmentReplicas, computed from the original replicas (a
        // reassignment replacing another one starts over from them).
        let removing: Vec<i32> = original
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        let adding: Vec<i32> = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        let replicas: Vec<i32> = target.iter().chain(removing.iter()).copied().collect();

        let old_leader = self.leader(topic, partition);
        let old_isr = self.isr(topic, partition);
        let old_replicas = self.replicas(topic, partition).to_vec();
        let mut isr: Vec<i32> = old_isr
            .iter()
            .copied()
            .filter(|r| replicas.contains(r))
            .collect();
        let leader = match old_leader {
            Some(l) if replicas.contains(&l) => Some(l),
            // The leader was a replica being added by the reassignment this one replaces.
            _ => replicas
                .iter()
                .copied()
                .find(|r| isr.contains(r) && self.is_live(*r)),
        };
        if let Some(l) = leader {
            isr = leader_first(l, &isr);
        } else if isr.is_empty() {
            // Offline: the ISR keeps a member to come back with (as Kafka never empties it).
            isr = old_isr.clone();
        }
        let changed = replicas != old_replicas || leader != old_leader || isr != old_isr;
        if changed {
            self.write_partition(topic, partition, old_leader, leader, isr);
            self.set_replicas(topic, partition, replicas);
        }
        let entries = self.reassignments.entry(topic.to_string()).or_default();
        if adding.is_empty() && removing.is_empty() {
            entries.remove(&partition);
        } else {
            entries.insert(partition, Reassignment { adding, removing });
        }
        if entries.is_empty() {
            self.reassignments.remove(topic);
        }
        let completed = self.maybe_complete_reassignment(topic, partition);
        Ok(changed || completed)
    }

    /// Kafka's `maybeCompleteReassignment`: once every adding replica is in the ISR, the
    /// replicas become the target, the removed ones leave the ISR, and a leader being
    /// removed hands over to the first live in-sync target replica (the reassignment waits
    /// while there is none). Returns whether it completed.
    pub fn maybe_complete_reassignment(&mut self, topic: &str, partition: i32) -> bool {
        let Some(reassignment) = self.reassignment(topic, partition).cloned() else {
            return false;
        };
        let isr = self.isr(topic, partition);
        if !reassignment.adding.iter().all(|r| isr.contains(r)) {
            return false;
        }
        let target: Vec<i32> = self
            .replicas(topic, partition)
            .iter()
            .copied()
            .filter(|r| !reassignment.removing.contains(r))
            .collect();
        let new_isr: Vec<i32> = isr.iter().copied().filter(|r| target.contains(r)).collect();
        let old_leader = self.leader(topic, partition);
        let leader = match old_leader {
            Some(l) if target.contains(&l) => Some(l),
            _ => target
                .iter()
                .copied()
                .find(|r| new_isr.contains(r) && self.is_live(*r)),
        };
        let Some(leader) = leader else {
            return false;
        };
        self.write_partition(
            topic,
            partition,
            old_leader,
            Some(leader),
            leader_first(leader, &new_isr),
        );
        self.set_replicas(topic, partition, target);
        if let Some(entries) = self.reassignments.get_mut(topic) {
            entries.remove(&partition);
            if entries.is_empty() {
                self.reassignments.remove(topic);
            }
        }
        true
    }

    /// ElectLeaders for one partition (KIP-460). Preferred: the first replica leads when
    /// it is live and in the ISR. Unclean: only for a partition without a leader, a live
    /// ISR member if there is one, else the first live replica outside it (data the old
    /// ISR had may be lost: that is what unclean means). Returns the partition changed, or
    /// Kafka's answer when no election happened.
    pub fn elect(&mut self, topic: &str, partition: i32, unclean: bool) -> Result<(), ChangeError> {
        if !self.has_partition(topic, partition) {
            return Err(refused(
                ResponseError::UnknownTopicOrPartition,
                format!("No such topic partition {topic}-{partition}."),
            ));
        }
        let replicas = self.replicas(topic, partition).to_vec();
        let isr = self.isr(topic, partition);
        let leader = self.leader(topic, partition);
        let not_needed = || {
            refused(
                ResponseError::ElectionNotNeeded,
                "Leader election not needed for topic partition.".into(),
            )
        };
        let (elected, new_isr) = if unclean {
            if leader.is_some() {
                return Err(not_needed());
            }
            let clean = replicas
                .iter()
                .copied()
                .find(|r| isr.contains(r) && self.is_live(*r));
            match clean {
                Some(r) => (r, leader_first(r, &isr)),
                None => match replicas.iter().copied().find(|r| self.is_live(*r)) {
                    Some(r) => (r, vec![r]),
                    None => {
                        return Err(refused(
                            ResponseError::EligibleLeadersNotAvailable,
                            format!("No live replica of {topic}-{partition} to elect."),
                        ));
                    }
                },
            }
        } else {
            let Some(&preferred) = replicas.first() else {
                return Err(not_needed());
            };
            if leader == Some(preferred) {
                return Err(not_needed());
            }
            if !self.is_live(preferred) || !isr.contains(&preferred) {
                return Err(refused(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!(
                        "Failed to elect leader for partition {topic}-{partition} under strategy PreferredReplicaPartitionLeaderElectionStrategy: broker {preferred} is not live and in sync."
                    ),
                ));
            }
            (preferred, leader_first(preferred, &isr))
        };
        self.write_partition(topic, partition, leader, Some(elected), new_isr);
        Ok(())
    }

    /// Every reassignment in progress, sorted by topic and partition.
    pub fn reassignments_in_progress(&self) -> Vec<(String, i32, Reassignment)> {
        let mut out: Vec<(String, i32, Reassignment)> = self
            .reassignments
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |(p, r)| (t.clone(), *p, r.clone())))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

/// `isr` with `leader` moved to the front (the ISR lists the leader first).
fn leader_first(leader: i32, isr: &[i32]) -> Vec<i32> {
    let mut out = Vec::with_capacity(isr.len() + 1);
    out.push(leader);
    out.extend(isr.iter().copied().filter(|&r| r != leader));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::replicated::PartitionIsr;
    use crate::metadata::replicated::RegisteredBroker;
    use std::sync::Arc;

    fn state(brokers: &[i32], replicas: Vec<i32>) -> ClusterState {
        let mut s = ClusterState::default();
        for &id in brokers {
            s.brokers.insert(
                id,
                RegisteredBroker {
                    id,
                    host: "h".into(),
                    port: 1,
                    fenced: false,
                    epoch: 0,
                    endpoints: Vec::new(),
                    format_levels: Default::default(),
                    incarnation: None,
                },
            );
        }
        s.assignments.insert("t".into(), Arc::new(vec![replicas]));
        s
    }

    fn in_sync(s: &mut ClusterState, isr: Vec<i32>) {
        let leader = s.leader("t", 0);
        let epoch = s.leader_epoch("t", 0);
        let partition_epoch = s.partition_epoch("t", 0) + 1;
        s.isr_changes.entry("t".into()).or_default().insert(
            0,
            PartitionIsr {
                isr,
                partition_epoch,
                leader,
                leader_epoch: epoch,
            },
        );
    }

    #[test]
    fn a_reassignment_follows_kafkas_replica_arithmetic_and_completes_once_in_sync() {
        let mut s = state(&[1, 2, 3], vec![1]);
        assert!(s.alter_reassignment("t", 0, Some(&[2, 3])).unwrap());
        assert_eq!(s.replicas("t", 0), &[2, 3, 1]);
        let r = s.reassignment("t", 0).unwrap().clone();
        assert_eq!((r.adding, r.removing), (vec![2, 3], vec![1]));
        // Still led by 1, the only member of the ISR: the new replicas are not in it.
        assert_eq!(s.leader("t", 0), Some(1));
        assert_eq!(s.isr("t", 0), vec![1]);
        assert!(!s.maybe_complete_reassignment("t", 0));
        in_sync(&mut s, vec![1, 2]);
        assert!(!s.maybe_complete_reassignment("t", 0), "3 not in sync yet");
        in_sync(&mut s, vec![1, 2, 3]);
        let epoch = s.leader_epoch("t", 0);
        assert!(s.maybe_complete_reassignment("t", 0));
        assert_eq!(s.replicas("t", 0), &[2, 3]);
        assert_eq!(s.leader("t", 0), Some(2), "the removed leader handed over");
        assert_eq!(s.isr("t", 0), vec![2, 3]);
        assert_eq!(s.leader_epoch("t", 0), epoch + 1);
        assert!(s.reassignments_in_progress().is_empty());
    }

    #[test]
    fn cancel_reverts_and_errors_are_kafkas() {
        let mut s = state(&[1, 2, 3], vec![1, 2]);
        let err = s.alter_reassignment("t", 0, None).unwrap_err();
        assert_eq!(err.0, ResponseError::NoReassignmentInProgress.code());
        let err = s.alter_reassignment("t", 0, Some(&[1, 9])).unwrap_err();
        assert_eq!(err.0, ResponseError::InvalidReplicaAssignment.code());
        let err = s.alter_reassignment("t", 0, Some(&[1, 1])).unwrap_err();
        assert_eq!(err.0, ResponseError::InvalidReplicaAssignment.code());
        let err = s.alter_reassignment("t", 0, Some(&[])).unwrap_err();
        assert_eq!(err.0, ResponseError::InvalidReplicaAssignment.code());
        let err = s.alter_reassignment("t", 5, Some(&[1])).unwrap_err();
        assert_eq!(err.0, ResponseError::UnknownTopicOrPartition.code());
        s.alter_reassignment("t", 0, Some(&[1, 2, 3])).unwrap();
        assert_eq!(s.replicas("t", 0), &[1, 2, 3]);
        assert_eq!(s.isr("t", 0), vec![1, 2]);
        assert_eq!(s.reassignments_in_progress().len(), 1);
        s.alter_reassignment("t", 0, None).unwrap();
        assert_eq!(s.replicas("t", 0), &[1, 2]);
        assert_eq!(s.isr("t", 0), vec![1, 2]);
        assert!(s.reassignment("t", 0).is_none());
        // A pure shrink completes at once: every (no) adding replica is in sync.
        s.alter_reassignment("t", 0, Some(&[2])).unwrap();
        assert_eq!(s.replicas("t", 0), &[2]);
        assert_eq!(s.leader("t", 0), Some(2));
        assert_eq!(s.isr("t", 0), vec![2]);
        assert!(s.reassignment("t", 0).is_none());
    }

    #[test]
    fn preferred_and_unclean_elections() {
        let mut s = state(&[1, 2, 3], vec![1, 2, 3]);
        let err = s.elect("t", 0, false).unwrap_err();
        assert_eq!(err.0, ResponseError::ElectionNotNeeded.code());
        // 1 fails over to 2, comes back, catches up.
        s.brokers.get_mut(&1).unwrap().fenced = true;
        s.elect_without(1);
        assert_eq!(s.leader("t", 0), Some(2));
        let err = s.elect("t", 0, false).unwrap_err();
        assert_eq!(err.0, ResponseError::PreferredLeaderNotAvailable.code());
        s.brokers.get_mut(&1).unwrap().fenced = false;
        let err = s.elect("t", 0, false).unwrap_err();
        assert_eq!(
            err.0,
            ResponseError::PreferredLeaderNotAvailable.code(),
            "1 is live but not back in the ISR"
        );
        assert!(
            s.imbalanced_leaders(10).is_empty(),
            "not in sync: no candidate"
        );
        in_sync(&mut s, vec![2, 3, 1]);
        assert_eq!(s.imbalanced_leaders(10), vec![("t".to_string(), 0)]);
        assert!(s.imbalanced_leaders(0).is_empty(), "the limit holds");
        let mut moving = s.clone();
        let mut fourth = moving.brokers[&1].clone();
        fourth.id = 4;
        moving.brokers.insert(4, fourth);
        moving.alter_reassignment("t", 0, Some(&[1, 2, 4])).unwrap();
        assert!(moving.reassignment("t", 0).is_some());
        assert!(
            moving.imbalanced_leaders(10).is_empty(),
            "a partition being reassigned is left alone"
        );
        let epoch = s.leader_epoch("t", 0);
        s.elect("t", 0, false).unwrap();
        assert!(s.imbalanced_leaders(10).is_empty());
        assert_eq!(s.leader("t", 0), Some(1));
        assert_eq!(s.isr("t", 0), vec![1, 2, 3]);
        assert_eq!(s.leader_epoch("t", 0), epoch + 1);
        let err = s.elect("t", 0, true).unwrap_err();
        assert_eq!(err.0, ResponseError::ElectionNotNeeded.code());
        // Unclean: the ISR's only member is gone, a live replica outside it takes over.
        in_sync(&mut s, vec![1]);
        s.brokers.get_mut(&1).unwrap().fenced = true;
        s.elect_without(1);
        assert_eq!(s.leader("t", 0), None);
        s.elect("t", 0, true).unwrap();
        assert_eq!(s.leader("t", 0), Some(2));
        assert_eq!(s.isr("t", 0), vec![2]);
    }
}
