//! Where a topic config's value comes from, as Kafka's `ConfigSource` names it: the topic's
//! own override, this broker's dynamic value, the cluster-wide dynamic default, the config
//! file, or Kafka's built-in default. DescribeConfigs and CreateTopics both answer with these
//! sources, so they are computed here once. Must not: read or change any state beyond the
//! metadata snapshot and the static config it is handed.

use crate::config::LogConfig;
use crate::config::topic_config_spec::TopicConfigSpec;
use crate::metadata::TopicMeta;
use crate::metadata::dynamic_broker::{DynamicBrokerConfigs, broker_keys_of};

/// Kafka's `ConfigSource` codes.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;
pub const SOURCE_GROUP: i8 = 8;

/// A (name, value, source) level before it goes on the wire.
pub type Level = (String, String, i8);

/// Where a topic config's default comes from, strongest first: this broker's dynamic
/// value, the cluster-wide dynamic default, the config file, then Kafka's default.
pub fn broker_levels(
    dynamic: &DynamicBrokerConfigs,
    static_log: &LogConfig,
    spec: &TopicConfigSpec,
) -> Vec<Level> {
    let keys = broker_keys_of(spec.name);
    let mut out = Vec::with_capacity(4);
    for (level, source) in [
        (&dynamic.per_broker, SOURCE_DYNAMIC_BROKER),
        (&dynamic.cluster_default, SOURCE_DYNAMIC_DEFAULT),
    ] {
        for key in &keys {
            if let Some(v) = level.get(*key) {
                out.push((key.to_string(), v.clone(), source));
            }
        }
    }
    let default_name = spec.synonym.unwrap_or(spec.name).to_string();
    if let Some(v) = static_log.get(spec.name).filter(|v| v != spec.default) {
        out.push((default_name.clone(), v, SOURCE_STATIC_BROKER));
    }
    out.push((default_name, spec.default.to_string(), SOURCE_DEFAULT));
    out
}

/// The source of a topic config's effective value: the topic's override if it has one,
/// else the strongest broker level (`levels` as [`broker_levels`] returns them).
pub fn topic_config_source(topic: &TopicMeta, spec: &TopicConfigSpec, levels: &[Level]) -> i8 {
    if topic.overrides.contains_key(spec.name) {
        return SOURCE_TOPIC;
    }
    levels
        .first()
        .map_or(SOURCE_DEFAULT, |(_, _, source)| *source)
}
