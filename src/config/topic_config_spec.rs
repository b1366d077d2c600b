//! The table of every topic config Kafka 4.x defines (plus the 3.x ones it still meets in
//! old scripts and Sluice's own `sluice.durability`): name, type, validator, broker-level
//! synonym and documentation. Validation, DescribeConfigs and CreateTopics all read this
//! one table, so a key cannot be accepted without also being described.

/// How a config's value is typed and validated.
#[derive(Debug, Clone, Copy)]
pub enum ConfigKind {
    Boolean,
    Int {
        min: i64,
        max: i64,
    },
    Long {
        min: i64,
        max: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    /// One of these strings exactly.
    Choice(&'static [&'static str]),
    /// Comma-separated list, each element one of these strings.
    ListOf(&'static [&'static str]),
    /// `*` or a comma-separated list of `partition:broker` pairs (throttled replicas).
    ThrottledReplicas,
    /// Any string (kept only for compatibility; never acted on).
    AnyString,
}

/// DescribeConfigs' `config_type` codes.
pub const TYPE_BOOLEAN: i8 = 1;
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;
pub const TYPE_LONG: i8 = 5;
pub const TYPE_DOUBLE: i8 = 6;
pub const TYPE_LIST: i8 = 7;

impl ConfigKind {
    pub fn wire_type(&self) -> i8 {
        match self {
            ConfigKind::Boolean => TYPE_BOOLEAN,
            ConfigKind::Int { .. } => TYPE_INT,
            ConfigKind::Long { .. } => TYPE_LONG,
            ConfigKind::Double { .. } => TYPE_DOUBLE,
            ConfigKind::Choice(_) | ConfigKind::AnyString => TYPE_STRING,
            ConfigKind::ListOf(_) | ConfigKind::ThrottledReplicas => TYPE_LIST,
        }
    }

