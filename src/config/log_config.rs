//! Per-topic log configuration, under Kafka's own config names so that `kafka-configs`,
//! admin clients and `sluice topic alter-config` speak the same keys.

use super::topic_config_spec::{TOPIC_CONFIG_SPECS, check_value, list_elements, topic_config_spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's default `max.message.bytes` (a whole batch, after compression).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1_048_588;
/// Kafka's default `segment.bytes`.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;
/// Smallest segment we accept; smaller ones would roll on every batch.
pub const MIN_SEGMENT_BYTES: u64 = 14;
/// Bytes of log between two sparse index entries (Kafka's `index.interval.bytes`).
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;
/// Kafka's default `segment.index.bytes`: the preallocated size of each index file.
pub const DEFAULT_SEGMENT_INDEX_BYTES: u32 = 10 * 1024 * 1024;
/// `flush.ms`: how long an acks=0/1 append may stay only in the page cache. Kafka never
/// syncs by default (it relies on replicas); a single Sluice node bounds that window
/// instead. 100 ms, as Redpanda does, not 1 s: each sync writes back what piled up since
/// the last one while appends to the file wait, so smaller syncs stall less. Measured at
/// 50 MB/s acks=1 on ext4 without a journal: p99 1.1–1.9 ms and p99.9 4–12 ms at 100 ms,
/// against 5.8–24 ms and 21–60 ms at 1 s (decision 0002 amendment).
pub const DEFAULT_FLUSH_MS: i64 = 100;
/// Kafka 4.x's `message.timestamp.after.max.ms` default (KIP-1030): a CreateTime record
/// stamped more than an hour ahead of the broker's clock is refused. The `before` bound
/// stays unbounded, as in Kafka.
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT: i64 = 3_600_000;
/// `[log] delivery_delay_max_ms` default: the longest delay a record may ask for, 30 days.
pub const DEFAULT_DELIVERY_DELAY_MAX_MS: i64 = 30 * 24 * 3_600 * 1_000;
/// The largest `delivery_delay_max_ms` accepted: half the delay wheel's horizon (about 397
/// days), so a delay never waits on the wheel's overflow list.
pub const DELIVERY_DELAY_MAX_MS_LIMIT: i64 = 1 << 35;

/// `cleanup.policy`, a Kafka list of `delete` and `compact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactAndDelete,
    /// An empty list: neither deletion nor compaction.
    Neither,
}

impl CleanupPolicy {
    /// The policy keeps the newest record per key (`compact` or `compact,delete`): records
    /// must then have keys.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }

    fn from_list(value: &str) -> CleanupPolicy {
        let elements = list_elements(value);
        let compact = elements.contains(&"compact");
        let delete = elements.contains(&"delete");
        match (compact, delete) {
            (true, true) => CleanupPolicy::CompactAndDelete,
            (true, false) => CleanupPolicy::Compact,
            (false, true) => CleanupPolicy::Delete,
            (false, false) => CleanupPolicy::Neither,
        }
    }

    fn as_list(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactAndDelete => "compact,delete",
            CleanupPolicy::Neither => "",
        }
    }
}

