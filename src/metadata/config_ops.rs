//! Config edits the metadata writer applies: IncrementalAlterConfigs' operations (with
//! Kafka's APPEND/SUBTRACT on list configs) and a topic's effective config from the broker
//! defaults and its overrides.

use crate::config::{LogConfig, TopicConfigError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One change of IncrementalAlterConfigs (AlterConfigs only sets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set(String),
    /// Back to the broker default.
    Delete,
    /// Add the listed elements to a list config, skipping ones already present.
    Append(String),
    /// Remove the listed elements from a list config; absent ones are ignored.
    Subtract(String),
}

/// APPEND / SUBTRACT on a list-typed config, as Kafka does: only list configs take them.
pub(super) fn edit_list(
    key: &str,
    current: &str,
    change: &str,
    append: bool,
) -> Result<String, TopicConfigError> {
    let is_list = crate::config::topic_config_spec::topic_config_spec(key)
        .ok_or_else(|| TopicConfigError::UnknownKey(key.to_string()))?
        .kind
        .is_list();
    if !is_list {
        let verb = if append { "append" } else { "subtract" };
        return Err(TopicConfigError::Conflict(format!(
            "Config value {verb} is not allowed for config key: {key}"
        )));
    }
    let elements = crate::config::topic_config_spec::list_elements;
    let mut list: Vec<&str> = elements(current);
    list.dedup();
    let named = elements(change);
    if append {
        for e in named {
            if !list.contains(&e) {
                list.push(e);
            }
        }
    } else {
        list.retain(|e| !named.contains(e));
    }
    Ok(list.join(","))
}

/// Broker defaults with a topic's overrides applied; the first bad key is the error.
pub fn effective_config(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, TopicConfigError> {
    let mut config = defaults.clone();
    for (key, value) in overrides {
        config.set(key, value)?;
    }
    config.validate()?;
    Ok(config)
}
