//! The broker's settings under Kafka's config names, for DescribeConfigs on the BROKER
//! resource. Must not: change anything (static settings come from the config file; the
//! dynamic ones live in the metadata snapshot, see `metadata::dynamic_broker`).

use crate::config::BrokerConfig;
use crate::config::topic_config_spec::{
    ConfigKind, TOPIC_CONFIG_SPECS, TYPE_BOOLEAN, TYPE_INT, TYPE_LIST, TYPE_LONG, TYPE_STRING,
    TopicConfigSpec,
};

/// One broker setting: Kafka name, value, config type, and whether it still has Sluice's
/// embedded default (DEFAULT_CONFIG) or was set in the config file (STATIC_BROKER_CONFIG).
pub struct BrokerEntry {
    pub name: String,
    pub value: String,
    pub config_type: i8,
    pub is_default: bool,
    pub doc: String,
}

/// (Kafka name, value, config type, documentation).
type Entry = (&'static str, String, i8, &'static str);

fn values(config: &BrokerConfig) -> Vec<Entry> {
    let listeners = config.listener_specs().unwrap_or_default();
    let bound = listeners
        .iter()
        .map(|l| format!("{}://{}", l.name, l.bind))
        .collect::<Vec<_>>()
        .join(",");
    let advertised = listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port))
        .collect::<Vec<_>>()
        .join(",");
    let mut out: Vec<Entry> = vec![
        (
            "node.id",
            config.node_id.to_string(),
            TYPE_INT,
            "This node's id.",
        ),
        (
            "broker.id",
            config.node_id.to_string(),
            TYPE_INT,
            "This broker's id (the node id).",
        ),
        (
            "process.roles",
            "broker,controller".into(),
            TYPE_LIST,
            "A Sluice node is its own broker and controller.",
        ),
        (
            "listeners",
            bound,
            TYPE_STRING,
            "Addresses the broker listens on.",
        ),
        (
            "advertised.listeners",
            advertised,
            TYPE_STRING,
            "Addresses clients are told to connect to.",
        ),
        (
            "log.dirs",
            config.data_dir.display().to_string(),
            TYPE_STRING,
            "Directory holding partitions, metadata and group offsets.",
        ),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "Whether Metadata and Produce create unknown topics.",
        ),
        (
            "num.partitions",
            config.default_partitions.to_string(),
            TYPE_INT,
            "Partitions of an auto-created topic.",
        ),
        (
            "default.replication.factor",
            "1".into(),
            TYPE_INT,
            "Replication factor of an auto-created topic (one node: 1).",
        ),
        (
            "offsets.topic.replication.factor",
            "1".into(),
            TYPE_INT,
            "Replication of committed offsets (one node: 1).",
        ),
    ];
    out.extend(limit_values(config));
    out.extend(topic_default_values(config));
    out
}

/// Limits and group settings.
fn limit_values(config: &BrokerConfig) -> Vec<Entry> {
    vec![
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
            TYPE_INT,
            "Largest request frame accepted.",
        ),
        (
            "max.connections",
            config.max_connections.to_string(),
            TYPE_INT,
            "Connections accepted across the broker.",
        ),
        (
            "follower.replication.throttled.rate",
            config.follower_replication_throttled_rate.to_string(),
            TYPE_LONG,
            "Bytes per second this broker's replica fetchers copy, at most, for the replicas a topic's follower.replication.throttled.replicas names while they are out of the ISR (static: set in the config file).",
        ),
        (
            "group.initial.rebalance.delay.ms",
            config.group_initial_rebalance_delay_ms.to_string(),
            TYPE_INT,
            "How long a new classic group waits for more members before its first rebalance.",
        ),
        (
            "group.min.session.timeout.ms",
            config.group_min_session_timeout_ms.to_string(),
            TYPE_INT,
            "Smallest session timeout a classic group member may ask for.",
        ),
        (
            "group.max.session.timeout.ms",
            config.group_max_session_timeout_ms.to_string(),
            TYPE_INT,
            "Largest session timeout a classic group member may ask for.",
        ),
        (
            "offsets.retention.minutes",
            (config.offsets_retention_ms / 60_000).to_string(),
            TYPE_INT,
            "How long an empty group's committed offsets are kept.",
        ),
        (
            "log.retention.check.interval.ms",
            config.log_retention_check_interval_ms.to_string(),
            TYPE_LONG,
            "How often retention runs.",
        ),
    ]
}

/// Topic defaults appear on the broker under their Kafka synonyms (log.retention.ms, ...).
fn topic_default_values(config: &BrokerConfig) -> Vec<Entry> {
    let mut out = Vec::new();
    for spec in TOPIC_CONFIG_SPECS {
        if let (Some(synonym), Some(value)) = (spec.synonym, config.log.get(spec.name)) {
            out.push((synonym, value, broker_config_type(spec), spec.doc));
        }
    }
    out
}

/// The config type of a topic config's broker synonym (Kafka types them as it types the
/// topic config).
pub fn broker_config_type(spec: &TopicConfigSpec) -> i8 {
    match spec.kind {
        ConfigKind::Int { .. } => TYPE_INT,
        ConfigKind::Long { .. } => TYPE_LONG,
        kind => kind.wire_type(),
    }
}

/// Every broker setting Sluice can name the Kafka way.
pub fn broker_entries(config: &BrokerConfig) -> Vec<BrokerEntry> {
    let defaults = values(&BrokerConfig::default());
    values(config)
        .into_iter()
        .map(|(name, value, config_type, doc)| BrokerEntry {
            is_default: defaults
                .iter()
                .any(|(n, v, _, _)| *n == name && *v == value),
            name: name.to_string(),
            value,
            config_type,
            doc: doc.to_string(),
        })
        .collect()
}