/// `compression.type`: the codec batches end up in. `Producer` keeps the producer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressionType {
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    fn from_name(name: &str) -> Option<CompressionType> {
        [
            CompressionType::Producer,
            CompressionType::Uncompressed,
            CompressionType::Gzip,
            CompressionType::Snappy,
            CompressionType::Lz4,
            CompressionType::Zstd,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// When appends are fdatasync'ed before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Writes with acks=all are synced before the ack (group commit); others are not.
    AcksAll,
    /// Every write is synced before its ack.
    Always,
    /// Nothing is synced before an ack; only the background flush syncs.
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicConfigError {
    #[error("Unknown topic config name: {0}")]
    UnknownKey(String),
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// Two configs that are each valid but not together.
    #[error("{0}")]
    Conflict(String),
}

/// Default cleaner I/O budget per shard (100 MiB/s read plus written).
pub const DEFAULT_CLEANER_IO_MAX_BYTES_PER_SECOND: u64 = 100 * 1024 * 1024;
/// The smallest cleaner I/O budget accepted (a pass must be able to move).
pub const MIN_CLEANER_IO_BYTES_PER_SECOND: u64 = 64 * 1024;
/// Default key-map memory per shard (32 MiB: about a million keys per pass).
pub const DEFAULT_CLEANER_DEDUPE_BUFFER_BYTES: u64 = 32 * 1024 * 1024;
/// The smallest key map accepted (32 KiB: a thousand keys).
pub const MIN_CLEANER_DEDUPE_BUFFER_BYTES: u64 = 32 * 1024;
/// `[log] write_inline_max_bytes` default: 0, every client write run through io_uring.
/// Set (20 KiB: one full 16 KiB producer batch with its overhead, not two), a run to a
/// partition not written back to back (`storage::writer::INLINE_WRITE_MIN_GAP_US`) and
/// with no write-back of its own running is copied on the shard's thread. Measured in
/// decision 0005, session 20: over 1,000 partitions it cut the shards' and io-wq workers'
/// context switches per MB by a third, without a CPU or throughput change beyond this
/// shared box's noise. Session 25 (decision 0026): at a fixed 50,000 records/s it cut
/// broker CPU per GB 18 %, but keyed produce lost 8 % MB/s and the fixed-rate p99.9 rose,
/// so it is still not the default.
/// Session 13's 64 KiB, inline whatever the partition's rate, cost one-partition produce
/// 2-15 % (the io-wq worker's copy overlaps the shard's next receive).
pub const DEFAULT_WRITE_INLINE_MAX_BYTES: u32 = 0;
/// The largest `write_inline_max_bytes` accepted: a blocking write stalls every partition of
/// the shard, so a big run must not be written inline.
pub const WRITE_INLINE_MAX_BYTES_LIMIT: u32 = 1024 * 1024;
/// `[log] replica_write_inline_max_bytes` default: a follower's append of a fetched round up
/// to 128 KiB (one or two produce batches at a time in the steady state; a catching-up
/// follower's 1 MiB rounds stay on io_uring) is written on the shard's thread (decision
/// 0012, session 17), and so is a leader's append with in-sync followers (session 19).
pub const DEFAULT_REPLICA_WRITE_INLINE_MAX_BYTES: u32 = 128 * 1024;
/// `[log] flush_syncfs_min_partitions` default: a shard's background-flush tick with at
/// least this many partitions due syncs the data directory's filesystem once (`syncfs`)
/// instead of fdatasyncing each partition (decision 0020).
pub const DEFAULT_FLUSH_SYNCFS_MIN_PARTITIONS: u32 = 32;
/// The largest `flush_syncfs_min_partitions` accepted (more than any shard holds: a value
/// meant as "never" is 0).
pub const FLUSH_SYNCFS_MIN_PARTITIONS_LIMIT: u32 = 1_000_000;
/// `[log] write_behind_bytes` default: write-back of a segment's written bytes is started
/// every 1 MiB (`storage::write_behind`, decision 0026), so a `flush.ms` fdatasync finds
/// little dirty and never allocates 100 ms of blocks at once while appends wait.
pub const DEFAULT_WRITE_BEHIND_BYTES: u32 = 1024 * 1024;
/// The smallest non-zero `write_behind_bytes` accepted: a range per page or two would be a
/// thread hand-off per batch.
pub const WRITE_BEHIND_MIN_BYTES: u32 = 64 * 1024;
/// The largest `write_behind_bytes` accepted (a segment's default size).
pub const WRITE_BEHIND_MAX_BYTES: u32 = 1024 * 1024 * 1024;
/// `[log] drop_behind_bytes` default: a partition's newest 1 GiB stays in the page cache for
/// tailing and catch-up consumers; older pages are dropped once written back
/// (`storage::write_behind`, decision 0026, session 22), so new appends reuse them instead
/// of making the kernel reclaim or compact memory, or fault in fresh pages.
pub const DEFAULT_DROP_BEHIND_BYTES: u64 = 1024 * 1024 * 1024;
/// The smallest non-zero `drop_behind_bytes` accepted: the kernel skips pages still dirty
/// or under write-back, and the newest MiB or so (`write_behind_bytes`) always are.
pub const DROP_BEHIND_MIN_BYTES: u64 = 1024 * 1024;
/// The largest `drop_behind_bytes` accepted (1 TiB: more than any page cache; a value
/// meant as "never" is 0).
pub const DROP_BEHIND_MAX_BYTES: u64 = 1 << 40;
/// Kafka's `log.cleaner.backoff.ms` default.
pub const DEFAULT_CLEANER_BACKOFF_MS: u64 = 15_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty segment older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete whole segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the partition is larger; -1 is no limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`.
    pub segment_index_bytes: u32,
    /// `flush.messages`: background-sync after this many unsynced records; -1 never.
    pub flush_messages: i64,
    /// `flush.ms`: background-sync unsynced data at least this often; -1 never.
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `sluice.durability`: when appends are synced before acknowledgement.
    pub durability: Durability,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level`.
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    /// `message.timestamp.before.max.ms`: CreateTime records older than now minus this
    /// are refused with INVALID_TIMESTAMP.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: CreateTime records newer than now plus this are
    /// refused.
    pub message_timestamp_after_max_ms: i64,
    /// `message.timestamp.difference.max.ms` (Kafka 3.x): bounds both directions.
    pub message_timestamp_difference_max_ms: i64,
    /// `log.cleaner.enable`: run the log cleaner for compacted topics (broker-wide; not a
    /// topic config).
    pub cleaner_enable: bool,
    /// `log.cleaner.io.max.bytes.per.second`, per shard: cleaner bytes read plus written.
    pub cleaner_io_max_bytes_per_second: u64,
    /// `log.cleaner.dedupe.buffer.size`, per shard: memory for one pass's key map.
    pub cleaner_dedupe_buffer_bytes: u64,
    /// `log.cleaner.backoff.ms`: how long a shard's cleaner sleeps when nothing is due.
    pub cleaner_backoff_ms: u64,
    /// `sluice.delivery.delay.ms`: every record of the topic is held back this long in the
    /// delay log before it is appended (0: no delay; a record's own delay header wins).
    pub delivery_delay_ms: i64,
    /// `[log] delivery_delay_max_ms` (broker-wide, not a topic config): the longest delay a
    /// record may ask for; larger ones are refused with INVALID_RECORD.
    pub delivery_delay_max_ms: i64,
    /// `[log] write_inline_max_bytes` (broker-wide, not a topic config): a queued write run
    /// of a client append up to this size goes to the page cache by a blocking `pwritev` on
    /// the shard's thread instead of io_uring (which ext4 hands to a worker thread), unless
    /// its partition is written back to back (never within a second of an inline write
    /// that stalled); 0 writes everything through io_uring. The fsync path is the same
    /// either way.
    pub write_inline_max_bytes: u32,
    /// `[log] replica_write_inline_max_bytes` (broker-wide, not a topic config): the same
    /// for a follower's appends of the records its leader sent, whatever
    /// `write_inline_max_bytes` is: a follower sends its next fetch only once the round is
    /// written, so an io-wq worker's write there is a wake-up of the worker and one of the
    /// shard in every round, with nothing for the shard to do meanwhile. Also a leader's
    /// client appends while followers are in its ISR (session 19): their acks=all answer
    /// waits for followers that fetch only what is written. 0: through io_uring.
    pub replica_write_inline_max_bytes: u32,
    /// `[log] flush_syncfs_min_partitions` (broker-wide, not a topic config): when a
    /// shard's maintenance tick finds at least this many partitions with a background flush
    /// due, one `syncfs(2)` of the data directory's filesystem makes all of them durable
    /// instead of one fdatasync each; 0 never does. It also writes back whatever else is
    /// dirty on that filesystem (decision 0020).
    pub flush_syncfs_min_partitions: u32,
    /// `[log] write_behind_bytes` (broker-wide, not a topic config): once a segment holds
    /// this many written bytes whose write-back has not been started, it is started
    /// (`sync_file_range`, not waited for), so the background flush's fdatasync finds
    /// little to write; 0 leaves all of it to the flush (decision 0026). Only for topics
    /// with a background flush (`flush.ms` >= 0).
    pub write_behind_bytes: u32,
    /// `[log] drop_behind_bytes` (broker-wide, not a topic config): pages of a partition's
    /// log more than this many bytes behind its written end are dropped from the page cache
    /// (`POSIX_FADV_DONTNEED`) as write-behind goes on; 0 leaves them to the kernel's
    /// reclaim. Only where write-behind runs (decision 0026, session 22).
    pub drop_behind_bytes: u64,
    /// Every other Kafka topic config: validated and stored, not acted on (see
    /// `topic_config_spec::has_no_effect_here`). Keyed by Kafka name; absent means default.
    #[serde(skip)]
    pub stored_only: BTreeMap<String, String>,
}

impl LogConfig {
    /// The topic's `compression.<codec>.level` for `codec`, where Kafka has one.
    pub fn compression_level(&self, codec: CompressionType) -> Option<i32> {
        match codec {
            CompressionType::Gzip => Some(self.compression_gzip_level),
            CompressionType::Lz4 => Some(self.compression_lz4_level),
            CompressionType::Zstd => Some(self.compression_zstd_level),
            _ => None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            flush_messages: -1,
            flush_ms: DEFAULT_FLUSH_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            message_timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            durability: Durability::AcksAll,
            compression_type: CompressionType::Producer,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT,
            message_timestamp_difference_max_ms: i64::MAX,
            cleaner_enable: true,
            cleaner_io_max_bytes_per_second: DEFAULT_CLEANER_IO_MAX_BYTES_PER_SECOND,
            cleaner_dedupe_buffer_bytes: DEFAULT_CLEANER_DEDUPE_BUFFER_BYTES,
            cleaner_backoff_ms: DEFAULT_CLEANER_BACKOFF_MS,
            delivery_delay_ms: 0,
            delivery_delay_max_ms: DEFAULT_DELIVERY_DELAY_MAX_MS,
            write_inline_max_bytes: DEFAULT_WRITE_INLINE_MAX_BYTES,
            replica_write_inline_max_bytes: DEFAULT_REPLICA_WRITE_INLINE_MAX_BYTES,
            flush_syncfs_min_partitions: DEFAULT_FLUSH_SYNCFS_MIN_PARTITIONS,
            write_behind_bytes: DEFAULT_WRITE_BEHIND_BYTES,
            drop_behind_bytes: DEFAULT_DROP_BEHIND_BYTES,
            stored_only: BTreeMap::new(),
        }
    }
}

/// The Kafka names of every topic config this broker understands, in the order
/// DescribeConfigs lists them.
pub fn topic_config_keys() -> impl Iterator<Item = &'static str> {
    TOPIC_CONFIG_SPECS.iter().map(|s| s.name)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> TopicConfigError {
    TopicConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// An integer the spec table has already range-checked.
fn parse_i64(key: &str, value: &str) -> Result<i64, TopicConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "Not a number of type LONG"))
}

