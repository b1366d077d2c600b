//! `Client`: the cluster view. Bootstraps from a list of HOST:PORT, keeps cluster metadata
//! (brokers, topics, partition leaders), opens one `Connection` per broker node on demand,
//! and picks the connection admin calls go to (the calls themselves are in `admin.rs`).
//!
//! Must not: buffer records or track consumer positions (`producer.rs`, `consumer.rs`).

use super::connection::{Connection, ConnectionConfig};
use super::error::{ClientError, Result};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    MetadataRequest, TopicName, metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Metadata refreshes tried while waiting for a leader to appear.
pub const LEADER_WAIT_ATTEMPTS_MAX: u32 = 20;
/// Pause between those refreshes.
pub const LEADER_WAIT_BACKOFF_MS: u64 = 100;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    /// Node id of the leader; -1 if none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic as the metadata describes it; partitions sorted by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub is_internal: bool,
    pub error_code: i16,
    pub partitions: Vec<PartitionMetadata>,
}

/// A broker known from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub node_id: i32,
    pub addr: String,
    pub rack: Option<String>,
}

/// A blocking client for a Kafka-compatible cluster.
pub struct Client {
    bootstrap: Vec<String>,
    config: ConnectionConfig,
    /// Connection used for metadata and admin calls that any broker can answer.
    any: Option<Connection>,
    connections: HashMap<i32, Connection>,
    brokers: BTreeMap<i32, BrokerMetadata>,
    controller_id: i32,
    cluster_id: Option<String>,
    topics: HashMap<String, TopicMetadata>,
}

impl Client {
    /// Connects to the first reachable address of a comma-separated bootstrap list and loads
    /// the broker list.
    pub fn connect(bootstrap: &str) -> Result<Client> {
        Self::connect_with(bootstrap, ConnectionConfig::default())
    }

    pub fn connect_with(bootstrap: &str, config: ConnectionConfig) -> Result<Client> {
        let list: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if list.is_empty() {
            return Err(ClientError::Invalid(
                "empty bootstrap server list (expected HOST:PORT[,HOST:PORT...])".to_string(),
            ));
        }
        for addr in &list {
            if !addr.contains(':') {
                return Err(ClientError::Invalid(format!(
                    "bootstrap server `{addr}` is not HOST:PORT"
                )));
            }
        }
        let mut client = Client {
            bootstrap: list,
            config,
            any: None,
            connections: HashMap::new(),
            brokers: BTreeMap::new(),
            controller_id: -1,
            cluster_id: None,
            topics: HashMap::new(),
        };
        client.refresh_metadata(Some(&[]), false)?;
        Ok(client)
    }

    /// The connection settings every new connection uses.
    pub fn connection_config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// Brokers from the latest metadata, by node id.
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerMetadata> {
        &self.brokers
    }

