//! Per-group configs (Kafka's GROUP config resource, KIP-848): the consumer group's
//! session timeout and heartbeat interval, validated against Kafka's broker bounds
//! (`group.consumer.min/max.session.timeout.ms`, `group.consumer.min/max.heartbeat.interval.ms`).

use std::collections::BTreeMap;

/// Kafka's `group.consumer.session.timeout.ms` bounds.
pub const MIN_CONSUMER_SESSION_TIMEOUT_MS: i32 = 45_000;
pub const MAX_CONSUMER_SESSION_TIMEOUT_MS: i32 = 60_000;
/// Kafka's `group.consumer.heartbeat.interval.ms` bounds.
pub const MIN_CONSUMER_HEARTBEAT_INTERVAL_MS: i32 = 5_000;
pub const MAX_CONSUMER_HEARTBEAT_INTERVAL_MS: i32 = 15_000;

/// (name, documentation) of every group config.
pub const GROUP_CONFIG_KEYS: &[(&str, &str)] = &[
    (
        "consumer.session.timeout.ms",
        "A consumer-protocol member silent this long is removed from the group. Between group.consumer.min.session.timeout.ms (45000) and group.consumer.max.session.timeout.ms (60000).",
    ),
    (
        "consumer.heartbeat.interval.ms",
        "How often consumer-protocol members are told to heartbeat. Between group.consumer.min.heartbeat.interval.ms (5000) and group.consumer.max.heartbeat.interval.ms (15000).",
    ),
];

/// A group's effective session timeout and heartbeat interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupTimeouts {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
}

impl GroupTimeouts {
    /// `defaults` with the group's overrides applied (values were validated when stored).
    pub fn with_overrides(
        defaults: GroupTimeouts,
        overrides: Option<&BTreeMap<String, String>>,
    ) -> GroupTimeouts {
        let mut out = defaults;
        let get = |key: &str| {
            overrides
                .and_then(|o| o.get(key))
                .and_then(|v| v.parse::<i32>().ok())
        };
        if let Some(v) = get("consumer.session.timeout.ms") {
            out.session_timeout_ms = v;
        }
        if let Some(v) = get("consumer.heartbeat.interval.ms") {
            out.heartbeat_interval_ms = v;
        }
        out
    }

    pub fn get(&self, key: &str) -> Option<String> {
        match key {
            "consumer.session.timeout.ms" => Some(self.session_timeout_ms.to_string()),
            "consumer.heartbeat.interval.ms" => Some(self.heartbeat_interval_ms.to_string()),
            _ => None,
        }
    }
}

/// Checks one group config value like Kafka's GroupConfig: the message is the one
/// INVALID_CONFIG carries.
pub fn check_group_config(key: &str, value: &str) -> Result<(), String> {
    let (min, max) = match key {
        "consumer.session.timeout.ms" => (
            MIN_CONSUMER_SESSION_TIMEOUT_MS,
            MAX_CONSUMER_SESSION_TIMEOUT_MS,
        ),
        "consumer.heartbeat.interval.ms" => (
            MIN_CONSUMER_HEARTBEAT_INTERVAL_MS,
            MAX_CONSUMER_HEARTBEAT_INTERVAL_MS,
        ),
        _ => return Err(format!("Unknown group config name: {key}")),
    };
    let n: i32 = value.trim().parse().map_err(|_| {
        format!("Invalid value {value} for configuration {key}: Not a number of type INT")
    })?;
    if n < min {
        return Err(format!(
            "Invalid value {value} for configuration {key}: Value must be at least {min}"
        ));
    }
    if n > max {
        return Err(format!(
            "Invalid value {value} for configuration {key}: Value must be no more than {max}"
        ));
    }
    Ok(())
}
