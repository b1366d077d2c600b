//! Cluster mode's metadata: the records the Raft metadata log carries, the cluster state
//! they build (registered brokers, fencing, every partition's replicas), and how the single
//! writer applies them. Every node applies the same committed records in log order to the
//! same `MetadataSnapshot`, so each record's validation is decided by the state it is applied
//! to, never by the node that proposed it: the answer is the same everywhere.
//! Must not: open partitions (the shard does that after an apply) or talk to the quorum.

use super::dynamic_broker::BrokerConfigLevel;
use super::group_offsets::{OffsetChange, check_record};
use super::placement::check_replicas;
pub use super::placement::place_replicas;
use super::{ConfigOp, MetadataError, MetadataSnapshot, MetadataView, MetadataWriter, TopicMeta};
use crate::config::LogConfig;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Largest encoded record a proposal may carry (a CreateTopics of 10,000 partitions with
/// replica lists fits well within it).
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

pub use super::registration::{ListenerEndpoint, RegisteredBroker};

/// What the metadata log adds to the single-node snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub brokers: BTreeMap<i32, RegisteredBroker>,
    /// Topic -> replicas of each partition; the first replica leads until a failover moves
    /// the leadership (`isr_changes`), the others follow the leader (they copy its log with
    /// Fetch).
    pub assignments: HashMap<String, Arc<Vec<Vec<i32>>>>,
    /// Next producer id no broker has been given yet.
    pub next_producer_id: i64,
    /// Index of the last applied log entry.
    pub applied_index: u64,
    /// Partitions whose ISR an AlterPartition changed: topic -> partition -> ISR and
    /// partition epoch. A partition not listed has its whole replica set in sync, epoch 0.
    #[serde(default)]
    pub isr_changes: HashMap<String, BTreeMap<i32, PartitionIsr>>,
    /// Reassignments in progress (KIP-455): topic -> partition -> the replicas being added
    /// and removed (`metadata::reassign`). Their replicas are already in `assignments`.
    #[serde(default)]
    pub reassignments: HashMap<String, BTreeMap<i32, super::reassign::Reassignment>>,
    /// Which broker coordinates the groups and transactional ids of each slot
    /// (`coordinator_slots`, decision 0024); empty in states written before it existed.
    #[serde(default)]
    pub coordinator_slots: Vec<super::coordinator_slots::CoordinatorSlot>,
    /// Finalized feature levels (decision 0027, `format_level`); none: level 1.
    #[serde(default)]
    pub features: BTreeMap<String, super::format_level::FinalizedLevel>,
    /// A fresh log whose format level the quorum leader may still raise to what every voter
    /// reads, without an UpdateFeatures (`format_level::bootstrap_target`).
    #[serde(default)]
    pub format_bootstrap_open: bool,
}

/// A partition's in-sync replicas (the leader first) and its partition epoch, bumped by
/// every change, as Kafka's `PartitionRecord` / `AlterPartition`; since failover also its
/// leader and leader epoch (Kafka's `PartitionChangeRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIsr {
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// `None`: the first replica (never failed over); `Some(NO_LEADER)`: offline, no live
    /// in-sync replica to elect (unclean election is off, as Kafka's default).
    #[serde(default)]
    pub leader: Option<i32>,
    /// Bumped by every leader change; stamped on the batches the leader appends.
    #[serde(default)]
    pub leader_epoch: i32,
}

/// Kafka's `LeaderConstants.NO_LEADER`.
pub const NO_LEADER: i32 = -1;

