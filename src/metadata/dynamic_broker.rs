//! Dynamic broker configs (Kafka's KIP-226): the topic-default broker configs
//! (`log.retention.ms`, `log.segment.bytes`, ...) set at run time through AlterConfigs /
//! IncrementalAlterConfigs on the BROKER resource, per broker (this node's id) or as the
//! cluster-wide default (empty name). Owns their storage shape, their validation and how
//! they fold into the topic defaults: static file < cluster default < per broker; a topic's
//! own override still beats all of them. Must not: decide which broker keys are dynamic
//! beyond the topic-default synonyms (the server layer refuses the static ones first).

use super::ConfigOp;
use crate::config::topic_config_spec::{TOPIC_CONFIG_SPECS, TopicConfigSpec};
use crate::config::{LogConfig, TopicConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Upper bound on dynamic configs of one level, so a client cannot grow the metadata file
/// without bound (there are fewer known keys than this anyway).
pub const MAX_DYNAMIC_BROKER_CONFIGS: usize = 256;

/// The two levels a dynamic broker config lives at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerConfigLevel {
    /// Resource name = this node's id (DYNAMIC_BROKER_CONFIG).
    PerBroker,
    /// Resource name "" (DYNAMIC_DEFAULT_BROKER_CONFIG).
    ClusterDefault,
}

/// Both levels, keyed by the broker config name (`log.retention.ms`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBrokerConfigs {
    #[serde(default)]
    pub per_broker: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
}

/// Kafka's older time-unit synonyms of a topic config: (broker name, topic config, how many
/// milliseconds one unit is). Kafka reads `.ms` first, then `.minutes`, then `.hours`.
const UNIT_SYNONYMS: &[(&str, &str, i64)] = &[
    ("log.retention.minutes", "retention.ms", 60_000),
    ("log.retention.hours", "retention.ms", 3_600_000),
    ("log.roll.hours", "segment.ms", 3_600_000),
    ("log.roll.jitter.hours", "segment.jitter.ms", 3_600_000),
];

/// The topic config a dynamic broker key supplies the default of, and the factor its
/// value is multiplied by on the way (1 except for the `.minutes` / `.hours` synonyms).
pub fn topic_config_of(broker_key: &str) -> Option<(&'static TopicConfigSpec, i64)> {
    if let Some(spec) = TOPIC_CONFIG_SPECS
        .iter()
        .find(|s| s.synonym == Some(broker_key))
    {
        return Some((spec, 1));
    }
    let (_, topic_key, factor) = UNIT_SYNONYMS.iter().find(|(b, _, _)| *b == broker_key)?;
    let spec = TOPIC_CONFIG_SPECS.iter().find(|s| s.name == *topic_key)?;
    Some((spec, *factor))
}

/// Every broker key Sluice applies live, in a stable order (the topic-default synonyms,
/// then the time-unit synonyms).
pub fn dynamic_keys() -> impl Iterator<Item = &'static str> {
    TOPIC_CONFIG_SPECS
        .iter()
        .filter(|s| !s.legacy)
        .filter_map(|s| s.synonym)
        .chain(UNIT_SYNONYMS.iter().map(|(b, _, _)| *b))
}

/// The broker keys that supply `topic_key`'s default, strongest first (`log.retention.ms`,
/// `log.retention.minutes`, `log.retention.hours`).
pub fn broker_keys_of(topic_key: &str) -> Vec<&'static str> {
    let spec = TOPIC_CONFIG_SPECS.iter().find(|s| s.name == topic_key);
    spec.and_then(|s| s.synonym)
        .into_iter()
        .chain(
            UNIT_SYNONYMS
                .iter()
                .filter(|(_, t, _)| *t == topic_key)
                .map(|(b, _, _)| *b),
        )
        .collect()
}

/// The time-unit synonyms (`log.retention.hours`, ...), which have no static value here.
pub fn is_unit_synonym(broker_key: &str) -> bool {
    UNIT_SYNONYMS.iter().any(|(b, _, _)| *b == broker_key)
}

pub fn is_dynamic(broker_key: &str) -> bool {
    topic_config_of(broker_key).is_some_and(|(spec, _)| !spec.legacy)
}

