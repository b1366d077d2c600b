//! Per-group configs (Kafka's GROUP config resource, KIP-848): the consumer group's
//! session timeout and heartbeat interval, validated against Kafka's broker bounds
//! (`group.consumer.min/max.session.timeout.ms`, `group.consumer.min/max.heartbeat.interval.ms`),
//! and the share group's (KIP-932) record lock duration, offset reset, delivery count limit
//! and isolation level (`ShareGroupConfig`).

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
    (
        "share.record.lock.duration.ms",
        "How long a share-group member holds the records a ShareFetch acquired before they are released for redelivery. Between 1000 and group.share.max.record.lock.duration.ms (3600000).",
    ),
    (
        "share.auto.offset.reset",
        "Where a share group starts reading a partition it has no state for: latest or earliest.",
    ),
    (
        "share.delivery.count.limit",
        "Deliveries after which a share group's record that keeps failing is archived. Between group.share.min.delivery.count.limit (2) and group.share.max.delivery.count.limit (10).",
    ),
    (
        "share.isolation.level",
        "Which records a share group sees: read_uncommitted, or read_committed (never past the last stable offset).",
    ),
    (
        DLQ_TOPIC_NAME_KEY,
        "The name of the topic to be used as the dead-letter queue (DLQ) topic for this share group (KIP-1191). If blank (the default), the group does not have a DLQ topic.",
    ),
    (
        DLQ_COPY_RECORD_KEY,
        "When writing onto the dead-letter queue topic, whether to copy the original record's key and value onto the DLQ topic, or just write a record containing the context information headers.",
    ),
];

/// KIP-1191's group config naming the share group's dead-letter topic ("" = none).
pub const DLQ_TOPIC_NAME_KEY: &str = "errors.deadletterqueue.topic.name";
/// KIP-1191's group config: copy the record's key and value onto the dead-letter topic.
pub const DLQ_COPY_RECORD_KEY: &str = "errors.deadletterqueue.copy.record.enable";

/// Where a share group's undeliverable records go (KIP-1191): the group's dead-letter topic
/// and whether the records' key and value are copied there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTarget {
    pub topic: String,
    pub copy_record: bool,
}

/// The group's dead-letter target, None when `errors.deadletterqueue.topic.name` is blank.
pub fn dead_letter_target(
    overrides: Option<&BTreeMap<String, String>>,
) -> Option<DeadLetterTarget> {
    let get = |key: &str| overrides.and_then(|o| o.get(key)).map(|v| v.trim());
    let topic = get(DLQ_TOPIC_NAME_KEY).filter(|t| !t.is_empty())?;
    Some(DeadLetterTarget {
        topic: topic.to_string(),
        copy_record: get(DLQ_COPY_RECORD_KEY).is_some_and(|v| v.eq_ignore_ascii_case("true")),
    })
}

/// Kafka's `group.share.record.lock.duration.ms` default.
pub const DEFAULT_SHARE_RECORD_LOCK_DURATION_MS: i32 = 30_000;
/// The shortest lock a group may ask for. Kafka's broker default floor
/// (`group.share.min.record.lock.duration.ms`) is 15 s, but Kafka lets operators lower it to
/// 1 s; Sluice takes that 1 s floor so redelivery can be exercised without long waits.
pub const MIN_SHARE_RECORD_LOCK_DURATION_MS: i32 = 1_000;
/// Kafka's `group.share.max.record.lock.duration.ms` upper bound.
pub const MAX_SHARE_RECORD_LOCK_DURATION_MS: i32 = 3_600_000;
/// Kafka's `group.share.delivery.count.limit` default and bounds.
pub const DEFAULT_SHARE_DELIVERY_COUNT_LIMIT: i32 = 5;
pub const MIN_SHARE_DELIVERY_COUNT_LIMIT: i32 = 2;
pub const MAX_SHARE_DELIVERY_COUNT_LIMIT: i32 = 10;

/// Where a share group starts on a partition it has no state for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareOffsetReset {
    Latest,
    Earliest,
}

/// A share group's effective configs (KIP-932 group configs over Kafka's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareGroupConfig {
    pub record_lock_duration_ms: i32,
    pub auto_offset_reset: ShareOffsetReset,
    pub delivery_count_limit: i32,
    pub read_committed: bool,
    /// The group has a dead-letter topic (KIP-1191): rejected records and records past the
    /// delivery count limit are written there before they are archived.
    pub dead_letter: bool,
    /// `errors.deadletterqueue.copy.record.enable`.
    pub dead_letter_copy_record: bool,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            record_lock_duration_ms: DEFAULT_SHARE_RECORD_LOCK_DURATION_MS,
            auto_offset_reset: ShareOffsetReset::Latest,
            delivery_count_limit: DEFAULT_SHARE_DELIVERY_COUNT_LIMIT,
            read_committed: false,
            dead_letter: false,
            dead_letter_copy_record: false,
        }
    }
}

