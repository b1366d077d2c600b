//! The log cleaner's per-shard counters: passes, failures, bytes read, written and
//! reclaimed, records removed, time spent, and the time behind (how far past
//! `max.compaction.lag.ms` the most overdue partition is). Plain data, copied into the shard
//! snapshot. Must not know how cleaning works.

use std::time::Duration;

use crate::storage::cleaner::CleanStats;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanerCounters {
    pub passes: u64,
    pub failures: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub bytes_reclaimed: u64,
    pub records_removed: u64,
    pub segments_rewritten: u64,
    pub pass_ns_total: u64,
    /// Gauge: the most overdue compacted partition's delay past `max.compaction.lag.ms`.
    pub time_behind_ms: i64,
}

impl CleanerCounters {
    pub fn add_pass(&mut self, stats: &CleanStats, took: Duration) {
        self.passes += 1;
        self.bytes_read += stats.bytes_read;
        self.bytes_written += stats.bytes_written;
        self.bytes_reclaimed += stats.bytes_reclaimed;
        self.records_removed += stats.records_removed;
        self.segments_rewritten += stats.segments_rewritten;
        self.pass_ns_total += u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    }
}
