//! Kafka's controller elections, applied to the cluster state (issue 17 stage 3, decision
//! 0012 "Failover"): when a broker is fenced or shuts down, the partitions it led get a new
//! leader from their ISR with the leader epoch bumped (unclean election off), and it leaves
//! every ISR; when it comes back, partitions left without a leader it was in sync for get
//! it back. Run at apply time on every node from the same applied state, so each record's
//! partition changes (Kafka's PartitionChangeRecords) are the same everywhere.
//! Must not: open partitions or talk to the quorum.

use super::MetadataError;
use super::replicated::{Applied, ClusterState, NO_LEADER, PartitionIsr};

/// Kafka's INELIGIBLE_REPLICA error code: an AlterPartition adds a replica that may not join.
pub const INELIGIBLE_REPLICA: i16 = 107;

impl ClusterState {
    /// Kafka's auto leader rebalance (`auto.leader.rebalance.enable`): partitions, at most
    /// `limit`, in name order, led by another broker than their preferred replica (the
    /// first) while that one is live and in the ISR, so a preferred election would succeed.
    /// Partitions being reassigned are left alone, as Kafka's controller leaves them.
    pub fn imbalanced_leaders(&self, limit: usize) -> Vec<(String, i32)> {
        let mut topics: Vec<&String> = self.assignments.keys().collect();
        topics.sort();
        let mut out = Vec::new();
        for topic in topics {
            let partitions = self.assignments.get(topic).map_or(0, |a| a.len());
            for index in 0..partitions {
                if out.len() >= limit {
                    return out;
                }
                let partition = i32::try_from(index).unwrap_or(i32::MAX);
                let Some(&preferred) = self.replicas(topic, partition).first() else {
                    continue;
                };
                let moving = self
                    .reassignments
                    .get(topic)
                    .is_some_and(|m| m.contains_key(&partition));
                if !moving
                    && self.leader(topic, partition) != Some(preferred)
                    && self.is_live(preferred)
                    && self.isr(topic, partition).contains(&preferred)
                {
                    out.push((topic.clone(), partition));
                }
            }
        }
        out
    }

    /// Kafka's controller on fencing or controlled shutdown of `broker`
    /// (`generateLeaderAndIsrUpdates`): every partition it leads gets a new leader, the
    /// first live replica (in replica order) of its ISR, with the leader epoch bumped — or
    /// none (offline) when no live ISR member is left, unclean election being off; `broker`
    /// leaves every ISR it is in (the last member of an offline partition's ISR stays, as
    /// Kafka keeps it, so it can lead again when it comes back). Returns the partitions
    /// whose leader or ISR changed.
    pub fn elect_without(&mut self, broker: i32) -> Vec<(String, i32)> {
        let mut changed = Vec::new();
        let mut topics: Vec<&String> = self.assignments.keys().collect();
        topics.sort();
        let mut updates = Vec::new();
        for topic in topics {
            for (p, replicas) in self.assignments[topic].iter().enumerate() {
                if !replicas.contains(&broker) {
                    continue;
                }
                let p = i32::try_from(p).unwrap_or(i32::MAX);
                let isr = self.isr(topic, p);
                let leader = self.leader(topic, p);
                if !isr.contains(&broker) && leader != Some(broker) {
                    continue;
                }
                let rest: Vec<i32> = isr.iter().copied().filter(|&r| r != broker).collect();
                let new_leader = if leader == Some(broker) || leader.is_none() {
                    replicas
                        .iter()
                        .copied()
                        .find(|r| rest.contains(r) && self.is_live(*r))
                } else {
                    leader
                };
                let new_isr = match new_leader {
                    Some(l) => leader_first(l, &rest),
                    // Offline: the ISR keeps its last member (Kafka never empties it).
                    None if rest.is_empty() => isr.clone(),
                    None => rest,
                };
                updates.push((topic.clone(), p, new_leader, new_isr));
            }
        }
        for (topic, p, new_leader, new_isr) in updates {
            if self.set_partition(&topic, p, new_leader, new_isr) {
                changed.push((topic, p));
            }
        }
        changed
    }

    /// Kafka's controller when `broker` registers or is unfenced: partitions left without
    /// a leader whose ISR holds it get it as leader (a clean election: it was in sync when
    /// the partition went offline). Returns the partitions that changed.
    pub fn elect_returning(&mut self, broker: i32) -> Vec<(String, i32)> {
        let mut updates = Vec::new();
        for (topic, partitions) in &self.isr_changes {
            for (p, change) in partitions {
                if change.leader == Some(NO_LEADER) && change.isr.contains(&broker) {
                    updates.push((topic.clone(), *p, leader_first(broker, &change.isr)));
                }
            }
        }
        updates.sort();
        let mut changed = Vec::new();
        for (topic, p, isr) in updates {
            if self.set_partition(&topic, p, Some(broker), isr) {
                changed.push((topic, p));
            }
        }
        changed
    }

