//! Partition series: bytes and records in and out, segments, size and log offsets, one
//! series per (topic, partition).
//!
//! Must not: emit a partition twice; a partition that moved between shards' snapshots is
//! merged by key first.

use super::text::Out;
use crate::metrics::{PartitionSnapshot, ShardSnapshot};
use std::collections::BTreeMap;

/// Every partition family, one sample per partition.
pub(super) fn write_partitions(out: &mut Out, snapshots: &[ShardSnapshot]) {
    // Partitions: a partition lives on one shard, but merge by key so a partition that moved
    // between two snapshots never yields duplicate series.
    let mut partitions: BTreeMap<(&str, i32), PartitionSnapshot> = BTreeMap::new();
    for s in snapshots {
        for p in &s.partitions {
            let entry = partitions
                .entry((p.topic.as_str(), p.partition))
                .or_insert_with(|| PartitionSnapshot {
                    bytes_in: 0,
                    records_in: 0,
                    bytes_out: 0,
                    records_out: 0,
                    ..p.clone()
                });
            entry.bytes_in += p.bytes_in;
            entry.records_in += p.records_in;
            entry.bytes_out += p.bytes_out;
            entry.records_out += p.records_out;
        }
    }
    type Field = fn(&PartitionSnapshot) -> f64;
    let partition_families: [(&str, &str, &str, Field); 9] = [
        (
            "sluice_partition_bytes_in_total",
            "counter",
            "Bytes of record batches appended.",
            |p| p.bytes_in as f64,
        ),
        (
            "sluice_partition_records_in_total",
            "counter",
            "Records appended.",
            |p| p.records_in as f64,
        ),
        (
            "sluice_partition_bytes_out_total",
            "counter",
            "Bytes of record batches sent to fetchers.",
            |p| p.bytes_out as f64,
        ),
        (
            "sluice_partition_records_out_total",
            "counter",
            "Records sent to fetchers.",
            |p| p.records_out as f64,
        ),
        (
            "sluice_partition_segments",
            "gauge",
            "Segments in the partition log.",
            |p| p.segments as f64,
        ),
        (
            "sluice_partition_size_bytes",
            "gauge",
            "Bytes of all segments of the partition.",
            |p| p.size_bytes as f64,
        ),
        (
            "sluice_partition_log_start_offset",
            "gauge",
            "First offset still in the log.",
            |p| p.log_start_offset as f64,
        ),
        (
            "sluice_partition_log_end_offset",
            "gauge",
            "Offset the next appended record gets.",
            |p| p.log_end_offset as f64,
        ),
        (
            "sluice_partition_last_stable_offset",
            "gauge",
            "First offset read_committed consumers cannot read yet (oldest open transaction).",
            |p| p.last_stable_offset as f64,
        ),
    ];
    for (name, kind, help, field) in partition_families {
        out.family(name, kind, help);
        for ((topic, partition), p) in &partitions {
            out.sample(
                name,
                &[("topic", topic), ("partition", &partition.to_string())],
                field(p),
            );
        }
    }
}
