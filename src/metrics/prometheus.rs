//! Prometheus text exposition (format 0.0.4) of merged shard snapshots.
//!
//! Owns: metric names, label sets, and how per-shard values merge (counters sum, histograms
//! add, per-shard gauges keep a `shard` label). Must not: run on a shard thread (it allocates
//! freely); it runs on the admin thread. Every name is listed in `docs/metrics.md`.

use super::histogram::{EXPORTED_QUANTILES, LATENCY_BUCKETS_SECONDS, LatencyHistogram};
use super::{ShardSnapshot, api_name, merge_api_latency};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// `Content-Type` of [`render_prometheus`] output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Broker-wide facts that no shard records.
#[derive(Clone, Debug)]
pub struct BrokerInfo {
    pub version: String,
    pub node_id: i32,
    pub uptime_seconds: f64,
}

impl BrokerInfo {
    /// This build's version, with uptime measured from `started`.
    pub fn new(node_id: i32, started: Instant) -> Self {
        BrokerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_id,
            uptime_seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Escapes a label value: backslash, double quote and newline (exposition format rules).
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP text escapes backslash and newline only.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label_value(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// One histogram series (buckets, sum, count) in seconds.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &LatencyHistogram) {
        let buckets = h.cumulative_buckets();
        let bucket_name = format!("{name}_bucket");
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        let les: Vec<String> = LATENCY_BUCKETS_SECONDS
            .iter()
            .map(|b| format_value(*b))
            .chain(std::iter::once("+Inf".to_string()))
            .collect();
        for (le, count) in les.iter().zip(&buckets) {
            with_le.push(("le", le));
            self.sample(&bucket_name, &with_le, *count as f64);
            with_le.pop();
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_ns() as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, h.count() as f64);
    }

    /// Quantile gauges of one histogram (none when it is empty).
    fn quantiles(&mut self, name: &str, labels: &[(&str, &str)], h: &LatencyHistogram) {
        for q in EXPORTED_QUANTILES {
            if let Some(ns) = h.quantile_ns(*q) {
                let q_text = format_value(*q);
                let mut with_q: Vec<(&str, &str)> = labels.to_vec();
                with_q.push(("quantile", &q_text));
                self.sample(name, &with_q, ns as f64 / 1e9);
            }
        }
    }

    /// A latency family without labels: histogram plus its quantile gauges.
    fn latency_family(&mut self, name: &str, help: &str, h: &LatencyHistogram) {
        self.family(name, "histogram", help);
        self.histogram(name, &[], h);
        let q_name = format!("{name}_quantile");
        self.family(
            &q_name,
            "gauge",
            &format!("{help} Quantiles from hdrhistogram (1 % precision)."),
        );
        self.quantiles(&q_name, &[], h);
    }
}

/// Integers print without a fraction, other values in Rust's shortest round-trip form.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Renders every shard's snapshot, merged, as Prometheus text.
pub fn render_prometheus(snapshots: &[ShardSnapshot], info: &BrokerInfo) -> String {
    let mut out = Out {
        text: String::with_capacity(16 * 1024),
    };

    out.family(
        "sluice_build_info",
        "gauge",
        "Build of the running broker (always 1).",
    );
    out.sample(
        "sluice_build_info",
        &[
            ("version", &info.version),
            ("node_id", &info.node_id.to_string()),
        ],
        1.0,
    );
    out.family(
        "sluice_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
    );
    out.sample("sluice_uptime_seconds", &[], info.uptime_seconds);

    // Requests.
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

    // Storage latencies.
    let mut append = LatencyHistogram::new();
    let mut fsync = LatencyHistogram::new();
    let mut fetch_wait = LatencyHistogram::new();
    for s in snapshots {
        append.add(&s.append);
        fsync.add(&s.fsync);
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
        "sluice_fetch_wait_duration_seconds",
        "Time a fetch long-polled for data (max_wait_ms / min_bytes).",
        &fetch_wait,
    );

    // Partitions: a partition lives on one shard, but merge by key so a partition that moved
    // between two snapshots never yields duplicate series.
    let mut partitions: BTreeMap<(&str, i32), super::PartitionSnapshot> = BTreeMap::new();
    for s in snapshots {
        for p in &s.partitions {
            let entry = partitions
                .entry((p.topic.as_str(), p.partition))
                .or_insert_with(|| super::PartitionSnapshot {
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
    type Field = fn(&super::PartitionSnapshot) -> f64;
    let partition_families: [(&str, &str, &str, Field); 8] = [
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

    // Connections.
    out.family(
        "sluice_connections",
        "gauge",
        "Open client connections, by shard.",
    );
    for s in snapshots {
        out.sample(
            "sluice_connections",
            &[("shard", &s.shard_id.to_string())],
            s.connections as f64,
        );
    }
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
    out.family(
        "sluice_connections_moved_total",
        "counter",
        "Connections moved to the shard that owns their partitions, by receiving shard.",
    );
    for s in snapshots {
        out.sample(
            "sluice_connections_moved_total",
            &[("shard", &s.shard_id.to_string())],
            s.connections_moved_in as f64,
        );
    }
    out.family(
        "sluice_fetch_file_sends_total",
        "counter",
        "Fetched log regions sent to a socket, by path: sendfile when every page was in the \
         page cache, splice (on an io_uring worker) when some had to come from disk.",
    );
    for (path, count) in [
        (
            "sendfile",
            snapshots
                .iter()
                .map(|s| s.fetch_sends_sendfile)
                .sum::<u64>(),
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
    out.family(
        "sluice_requests_in_flight",
        "gauge",
        "Requests decoded but not yet answered, by shard.",
    );
    for s in snapshots {
        out.sample(
            "sluice_requests_in_flight",
            &[("shard", &s.shard_id.to_string())],
            s.requests_in_flight as f64,
        );
    }

    // Groups.
    let mut rebalances: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lag: BTreeMap<(&str, &str, i32), i64> = BTreeMap::new();
    for s in snapshots {
        for (g, n) in &s.group_rebalances {
            *rebalances.entry(g).or_default() += n;
        }
        for (g, t, p, l) in &s.consumer_lag {
            lag.insert((g, t, *p), *l);
        }
    }
    out.family(
        "sluice_group_rebalances_total",
        "counter",
        "Completed rebalances, by consumer group.",
    );
    for (g, n) in &rebalances {
        out.sample("sluice_group_rebalances_total", &[("group", g)], *n as f64);
    }
    out.family(
        "sluice_consumer_lag",
        "gauge",
        "Log end offset minus committed offset, by group and partition.",
    );
    for ((g, t, p), l) in &lag {
        out.sample(
            "sluice_consumer_lag",
            &[("group", g), ("topic", t), ("partition", &p.to_string())],
            *l as f64,
        );
    }

    // Shard event loops.
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
    out.family(
        "sluice_shard_busy_seconds_total",
        "counter",
        "Time the shard's event loop ran tasks.",
    );
    for s in snapshots {
        out.sample(
            "sluice_shard_busy_seconds_total",
            &[("shard", &s.shard_id.to_string())],
            s.busy_ns_total as f64 / 1e9,
        );
    }
    out.family(
        "sluice_shard_idle_seconds_total",
        "counter",
        "Time the shard's event loop waited for completions.",
    );
    for s in snapshots {
        out.sample(
            "sluice_shard_idle_seconds_total",
            &[("shard", &s.shard_id.to_string())],
            s.idle_ns_total as f64 / 1e9,
        );
    }
    out.family(
        "sluice_shard_ring_depth",
        "gauge",
        "io_uring submissions in flight on the shard's ring.",
    );
    for s in snapshots {
        out.sample(
            "sluice_shard_ring_depth",
            &[("shard", &s.shard_id.to_string())],
            s.ring_depth as f64,
        );
    }
    out.family(
        "sluice_metrics_series_dropped_total",
        "counter",
        "Labelled series not created because a shard reached its series limit.",
    );
    out.sample(
        "sluice_metrics_series_dropped_total",
        &[],
        snapshots.iter().map(|s| s.series_dropped).sum::<u64>() as f64,
    );
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ShardMetrics;
    use std::collections::HashMap;

    /// A strict little parser of the subset we emit: every sample line belongs to the family
    /// declared by the last `# TYPE`, label syntax is well formed, values parse as floats.
    fn parse(text: &str) -> Parsed {
        let mut samples = Vec::new();
        let mut current: Option<(String, String)> = None;
        let mut seen_families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has name and kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(
                    seen_families.insert(name.to_string()),
                    "family twice: {name}"
                );
                current = Some((name.to_string(), kind.to_string()));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(
                !line.is_empty() && !line.starts_with('#'),
                "unexpected line {line:?}"
            );
            let (name_labels, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match name_labels.split_once('{') {
                None => (name_labels.to_string(), Vec::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels close");
                    (name.to_string(), parse_labels(body))
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name {name}"
            );
            let (family, kind) = current.as_ref().expect("sample after TYPE");
            let ok = match kind.as_str() {
                "histogram" => [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&name),
                _ => &name == family,
            };
            assert!(ok, "sample {name} outside its family {family}");
            samples.push((name, labels, value));
        }
        samples
    }

    fn parse_labels(body: &str) -> Vec<(String, String)> {
        let mut labels = Vec::new();
        let mut chars = body.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "label {key} value is quoted");
            let mut value = String::new();
            loop {
                match chars.next().expect("label value terminates") {
                    '\\' => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            match chars.next() {
                None | Some(',') => {}
                Some(c) => panic!("unexpected {c} after label"),
            }
        }
        labels
    }

    fn find(samples: &Parsed, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|(n, labels, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
                    && labels.len() == want.len()
            })
            .map(|(_, _, v)| *v)
    }

    fn workload() -> Vec<ShardSnapshot> {
        let a = ShardMetrics::new(0, true);
        let b = ShardMetrics::new(1, true);
        a.record_request(0, 10_000, 200_000, 300_000);
        b.record_request(0, 20_000, 400_000, 2_000_000);
        b.record_request(1, 1_000, 1_000, 600_000_000);
        a.record_error(0, 3);
        b.record_error(0, 3);
        a.partition("weird \"topic\"\\\n", 0).record_in(100, 3);
        let p = b.partition("orders", 2);
        p.record_in(1000, 10);
        p.record_out(400, 4);
        p.set_storage(1, 1000, 0, 10);
        a.connection_opened();
        b.connection_opened();
        b.connection_opened();
        a.record_fsync(3_000_000);
        a.record_loop(300_000_000, 700_000_000);
        a.set_ring_depth(7);
        b.record_rebalance("g1");
        b.set_consumer_lag("g1", "orders", 2, 42);
        vec![a.snapshot(), b.snapshot()]
    }

    type Parsed = Vec<(String, Vec<(String, String)>, f64)>;

    #[test]
    fn output_parses_and_merges_shards() {
        let info = BrokerInfo {
            version: "1.2.3".into(),
            node_id: 4,
            uptime_seconds: 12.5,
        };
        let text = render_prometheus(&workload(), &info);
        let s = parse(&text);
        assert_eq!(
            find(
                &s,
                "sluice_build_info",
                &[("version", "1.2.3"), ("node_id", "4")]
            ),
            Some(1.0)
        );
        assert_eq!(find(&s, "sluice_uptime_seconds", &[]), Some(12.5));
        let produce_total = [("api", "Produce"), ("stage", "total")];
        assert_eq!(
            find(&s, "sluice_request_duration_seconds_count", &produce_total),
            Some(2.0)
        );
        let sum = find(&s, "sluice_request_duration_seconds_sum", &produce_total).unwrap();
        assert!((sum - 0.0023).abs() < 1e-12, "{sum}");
        // 0.3 ms lands in le=0.0005, 2 ms in le=0.0025.
        let le = |le| {
            find(
                &s,
                "sluice_request_duration_seconds_bucket",
                &[("api", "Produce"), ("stage", "total"), ("le", le)],
            )
        };
        assert_eq!(le("0.00025"), Some(0.0));
        assert_eq!(le("0.0005"), Some(1.0));
        assert_eq!(le("0.001"), Some(1.0));
        assert_eq!(le("0.0025"), Some(2.0));
        assert_eq!(le("+Inf"), Some(2.0));
        let fetch_p99 = find(
            &s,
            "sluice_request_duration_seconds_quantile",
            &[("api", "Fetch"), ("stage", "total"), ("quantile", "0.99")],
        )
        .unwrap();
        assert!((fetch_p99 - 0.6).abs() / 0.6 < 0.01, "{fetch_p99}");
        assert_eq!(
            find(
                &s,
                "sluice_errors_total",
                &[("api", "Produce"), ("code", "3")]
            ),
            Some(2.0)
        );
        assert_eq!(
            find(
                &s,
                "sluice_partition_bytes_in_total",
                &[("topic", "weird \"topic\"\\\n"), ("partition", "0")]
            ),
            Some(100.0)
        );
        let orders = [("topic", "orders"), ("partition", "2")];
        assert_eq!(
            find(&s, "sluice_partition_records_in_total", &orders),
            Some(10.0)
        );
        assert_eq!(
            find(&s, "sluice_partition_bytes_out_total", &orders),
            Some(400.0)
        );
        assert_eq!(
            find(&s, "sluice_partition_log_end_offset", &orders),
            Some(10.0)
        );
        assert_eq!(find(&s, "sluice_connections", &[("shard", "1")]), Some(2.0));
        assert_eq!(
            find(&s, "sluice_connections_accepted_total", &[]),
            Some(3.0)
        );
        assert_eq!(
            find(&s, "sluice_fsync_duration_seconds_count", &[]),
            Some(1.0)
        );
        assert_eq!(
            find(&s, "sluice_shard_busy_ratio", &[("shard", "0")]),
            Some(0.3)
        );
        assert_eq!(find(&s, "sluice_shard_busy_ratio", &[("shard", "1")]), None);
        assert_eq!(
            find(&s, "sluice_shard_ring_depth", &[("shard", "0")]),
            Some(7.0)
        );
        assert_eq!(
            find(&s, "sluice_group_rebalances_total", &[("group", "g1")]),
            Some(1.0)
        );
        assert_eq!(
            find(
                &s,
                "sluice_consumer_lag",
                &[("group", "g1"), ("topic", "orders"), ("partition", "2")]
            ),
            Some(42.0)
        );
    }

    #[test]
    fn every_histogram_series_is_cumulative_and_ends_at_its_count() {
        let info = BrokerInfo::new(0, Instant::now());
        let text = render_prometheus(&workload(), &info);
        let samples = parse(&text);
        let mut buckets: HashMap<String, Vec<f64>> = HashMap::new();
        let mut counts: HashMap<String, f64> = HashMap::new();
        for (name, labels, value) in &samples {
            let series: Vec<String> = labels
                .iter()
                .filter(|(k, _)| k != "le")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if let Some(family) = name.strip_suffix("_bucket") {
                buckets
                    .entry(format!("{family}{series:?}"))
                    .or_default()
                    .push(*value);
            } else if let Some(family) = name.strip_suffix("_count") {
                counts.insert(format!("{family}{series:?}"), *value);
            }
        }
        assert!(!buckets.is_empty());
        for (series, values) in &buckets {
            assert_eq!(values.len(), LATENCY_BUCKETS_SECONDS.len() + 1, "{series}");
            assert!(
                values.windows(2).all(|w| w[0] <= w[1]),
                "{series} not cumulative"
            );
            assert_eq!(values.last(), counts.get(series), "{series} +Inf != count");
        }
    }

    #[test]
    fn empty_broker_renders_a_valid_page() {
        let text = render_prometheus(&[], &BrokerInfo::new(0, Instant::now()));
        let s = parse(&text);
        assert_eq!(
            find(&s, "sluice_connections_accepted_total", &[]),
            Some(0.0)
        );
        assert_eq!(
            find(
                &s,
                "sluice_fsync_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(0.0)
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
