//! Cluster metadata: topics, their ids, partition counts and config overrides.
//!
//! One writer, many readers. `MetadataWriter` lives on shard 0 only; it validates a change,
//! persists `<data_dir>/meta/topics.json` atomically, then publishes a new immutable
//! `MetadataSnapshot` through an `ArcSwap`. Every shard reads the current snapshot with a
//! wait-free load. Handlers never change metadata themselves: they ask shard 0.
//! Must not: open or delete partition logs (the owning shards do that when told).

mod acls;
mod config_ops;
pub mod coordinator_slots;
mod create;
pub mod credentials;
pub mod dynamic_broker;
mod elections;
pub mod format_level;
pub mod group_membership;
pub mod group_offsets;
mod placement;
pub mod quotas;
pub mod reassign;
pub mod registration;
pub mod replicated;
pub mod replicated_image;
pub mod security_records;
pub mod share_state;
pub mod share_state_reset;
pub mod txn_state;

use config_ops::edit_list;
pub use config_ops::{ConfigOp, effective_config};
pub use create::NewTopicSpec;

use crate::config::{LogConfig, TopicConfigError};
use arc_swap::ArcSwap;
use dynamic_broker::{BrokerConfigLevel, DynamicBrokerConfigs};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kafka's limit on topic-name length.
pub const MAX_TOPIC_NAME_BYTES: usize = 249;
/// Upper bound on partitions per topic, so one request cannot create millions of files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Upper bound on topics in one broker (each partition holds open files and memory).
pub const MAX_TOPICS: usize = 100_000;

pub type MetadataView = Arc<ArcSwap<MetadataSnapshot>>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Only the keys set for this topic; everything else comes from the broker defaults.
    pub overrides: BTreeMap<String, String>,
    /// Effective config: broker defaults with `overrides` applied.
    #[serde(skip)]
    pub config: LogConfig,
}

#[derive(Debug, Clone, Default)]
pub struct MetadataSnapshot {
    pub cluster_id: String,
    pub topics: HashMap<String, Arc<TopicMeta>>,
    pub topic_names_by_id: HashMap<uuid::Uuid, String>,
    /// Bumped on every change; lets caches notice staleness cheaply.
    pub version: u64,
    /// GROUP config resources: group id -> the configs set on it.
    pub group_configs: HashMap<String, Arc<BTreeMap<String, String>>>,
    /// Dynamic broker configs (per broker and cluster default), folded into every topic's
    /// effective config.
    pub dynamic_broker: Arc<DynamicBrokerConfigs>,
    /// Partitions their owning shard could not open (or took offline): topic -> partition
    /// -> why. Run-time state, never persisted: each start finds them again.
    pub offline_partitions: Arc<HashMap<String, BTreeMap<i32, String>>>,
    /// SCRAM credentials per user and mechanism (issue 20): salted keys, never passwords.
    pub scram_credentials: Arc<credentials::ScramCredentials>,
    /// Cluster mode only (`None` on a single node): registered brokers and every
    /// partition's replicas, as applied from the metadata log (`replicated`).
    pub cluster: Option<Arc<replicated::ClusterState>>,
    /// Every ACL, indexed for the authorizer (`security::authorizer`).
    pub acls: Arc<crate::security::authorizer::AclSet>,
    /// Client quotas per user / client-id entity (issue 20, `quotas`).
    pub client_quotas: Arc<quotas::ClientQuotas>,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// Why `topic`-`partition` is offline, or `None` when it is served.
    pub fn offline_reason(&self, topic: &str, partition: i32) -> Option<&str> {
        if self.offline_partitions.is_empty() {
            return None;
        }
        self.offline_partitions
            .get(topic)
            .and_then(|parts| parts.get(&partition))
            .map(String::as_str)
    }

    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<&Arc<TopicMeta>> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    #[error("invalid topic name `{0}`: {1}")]
    InvalidTopicName(String, &'static str),
    #[error("invalid partition count {0}: {1}")]
    InvalidPartitions(i32, &'static str),
    #[error("replication factor {0} is not possible on a single broker")]
    InvalidReplicationFactor(i16),
    #[error(transparent)]
    InvalidConfig(#[from] TopicConfigError),
    #[error("too many topics (limit {MAX_TOPICS})")]
    TooManyTopics,
    #[error("too many groups with configs (limit {MAX_GROUP_CONFIGS})")]
    TooManyGroupConfigs,
    #[error("no producer id block from the metadata quorum yet")]
    ProducerIdsPending,
    #[error("too many ACLs (limit {})", crate::security::authorizer::MAX_ACLS)]
    TooManyAcls,
    #[error(
        "too many client quota entities (limit {})",
        quotas::MAX_QUOTA_ENTITIES
    )]
    TooManyQuotaEntities,
    #[error("group {0}: an offsets record with too many changes, or no group id")]
    InvalidOffsets(String),
    #[error("transactional id {0}: a state record that is oversized, corrupt or of another id")]
    InvalidTxnState(String),
    #[error(
        "group {group}: a membership of {bytes} bytes is past the {limit}-byte limit of one record"
    )]
    MembershipTooLarge {
        group: String,
        bytes: usize,
        limit: usize,
    },
    /// A group's or transactional id's change proposed by a broker that does not coordinate
    /// it (any more).
    #[error("{group}: broker {proposer} wrote as its coordinator, but {current:?} is")]
    NotCoordinator {
        group: String,
        proposer: i32,
        current: Option<i32>,
    },
    /// A reassignment or election refused (`reassign`): Kafka's code and message.
    #[error("{message}")]
    PartitionChange { code: i16, message: String },
    /// A record or registration the finalized format level refuses (`format_level`).
    #[error("{message}")]
    FeatureLevel { code: i16, message: String },
    #[error("cannot persist metadata at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata file {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
}