/// Rank of a key among the synonyms of one topic config: lower wins (`.ms` before
/// `.minutes` before `.hours`, as Kafka reads them).
fn precedence(broker_key: &str) -> usize {
    UNIT_SYNONYMS
        .iter()
        .position(|(b, _, _)| *b == broker_key)
        .map_or(0, |i| i + 1)
}

/// `value` of `broker_key` as the value of its topic config (hours become milliseconds).
fn topic_value(broker_key: &str, value: &str) -> Result<(&'static str, String), TopicConfigError> {
    let (spec, factor) = topic_config_of(broker_key)
        .ok_or_else(|| TopicConfigError::UnknownKey(broker_key.into()))?;
    if factor == 1 {
        return Ok((spec.name, value.trim().to_string()));
    }
    let invalid = |reason: &str| TopicConfigError::InvalidValue {
        key: broker_key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let units: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid("Expected value to be a 32-bit integer"))?;
    if i32::try_from(units).is_err() {
        return Err(invalid("Expected value to be a 32-bit integer"));
    }
    // -1 means "forever" in every unit.
    let ms = if units < 0 { units } else { units * factor };
    Ok((spec.name, ms.to_string()))
}

/// One level folded onto `config`: per topic config, the winning synonym of that level.
fn apply_level(
    config: &mut LogConfig,
    level: &BTreeMap<String, String>,
) -> Result<(), TopicConfigError> {
    let mut ordered: Vec<(&String, &String)> = level.iter().collect();
    // Apply the weakest synonym first so the strongest one is written last.
    ordered.sort_by_key(|(k, _)| std::cmp::Reverse(precedence(k)));
    for (key, value) in ordered {
        let (topic_key, topic_value) = topic_value(key, value)?;
        config.set(topic_key, &topic_value)?;
    }
    Ok(())
}

impl DynamicBrokerConfigs {
    pub fn level(&self, level: BrokerConfigLevel) -> &BTreeMap<String, String> {
        match level {
            BrokerConfigLevel::PerBroker => &self.per_broker,
            BrokerConfigLevel::ClusterDefault => &self.cluster_default,
        }
    }

    /// The topic defaults: the static file's, then the cluster default, then this broker's.
    pub fn topic_defaults(
        &self,
        static_defaults: &LogConfig,
    ) -> Result<LogConfig, TopicConfigError> {
        let mut config = static_defaults.clone();
        apply_level(&mut config, &self.cluster_default)?;
        apply_level(&mut config, &self.per_broker)?;
        config.validate()?;
        Ok(config)
    }

    /// The value of one broker key below `level` (what DELETE reverts to and what APPEND
    /// starts from when the level does not set it).
    fn inherited(
        &self,
        static_defaults: &LogConfig,
        level: BrokerConfigLevel,
        broker_key: &str,
    ) -> Option<String> {
        if level == BrokerConfigLevel::PerBroker
            && let Some(v) = self.cluster_default.get(broker_key)
        {
            return Some(v.clone());
        }
        let (spec, _) = topic_config_of(broker_key)?;
        static_defaults.get(spec.name)
    }