    pub fn is_list(&self) -> bool {
        self.wire_type() == TYPE_LIST
    }
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigSpec {
    pub name: &'static str,
    pub kind: ConfigKind,
    /// Kafka's default, shown with source DEFAULT_CONFIG (Sluice's own default where it
    /// deliberately differs, e.g. `flush.ms`).
    pub default: &'static str,
    /// The broker-level config that supplies the default (`log.retention.ms`, ...).
    pub synonym: Option<&'static str>,
    pub doc: &'static str,
    /// Kafka 3.x configs that 4.x removed: accepted and stored so old scripts keep
    /// working, but only listed by DescribeConfigs when a topic sets them.
    pub legacy: bool,
}

const I32_MAX: i64 = i32::MAX as i64;
const I64_MAX: i64 = i64::MAX;
const I64_MAX_STR: &str = "9223372036854775807";
const ONE_NODE: &str = " Stored but without effect on a single-node Sluice broker.";

const fn spec(
    name: &'static str,
    kind: ConfigKind,
    default: &'static str,
    synonym: Option<&'static str>,
    doc: &'static str,
) -> TopicConfigSpec {
    TopicConfigSpec {
        name,
        kind,
        default,
        synonym,
        doc,
        legacy: false,
    }
}

const fn legacy(
    name: &'static str,
    kind: ConfigKind,
    default: &'static str,
    doc: &'static str,
) -> TopicConfigSpec {
    TopicConfigSpec {
        name,
        kind,
        default,
        synonym: None,
        doc,
        legacy: true,
    }
}

use ConfigKind::*;

/// Every topic config, in Kafka's alphabetical order (then Sluice's own).
pub const TOPIC_CONFIG_SPECS: &[TopicConfigSpec] = &[
    spec(
        "cleanup.policy",
        ListOf(&["compact", "delete"]),
        "delete",
        Some("log.cleanup.policy"),
        "Comma-separated retention policies: `delete` removes old segments by time or size; `compact` keeps the latest record per key (the log cleaner rewrites sealed segments).",
    ),
    spec(
        "compression.type",
        Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "producer",
        Some("compression.type"),
        "Final compression of the topic's batches. `producer` keeps whatever the producer sent (zero-copy append); any other codec makes the broker recompress batches on append.",
    ),
    spec(
        "compression.gzip.level",
        Int { min: -1, max: 9 },
        "-1",
        Some("compression.gzip.level"),
        "Level used when compression.type is gzip: 1..9, or -1 for the codec default.",
    ),
    spec(
        "compression.lz4.level",
        Int { min: 1, max: 17 },
        "9",
        Some("compression.lz4.level"),
        "Level used when compression.type is lz4: 1..17.",
    ),
    spec(
        "compression.zstd.level",
        Int {
            min: -131072,
            max: 22,
        },
        "3",
        Some("compression.zstd.level"),
        "Level used when compression.type is zstd: -131072..22.",
    ),
    spec(
        "delete.retention.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        "86400000",
        Some("log.cleaner.delete.retention.ms"),
        "How long delete tombstones are kept on a compacted topic.",
    ),
    spec(
        "file.delete.delay.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        "60000",
        Some("log.segment.delete.delay.ms"),
        "Delay before a deleted segment's files are removed from disk. Sluice removes them as soon as no reader holds them.",
    ),
    spec(
        "flush.messages",
        Long {
            min: -1,
            max: I64_MAX,
        },
        "-1",
        Some("log.flush.interval.messages"),
        "Sync the log to disk after this many unsynced records; -1 never forces a sync by count.",
    ),
    spec(
        "flush.ms",
        Long {
            min: -1,
            max: I64_MAX,
        },
        "100",
        Some("log.flush.interval.ms"),
        "Sync unsynced data to disk at least this often. Sluice defaults to 100 ms (a single node has no replicas to rely on); -1 never.",
    ),
    spec(
        "follower.replication.throttled.replicas",
        ThrottledReplicas,
        "",
        None,
        "Replicas (`partition:broker` pairs, or `*`) whose follower-side replication is throttled.",
    ),
    spec(
        "index.interval.bytes",
        Int {
            min: 0,
            max: I32_MAX,
        },
        "4096",
        Some("log.index.interval.bytes"),
        "Bytes of log between two entries of the sparse offset index.",
    ),
    spec(
        "leader.replication.throttled.replicas",
        ThrottledReplicas,
        "",
        None,
        "Replicas (`partition:broker` pairs, or `*`) whose leader-side replication is throttled.",
    ),
    spec(
        "local.retention.bytes",
        Long {
            min: -2,
            max: I64_MAX,
        },
        "-2",
        Some("log.local.retention.bytes"),
        "Local bytes kept before tiered segments may be deleted; -2 follows retention.bytes. Without tiered storage the local log is the whole log.",
    ),
    spec(
        "local.retention.ms",
        Long {
            min: -2,
            max: I64_MAX,
        },
        "-2",
        Some("log.local.retention.ms"),
        "Local time kept before tiered segments may be deleted; -2 follows retention.ms. Without tiered storage the local log is the whole log.",
    ),
    spec(
        "max.compaction.lag.ms",
        Long {
            min: 1,
            max: I64_MAX,
        },
        I64_MAX_STR,
        Some("log.cleaner.max.compaction.lag.ms"),
        "Longest time a record may stay uncompacted on a compacted topic.",
    ),
    spec(
        "max.message.bytes",
        Int {
            min: 0,
            max: I32_MAX,
        },
        "1048588",
        Some("message.max.bytes"),
        "Largest record batch (after compression) the topic accepts.",
    ),
    spec(
        "message.timestamp.after.max.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        "3600000",
        Some("log.message.timestamp.after.max.ms"),
        "With CreateTime, the furthest a record's timestamp may lie in the future of the broker's clock; later ones are refused with INVALID_TIMESTAMP.",
    ),
    spec(
        "message.timestamp.before.max.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        I64_MAX_STR,
        Some("log.message.timestamp.before.max.ms"),
        "With CreateTime, the furthest a record's timestamp may lie in the past of the broker's clock; older ones are refused with INVALID_TIMESTAMP.",
    ),
    spec(
        "message.timestamp.type",
        Choice(&["CreateTime", "LogAppendTime"]),
        "CreateTime",
        Some("log.message.timestamp.type"),
        "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime).",
    ),
    spec(
        "min.cleanable.dirty.ratio",
        Double { min: 0.0, max: 1.0 },
        "0.5",
        Some("log.cleaner.min.cleanable.ratio"),
        "Share of uncompacted log that makes a compacted partition eligible for cleaning.",
    ),
    spec(
        "min.compaction.lag.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        "0",
        Some("log.cleaner.min.compaction.lag.ms"),
        "Shortest time a record stays uncompacted on a compacted topic.",
    ),
    spec(
        "min.insync.replicas",
        Int {
            min: 1,
            max: I32_MAX,
        },
        "1",
        Some("min.insync.replicas"),
        "Replicas that must acknowledge an acks=all write. A single node has exactly one in-sync replica.",
    ),
    spec(
        "preallocate",
        Boolean,
        "false",
        Some("log.preallocate"),
        "Preallocate segment files on disk when they are created.",
    ),
    spec(
        "remote.log.copy.disable",
        Boolean,
        "false",
        None,
        "Stop copying segments to tiered storage. Tiered storage is not available here.",
    ),
    spec(
        "remote.log.delete.on.disable",
        Boolean,
        "false",
        None,
        "Delete tiered segments when tiered storage is disabled for the topic. Tiered storage is not available here.",
    ),
    spec(
        "remote.storage.enable",
        Boolean,
        "false",
        None,
        "Tiered storage for the topic. Sluice has no tiered storage, so only false is accepted.",
    ),
    spec(
        "retention.bytes",
        Long {
            min: -1,
            max: I64_MAX,
        },
        "-1",
        Some("log.retention.bytes"),
        "Largest size of a partition before its oldest segments are deleted; -1 is no limit.",
    ),
    spec(
        "retention.ms",
        Long {
            min: -1,
            max: I64_MAX,
        },
        "604800000",
        Some("log.retention.ms"),
        "Age after which whole segments are deleted; -1 keeps records forever.",
    ),
    spec(
        "segment.bytes",
        Int {
            min: 14,
            max: I32_MAX,
        },
        "1073741824",
        Some("log.segment.bytes"),
        "Size at which the active segment rolls.",
    ),
    spec(
        "segment.index.bytes",
        Int {
            min: 8,
            max: I32_MAX,
        },
        "10485760",
        Some("log.index.size.max.bytes"),
        "Preallocated size of each segment's offset index.",
    ),
    spec(
        "segment.jitter.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        "0",
        Some("log.roll.jitter.ms"),
        "Random jitter subtracted from segment.ms so that segments do not all roll at once.",
    ),
    spec(
        "segment.ms",
        Long {
            min: 1,
            max: I64_MAX,
        },
        "604800000",
        Some("log.roll.ms"),
        "Age at which a non-empty active segment rolls.",
    ),
    spec(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Some("unclean.leader.election.enable"),
        "Whether an out-of-sync replica may become leader. A single node is always its own leader.",
    ),
    legacy(
        "message.downconversion.enable",
        Boolean,
        "true",
        "Kafka 3.x: down-convert records for old fetchers. Removed in Kafka 4.0; accepted for old scripts and ignored.",
    ),
    legacy(
        "message.format.version",
        AnyString,
        "3.0-IV1",
        "Kafka 3.x: on-disk message format. Removed in Kafka 4.0; accepted for old scripts and ignored (Sluice always writes v2 batches).",
    ),
    legacy(
        "message.timestamp.difference.max.ms",
        Long {
            min: 0,
            max: I64_MAX,
        },
        I64_MAX_STR,
        "Kafka 3.x: the largest difference between a CreateTime timestamp and the broker's clock, either way. Enforced together with message.timestamp.before/after.max.ms.",
    ),
    spec(
        "sluice.durability",
        Choice(&["acks-all", "always", "none"]),
        "acks-all",
        None,
        "Sluice: when appends are fdatasync'ed before they are acknowledged: acks-all (acks=all writes, grouped), always, or none.",
    ),
    spec(
        "errors.deadletterqueue.group.enable",
        Boolean,
        "false",
        None,
        "KIP-1191: whether share groups may use this topic as their dead-letter queue topic (its name must also start with the broker's errors_deadletterqueue_topic_name_prefix).",
    ),
    spec(
        "sluice.delivery.delay.ms",
        Long {
            min: 0,
            max: 1 << 35,
        },
        "0",
        None,
        "Sluice: hold every record of the topic this many milliseconds in the broker's delay log before appending it (delayed delivery; 0 = none). A record's sluice.delay.ms or sluice.deliver.at.ms header wins. At most [log] delivery_delay_max_ms.",
    ),
];

/// The spec of one topic config, by Kafka name.
pub fn topic_config_spec(name: &str) -> Option<&'static TopicConfigSpec> {
    TOPIC_CONFIG_SPECS.iter().find(|s| s.name == name)
}