impl MetadataError {
    pub fn kafka_error_code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            MetadataError::TopicExists(_) => E::TopicAlreadyExists.code(),
            MetadataError::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
            MetadataError::InvalidTopicName(..) => E::InvalidTopicException.code(),
            MetadataError::InvalidPartitions(..) => E::InvalidPartitions.code(),
            MetadataError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor.code(),
            MetadataError::InvalidConfig(_) => E::InvalidConfig.code(),
            MetadataError::TooManyTopics
            | MetadataError::TooManyGroupConfigs
            | MetadataError::TooManyAcls
            | MetadataError::TooManyQuotaEntities => E::PolicyViolation.code(),
            MetadataError::Io { .. } | MetadataError::Corrupt { .. } => E::KafkaStorageError.code(),
            MetadataError::ProducerIdsPending => E::CoordinatorNotAvailable.code(),
            MetadataError::InvalidOffsets(_)
            | MetadataError::InvalidTxnState(_)
            | MetadataError::MembershipTooLarge { .. } => E::InvalidRequest.code(),
            MetadataError::NotCoordinator { .. } => E::NotCoordinator.code(),
            MetadataError::PartitionChange { code, .. }
            | MetadataError::FeatureLevel { code, .. } => *code,
        }
    }
}

/// Kafka's topic-name rules: 1..=249 bytes of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let bad = |why| Err(MetadataError::InvalidTopicName(name.to_string(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_TOPIC_NAME_BYTES {
        return bad("longer than 249 bytes");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct PersistedMetadata {
    cluster_id: String,
    topics: Vec<TopicMeta>,
    #[serde(default)]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    dynamic_broker: DynamicBrokerConfigs,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram_credentials: credentials::PersistedScramCredentials,
    #[serde(default)]
    acls: Vec<crate::security::acl::AclBinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    client_quotas: Vec<quotas::PersistedQuota>,
}

/// Groups that may carry configs, so a client cannot grow the metadata file without bound.
pub const MAX_GROUP_CONFIGS: usize = 100_000;

/// The single writer of cluster metadata (shard 0).
pub struct MetadataWriter {
    path: PathBuf,
    defaults: LogConfig,
    view: MetadataView,
    producer_ids: std::cell::RefCell<ProducerIdAllocator>,
}

