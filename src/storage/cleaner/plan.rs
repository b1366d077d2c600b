//! Which part of a compacted log a cleaner pass may touch, and whether it should run now
//! (Kafka's `LogCleanerManager` / `LogToClean`): the cleanable prefix of sealed, synced
//! segments whose newest record is older than `min.compaction.lag.ms`; its dirty part (from
//! the cleaner checkpoint on) against its total gives the dirty ratio, compared with
//! `min.cleanable.dirty.ratio`; a first dirty segment older than `max.compaction.lag.ms` is
//! cleaned whatever the ratio. Never the active segment. Must not read files.

use std::rc::Rc;

use super::super::segment::Segment;
use crate::config::LogConfig;

/// Kafka's defaults, used when a stored value does not parse (the spec table validated it).
const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;

/// The topic configs that steer compaction, read once per pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionSettings {
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    /// Grouping bound for rewritten segments (`segment.bytes`).
    pub segment_bytes: u64,
    pub index_interval_bytes: u32,
}

impl CompactionSettings {
    pub fn from_config(config: &LogConfig) -> CompactionSettings {
        fn read<T: std::str::FromStr>(config: &LogConfig, key: &str, default: T) -> T {
            config
                .get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        }
        CompactionSettings {
            min_cleanable_dirty_ratio: read(
                config,
                "min.cleanable.dirty.ratio",
                DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            ),
            min_compaction_lag_ms: read(config, "min.compaction.lag.ms", 0i64).max(0),
            max_compaction_lag_ms: read(config, "max.compaction.lag.ms", i64::MAX).max(1),
            delete_retention_ms: read(config, "delete.retention.ms", DEFAULT_DELETE_RETENTION_MS)
                .max(0),
            segment_bytes: config.segment_bytes,
            index_interval_bytes: config.index_interval_bytes,
        }
    }
}

/// A log's cleanable range and why it is due.
#[derive(Clone)]
pub struct CleaningPlan {
    /// The cleanable prefix of the log: sealed segments, oldest first.
    pub segments: Vec<Rc<Segment>>,
    /// Index in `segments` of the first segment holding dirty (not yet cleaned) data.
    pub first_dirty_index: usize,
    pub first_dirty_offset: i64,
    pub dirty_bytes: u64,
    pub total_bytes: u64,
    /// How far past `max.compaction.lag.ms` the oldest dirty data is (0 when not past).
    pub time_behind_ms: i64,
    pub due: bool,
}

impl CleaningPlan {
    pub fn dirty_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / self.total_bytes as f64
        }
    }
}

/// The plan for a log whose segments are `segments` (the last is the active one), given its
/// first dirty offset, the offset below which everything is synced, and the clock. `None`
/// when nothing is cleanable.
pub fn plan_cleaning(
    segments: &[Rc<Segment>],
    first_dirty_offset: i64,
    synced_end_offset: i64,
    now_ms: i64,
    settings: &CompactionSettings,
) -> Option<CleaningPlan> {
    let sealed = &segments[..segments.len().saturating_sub(1)];
    let newest_cleanable_ms = now_ms.saturating_sub(settings.min_compaction_lag_ms);
    let cleanable: Vec<Rc<Segment>> = sealed
        .iter()
        .take_while(|s| {
            s.next_offset.get() <= synced_end_offset && s.max_timestamp.get() <= newest_cleanable_ms
        })
        .cloned()
        .collect();
    let first_dirty_index = cleanable
        .iter()
        .position(|s| s.next_offset.get() > first_dirty_offset)?;
    let total_bytes: u64 = cleanable.iter().map(|s| s.size_bytes.get()).sum();
    let dirty_bytes: u64 = cleanable[first_dirty_index..]
        .iter()
        .map(|s| s.size_bytes.get())
        .sum();
    let oldest_dirty_ms = cleanable[first_dirty_index].max_timestamp.get();
    let time_behind_ms = if oldest_dirty_ms >= 0 {
        now_ms
            .saturating_sub(oldest_dirty_ms)
            .saturating_sub(settings.max_compaction_lag_ms)
            .max(0)
    } else {
        0
    };
    let mut plan = CleaningPlan {
        segments: cleanable,
        first_dirty_index,
        first_dirty_offset,
        dirty_bytes,
        total_bytes,
        time_behind_ms,
        due: false,
    };
    plan.due = dirty_bytes > 0
        && (plan.dirty_ratio() > settings.min_cleanable_dirty_ratio || time_behind_ms > 0);
    Some(plan)
}
