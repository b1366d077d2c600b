//! Prometheus text exposition (format 0.0.4) of merged shard snapshots.
//!
//! Owns: metric names, label sets, and how per-shard values merge (counters sum, histograms
//! add, per-shard gauges keep a `shard` label). Must not: run on a shard thread (it allocates
//! freely); it runs on the admin thread. Every name is listed in `docs/metrics.md`.
//!
//! Files by family: `requests` (request and storage latencies, errors), `partitions`,
//! `shards` (connections and event loops), `groups`, `share`; `text` is the encoding. This file owns
//! the order of the page.

mod cleaner;
mod delayed;
mod groups;
mod partitions;
mod requests;
mod shards;
mod share;
mod text;

use super::ShardSnapshot;
// The tests below check the escaping and bucket layout through the page as rendered.
#[cfg(test)]
use super::histogram::LATENCY_BUCKETS_SECONDS;
use std::time::Instant;
use text::Out;
#[cfg(test)]
use text::escape_label_value;

/// `Content-Type` of [`render_prometheus`] output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Broker-wide facts that no shard records.
#[derive(Clone, Debug)]
pub struct BrokerInfo {
    pub version: String,
    pub node_id: i32,
    pub uptime_seconds: f64,
    /// The shards' kernel I/O interface ("io_uring" or "polling"), once they run.
    pub io_driver: Option<&'static str>,
}

impl BrokerInfo {
    /// This build's version, with uptime measured from `started`.
    pub fn new(node_id: i32, started: Instant) -> Self {
        BrokerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_id,
            uptime_seconds: started.elapsed().as_secs_f64(),
            io_driver: None,
        }
    }

    pub fn with_io_driver(mut self, io_driver: Option<&'static str>) -> Self {
        self.io_driver = io_driver;
        self
    }
}

/// Renders every shard's snapshot, merged, as Prometheus text.
pub fn render_prometheus(snapshots: &[ShardSnapshot], info: &BrokerInfo) -> String {
    let mut out = Out::with_capacity(16 * 1024);
    write_build(&mut out, info);
    requests::write_requests(&mut out, snapshots);
    requests::write_storage_latencies(&mut out, snapshots);
    partitions::write_partitions(&mut out, snapshots);
    shards::write_connections(&mut out, snapshots);
    groups::write_groups(&mut out, snapshots);
    share::write_share(&mut out, snapshots);
    shards::write_event_loops(&mut out, snapshots);
    cleaner::write_cleaner(&mut out, snapshots);
    delayed::write_delayed(&mut out, snapshots);
    shards::write_storage_health(&mut out, snapshots);
    out.text
}

/// Build info and uptime.
fn write_build(out: &mut Out, info: &BrokerInfo) {
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
    if let Some(driver) = info.io_driver {
        out.family(
            "sluice_io_driver",
            "gauge",
            "Kernel I/O interface the shards run on (always 1): io_uring, or polling where \
             the kernel refused io_uring or SLUICE_IO_DRIVER / io_driver forced it.",
        );
        out.sample("sluice_io_driver", &[("driver", driver)], 1.0);
    }
    if let Some(crate::security::tls::KtlsStatus::Unavailable(reason)) =
        crate::security::tls::ktls_status()
    {
        out.family(
            "sluice_tls_ktls_unavailable",
            "gauge",
            "TLS listeners encrypt in user space and copy fetched bytes through it instead \
             of handing sessions to kernel TLS (always 1 when present); the label says why.",
        );
        out.sample("sluice_tls_ktls_unavailable", &[("reason", reason)], 1.0);
    }
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
        let mut b = b.snapshot();
        b.storage.open_files = 12;
        b.storage.open_file_evictions = 5;
        b.storage
            .offline_partitions
            .push(("orders".into(), 3, "no space".into()));
        let mut a = a.snapshot();
        a.storage.open_file_evictions = 2;
        vec![a, b]
    }

    type Parsed = Vec<(String, Vec<(String, String)>, f64)>;

    #[test]
    fn output_parses_and_merges_shards() {
        let info = BrokerInfo {
            version: "1.2.3".into(),
            node_id: 4,
            uptime_seconds: 12.5,
            io_driver: Some("polling"),
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
        assert_eq!(
            find(&s, "sluice_io_driver", &[("driver", "polling")]),
            Some(1.0)
        );
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
        assert_eq!(find(&s, "sluice_open_files", &[("shard", "1")]), Some(12.0));
        assert_eq!(find(&s, "sluice_open_file_evictions_total", &[]), Some(7.0));
        assert_eq!(
            find(&s, "sluice_offline_partitions", &[("shard", "1")]),
            Some(1.0)
        );
        assert_eq!(
            find(&s, "sluice_offline_partitions", &[("shard", "0")]),
            Some(0.0)
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