impl ClusterState {
    pub fn replicas(&self, topic: &str, partition: i32) -> &[i32] {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.assignments.get(topic)?.get(p))
            .map_or(&[], Vec::as_slice)
    }

    fn change(&self, topic: &str, partition: i32) -> Option<&PartitionIsr> {
        self.isr_changes.get(topic).and_then(|m| m.get(&partition))
    }

    /// The partition's leader; `None` when it has none (offline) or does not exist.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        match self.change(topic, partition).and_then(|c| c.leader) {
            Some(NO_LEADER) => None,
            Some(leader) => Some(leader),
            None => self.replicas(topic, partition).first().copied(),
        }
    }

    /// The partition's leader epoch (0 until its first failover).
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        self.change(topic, partition).map_or(0, |c| c.leader_epoch)
    }

    /// Whether `node` holds a replica of `topic`-`partition` that it does not lead.
    pub fn is_follower(&self, node: i32, topic: &str, partition: i32) -> bool {
        self.replicas(topic, partition).contains(&node)
            && self.leader(topic, partition) != Some(node)
    }

    /// The partitions `node` follows whose leader is `leader`, sorted by topic and partition
    /// (a replica fetcher's set; one fetch session covers them all).
    pub fn followed_from(&self, node: i32, leader: i32) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (topic, partitions) in &self.assignments {
            for (p, replicas) in partitions.iter().enumerate() {
                let p = i32::try_from(p).unwrap_or(i32::MAX);
                if node != leader
                    && replicas.contains(&node)
                    && self.leader(topic, p) == Some(leader)
                {
                    out.push((topic.clone(), p));
                }
            }
        }
        out.sort();
        out
    }

    /// The partition's in-sync replicas, the leader first.
    pub fn isr(&self, topic: &str, partition: i32) -> Vec<i32> {
        match self.isr_changes.get(topic).and_then(|m| m.get(&partition)) {
            Some(changed) => changed.isr.clone(),
            None => self.replicas(topic, partition).to_vec(),
        }
    }

    /// The partition epoch an AlterPartition must name to be applied.
    pub fn partition_epoch(&self, topic: &str, partition: i32) -> i32 {
        self.change(topic, partition)
            .map_or(0, |c| c.partition_epoch)
    }
}

impl MetadataSnapshot {
    /// Whether `node` serves `topic`-`partition`: on a single node every partition; in
    /// cluster mode only the ones it leads (followers hold a copy but serve no client).
    pub fn is_led_by(&self, node: i32, topic: &str, partition: i32) -> bool {
        match &self.cluster {
            None => true,
            Some(cluster) => cluster.leader(topic, partition) == Some(node),
        }
    }

    /// Whether `node` holds a follower replica of `topic`-`partition` (cluster mode only).
    pub fn is_followed_by(&self, node: i32, topic: &str, partition: i32) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.is_follower(node, topic, partition))
    }
}

