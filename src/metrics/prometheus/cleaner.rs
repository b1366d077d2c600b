//! The log cleaner families: passes, failures, bytes, records removed and seconds by shard,
//! and the time behind `max.compaction.lag.ms`. Every series keeps its `shard` label (the
//! cleaner runs per shard).
//!
//! Must not: emit request, partition or group series.

use super::text::Out;
use crate::metrics::ShardSnapshot;
use crate::metrics::cleaner::CleanerCounters;

type Field = fn(&CleanerCounters) -> f64;

const FAMILIES: [(&str, &str, &str, Field); 9] = [
    (
        "sluice_cleaner_passes_total",
        "counter",
        "Log cleaner passes completed.",
        |c| c.passes as f64,
    ),
    (
        "sluice_cleaner_failures_total",
        "counter",
        "Log cleaner passes that failed.",
        |c| c.failures as f64,
    ),
    (
        "sluice_cleaner_read_bytes_total",
        "counter",
        "Segment bytes the log cleaner read.",
        |c| c.bytes_read as f64,
    ),
    (
        "sluice_cleaner_written_bytes_total",
        "counter",
        "Bytes the log cleaner wrote to cleaned segments.",
        |c| c.bytes_written as f64,
    ),
    (
        "sluice_cleaner_reclaimed_bytes_total",
        "counter",
        "Segment bytes freed by compaction (size before minus after).",
        |c| c.bytes_reclaimed as f64,
    ),
    (
        "sluice_cleaner_records_removed_total",
        "counter",
        "Superseded records and expired tombstones removed.",
        |c| c.records_removed as f64,
    ),
    (
        "sluice_cleaner_segments_rewritten_total",
        "counter",
        "Segments replaced by cleaned ones.",
        |c| c.segments_rewritten as f64,
    ),
    (
        "sluice_cleaner_pass_seconds_total",
        "counter",
        "Time spent in log cleaner passes, throttling included.",
        |c| c.pass_ns_total as f64 / 1e9,
    ),
    (
        "sluice_cleaner_time_behind_seconds",
        "gauge",
        "How far past max.compaction.lag.ms the most overdue compacted partition is (Kafka's max-compaction-delay-secs).",
        |c| c.time_behind_ms as f64 / 1e3,
    ),
];

pub(super) fn write_cleaner(out: &mut Out, snapshots: &[ShardSnapshot]) {
    for (name, kind, help, field) in FAMILIES {
        out.family(name, kind, help);
        for s in snapshots {
            out.sample(
                name,
                &[("shard", &s.shard_id.to_string())],
                field(&s.cleaner),
            );
        }
    }
}