    pub fn controller_id(&self) -> i32 {
        self.controller_id
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// A connection to some broker, for requests any broker can answer.
    pub fn any_connection(&mut self) -> Result<&mut Connection> {
        if self.any.as_ref().is_some_and(Connection::is_broken) {
            self.any = None;
        }
        if self.any.is_none() {
            let mut candidates: Vec<String> =
                self.brokers.values().map(|b| b.addr.clone()).collect();
            candidates.extend(self.bootstrap.iter().cloned());
            let mut last_err = None;
            for addr in candidates {
                match Connection::connect(&addr, &self.config) {
                    Ok(conn) => {
                        self.any = Some(conn);
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if self.any.is_none() {
                return Err(last_err.unwrap_or_else(|| {
                    ClientError::Invalid("no broker address to connect to".to_string())
                }));
            }
        }
        self.any
            .as_mut()
            .ok_or_else(|| ClientError::Invalid("no broker connection".to_string()))
    }

    /// The connection to broker `node_id` (opened on first use, reopened if broken).
    pub fn broker_connection(&mut self, node_id: i32) -> Result<&mut Connection> {
        if self
            .connections
            .get(&node_id)
            .is_some_and(Connection::is_broken)
        {
            self.connections.remove(&node_id);
        }
        if !self.connections.contains_key(&node_id) {
            if !self.brokers.contains_key(&node_id) {
                self.refresh_metadata(Some(&[]), false)?;
            }
            let addr = self
                .brokers
                .get(&node_id)
                .map(|b| b.addr.clone())
                .ok_or_else(|| {
                    ClientError::Invalid(format!("broker node {node_id} is not in the metadata"))
                })?;
            let conn = Connection::connect(&addr, &self.config)?;
            self.connections.insert(node_id, conn);
        }
        self.connections
            .get_mut(&node_id)
            .ok_or_else(|| ClientError::Invalid(format!("no connection to node {node_id}")))
    }

    /// Registers a broker address learnt outside Metadata (e.g. from FindCoordinator).
    pub fn add_broker(&mut self, node_id: i32, addr: String) {
        let known = self.brokers.get(&node_id).map(|b| &b.addr);
        if known != Some(&addr) {
            self.connections.remove(&node_id);
            self.brokers.insert(
                node_id,
                BrokerMetadata {
                    node_id,
                    addr,
                    rack: None,
                },
            );
        }
    }

    /// Drops the connection to `node_id` (after an i/o error) so the next use reconnects.
    pub fn drop_connection(&mut self, node_id: i32) {
        self.connections.remove(&node_id);
    }

    /// Fetches metadata for `topics` (`None` = all topics, `Some(&[])` = brokers only) and
    /// updates the cache. Returns the topics the broker described.
    pub fn refresh_metadata(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<Vec<TopicMetadata>> {
        let conn = self.any_connection()?;
        let version = conn.version_of::<MetadataRequest>()?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.to_string()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(version >= 4 && allow_auto_topic_creation);
        let response = match conn.call(&request) {
            Ok(r) => r,
            Err(e) => {
                self.any = None;
                return Err(e);
            }
        };
        if !response.brokers.is_empty() {
            self.brokers = response
                .brokers
                .iter()
                .map(|b| {
                    let node_id = b.node_id.0;
                    (
                        node_id,
                        BrokerMetadata {
                            node_id,
                            addr: format!("{}:{}", b.host.as_str(), b.port),
                            rack: b.rack.as_ref().map(|r| r.to_string()),
                        },
                    )
                })
                .collect();
            // Connections to nodes that left or moved are stale.
            let brokers = &self.brokers;
            self.connections
                .retain(|id, conn| brokers.get(id).is_some_and(|b| b.addr == conn.addr()));
        }
        self.controller_id = response.controller_id.0;
        self.cluster_id = response.cluster_id.as_ref().map(|c| c.to_string());
        let mut described = Vec::with_capacity(response.topics.len());
        for topic in &response.topics {
            let Some(name) = topic.name.as_ref() else {
                continue;
            };
            let mut partitions: Vec<PartitionMetadata> = topic
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let meta = TopicMetadata {
                name: name.0.to_string(),
                is_internal: topic.is_internal,
                error_code: topic.error_code,
                partitions,
            };
            if meta.error_code == 0 {
                self.topics.insert(meta.name.clone(), meta.clone());
            } else {
                self.topics.remove(&meta.name);
            }
            described.push(meta);
        }
        Ok(described)
    }

    /// All topics in the cluster, sorted by name.
    pub fn list_topics(&mut self) -> Result<Vec<TopicMetadata>> {
        let mut topics: Vec<TopicMetadata> = self
            .refresh_metadata(None, false)?
            .into_iter()
            .filter(|t| t.error_code == 0)
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Metadata of one topic, freshly fetched. Errors with the broker's code (e.g.
    /// UNKNOWN_TOPIC_OR_PARTITION) if the topic does not exist.
    pub fn describe_topic(&mut self, topic: &str) -> Result<TopicMetadata> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.fetch_topic(topic, false) {
                Err(e)
                    if attempt < LEADER_WAIT_ATTEMPTS_MAX
                        && e.kafka_code() == Some(LEADER_NOT_AVAILABLE) =>
                {
                    std::thread::sleep(Duration::from_millis(LEADER_WAIT_BACKOFF_MS));
                }
                other => return other,
            }
        }
    }

    /// Metadata of one topic from the cache, fetching it if unknown. With
    /// `allow_auto_topic_creation` a broker configured for it creates the topic.
    ///
    /// Retries (with backoff) while the broker says LEADER_NOT_AVAILABLE (topic being
    /// created) and, when auto-creation was asked for, UNKNOWN_TOPIC_OR_PARTITION (metadata
    /// not yet propagated).
    pub fn topic(&mut self, topic: &str, allow_auto_topic_creation: bool) -> Result<TopicMetadata> {
        if let Some(meta) = self.topics.get(topic) {
            return Ok(meta.clone());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.fetch_topic(topic, allow_auto_topic_creation) {
                Err(e)
                    if attempt < LEADER_WAIT_ATTEMPTS_MAX
                        && (e.kafka_code() == Some(LEADER_NOT_AVAILABLE)
                            || (allow_auto_topic_creation
                                && e.kafka_code() == Some(UNKNOWN_TOPIC_OR_PARTITION))) =>
                {
                    std::thread::sleep(Duration::from_millis(LEADER_WAIT_BACKOFF_MS));
                }
                other => return other,
            }
        }
    }

    fn fetch_topic(
        &mut self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<TopicMetadata> {
        let described = self.refresh_metadata(Some(&[topic]), allow_auto_topic_creation)?;
        let meta = described
            .into_iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| {
                ClientError::Invalid(format!("metadata did not describe topic `{topic}`"))
            })?;
        if let Some(err) = ClientError::from_code(meta.error_code, format!("topic `{topic}`"), None)
        {
            return Err(err);
        }
        Ok(meta)
    }

    /// Forgets cached metadata of `topic` so the next lookup asks the cluster.
    pub fn invalidate_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// The leader node of a partition, refreshing metadata (a few times, with backoff) while
    /// there is none, e.g. right after the topic was created.
    pub fn leader_for(&mut self, topic: &str, partition: i32) -> Result<i32> {
        let mut attempt = 0;
        loop {
            let meta = self.topic(topic, false)?;
            let Some(p) = meta.partitions.iter().find(|p| p.partition == partition) else {
                return Err(ClientError::Invalid(format!(
                    "topic `{topic}` has no partition {partition} (it has {})",
                    meta.partitions.len()
                )));
            };
            if p.leader >= 0 {
                return Ok(p.leader);
            }
            attempt += 1;
            if attempt >= LEADER_WAIT_ATTEMPTS_MAX {
                return Err(ClientError::from_code(
                    if p.error_code != 0 {
                        p.error_code
                    } else {
                        LEADER_NOT_AVAILABLE
                    },
                    format!("no leader for {topic}-{partition}"),
                    None,
                )
                .unwrap_or_else(|| {
                    ClientError::Invalid(format!("no leader for {topic}-{partition}"))
                }));
            }
            std::thread::sleep(Duration::from_millis(LEADER_WAIT_BACKOFF_MS));
            self.invalidate_topic(topic);
        }
    }

    /// The connection to a partition's leader.
    pub fn leader_connection(&mut self, topic: &str, partition: i32) -> Result<&mut Connection> {
        let leader = self.leader_for(topic, partition)?;
        self.broker_connection(leader)
    }

    /// Connection for admin calls: the controller if known (older brokers require it),
    /// otherwise any broker (newer brokers forward, KIP-590).
    pub(super) fn admin_connection(&mut self) -> Result<&mut Connection> {
        if self.controller_id >= 0 && self.brokers.contains_key(&self.controller_id) {
            let id = self.controller_id;
            return self.broker_connection(id);
        }
        self.any_connection()
    }
}