fn parse_i32(key: &str, value: &str) -> Result<i32, TopicConfigError> {
    i32::try_from(parse_i64(key, value)?)
        .map_err(|_| invalid(key, value, "Not a number of type INT"))
}

fn parse_u32(key: &str, value: &str) -> Result<u32, TopicConfigError> {
    u32::try_from(parse_i64(key, value)?)
        .map_err(|_| invalid(key, value, "Value must be at least 0"))
}

impl LogConfig {
    /// Applies one Kafka-named config (from CreateTopics, AlterConfigs, or the CLI),
    /// validated against Kafka's rules for it first.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TopicConfigError> {
        let spec =
            topic_config_spec(key).ok_or_else(|| TopicConfigError::UnknownKey(key.to_string()))?;
        check_value(spec, value).map_err(|reason| invalid(key, value, reason))?;
        let value = value.trim();
        match key {
            "segment.bytes" => self.segment_bytes = parse_i64(key, value)? as u64,
            "segment.ms" => self.segment_ms = parse_i64(key, value)?,
            "retention.ms" => self.retention_ms = parse_i64(key, value)?,
            "retention.bytes" => self.retention_bytes = parse_i64(key, value)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_u32(key, value)?,
            "segment.index.bytes" => self.segment_index_bytes = parse_u32(key, value)?,
            "flush.messages" => self.flush_messages = parse_i64(key, value)?,
            "flush.ms" => self.flush_ms = parse_i64(key, value)?,
            "max.message.bytes" => self.max_message_bytes = parse_u32(key, value)?,
            "message.timestamp.type" => {
                self.message_timestamp_type = if value == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                }
            }
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::from_list(value);
                // Kafka shows the list in the order it was given.
                self.stored_only
                    .insert(key.to_string(), list_elements(value).join(","));
            }
            "sluice.durability" => {
                self.durability = match value {
                    "always" => Durability::Always,
                    "none" => Durability::None,
                    _ => Durability::AcksAll,
                }
            }
            "sluice.delivery.delay.ms" => self.delivery_delay_ms = parse_i64(key, value)?,
            "compression.type" => {
                self.compression_type = CompressionType::from_name(value)
                    .ok_or_else(|| invalid(key, value, "unknown codec"))?
            }
            "compression.gzip.level" => self.compression_gzip_level = parse_i32(key, value)?,
            "compression.lz4.level" => self.compression_lz4_level = parse_i32(key, value)?,
            "compression.zstd.level" => self.compression_zstd_level = parse_i32(key, value)?,
            "message.timestamp.before.max.ms" => {
                self.message_timestamp_before_max_ms = parse_i64(key, value)?
            }
            "message.timestamp.after.max.ms" => {
                self.message_timestamp_after_max_ms = parse_i64(key, value)?
            }
            "message.timestamp.difference.max.ms" => {
                self.message_timestamp_difference_max_ms = parse_i64(key, value)?
            }
            "remote.storage.enable" if value.eq_ignore_ascii_case("true") => {
                return Err(invalid(
                    key,
                    value,
                    "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.",
                ));
            }
            _ => {
                let normalized = if spec.kind.is_list() {
                    list_elements(value).join(",")
                } else {
                    value.to_string()
                };
                self.stored_only.insert(key.to_string(), normalized);
            }
        }
        Ok(())
    }

    /// The widest window CreateTime timestamps may lie in the past and in the future of the
    /// broker's clock: the 4.x bounds and the 3.x difference bound, whichever is tighter.
    pub fn timestamp_bounds_ms(&self) -> (i64, i64) {
        (
            self.message_timestamp_before_max_ms
                .min(self.message_timestamp_difference_max_ms),
            self.message_timestamp_after_max_ms
                .min(self.message_timestamp_difference_max_ms),
        )
    }

    /// The current value of one Kafka-named config, as DescribeConfigs shows it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_string(),
                TimestampType::LogAppendTime => "LogAppendTime".to_string(),
            },
            "cleanup.policy" => self
                .stored_only
                .get(key)
                .cloned()
                .unwrap_or_else(|| self.cleanup_policy.as_list().to_string()),
            "sluice.durability" => match self.durability {
                Durability::AcksAll => "acks-all".to_string(),
                Durability::Always => "always".to_string(),
                Durability::None => "none".to_string(),
            },
            "sluice.delivery.delay.ms" => self.delivery_delay_ms.to_string(),
            "compression.type" => self.compression_type.name().to_string(),
            "compression.gzip.level" => self.compression_gzip_level.to_string(),
            "compression.lz4.level" => self.compression_lz4_level.to_string(),
            "compression.zstd.level" => self.compression_zstd_level.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.difference.max.ms" => {
                self.message_timestamp_difference_max_ms.to_string()
            }
            _ => {
                let spec = topic_config_spec(key)?;
                return Some(
                    self.stored_only
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| spec.default.to_string()),
                );
            }
        })
    }

    pub fn validate(&self) -> Result<(), TopicConfigError> {
        if self.cleaner_io_max_bytes_per_second < MIN_CLEANER_IO_BYTES_PER_SECOND {
            return Err(invalid(
                "cleaner_io_max_bytes_per_second",
                &self.cleaner_io_max_bytes_per_second.to_string(),
                format!("Value must be at least {MIN_CLEANER_IO_BYTES_PER_SECOND}"),
            ));
        }
        if self.cleaner_dedupe_buffer_bytes < MIN_CLEANER_DEDUPE_BUFFER_BYTES {
            return Err(invalid(
                "cleaner_dedupe_buffer_bytes",
                &self.cleaner_dedupe_buffer_bytes.to_string(),
                format!("Value must be at least {MIN_CLEANER_DEDUPE_BUFFER_BYTES}"),
            ));
        }
        if !(0..=DELIVERY_DELAY_MAX_MS_LIMIT).contains(&self.delivery_delay_max_ms) {
            return Err(invalid(
                "delivery_delay_max_ms",
                &self.delivery_delay_max_ms.to_string(),
                format!("Value must be in [0, {DELIVERY_DELAY_MAX_MS_LIMIT}]"),
            ));
        }
        if self.write_inline_max_bytes > WRITE_INLINE_MAX_BYTES_LIMIT {
            return Err(invalid(
                "write_inline_max_bytes",
                &self.write_inline_max_bytes.to_string(),
                format!("Value must be at most {WRITE_INLINE_MAX_BYTES_LIMIT}"),
            ));
        }
        if self.replica_write_inline_max_bytes > WRITE_INLINE_MAX_BYTES_LIMIT {
            return Err(invalid(
                "replica_write_inline_max_bytes",
                &self.replica_write_inline_max_bytes.to_string(),
                format!("Value must be at most {WRITE_INLINE_MAX_BYTES_LIMIT}"),
            ));
        }
        if self.flush_syncfs_min_partitions > FLUSH_SYNCFS_MIN_PARTITIONS_LIMIT {
            return Err(invalid(
                "flush_syncfs_min_partitions",
                &self.flush_syncfs_min_partitions.to_string(),
                format!("Value must be at most {FLUSH_SYNCFS_MIN_PARTITIONS_LIMIT}"),
            ));
        }
        if self.write_behind_bytes != 0
            && !(WRITE_BEHIND_MIN_BYTES..=WRITE_BEHIND_MAX_BYTES).contains(&self.write_behind_bytes)
        {
            return Err(invalid(
                "write_behind_bytes",
                &self.write_behind_bytes.to_string(),
                format!(
                    "Value must be 0 or in [{WRITE_BEHIND_MIN_BYTES}, {WRITE_BEHIND_MAX_BYTES}]"
                ),
            ));
        }
        if self.drop_behind_bytes != 0
            && !(DROP_BEHIND_MIN_BYTES..=DROP_BEHIND_MAX_BYTES).contains(&self.drop_behind_bytes)
        {
            return Err(invalid(
                "drop_behind_bytes",
                &self.drop_behind_bytes.to_string(),
                format!("Value must be 0 or in [{DROP_BEHIND_MIN_BYTES}, {DROP_BEHIND_MAX_BYTES}]"),
            ));
        }
        if self.delivery_delay_ms > self.delivery_delay_max_ms {
            return Err(invalid(
                "sluice.delivery.delay.ms",
                &self.delivery_delay_ms.to_string(),
                format!(
                    "Value exceeds the broker's delivery_delay_max_ms ({})",
                    self.delivery_delay_max_ms
                ),
            ));
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(invalid(
                "segment.bytes",
                &self.segment_bytes.to_string(),
                format!("Value must be at least {MIN_SEGMENT_BYTES}"),
            ));
        }
        if self.segment_index_bytes < 8 {
            return Err(invalid(
                "segment.index.bytes",
                &self.segment_index_bytes.to_string(),
                "Value must be at least 8",
            ));
        }
        let min_lag = self
            .get("min.compaction.lag.ms")
            .and_then(|v| v.parse::<i64>().ok());
        let max_lag = self
            .get("max.compaction.lag.ms")
            .and_then(|v| v.parse::<i64>().ok());
        if let (Some(min_lag), Some(max_lag)) = (min_lag, max_lag)
            && min_lag > max_lag
        {
            return Err(TopicConfigError::Conflict(format!(
                "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_config_tests.rs"]
mod tests;
