//! Request and storage latency families: per-API request duration by stage (histogram and
//! quantiles), error codes by API, and the append / fsync / fetch-wait latencies. Shards
//! merge by adding histograms and summing counters.
//!
//! Must not: emit per-shard series (shard gauges are in `shards`).

use super::text::Out;
use crate::metrics::histogram::LatencyHistogram;
use crate::metrics::{ShardSnapshot, api_name, merge_api_latency};
use std::collections::BTreeMap;

/// Request latency by API and stage, then error codes by API.
pub(super) fn write_requests(out: &mut Out, snapshots: &[ShardSnapshot]) {
    let api_latency = merge_api_latency(snapshots);
    let name = "sluice_request_duration_seconds";
    out.family(
        name,
        "histogram",
        "Request latency by Kafka API and stage (queue: decode to handler start; processing: handler; total: decode to response written).",
    );
    for (key, l) in &api_latency {
        let api = api_name(*key);
        for (stage, h) in [
            ("queue", &l.queue),
            ("processing", &l.processing),
            ("total", &l.total),
        ] {
            out.histogram(name, &[("api", api), ("stage", stage)], h);
        }
    }
    let q_name = "sluice_request_duration_seconds_quantile";
    out.family(
        q_name,
        "gauge",
        "Request latency quantiles by API and stage, from hdrhistogram (1 % precision).",
    );
    for (key, l) in &api_latency {
        let api = api_name(*key);
        for (stage, h) in [
            ("queue", &l.queue),
            ("processing", &l.processing),
            ("total", &l.total),
        ] {
            out.quantiles(q_name, &[("api", api), ("stage", stage)], h);
        }
    }

    let mut errors: BTreeMap<(i16, i16), u64> = BTreeMap::new();
    for s in snapshots {
        for (k, n) in &s.errors {
            *errors.entry(*k).or_default() += n;
        }
    }
    out.family(
        "sluice_errors_total",
        "counter",
        "Error codes returned, by API and Kafka error code.",
    );
    for ((api, code), n) in &errors {
        out.sample(
            "sluice_errors_total",
            &[("api", api_name(*api)), ("code", &code.to_string())],
            *n as f64,
        );
    }
}

/// Append, fsync, syncfs and fetch-wait latencies, merged over shards.
pub(super) fn write_storage_latencies(out: &mut Out, snapshots: &[ShardSnapshot]) {
    let mut append = LatencyHistogram::new();
    let mut fsync = LatencyHistogram::new();
    let mut syncfs = LatencyHistogram::new();
    let mut fetch_wait = LatencyHistogram::new();
    for s in snapshots {
        append.add(&s.append);
        fsync.add(&s.fsync);
        syncfs.add(&s.syncfs);
        fetch_wait.add(&s.fetch_wait);
    }
    out.latency_family(
        "sluice_produce_append_duration_seconds",
        "Time to append one batch to a partition log.",
        &append,
    );
    out.latency_family(
        "sluice_fsync_duration_seconds",
        "Time of one segment fdatasync.",
        &fsync,
    );
    out.latency_family(
        "sluice_syncfs_duration_seconds",
        "Time of one syncfs of the data directory's filesystem (a background flush of many partitions).",
        &syncfs,
    );
    out.latency_family(
        "sluice_fetch_wait_duration_seconds",
        "Time a fetch long-polled for data (max_wait_ms / min_bytes).",
        &fetch_wait,
    );
}