impl ShareGroupConfig {
    /// Kafka's defaults with the group's overrides applied (validated when stored).
    pub fn with_overrides(overrides: Option<&BTreeMap<String, String>>) -> ShareGroupConfig {
        let mut out = ShareGroupConfig::default();
        let get = |key: &str| overrides.and_then(|o| o.get(key)).map(|v| v.trim());
        if let Some(v) = get("share.record.lock.duration.ms").and_then(|v| v.parse().ok()) {
            out.record_lock_duration_ms = v;
        }
        if get("share.auto.offset.reset") == Some("earliest") {
            out.auto_offset_reset = ShareOffsetReset::Earliest;
        }
        if let Some(v) = get("share.delivery.count.limit").and_then(|v| v.parse().ok()) {
            out.delivery_count_limit = v;
        }
        out.read_committed = get("share.isolation.level") == Some("read_committed");
        if let Some(target) = dead_letter_target(overrides) {
            out.dead_letter = true;
            out.dead_letter_copy_record = target.copy_record;
        }
        out
    }

    pub fn get(&self, key: &str) -> Option<String> {
        match key {
            "share.record.lock.duration.ms" => Some(self.record_lock_duration_ms.to_string()),
            "share.auto.offset.reset" => Some(
                match self.auto_offset_reset {
                    ShareOffsetReset::Latest => "latest",
                    ShareOffsetReset::Earliest => "earliest",
                }
                .to_string(),
            ),
            "share.delivery.count.limit" => Some(self.delivery_count_limit.to_string()),
            DLQ_COPY_RECORD_KEY => Some(self.dead_letter_copy_record.to_string()),
            "share.isolation.level" => Some(
                if self.read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                }
                .to_string(),
            ),
            _ => None,
        }
    }
}

/// The effective value of any group config (consumer timeouts over `timeouts`, share
/// configs over Kafka's defaults); None for an unknown name.
pub fn group_config_value(
    timeouts: GroupTimeouts,
    overrides: Option<&BTreeMap<String, String>>,
    key: &str,
) -> Option<String> {
    if key == DLQ_TOPIC_NAME_KEY {
        return Some(
            dead_letter_target(overrides)
                .map(|t| t.topic)
                .unwrap_or_default(),
        );
    }
    GroupTimeouts::with_overrides(timeouts, overrides)
        .get(key)
        .or_else(|| ShareGroupConfig::with_overrides(overrides).get(key))
}

/// Whether a group config holds a string (the rest are ints), for DescribeConfigs' types.
pub fn is_string_group_config(key: &str) -> bool {
    matches!(
        key,
        "share.auto.offset.reset" | "share.isolation.level" | DLQ_TOPIC_NAME_KEY
    )
}

/// Whether a group config holds a boolean, for DescribeConfigs' types.
pub fn is_boolean_group_config(key: &str) -> bool {
    key == DLQ_COPY_RECORD_KEY
}

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
    let one_of = |allowed: &[&str]| {
        if allowed.contains(&value.trim()) {
            Ok(())
        } else {
            Err(format!(
                "Invalid value {value} for configuration {key}: String must be one of: {}",
                allowed.join(", ")
            ))
        }
    };
    let (min, max) = match key {
        "share.auto.offset.reset" => return one_of(&["latest", "earliest"]),
        "share.isolation.level" => return one_of(&["read_uncommitted", "read_committed"]),
        // Kafka's GroupConfig: any string, but not an internal topic's "__" prefix (the
        // broker's `errors.deadletterqueue.topic.name.prefix` is checked when a record is
        // dead-lettered, as Kafka does).
        DLQ_TOPIC_NAME_KEY => {
            let name = value.trim();
            return if name.starts_with("__") {
                Err(format!(
                    "{DLQ_TOPIC_NAME_KEY}: DLQ topic name must not start with '__'"
                ))
            } else {
                Ok(())
            };
        }
        DLQ_COPY_RECORD_KEY => {
            let v = value.trim();
            return if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(format!(
                    "Invalid value {value} for configuration {key}: Expected value to be either true or false"
                ))
            };
        }
        "share.record.lock.duration.ms" => (
            MIN_SHARE_RECORD_LOCK_DURATION_MS,
            MAX_SHARE_RECORD_LOCK_DURATION_MS,
        ),
        "share.delivery.count.limit" => (
            MIN_SHARE_DELIVERY_COUNT_LIMIT,
            MAX_SHARE_DELIVERY_COUNT_LIMIT,
        ),
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