/// Producer ids handed out per persisted block: one small fsync'ed write per block.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids that are never reused, even after a crash: the end of the
/// current block is persisted before any id of it is given out.
struct ProducerIdAllocator {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIdAllocator {
    fn open(dir: &Path) -> Result<ProducerIdAllocator, MetadataError> {
        let path = dir.join("producer_ids");
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|e| MetadataError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(MetadataError::Io { path, source }),
        };
        Ok(ProducerIdAllocator {
            path,
            next: start,
            block_end: start,
        })
    }

    fn allocate(&mut self) -> Result<i64, MetadataError> {
        if self.next >= self.block_end {
            let end = self.block_end + PRODUCER_ID_BLOCK_SIZE;
            write_atomically(&self.path, end.to_string().as_bytes()).map_err(|source| {
                MetadataError::Io {
                    path: self.path.clone(),
                    source,
                }
            })?;
            self.next = self.block_end;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

impl MetadataWriter {
    /// Loads `<data_dir>/meta/topics.json` (or starts empty) and returns the writer and the
    /// view every shard will read.
    pub fn open(
        data_dir: &Path,
        defaults: LogConfig,
    ) -> Result<(MetadataWriter, MetadataView), MetadataError> {
        let dir = data_dir.join("meta");
        crate::storage::state::create_dir_durably(&dir).map_err(|source| MetadataError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("topics.json");
        let mut snapshot = MetadataSnapshot::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let persisted: PersistedMetadata =
                    serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                snapshot.cluster_id = persisted.cluster_id;
                snapshot.group_configs = persisted
                    .group_configs
                    .into_iter()
                    .map(|(group, configs)| (group, Arc::new(configs)))
                    .collect();
                let corrupt = |message: String| MetadataError::Corrupt {
                    path: path.clone(),
                    message,
                };
                let topic_defaults = persisted
                    .dynamic_broker
                    .topic_defaults(&defaults)
                    .map_err(|e| corrupt(format!("dynamic broker configs: {e}")))?;
                snapshot.dynamic_broker = Arc::new(persisted.dynamic_broker);
                snapshot.scram_credentials = Arc::new(
                    credentials::ScramCredentials::from_persisted(persisted.scram_credentials)
                        .map_err(|e| corrupt(format!("SCRAM credentials: {e}")))?,
                );
                snapshot.acls = Arc::new(crate::security::authorizer::AclSet::new(persisted.acls));
                snapshot.client_quotas = Arc::new(quotas::ClientQuotas::from_persisted(
                    persisted.client_quotas,
                ));
                for mut topic in persisted.topics {
                    topic.config =
                        effective_config(&topic_defaults, &topic.overrides).map_err(|e| {
                            MetadataError::Corrupt {
                                path: path.clone(),
                                message: format!("topic {}: {e}", topic.name),
                            }
                        })?;
                    snapshot
                        .topic_names_by_id
                        .insert(topic.id, topic.name.clone());
                    snapshot.topics.insert(topic.name.clone(), Arc::new(topic));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                snapshot.cluster_id = uuid::Uuid::new_v4().simple().to_string();
            }
            Err(source) => return Err(MetadataError::Io { path, source }),
        }
        let view = Arc::new(ArcSwap::from_pointee(snapshot));
        let writer = MetadataWriter {
            path,
            defaults,
            view: view.clone(),
            producer_ids: std::cell::RefCell::new(ProducerIdAllocator::open(&dir)?),
        };
        writer.persist(&writer.view.load())?;
        Ok((writer, view))
    }

    /// A producer id never handed out before (InitProducerId).
    pub fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        if self.view.load().cluster.is_some() {
            return self.allocate_replicated_producer_id();
        }
        self.producer_ids.borrow_mut().allocate()
    }

    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.view.load_full()
    }

    /// Creates one topic (see `create_topics`, which a CreateTopics request uses).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let spec = NewTopicSpec {
            name: name.to_string(),
            partitions,
            replication_factor,
            overrides,
        };
        self.create_topics(vec![spec], validate_only)
            .pop()
            .unwrap_or_else(|| Err(MetadataError::UnknownTopic(name.to_string())))
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetadataError> {
        let current = self.snapshot();
        let topic = current
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let mut next = (*current).clone();
        next.topics.remove(name);
        next.topic_names_by_id.remove(&topic.id);
        if next.offline_partitions.contains_key(name) {
            let mut offline = (*next.offline_partitions).clone();
            offline.remove(name);
            next.offline_partitions = Arc::new(offline);
        }
        self.publish(next)?;
        Ok(topic)
    }

