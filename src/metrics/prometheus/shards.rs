//! Per-shard and connection families: open, accepted and moved connections, fetch file
//! sends by path, requests in flight, event-loop busy/idle time, ring depth, dropped
//! series, and storage health (open-file budget, offline partitions). Gauges keep a `shard` label; counters without one sum over shards.
//!
//! Must not: emit partition or group series.

use super::text::Out;
use crate::metrics::ShardSnapshot;

/// A family with one sample per shard, labelled `shard`: the shape of most families here.
pub(super) fn per_shard(
    out: &mut Out,
    name: &str,
    kind: &str,
    help: &str,
    snapshots: &[ShardSnapshot],
    value: impl Fn(&ShardSnapshot) -> f64,
) {
    out.family(name, kind, help);
    for s in snapshots {
        out.sample(name, &[("shard", &s.shard_id.to_string())], value(s));
    }
}

/// Connections, fetch file sends and requests in flight.
pub(super) fn write_connections(out: &mut Out, snapshots: &[ShardSnapshot]) {
    per_shard(
        out,
        "sluice_connections",
        "gauge",
        "Open client connections, by shard.",
        snapshots,
        |s| s.connections as f64,
    );
    out.family(
        "sluice_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    out.sample(
        "sluice_connections_accepted_total",
        &[],
        snapshots
            .iter()
            .map(|s| s.connections_accepted)
            .sum::<u64>() as f64,
    );
    per_shard(
        out,
        "sluice_connections_moved_total",
        "counter",
        "Connections moved to the shard that owns their partitions, by receiving shard.",
        snapshots,
        |s| s.connections_moved_in as f64,
    );
    out.family(
        "sluice_fetch_file_sends_total",
        "counter",
        "Fetched log regions sent to a socket, by path: cached (every page was in the page \
         cache: spliced from the shard thread), splice (on an io_uring worker: some had to \
         come from disk).",
    );
    for (path, count) in [
        (
            "cached",
            snapshots.iter().map(|s| s.fetch_sends_cached).sum::<u64>(),
        ),
        (
            "splice",
            snapshots.iter().map(|s| s.fetch_sends_splice).sum::<u64>(),
        ),
    ] {
        out.sample(
            "sluice_fetch_file_sends_total",
            &[("path", path)],
            count as f64,
        );
    }
    per_shard(
        out,
        "sluice_requests_in_flight",
        "gauge",
        "Requests decoded but not yet answered, by shard.",
        snapshots,
        |s| s.requests_in_flight as f64,
    );
    per_shard(
        out,
        "sluice_request_receives_total",
        "counter",
        "Socket receives connection readers made for request bytes, by shard (several pipelined requests can arrive in one).",
        snapshots,
        |s| s.request_receives as f64,
    );
}

/// Event-loop busy ratio and time, idle time, ring depth, and series dropped.
pub(super) fn write_event_loops(out: &mut Out, snapshots: &[ShardSnapshot]) {
    out.family(
        "sluice_shard_busy_ratio",
        "gauge",
        "Share of the last second the shard's event loop spent running tasks.",
    );
    for s in snapshots {
        if let Some(r) = s.busy_ratio {
            out.sample(
                "sluice_shard_busy_ratio",
                &[("shard", &s.shard_id.to_string())],
                r,
            );
        }
    }
    per_shard(
        out,
        "sluice_shard_busy_seconds_total",
        "counter",
        "Time the shard's event loop ran tasks.",
        snapshots,
        |s| s.busy_ns_total as f64 / 1e9,
    );
    per_shard(
        out,
        "sluice_shard_idle_seconds_total",
        "counter",
        "Time the shard's event loop waited for completions.",
        snapshots,
        |s| s.idle_ns_total as f64 / 1e9,
    );
    per_shard(
        out,
        "sluice_shard_open_transactions",
        "gauge",
        "Transactions open on the transactional ids the shard coordinates.",
        snapshots,
        |s| s.open_transactions as f64,
    );
    per_shard(
        out,
        "sluice_shard_ring_depth",
        "gauge",
        "io_uring submissions in flight on the shard's ring.",
        snapshots,
        |s| s.ring_depth as f64,
    );
    out.family(
        "sluice_metrics_series_dropped_total",
        "counter",
        "Labelled series not created because a shard reached its series limit.",
    );
    out.sample(
        "sluice_metrics_series_dropped_total",
        &[],
        snapshots
            .iter()
            .map(|s| s.series_dropped + s.share.dropped)
            .sum::<u64>() as f64,
    );
}

/// A family's name, help text, and its value in one shard's snapshot.
type StorageSeries = (&'static str, &'static str, fn(&ShardSnapshot) -> u64);

/// The open-file budget (descriptors held for segment files, the limit, evictions and
/// reopens) and offline partitions, by shard.
pub(super) fn write_storage_health(out: &mut Out, snapshots: &[ShardSnapshot]) {
    let gauges: [StorageSeries; 3] = [
        (
            "sluice_open_files",
            "Descriptors held for segment files, by shard.",
            |s| s.storage.open_files,
        ),
        (
            "sluice_open_file_limit",
            "The shard's open-file budget for segment files, in descriptors.",
            |s| s.storage.open_file_limit,
        ),
        (
            "sluice_offline_partitions",
            "Partitions the shard holds offline (not served: storage errors), by shard.",
            |s| s.storage.offline_partitions.len() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        per_shard(out, name, "gauge", help, snapshots, |s| value(s) as f64);
    }
    let counters: [StorageSeries; 2] = [
        (
            "sluice_open_file_evictions_total",
            "Segments whose files were closed to stay within the open-file budget.",
            |s| s.storage.open_file_evictions,
        ),
        (
            "sluice_open_file_reopens_total",
            "Segments whose files were opened again after being closed (or opened lazily).",
            |s| s.storage.open_file_reopens,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], snapshots.iter().map(value).sum::<u64>() as f64);
    }
}