    /// Records a partition's new leader (`None`: offline) and ISR, bumping the partition
    /// epoch and, when the leader changed, the leader epoch. False when nothing changed.
    fn set_partition(&mut self, topic: &str, p: i32, leader: Option<i32>, isr: Vec<i32>) -> bool {
        let old_leader = self.leader(topic, p);
        let old_isr = self.isr(topic, p);
        if old_leader == leader && old_isr == isr {
            return false;
        }
        self.write_partition(topic, p, old_leader, leader, isr);
        true
    }

    /// Records the partition's leader and ISR explicitly, bumping the partition epoch and,
    /// when the leader changes from `old_leader`, the leader epoch (the one place a
    /// partition change is staged: failover, ISR changes, elections and reassignments).
    pub(super) fn write_partition(
        &mut self,
        topic: &str,
        partition: i32,
        old_leader: Option<i32>,
        leader: Option<i32>,
        isr: Vec<i32>,
    ) {
        let leader_epoch = self.leader_epoch(topic, partition);
        let change = PartitionIsr {
            isr,
            partition_epoch: self.partition_epoch(topic, partition).saturating_add(1),
            leader: Some(leader.unwrap_or(NO_LEADER)),
            leader_epoch: if old_leader == leader {
                leader_epoch
            } else {
                leader_epoch.saturating_add(1)
            },
        };
        self.isr_changes
            .entry(topic.to_string())
            .or_default()
            .insert(partition, change);
    }
}

/// `isr` with `leader` moved to the front (the ISR lists the leader first).
fn leader_first(leader: i32, isr: &[i32]) -> Vec<i32> {
    let mut out = Vec::with_capacity(isr.len() + 1);
    out.push(leader);
    out.extend(isr.iter().copied().filter(|&r| r != leader));
    out
}

impl super::MetadataWriter {
    /// AlterPartition: the new ISR must start with the leader and hold only replicas, and
    /// the epoch must be current (a leader deposed since it looked gets refused).
    pub(super) fn apply_alter_partition(
        &self,
        topic: &str,
        partition: i32,
        isr: &[i32],
        partition_epoch: i32,
    ) -> Result<Applied, MetadataError> {
        let mut cluster = self.cluster_state();
        let replicas = cluster.replicas(topic, partition).to_vec();
        if replicas.is_empty() {
            return Err(MetadataError::UnknownTopic(topic.to_string()));
        }
        if partition_epoch != cluster.partition_epoch(topic, partition) {
            return Err(MetadataError::InvalidPartitions(
                partition,
                "stale partition epoch",
            ));
        }
        let leader = cluster.leader(topic, partition);
        let valid = leader.is_some()
            && isr.first().copied() == leader
            && isr.iter().all(|r| replicas.contains(r))
            && isr.len() <= replicas.len();
        if !valid {
            return Err(MetadataError::InvalidPartitions(
                partition,
                "ISR not of its replicas",
            ));
        }
        // Kafka's INELIGIBLE_REPLICA (KIP-841): a fenced broker, or one in controlled
        // shutdown (fenced here too), does not join an ISR; it would be elected while gone.
        let current = cluster.isr(topic, partition);
        if let Some(ineligible) = isr
            .iter()
            .find(|r| !current.contains(r) && !cluster.is_live(**r))
        {
            return Err(MetadataError::PartitionChange {
                code: INELIGIBLE_REPLICA,
                message: format!(
                    "broker {ineligible} is fenced or shutting down: not added to the ISR"
                ),
            });
        }
        let changed = PartitionIsr {
            isr: isr.to_vec(),
            partition_epoch: partition_epoch.saturating_add(1),
            leader,
            leader_epoch: cluster.leader_epoch(topic, partition),
        };
        cluster
            .isr_changes
            .entry(topic.to_string())
            .or_default()
            .insert(partition, changed);
        // The leader's ISR expansion is what completes a reassignment (Kafka's
        // `maybeCompleteReassignment` on AlterPartition).
        cluster.maybe_complete_reassignment(topic, partition);
        self.publish_cluster(cluster)?;
        Ok(Applied::Partitions(vec![(topic.to_string(), partition)]))
    }
}