    /// Grows a topic to `total` partitions (Kafka never shrinks them).
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let current = self.snapshot();
        let topic = current
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if total <= topic.partitions {
            return Err(MetadataError::InvalidPartitions(
                total,
                "must be larger than the current count",
            ));
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err(MetadataError::InvalidPartitions(
                total,
                "above the limit of 10000",
            ));
        }
        let mut grown = (**topic).clone();
        grown.partitions = total;
        self.replace_topic(&current, grown, validate_only)
    }

    /// Replaces (`incremental == false`) or edits the topic's overrides.
    pub fn alter_topic_config(
        &self,
        name: &str,
        changes: &[(String, ConfigOp)],
        incremental: bool,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let current = self.snapshot();
        let topic = current
            .topics
            .get(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let defaults = self.topic_defaults(&current)?;
        let mut overrides = if incremental {
            topic.overrides.clone()
        } else {
            BTreeMap::new()
        };
        for (key, op) in changes {
            match op {
                ConfigOp::Set(v) => {
                    overrides.insert(key.clone(), v.clone());
                }
                ConfigOp::Delete => {
                    overrides.remove(key);
                }
                ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                    let current = match overrides.get(key) {
                        Some(current) => current.clone(),
                        None => defaults.get(key).unwrap_or_default(),
                    };
                    let edited = edit_list(key, &current, v, matches!(op, ConfigOp::Append(_)))?;
                    overrides.insert(key.clone(), edited);
                }
            }
        }
        let config = effective_config(&defaults, &overrides)?;
        let mut altered = (**topic).clone();
        altered.overrides = overrides;
        altered.config = config;
        self.replace_topic(&current, altered, validate_only)
    }

    /// The topic defaults in force: the static file's with the dynamic broker configs on top.
    fn topic_defaults(&self, snapshot: &MetadataSnapshot) -> Result<LogConfig, MetadataError> {
        Ok(snapshot.dynamic_broker.topic_defaults(&self.defaults)?)
    }

    /// Edits one level of the dynamic broker configs and re-derives every topic's effective
    /// config from the new defaults. Returns the topics whose effective config changed (their
    /// partitions must be told).
    pub fn alter_broker_config(
        &self,
        level: BrokerConfigLevel,
        changes: &[(String, ConfigOp)],
        incremental: bool,
        validate_only: bool,
    ) -> Result<Vec<Arc<TopicMeta>>, MetadataError> {
        let current = self.snapshot();
        let dynamic = current
            .dynamic_broker
            .edited(&self.defaults, level, changes, incremental)?;
        let defaults = dynamic.topic_defaults(&self.defaults)?;
        let mut changed = Vec::new();
        for topic in current.topics.values() {
            let config = effective_config(&defaults, &topic.overrides)?;
            if config != topic.config {
                let mut altered = (**topic).clone();
                altered.config = config;
                changed.push(Arc::new(altered));
            }
        }
        if validate_only {
            return Ok(Vec::new());
        }
        let mut next = (*current).clone();
        next.dynamic_broker = Arc::new(dynamic);
        for topic in &changed {
            next.topics.insert(topic.name.clone(), topic.clone());
        }
        self.publish(next)?;
        Ok(changed)
    }

    /// Sets or deletes configs of one group (GROUP config resource); `Err` is the message
    /// INVALID_CONFIG carries.
    pub fn alter_group_config(
        &self,
        group: &str,
        changes: &[(String, ConfigOp)],
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let current = self.snapshot();
        let mut configs = match (incremental, current.group_configs.get(group)) {
            (true, Some(existing)) => (**existing).clone(),
            _ => BTreeMap::new(),
        };
        for (key, op) in changes {
            let invalid =
                |message: String| MetadataError::InvalidConfig(TopicConfigError::Conflict(message));
            match op {
                ConfigOp::Set(value) => {
                    crate::config::group_config::check_group_config(key, value).map_err(invalid)?;
                    configs.insert(key.clone(), value.trim().to_string());
                }
                ConfigOp::Delete => {
                    configs.remove(key);
                }
                ConfigOp::Append(_) | ConfigOp::Subtract(_) => {
                    return Err(invalid(format!(
                        "Config value append/subtract is not allowed for config key: {key}"
                    )));
                }
            }
        }
        let is_new = !current.group_configs.contains_key(group);
        if is_new && current.group_configs.len() >= MAX_GROUP_CONFIGS {
            return Err(MetadataError::TooManyGroupConfigs);
        }
        if validate_only {
            return Ok(());
        }
        let mut next = (*current).clone();
        if configs.is_empty() {
            next.group_configs.remove(group);
        } else {
            next.group_configs
                .insert(group.to_string(), Arc::new(configs));
        }
        self.publish(next)
    }

    /// Publishes `topic` in place of the topic of the same name (unless only validating).
    fn replace_topic(
        &self,
        current: &MetadataSnapshot,
        topic: TopicMeta,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let topic = Arc::new(topic);
        if validate_only {
            return Ok(topic);
        }
        let mut next = current.clone();
        next.topics.insert(topic.name.clone(), topic.clone());
        self.publish(next)?;
        Ok(topic)
    }

    /// Records partitions as offline (`Some(reason)`) or served again (`None`), as their
    /// owning shards report them. Published, not persisted (run-time state).
    pub fn set_offline(&self, changes: Vec<(String, i32, Option<String>)>) {
        if changes.is_empty() {
            return;
        }
        let current = self.snapshot();
        let mut offline = (*current.offline_partitions).clone();
        for (topic, partition, reason) in changes {
            match reason {
                Some(reason) if current.topics.contains_key(&topic) => {
                    offline.entry(topic).or_default().insert(partition, reason);
                }
                Some(_) => {}
                None => {
                    if let Some(parts) = offline.get_mut(&topic) {
                        parts.remove(&partition);
                        if parts.is_empty() {
                            offline.remove(&topic);
                        }
                    }
                }
            }
        }
        let mut next = (*current).clone();
        next.offline_partitions = Arc::new(offline);
        next.version += 1;
        self.view.store(Arc::new(next));
    }

    fn publish(&self, mut next: MetadataSnapshot) -> Result<(), MetadataError> {
        next.version += 1;
        // In cluster mode the Raft log and its snapshots are the durable copy.
        if next.cluster.is_none() {
            self.persist(&next)?;
        }
        self.view.store(Arc::new(next));
        Ok(())
    }

    /// Write-temp, fsync, rename, fsync-dir: a crash leaves the old or the new file, whole.
    fn persist(&self, snapshot: &MetadataSnapshot) -> Result<(), MetadataError> {
        let mut topics: Vec<TopicMeta> = snapshot.topics.values().map(|t| (**t).clone()).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let persisted = PersistedMetadata {
            cluster_id: snapshot.cluster_id.clone(),
            topics,
            group_configs: snapshot
                .group_configs
                .iter()
                .map(|(group, configs)| (group.clone(), (**configs).clone()))
                .collect(),
            dynamic_broker: (*snapshot.dynamic_broker).clone(),
            scram_credentials: snapshot.scram_credentials.to_persisted(),
            acls: snapshot.acls.bindings().to_vec(),
            client_quotas: snapshot.client_quotas.to_persisted(),
        };
        let bytes = serde_json::to_vec_pretty(&persisted).map_err(|e| MetadataError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&self.path, &bytes).map_err(|source| MetadataError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
