//! Admin calls on `Client`: create/delete topics, add partitions, describe/alter topic
//! configs and list offsets. Each goes to the connection `Client` picks for admin calls and
//! returns broker errors by name.
//!
//! Must not: keep cluster state of its own; it asks `Client` and invalidates what it changed.

use super::cluster::Client;
use super::error::{ClientError, Result};
use kafka_protocol::messages::{
    AlterConfigsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, ListOffsetsRequest, TopicName,
    alter_configs_request::{AlterConfigsResource, AlterableConfig},
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    describe_configs_request::DescribeConfigsResource,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};

/// How long the broker may take to create/delete topics before answering.
pub const ADMIN_TIMEOUT_MS: i32 = 30_000;
/// `ListOffsets` timestamp meaning "log start".
pub const OFFSET_EARLIEST: i64 = -2;
/// `ListOffsets` timestamp meaning "log end" (high watermark).
pub const OFFSET_LATEST: i64 = -1;
/// DescribeConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// Which offset `list_offsets` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// First offset whose timestamp is >= this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => OFFSET_EARLIEST,
            OffsetSpec::Latest => OFFSET_LATEST,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    /// True if the value is the broker/default value rather than set on the topic.
    pub is_default: bool,
    pub is_sensitive: bool,
}
impl Client {
    /// Creates one topic. Broker errors (e.g. TOPIC_ALREADY_EXISTS) are returned by name.
    pub fn create_topic(&mut self, topic: &NewTopic) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_num_partitions(topic.partitions)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(
                        topic
                            .configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.clone()))
                                    .with_value(Some(StrBytes::from_string(v.clone())))
                            })
                            .collect(),
                    ),
            ])
            .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = self.admin_connection()?.call(&request)?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic.name)
            .ok_or_else(|| {
                ClientError::Invalid(format!("CreateTopics response omitted `{}`", topic.name))
            })?;
        if let Some(err) = ClientError::from_code(
            result.error_code,
            format!("create topic `{}`", topic.name),
            result.error_message.as_deref(),
        ) {
            return Err(err);
        }
        self.invalidate_topic(&topic.name);
        Ok(())
    }

    /// Deletes one topic by name.
    pub fn delete_topic(&mut self, topic: &str) -> Result<()> {
        let conn = self.admin_connection()?;
        let version = conn.version_of::<DeleteTopicsRequest>()?;
        let name = TopicName(StrBytes::from_string(topic.to_string()));
        let request = if version >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_name(Some(name))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name])
        }
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = conn.call(&request)?;
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .or_else(|| response.responses.first())
            .ok_or_else(|| {
                ClientError::Invalid(format!("DeleteTopics response omitted `{topic}`"))
            })?;
        if let Some(err) = ClientError::from_code(
            result.error_code,
            format!("delete topic `{topic}`"),
            result.error_message.as_deref(),
        ) {
            return Err(err);
        }
        self.invalidate_topic(topic);
        Ok(())
    }

    /// Grows `topic` to `total_partitions` partitions.
    pub fn create_partitions(&mut self, topic: &str, total_partitions: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_count(total_partitions),
            ])
            .with_timeout_ms(ADMIN_TIMEOUT_MS);
        let response = self.admin_connection()?.call(&request)?;
        for result in &response.results {
            if let Some(err) = ClientError::from_code(
                result.error_code,
                format!("create partitions for `{topic}`"),
                result.error_message.as_deref(),
            ) {
                return Err(err);
            }
        }
        self.invalidate_topic(topic);
        Ok(())
    }

    /// The configs of a topic, sorted by name.
    pub fn describe_topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configuration_keys(None),
        ]);
        let conn = self.any_connection()?;
        let version = conn.version_of::<DescribeConfigsRequest>()?;
        let response = conn.call(&request)?;
        let mut entries = Vec::new();
        for result in &response.results {
            if let Some(err) = ClientError::from_code(
                result.error_code,
                format!("describe configs of `{topic}`"),
                result.error_message.as_deref(),
            ) {
                return Err(err);
            }
            for c in &result.configs {
                // v1+ reports the source; 5 = DEFAULT_CONFIG, 4 = STATIC_BROKER_CONFIG.
                let is_default = if version >= 1 {
                    c.config_source == 5 || c.config_source == 4
                } else {
                    false
                };
                entries.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.as_ref().map(|v| v.to_string()),
                    read_only: c.read_only,
                    is_default,
                    is_sensitive: c.is_sensitive,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Sets topic configs (non-incremental AlterConfigs: unset keys return to defaults).
    pub fn alter_topic_configs(&mut self, topic: &str, configs: &[(String, String)]) -> Result<()> {
        let request = AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TYPE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                ),
        ]);
        let response = self.any_connection()?.call(&request)?;
        for r in &response.responses {
            if let Some(err) = ClientError::from_code(
                r.error_code,
                format!("alter configs of `{topic}`"),
                r.error_message.as_deref(),
            ) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Offsets of `partitions` of `topic` (asks each partition's leader). Returns
    /// (partition, offset) in the order given; offset -1 if the broker has none (timestamp
    /// past the end).
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<Vec<(i32, i64)>> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            let leader = self.leader_for(topic, p)?;
            by_leader.entry(leader).or_default().push(p);
        }
        let mut found: HashMap<i32, i64> = HashMap::new();
        for (leader, parts) in by_leader {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|&p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(spec.wire_timestamp())
                                })
                                .collect(),
                        ),
                ]);
            let response = match self.broker_connection(leader)?.call(&request) {
                Ok(r) => r,
                Err(e) => {
                    self.drop_connection(leader);
                    return Err(e);
                }
            };
            for t in &response.topics {
                for p in &t.partitions {
                    if let Some(err) = ClientError::from_code(
                        p.error_code,
                        format!("list offsets of {topic}-{}", p.partition_index),
                        None,
                    ) {
                        self.invalidate_topic(topic);
                        return Err(err);
                    }
                    found.insert(p.partition_index, p.offset);
                }
            }
        }
        partitions
            .iter()
            .map(|p| {
                found.get(p).map(|o| (*p, *o)).ok_or_else(|| {
                    ClientError::Invalid(format!("ListOffsets response omitted {topic}-{p}"))
                })
            })
            .collect()
    }
}