/// Which configs in [`TOPIC_CONFIG_SPECS`] Sluice stores but does not act on.
pub fn has_no_effect_here(name: &str) -> bool {
    matches!(
        name,
        "file.delete.delay.ms"
            | "follower.replication.throttled.replicas"
            | "leader.replication.throttled.replicas"
            | "local.retention.bytes"
            | "local.retention.ms"
            | "min.insync.replicas"
            | "preallocate"
            | "remote.log.copy.disable"
            | "remote.log.delete.on.disable"
            | "remote.storage.enable"
            | "segment.jitter.ms"
            | "unclean.leader.election.enable"
            | "message.downconversion.enable"
            | "message.format.version"
    )
}

/// The documentation DescribeConfigs returns: the spec's text, plus a note where the
/// config is only stored.
pub fn documentation(spec: &TopicConfigSpec) -> String {
    if has_no_effect_here(spec.name) {
        format!("{}{ONE_NODE}", spec.doc)
    } else {
        spec.doc.to_string()
    }
}

/// The elements of a list-typed value: trimmed, empty ones dropped (Kafka's parsing).
pub fn list_elements(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// Checks `value` against the spec; the reason reads like Kafka's ConfigException.
pub fn check_value(spec: &TopicConfigSpec, value: &str) -> Result<(), String> {
    let v = value.trim();
    match spec.kind {
        Boolean => match v.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err("Expected value to be either true or false".into()),
        },
        Int { min, max } | Long { min, max } => {
            let type_name = if matches!(spec.kind, Int { .. }) {
                "INT"
            } else {
                "LONG"
            };
            let n: i64 = v
                .parse()
                .map_err(|_| format!("Not a number of type {type_name}"))?;
            check_range(min as f64, max as f64, n < min, n > max)
        }
        Double { min, max } => {
            let n: f64 = v
                .parse()
                .map_err(|_| "Not a number of type DOUBLE".to_string())?;
            if !n.is_finite() {
                return Err("Not a number of type DOUBLE".into());
            }
            check_range(min, max, n < min, n > max)
        }
        Choice(choices) => {
            if choices.contains(&v) {
                Ok(())
            } else {
                Err(format!("String must be one of: {}", choices.join(", ")))
            }
        }
        ListOf(choices) => match list_elements(v).into_iter().find(|e| !choices.contains(e)) {
            None => Ok(()),
            Some(_) => Err(format!("String must be one of: {}", choices.join(", "))),
        },
        ThrottledReplicas => check_throttled_replicas(v),
        AnyString => Ok(()),
    }
}