/// One change to cluster metadata, as the log carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    CreateTopic {
        name: String,
        id: uuid::Uuid,
        replicas: Vec<Vec<i32>>,
        overrides: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        /// Replicas of each new partition, in partition order.
        new_replicas: Vec<Vec<i32>>,
    },
    AlterTopicConfig {
        name: String,
        changes: Vec<(String, ConfigOp)>,
        incremental: bool,
    },
    AlterBrokerConfig {
        level: BrokerConfigLevel,
        changes: Vec<(String, ConfigOp)>,
        incremental: bool,
    },
    AlterGroupConfig {
        group: String,
        changes: Vec<(String, ConfigOp)>,
        incremental: bool,
    },
    /// `host:port` is the inter-broker listener's; `endpoints` every listener's (absent
    /// from records written before they were carried).
    RegisterBroker {
        id: i32,
        host: String,
        port: i32,
        #[serde(default)]
        endpoints: Vec<ListenerEndpoint>,
        #[serde(default)]
        format_levels: super::format_level::LevelRange,
        /// This start of the broker's process (random per start; level 5, absent before):
        /// see `apply_register_broker` for what a new one ends.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incarnation: Option<u64>,
        /// The broker epoch of the registration this one takes over cleanly (Kafka's
        /// `PreviousBrokerEpoch`; `registration::Incarnations`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_epoch: Option<i64>,
        /// The incarnation of the start that stopped cleanly (`cluster::clean_stop`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_incarnation: Option<u64>,
    },
    /// Heartbeats stopped: the broker is fenced, its partitions get new leaders from their
    /// ISRs and it leaves every ISR (Kafka's fencing with its PartitionChangeRecords,
    /// derived at apply time from the applied state, so the same on every node).
    FenceBroker {
        id: i32,
    },
    /// SIGTERM (Kafka's BrokerHeartbeat `wantShutDown`): fencing asked by the broker itself;
    /// `epoch` (level 5): its registration's, stale once a later start registers.
    ControlledShutdown {
        id: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<i64>,
    },
    UnfenceBroker {
        id: i32,
    },
    /// Evens the coordinator slots out over the live brokers (decision 0024): proposed by
    /// the quorum leader once it saw them skewed on two consecutive checks.
    RebalanceCoordinators,
    AllocateProducerIds {
        broker: i32,
        count: i64,
    },
    /// The leader changes a partition's ISR (Kafka's AlterPartition): applied only when
    /// `partition_epoch` is the current one, so a stale leader's change is refused.
    AlterPartition {
        topic: String,
        partition: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
    },
    /// A group's committed offsets change (cluster mode's OffsetCommit, OffsetDelete,
    /// DeleteGroups, retention; `group_offsets`). `coordinator`: the broker that proposed it
    /// as the group's coordinator, checked at apply time (`None`: a transaction's commit).
    GroupOffsets {
        group: String,
        coordinator: Option<i32>,
        changes: Vec<OffsetChange>,
    },
    /// A classic group reached Stable or emptied (decision 0024, `group_membership`):
    /// applied only if `coordinator` holds the group's slot at `coordinator_epoch`.
    GroupMembership {
        group: String,
        coordinator: i32,
        coordinator_epoch: i32,
        membership: super::group_membership::GroupMembership,
    },
    /// A transactional id's whole state after a change (decision 0022, `txn_state`): the
    /// slot log's frame in base64 (`Dead`: a tombstone), the proposing coordinator (checked
    /// at apply) and the version of the state it was derived from (checked by the shard).
    TxnState {
        transactional_id: String,
        coordinator: i32,
        base_version: u64,
        metadata: String,
    },
    /// AlterPartitionReassignments for one partition (KIP-455): `Some` moves its replicas
    /// to `target`, `None` cancels the reassignment in progress (`metadata::reassign`).
    ReassignPartition {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// ElectLeaders for one partition (KIP-460): the preferred replica, or with `unclean`
    /// any live replica of a partition that has no leader.
    ElectLeader {
        topic: String,
        partition: i32,
        unclean: bool,
    },
    /// Changes nothing: a node proposes it after its start, and once it has applied it,
    /// it has applied every record committed before (as Kafka's broker replays up to the
    /// offset it registered at before it serves).
    CatchUp {
        node: i32,
    },
    /// UpdateFeatures raised a feature's finalized level (decision 0027, `format_level`).
    FinalizeFeature {
        name: String,
        level: i16,
    },
    /// ACLs, SCRAM credentials and client quotas (`security_records`).
    Security(super::security_records::SecurityRecord),
    /// A share group's state on a partition, from its leader (decision 0025).
    ShareState(super::share_state::ShareStateRecord),
    /// A share group's state reset or dropped by its coordinator (AlterShareGroupOffsets,
    /// DeleteShareGroupOffsets, DeleteGroups), in a new state epoch (`share_state_reset`).
    ShareStateReset(super::share_state_reset::ShareStateResetRecord),
}

/// A record with who proposed it, so the proposer can match the applied entry to its
/// waiting request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    pub origin: i32,
    pub sequence: u64,
    pub record: MetadataRecord,
}

