//! Delayed delivery's families (issue 18): pending records per shard, delivered and dropped
//! records, and the delivery lateness histogram.

use super::super::ShardSnapshot;
use super::super::histogram::LatencyHistogram;
use super::text::Out;

pub(super) fn write_delayed(out: &mut Out, snapshots: &[ShardSnapshot]) {
    out.family(
        "sluice_delayed_records_pending",
        "gauge",
        "Records waiting in the shard's delay log for their delivery time.",
    );
    for s in snapshots {
        out.sample(
            "sluice_delayed_records_pending",
            &[("shard", &s.shard_id.to_string())],
            s.delayed.pending as f64,
        );
    }
    out.family(
        "sluice_delayed_records_delivered_total",
        "counter",
        "Delayed records appended to their partition.",
    );
    let delivered: u64 = snapshots.iter().map(|s| s.delayed.delivered).sum();
    out.sample(
        "sluice_delayed_records_delivered_total",
        &[],
        delivered as f64,
    );
    out.family(
        "sluice_delayed_records_dropped_total",
        "counter",
        "Delayed records dropped because their topic or partition was deleted while they waited.",
    );
    let dropped: u64 = snapshots.iter().map(|s| s.delayed.dropped).sum();
    out.sample("sluice_delayed_records_dropped_total", &[], dropped as f64);
    let mut lateness = LatencyHistogram::new();
    for s in snapshots {
        lateness.add(&s.delayed.lateness);
    }
    out.latency_family(
        "sluice_delayed_delivery_lateness_seconds",
        "Time from a delayed record's due time to its append to the partition.",
        &lateness,
    );
}