    /// `changes` applied to one level (`incremental == false` replaces the level), each value
    /// validated with its topic config's validator. The caller publishes the result.
    pub fn edited(
        &self,
        static_defaults: &LogConfig,
        level: BrokerConfigLevel,
        changes: &[(String, ConfigOp)],
        incremental: bool,
    ) -> Result<DynamicBrokerConfigs, TopicConfigError> {
        let mut configs = if incremental {
            self.level(level).clone()
        } else {
            BTreeMap::new()
        };
        for (key, op) in changes {
            if !is_dynamic(key) {
                return Err(TopicConfigError::UnknownKey(key.clone()));
            }
            let value = match op {
                ConfigOp::Set(v) => Some(v.trim().to_string()),
                ConfigOp::Delete => None,
                ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                    let current = match configs.get(key) {
                        Some(c) => c.clone(),
                        None => self
                            .inherited(static_defaults, level, key)
                            .unwrap_or_default(),
                    };
                    let append = matches!(op, ConfigOp::Append(_));
                    Some(super::edit_list(
                        topic_config_of(key).map_or(key.as_str(), |(s, _)| s.name),
                        &current,
                        v,
                        append,
                    )?)
                }
            };
            match value {
                Some(v) => {
                    // Same validator as the topic config it supplies.
                    let (topic_key, topic_value) = topic_value(key, &v)?;
                    LogConfig::default().set(topic_key, &topic_value)?;
                    configs.insert(key.clone(), v);
                }
                None => {
                    configs.remove(key);
                }
            }
        }
        if configs.len() > MAX_DYNAMIC_BROKER_CONFIGS {
            return Err(TopicConfigError::Conflict(format!(
                "at most {MAX_DYNAMIC_BROKER_CONFIGS} dynamic broker configs per level"
            )));
        }
        let mut next = self.clone();
        match level {
            BrokerConfigLevel::PerBroker => next.per_broker = configs,
            BrokerConfigLevel::ClusterDefault => next.cluster_default = configs,
        }
        // The combination must hold too (e.g. segment.bytes above its minimum).
        next.topic_defaults(static_defaults)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_broker_beats_cluster_default_beats_static() {
        let base = LogConfig::default();
        let mut d = DynamicBrokerConfigs::default();
        d.cluster_default
            .insert("log.retention.ms".into(), "5000".into());
        assert_eq!(d.topic_defaults(&base).unwrap().retention_ms, 5000);
        d.per_broker
            .insert("log.retention.ms".into(), "7000".into());
        assert_eq!(d.topic_defaults(&base).unwrap().retention_ms, 7000);
    }

    #[test]
    fn ms_beats_minutes_beats_hours_within_a_level() {
        let base = LogConfig::default();
        let mut d = DynamicBrokerConfigs::default();
        d.per_broker
            .insert("log.retention.hours".into(), "2".into());
        assert_eq!(d.topic_defaults(&base).unwrap().retention_ms, 7_200_000);
        d.per_broker
            .insert("log.retention.minutes".into(), "3".into());
        assert_eq!(d.topic_defaults(&base).unwrap().retention_ms, 180_000);
        d.per_broker.insert("log.retention.ms".into(), "42".into());
        assert_eq!(d.topic_defaults(&base).unwrap().retention_ms, 42);
    }

    #[test]
    fn values_use_the_topic_validators() {
        let base = LogConfig::default();
        let d = DynamicBrokerConfigs::default();
        let set = |k: &str, v: &str| vec![(k.to_string(), ConfigOp::Set(v.to_string()))];
        let level = BrokerConfigLevel::ClusterDefault;
        assert!(
            d.edited(&base, level, &set("log.segment.bytes", "10"), true)
                .is_err()
        );
        assert!(
            d.edited(&base, level, &set("compression.type", "brotli"), true)
                .is_err()
        );
        assert!(d.edited(&base, level, &set("node.id", "3"), true).is_err());
        let ok = d
            .edited(&base, level, &set("log.cleanup.policy", "compact"), true)
            .unwrap();
        let appended = ok
            .edited(
                &base,
                level,
                &[(
                    "log.cleanup.policy".into(),
                    ConfigOp::Append("delete".into()),
                )],
                true,
            )
            .unwrap();
        assert_eq!(
            appended.cluster_default["log.cleanup.policy"],
            "compact,delete"
        );
    }

    #[test]
    fn persisted_with_the_metadata_and_a_bad_value_is_a_startup_error() {
        use crate::metadata::{MetadataError, MetadataWriter};
        let dir = tempfile::tempdir().unwrap();
        let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        let set = vec![("log.retention.ms".to_string(), ConfigOp::Set("5000".into()))];
        writer
            .alter_broker_config(BrokerConfigLevel::PerBroker, &set, true, false)
            .unwrap();
        assert_eq!(
            view.load().dynamic_broker.per_broker["log.retention.ms"],
            "5000"
        );
        drop(writer);
        let (_writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(
            view.load().dynamic_broker.per_broker["log.retention.ms"],
            "5000"
        );
        drop(_writer);

        let path = dir.path().join("meta").join("topics.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"5000\"", "\"soon\"")).unwrap();
        assert!(matches!(
            MetadataWriter::open(dir.path(), LogConfig::default()),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