impl Proposal {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Proposal, String> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(format!("record of {} bytes", bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// What an applied record changed, for the shard to act on.
#[derive(Debug, Clone)]
pub enum Applied {
    /// A topic was created (`from` = 0) or grew: partitions `from..` are new.
    Opened {
        topic: Arc<TopicMeta>,
        from: i32,
    },
    Deleted(Arc<TopicMeta>),
    /// Topics whose effective config changed.
    Reconfigured(Vec<Arc<TopicMeta>>),
    /// A block of producer ids given to `broker`.
    ProducerIds {
        broker: i32,
        start: i64,
        count: i64,
    },
    /// Broker registration or fencing: only the snapshot changed.
    Brokers,
    /// Partitions whose leader, leader epoch or ISR changed: each replica looks at its new
    /// role (leader, follower) and the leader at its new ISR.
    Partitions(Vec<(String, i32)>),
    /// A group's committed offsets changed: its owning shard applies the changes.
    GroupOffsets {
        group: String,
        changes: Vec<OffsetChange>,
    },
    /// ACLs, credentials or quotas changed (`security_records`).
    Security(super::security_records::SecurityApplied),
    /// A classic group's stored membership: its owning shard keeps it for a takeover.
    GroupMembership {
        group: String,
        membership: super::group_membership::GroupMembership,
    },
    /// A transactional id's state, valid and written by its coordinator: the id's owning
    /// shard replaces the id's state if `base_version` is still its version.
    TxnState {
        metadata: crate::txn::TxnMetadata,
        base_version: u64,
    },
    /// A share group's state on a partition, from its current leader: its owning shard keeps it.
    ShareState(super::share_state::ShareStateChange),
    /// A share group's states reset by its coordinator: every partition-owning shard
    /// applies it, and the partitions' leaders take the new state.
    ShareStateReset(super::share_state_reset::ShareStateReset),
}

/// Most producer ids one block hands a broker.
pub const MAX_PRODUCER_ID_BLOCK: i64 = 1_000_000;

impl MetadataWriter {
    /// The writer of a cluster-mode node: empty until the log (or a snapshot) is applied.
    /// `topics.json` is neither read nor written: the Raft log is the durable copy.
    pub fn open_replicated(
        data_dir: &Path,
        defaults: LogConfig,
        cluster_id: String,
    ) -> Result<(MetadataWriter, MetadataView), MetadataError> {
        let dir = data_dir.join("meta");
        std::fs::create_dir_all(&dir).map_err(|source| MetadataError::Io {
            path: dir.clone(),
            source,
        })?;
        let snapshot = MetadataSnapshot {
            cluster_id,
            cluster: Some(Arc::new(ClusterState::default())),
            ..MetadataSnapshot::default()
        };
        let view = Arc::new(ArcSwap::from_pointee(snapshot));
        let writer = MetadataWriter {
            path: dir.join("topics.json"),
            defaults,
            view: view.clone(),
            producer_ids: std::cell::RefCell::new(super::ProducerIdAllocator::open(&dir)?),
        };
        Ok((writer, view))
    }

    /// Cluster mode: the next id of the block the quorum gave this broker; none left until
    /// the next block is applied (`take_producer_id_block`).
    pub(super) fn allocate_replicated_producer_id(&self) -> Result<i64, MetadataError> {
        let mut ids = self.producer_ids.borrow_mut();
        if ids.next >= ids.block_end {
            return Err(MetadataError::ProducerIdsPending);
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Cluster mode: ids this broker may still hand out from its current block.
    pub fn producer_ids_left(&self) -> i64 {
        let ids = self.producer_ids.borrow();
        (ids.block_end - ids.next).max(0)
    }

    /// Cluster mode: a block the applied log gave this broker replaces the spent one.
    pub fn take_producer_id_block(&self, start: i64, count: i64) {
        let mut ids = self.producer_ids.borrow_mut();
        ids.next = start;
        ids.block_end = start.saturating_add(count);
    }

    pub(super) fn cluster_state(&self) -> ClusterState {
        self.snapshot()
            .cluster
            .as_deref()
            .cloned()
            .unwrap_or_default()
    }

    /// Publishes `cluster` (and bumps the applied index) on top of the current snapshot.
    pub(super) fn publish_cluster(&self, cluster: ClusterState) -> Result<(), MetadataError> {
        let mut next = (*self.snapshot()).clone();
        next.cluster = Some(Arc::new(cluster));
        self.publish(next)
    }

    /// Applies one committed record at log `index`. An `Err` is the record's answer (the
    /// same on every node); the state is unchanged by it, except for the applied index.
    pub fn apply_record(
        &self,
        index: u64,
        record: &MetadataRecord,
    ) -> Result<Applied, MetadataError> {
        let result = self
            .cluster_state()
            .check_writable(record)
            .and_then(|()| self.apply_inner(index, record));
        let mut cluster = self.cluster_state();
        cluster.applied_index = index;
        let mut next = (*self.snapshot()).clone();
        next.cluster = Some(Arc::new(cluster));
        self.view.store(Arc::new(next));
        result
    }

    /// An entry with no record (a new quorum leader's) was applied at `index`.
    pub fn mark_applied(&self, index: u64) {
        let mut cluster = self.cluster_state();
        cluster.applied_index = index;
        let mut next = (*self.snapshot()).clone();
        next.cluster = Some(Arc::new(cluster));
        self.view.store(Arc::new(next));
    }

    fn apply_inner(&self, index: u64, record: &MetadataRecord) -> Result<Applied, MetadataError> {
        match record {
            MetadataRecord::CreateTopic {
                name,
                id,
                replicas,
                overrides,
            } => self.apply_create_topic(name, *id, replicas, overrides.clone()),
            MetadataRecord::DeleteTopic { name } => {
                let topic = self.delete_topic(name)?;
                let mut cluster = self.cluster_state();
                cluster.assignments.remove(name);
                cluster.isr_changes.remove(name);
                cluster.reassignments.remove(name);
                self.publish_cluster(cluster)?;
                Ok(Applied::Deleted(topic))
            }
            MetadataRecord::CreatePartitions { name, new_replicas } => {
                let mut cluster = self.cluster_state();
                check_replicas(&cluster, new_replicas)?;
                let before = self.snapshot().topic(name).map_or(0, |t| t.partitions);
                let added = i32::try_from(new_replicas.len()).unwrap_or(i32::MAX);
                let topic = self.create_partitions(name, before.saturating_add(added), false)?;
                let mut assigned = cluster
                    .assignments
                    .get(name)
                    .map(|a| (**a).clone())
                    .unwrap_or_default();
                assigned.extend(new_replicas.iter().cloned());
                cluster.assignments.insert(name.clone(), Arc::new(assigned));
                self.publish_cluster(cluster)?;
                Ok(Applied::Opened {
                    topic,
                    from: before,
                })
            }
            MetadataRecord::AlterTopicConfig {
                name,
                changes,
                incremental,
            } => {
                let topic = self.alter_topic_config(name, changes, *incremental, false)?;
                Ok(Applied::Reconfigured(vec![topic]))
            }
            MetadataRecord::AlterBrokerConfig {
                level,
                changes,
                incremental,
            } => {
                let changed = self.alter_broker_config(*level, changes, *incremental, false)?;
                Ok(Applied::Reconfigured(changed))
            }
            MetadataRecord::AlterGroupConfig {
                group,
                changes,
                incremental,
            } => {
                self.alter_group_config(group, changes, *incremental, false)?;
                Ok(Applied::Brokers)
            }
            MetadataRecord::RegisterBroker {
                id,
                host,
                port,
                endpoints,
                format_levels,
                incarnation,
                previous_epoch,
                previous_incarnation,
            } => self.apply_register_broker(
                *id,
                host,
                *port,
                endpoints,
                *format_levels,
                super::registration::Incarnations {
                    this: *incarnation,
                    previous_epoch: *previous_epoch,
                    previous_incarnation: *previous_incarnation,
                },
            ),
            MetadataRecord::FinalizeFeature { name, level } => {
                self.apply_finalize_feature(index, name, *level)
            }
            MetadataRecord::FenceBroker { id } => self.apply_fencing(*id, true),
            MetadataRecord::ControlledShutdown { id, epoch } => {
                self.apply_controlled_shutdown(*id, *epoch)
            }
            MetadataRecord::UnfenceBroker { id } => self.apply_fencing(*id, false),
            MetadataRecord::RebalanceCoordinators => {
                let mut cluster = self.cluster_state();
                cluster.rebalance_slots();
                self.publish_cluster(cluster)?;
                Ok(Applied::Brokers)
            }
            MetadataRecord::AlterPartition {
                topic,
                partition,
                isr,
                partition_epoch,
            } => self.apply_alter_partition(topic, *partition, isr, *partition_epoch),
            MetadataRecord::ReassignPartition {
                topic,
                partition,
                target,
            } => {
                let mut cluster = self.cluster_state();
                cluster
                    .alter_reassignment(topic, *partition, target.as_deref())
                    .map_err(|(code, message)| MetadataError::PartitionChange { code, message })?;
                self.publish_cluster(cluster)?;
                Ok(Applied::Partitions(vec![(topic.clone(), *partition)]))
            }
            MetadataRecord::ElectLeader {
                topic,
                partition,
                unclean,
            } => {
                let mut cluster = self.cluster_state();
                cluster
                    .elect(topic, *partition, *unclean)
                    .map_err(|(code, message)| MetadataError::PartitionChange { code, message })?;
                self.publish_cluster(cluster)?;
                Ok(Applied::Partitions(vec![(topic.clone(), *partition)]))
            }
            MetadataRecord::CatchUp { .. } => Ok(Applied::Brokers),
            MetadataRecord::ShareState(r) => Ok(Applied::ShareState(
                r.check(self.snapshot().cluster.as_deref())?,
            )),
            // The one record whose effect depends on its index: the state epoch it gives.
            MetadataRecord::ShareStateReset(r) => Ok(Applied::ShareStateReset(
                r.check(self.snapshot().cluster.as_deref(), index)?,
            )),
            MetadataRecord::Security(record) => Ok(Applied::Security(self.apply_security(record)?)),
            MetadataRecord::GroupOffsets {
                group,
                coordinator,
                changes,
            } => {
                let snapshot = self.snapshot();
                check_record(snapshot.cluster.as_deref(), group, *coordinator, changes)?;
                Ok(Applied::GroupOffsets {
                    group: group.clone(),
                    changes: changes.clone(),
                })
            }
            MetadataRecord::GroupMembership {
                group,
                coordinator,
                coordinator_epoch,
                membership,
            } => {
                super::group_membership::check_record(
                    self.snapshot().cluster.as_deref(),
                    group,
                    *coordinator,
                    *coordinator_epoch,
                    membership,
                )?;
                Ok(Applied::GroupMembership {
                    group: group.clone(),
                    membership: membership.clone(),
                })
            }
            MetadataRecord::TxnState {
                transactional_id,
                coordinator,
                base_version,
                metadata,
            } => Ok(Applied::TxnState {
                metadata: super::txn_state::check_record(
                    self.snapshot().cluster.as_deref(),
                    transactional_id,
                    *coordinator,
                    metadata,
                )?,
                base_version: *base_version,
            }),
            MetadataRecord::AllocateProducerIds { broker, count } => {
                let count = (*count).clamp(1, MAX_PRODUCER_ID_BLOCK);
                let mut cluster = self.cluster_state();
                let start = cluster.next_producer_id;
                cluster.next_producer_id = start.saturating_add(count);
                self.publish_cluster(cluster)?;
                Ok(Applied::ProducerIds {
                    broker: *broker,
                    start,
                    count,
                })
            }
        }
    }

    fn apply_create_topic(
        &self,
        name: &str,
        id: uuid::Uuid,
        replicas: &[Vec<i32>],
        overrides: BTreeMap<String, String>,
    ) -> Result<Applied, MetadataError> {
        let mut cluster = self.cluster_state();
        check_replicas(&cluster, replicas)?;
        let partitions = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
        // Validates name, count, existence and configs against the state applied so far.
        let validated = self.create_topic(name, partitions, -1, overrides, true)?;
        let topic = Arc::new(TopicMeta {
            id,
            ..(*validated).clone()
        });
        let mut next = (*self.snapshot()).clone();
        if next.topic_names_by_id.contains_key(&id) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        next.topic_names_by_id.insert(id, topic.name.clone());
        next.topics.insert(topic.name.clone(), topic.clone());
        cluster
            .assignments
            .insert(topic.name.clone(), Arc::new(replicas.to_vec()));
        next.cluster = Some(Arc::new(cluster));
        self.publish(next)?;
        Ok(Applied::Opened { topic, from: 0 })
    }
}

#[cfg(test)]
#[path = "replicated_tests.rs"]
pub(crate) mod tests;