fn check_range(min: f64, max: f64, below: bool, above: bool) -> Result<(), String> {
    if below {
        return Err(format!("Value must be at least {}", fmt_bound(min)));
    }
    if above {
        return Err(format!("Value must be no more than {}", fmt_bound(max)));
    }
    Ok(())
}

fn fmt_bound(b: f64) -> String {
    if b.fract() == 0.0 && b.abs() < 1e15 {
        (b as i64).to_string()
    } else {
        b.to_string()
    }
}

/// Kafka's ThrottledReplicaListValidator: `*`, or `partition:broker` integer pairs.
fn check_throttled_replicas(value: &str) -> Result<(), String> {
    let elements = list_elements(value);
    if elements == ["*"] {
        return Ok(());
    }
    let pair_ok = |e: &str| {
        e.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        })
    };
    if elements.iter().all(|e| pair_ok(e)) {
        Ok(())
    } else {
        Err("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_validator() {
        for spec in TOPIC_CONFIG_SPECS {
            check_value(spec, spec.default).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        }
    }

    #[test]
    fn validators_reject_like_kafka() {
        let spec = |n| topic_config_spec(n).unwrap();
        assert!(
            check_value(spec("retention.ms"), "-2")
                .unwrap_err()
                .contains("at least -1")
        );
        assert!(check_value(spec("min.cleanable.dirty.ratio"), "1.5").is_err());
        assert!(check_value(spec("compression.type"), "brotli").is_err());
        assert!(check_value(spec("cleanup.policy"), "compact,erase").is_err());
        assert!(check_value(spec("cleanup.policy"), "compact, delete").is_ok());
        assert!(check_value(spec("leader.replication.throttled.replicas"), "0:1,1:1").is_ok());
        assert!(check_value(spec("leader.replication.throttled.replicas"), "0-1").is_err());
        assert!(check_value(spec("preallocate"), "yes").is_err());
        assert!(check_value(spec("compression.zstd.level"), "23").is_err());
    }
}
