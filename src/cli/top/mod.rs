//! `sluice top`: a live terminal view of a broker, built from successive scrapes of its admin
//! `/metrics` endpoint: per-shard load, per-topic throughput, per-API latency percentiles.
//!
//! Owns: rate computation between two scrapes and plain-ANSI rendering; `scrape` owns the
//! minimal HTTP GET client and the Prometheus text parser. Must not: talk to the Kafka port,
//! or depend on anything but the metric names documented in `docs/metrics.md`.

mod scrape;

pub use scrape::{
    MAX_SCRAPE_BYTES, SCRAPE_TIMEOUT, Sample, Scrape, fetch_admin, fetch_metrics, parse_prometheus,
};

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
// The tests build scrapes at chosen instants.
#[cfg(test)]
use std::time::Instant;

/// Where `sluice top` scrapes unless told otherwise (the broker's default `admin_listen`).
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9644";
/// Shortest refresh interval accepted, to keep a typo from hammering the broker.
pub const MIN_INTERVAL_MS: u64 = 100;
/// APIs shown in the latency table, in this order, when they have traffic.
const LATENCY_APIS_FIRST: &[&str] = &["Produce", "Fetch"];

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Admin listener of the broker, HOST:PORT.
    #[arg(long, default_value = DEFAULT_ADMIN_ADDRESS)]
    pub admin: String,
    /// Refresh period; rates are computed over it.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Print one frame (two scrapes one interval apart, for rates) and exit.
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: TopArgs) -> Result<(), String> {
    let interval = Duration::from_millis(args.interval_ms.max(MIN_INTERVAL_MS));
    let mut previous = Scrape::take(&args.admin)?;
    if args.once {
        std::thread::sleep(interval);
        let current = Scrape::take(&args.admin)?;
        print!(
            "{}",
            Frame::new(Some(&previous), &current).render(&args.admin)
        );
        return Ok(());
    }
    let mut stdout = std::io::stdout();
    loop {
        std::thread::sleep(interval);
        let screen = match Scrape::take(&args.admin) {
            Ok(current) => {
                let text = Frame::new(Some(&previous), &current).render(&args.admin);
                previous = current;
                text
            }
            Err(e) => format!("sluice top: {e} (retrying every {interval:?})\n"),
        };
        // Home + clear screen, then the frame.
        let _ = write!(stdout, "\x1b[H\x1b[2J{screen}");
        let _ = stdout.flush();
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ShardRow {
    pub shard: String,
    pub busy_ratio: Option<f64>,
    pub connections: f64,
    pub in_flight: f64,
    pub ring_depth: f64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TopicRow {
    pub topic: String,
    pub partitions: usize,
    pub size_bytes: f64,
    /// Per second; `None` without a previous scrape.
    pub bytes_in_rate: Option<f64>,
    pub records_in_rate: Option<f64>,
    pub bytes_out_rate: Option<f64>,
    pub records_out_rate: Option<f64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct LatencyRow {
    pub api: String,
    pub requests_rate: Option<f64>,
    /// Seconds, from `sluice_request_duration_seconds_quantile{stage="total"}`.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

/// Everything one screen shows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Frame {
    pub version: String,
    pub uptime_seconds: f64,
    pub shards: Vec<ShardRow>,
    pub topics: Vec<TopicRow>,
    pub latency: Vec<LatencyRow>,
}

fn rate(prev: Option<(&Scrape, f64)>, now: f64, elapsed: f64) -> Option<f64> {
    let (_, before) = prev?;
    // A counter that went down means the broker restarted: no meaningful rate this time.
    (elapsed > 0.0 && now >= before).then(|| (now - before) / elapsed)
}

/// One row per shard label seen in `current`.
fn shard_rows(current: &Scrape) -> Vec<ShardRow> {
    let mut shards: BTreeMap<(usize, String), ShardRow> = BTreeMap::new();
    for s in &current.samples {
        let Some(shard) = s.label("shard") else {
            continue;
        };
        let key = (
            shard.parse::<usize>().unwrap_or(usize::MAX),
            shard.to_string(),
        );
        let row = shards.entry(key).or_insert_with(|| ShardRow {
            shard: shard.to_string(),
            ..ShardRow::default()
        });
        match s.name.as_str() {
            "sluice_shard_busy_ratio" => row.busy_ratio = Some(s.value),
            "sluice_connections" => row.connections = s.value,
            "sluice_requests_in_flight" => row.in_flight = s.value,
            "sluice_shard_ring_depth" => row.ring_depth = s.value,
            _ => {}
        }
    }
    shards.into_values().collect()
}

/// One row per topic with partition size series, with rates against `previous`.
fn topic_rows(previous: Option<&Scrape>, current: &Scrape, elapsed: f64) -> Vec<TopicRow> {
    let mut topics: BTreeMap<String, TopicRow> = BTreeMap::new();
    for s in &current.samples {
        if s.name == "sluice_partition_size_bytes"
            && let Some(topic) = s.label("topic")
        {
            let row = topics.entry(topic.to_string()).or_insert_with(|| TopicRow {
                topic: topic.to_string(),
                ..TopicRow::default()
            });
            row.partitions += 1;
            row.size_bytes += s.value;
        }
    }
    for row in topics.values_mut() {
        let of_topic = |s: &Sample| s.label("topic") == Some(row.topic.as_str());
        let counter = |name: &str| {
            let now = current.sum(name, of_topic);
            let before = previous.map(|p| (p, p.sum(name, of_topic)));
            rate(before, now, elapsed)
        };
        row.bytes_in_rate = counter("sluice_partition_bytes_in_total");
        row.records_in_rate = counter("sluice_partition_records_in_total");
        row.bytes_out_rate = counter("sluice_partition_bytes_out_total");
        row.records_out_rate = counter("sluice_partition_records_out_total");
    }
    topics.into_values().collect()
}

/// One row per API with requests, Produce and Fetch first, with rates against `previous`.
fn latency_rows(previous: Option<&Scrape>, current: &Scrape, elapsed: f64) -> Vec<LatencyRow> {
    let mut rows = Vec::new();
    let mut apis: Vec<String> = current
        .samples
        .iter()
        .filter(|s| {
            s.name == "sluice_request_duration_seconds_count" && s.label("stage") == Some("total")
        })
        .filter_map(|s| s.label("api").map(str::to_string))
        .collect();
    apis.sort_by_key(|a| {
        (
            LATENCY_APIS_FIRST
                .iter()
                .position(|f| f == a)
                .unwrap_or(usize::MAX),
            a.clone(),
        )
    });
    apis.dedup();
    for api in apis {
        let of_api =
            |s: &Sample| s.label("api") == Some(api.as_str()) && s.label("stage") == Some("total");
        let quantile = |q: &str| {
            current
                .samples
                .iter()
                .find(|s| {
                    s.name == "sluice_request_duration_seconds_quantile"
                        && of_api(s)
                        && s.label("quantile") == Some(q)
                })
                .map(|s| s.value)
        };
        let now = current.sum("sluice_request_duration_seconds_count", of_api);
        let before = previous.map(|p| (p, p.sum("sluice_request_duration_seconds_count", of_api)));
        rows.push(LatencyRow {
            requests_rate: rate(before, now, elapsed),
            p50: quantile("0.5"),
            p99: quantile("0.99"),
            p999: quantile("0.999"),
            api,
        });
    }
    rows
}

impl Frame {
    /// Builds a frame from the current scrape, with rates against `previous` if given.
    pub fn new(previous: Option<&Scrape>, current: &Scrape) -> Frame {
        let elapsed = previous.map_or(0.0, |p| current.at.duration_since(p.at).as_secs_f64());
        let mut frame = Frame::default();
        for s in &current.samples {
            match s.name.as_str() {
                "sluice_build_info" => {
                    frame.version = s.label("version").unwrap_or("?").to_string()
                }
                "sluice_uptime_seconds" => frame.uptime_seconds = s.value,
                _ => {}
            }
        }

        frame.shards = shard_rows(current);
        frame.topics = topic_rows(previous, current, elapsed);
        frame.latency = latency_rows(previous, current, elapsed);
        frame
    }

    /// Plain text, one table per section; no colour so it also reads well when piped.
    pub fn render(&self, admin: &str) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "sluice {}  admin {}  up {}\n\n",
            self.version,
            admin,
            format_duration(self.uptime_seconds)
        ));
        out.push_str(&format!(
            "{:<6} {:>6} {:>8} {:>9} {:>6}\n",
            "SHARD", "BUSY%", "CONNS", "INFLIGHT", "RING"
        ));
        for s in &self.shards {
            let busy = s
                .busy_ratio
                .map_or("-".to_string(), |r| format!("{:.1}", r * 100.0));
            out.push_str(&format!(
                "{:<6} {:>6} {:>8} {:>9} {:>6}\n",
                s.shard, busy, s.connections, s.in_flight, s.ring_depth
            ));
        }
        out.push_str(&format!(
            "\n{:<24} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "TOPIC", "PARTS", "IN B/s", "IN rec/s", "OUT B/s", "OUT rec/s", "SIZE"
        ));
        for t in &self.topics {
            out.push_str(&format!(
                "{:<24} {:>5} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                truncate(&t.topic, 24),
                t.partitions,
                opt_bytes(t.bytes_in_rate),
                opt_count(t.records_in_rate),
                opt_bytes(t.bytes_out_rate),
                opt_count(t.records_out_rate),
                format_bytes(t.size_bytes)
            ));
        }
        out.push_str(&format!(
            "\n{:<24} {:>8} {:>10} {:>10} {:>10}\n",
            "API", "req/s", "p50", "p99", "p99.9"
        ));
        for l in &self.latency {
            out.push_str(&format!(
                "{:<24} {:>8} {:>10} {:>10} {:>10}\n",
                truncate(&l.api, 24),
                opt_count(l.requests_rate),
                opt_latency(l.p50),
                opt_latency(l.p99),
                opt_latency(l.p999)
            ));
        }
        out
    }
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('~');
        t
    }
}

fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn format_bytes(b: f64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0}{}", UNITS[unit])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

fn opt_bytes(v: Option<f64>) -> String {
    v.map_or("-".to_string(), format_bytes)
}

fn opt_count(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.1}"))
}

fn opt_latency(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(s) if s < 1e-3 => format!("{:.0}us", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two scrapes of a broker as `/metrics` renders them (trimmed to what `top` reads).
    const BEFORE: &str = r#"# HELP sluice_build_info Build of the running broker (always 1).
# TYPE sluice_build_info gauge
sluice_build_info{version="0.1.0",node_id="0"} 1
sluice_uptime_seconds 3725.5
sluice_request_duration_seconds_count{api="Produce",stage="total"} 100
sluice_request_duration_seconds_count{api="Produce",stage="queue"} 100
sluice_request_duration_seconds_count{api="Metadata",stage="total"} 3
sluice_request_duration_seconds_quantile{api="Produce",stage="total",quantile="0.5"} 0.0005
sluice_partition_bytes_in_total{topic="orders",partition="0"} 1000
sluice_partition_bytes_in_total{topic="orders",partition="1"} 1000
sluice_partition_records_in_total{topic="orders",partition="0"} 10
sluice_partition_records_in_total{topic="orders",partition="1"} 10
sluice_partition_size_bytes{topic="orders",partition="0"} 1000
sluice_partition_size_bytes{topic="orders",partition="1"} 1000
sluice_partition_size_bytes{topic="we\"ird\\",partition="0"} 0
"#;

    const AFTER: &str = r#"# TYPE sluice_build_info gauge
sluice_build_info{version="0.1.0",node_id="0"} 1
sluice_uptime_seconds 3727.5
sluice_request_duration_seconds_count{api="Produce",stage="total"} 300
sluice_request_duration_seconds_count{api="Metadata",stage="total"} 3
sluice_request_duration_seconds_quantile{api="Produce",stage="total",quantile="0.5"} 0.0004
sluice_request_duration_seconds_quantile{api="Produce",stage="total",quantile="0.99"} 0.0025
sluice_request_duration_seconds_quantile{api="Produce",stage="total",quantile="0.999"} 1.5
sluice_request_duration_seconds_bucket{api="Produce",stage="total",le="+Inf"} 300
sluice_partition_bytes_in_total{topic="orders",partition="0"} 3000
sluice_partition_bytes_in_total{topic="orders",partition="1"} 5000 1700000000000
sluice_partition_records_in_total{topic="orders",partition="0"} 30
sluice_partition_records_in_total{topic="orders",partition="1"} 50
sluice_partition_bytes_out_total{topic="orders",partition="0"} 4096
sluice_partition_size_bytes{topic="orders",partition="0"} 3000
sluice_partition_size_bytes{topic="orders",partition="1"} 5000
sluice_partition_size_bytes{topic="we\"ird\\",partition="0"} 0
sluice_connections{shard="0"} 3
sluice_connections{shard="1"} 4
sluice_requests_in_flight{shard="0"} 1
sluice_shard_busy_ratio{shard="1"} 0.25
sluice_shard_ring_depth{shard="0"} 12
"#;

    fn scrape(text: &str, at: Instant) -> Scrape {
        Scrape {
            at,
            samples: parse_prometheus(text).unwrap(),
        }
    }

    #[test]
    fn parser_reads_labels_escapes_infinities_and_timestamps() {
        let s = parse_prometheus(AFTER).unwrap();
        let inf = s.iter().find(|s| s.name.ends_with("_bucket")).unwrap();
        assert_eq!(inf.label("le"), Some("+Inf"));
        assert_eq!(inf.value, 300.0);
        let weird = s
            .iter()
            .find(|s| s.label("topic").is_some_and(|t| t.starts_with("we")))
            .unwrap();
        assert_eq!(weird.label("topic"), Some("we\"ird\\"));
        let stamped = s
            .iter()
            .find(|s| {
                s.name == "sluice_partition_bytes_in_total" && s.label("partition") == Some("1")
            })
            .unwrap();
        assert_eq!(stamped.value, 5000.0);
        assert!(parse_prometheus("x{a=\"b} 1").is_err());
        assert!(parse_prometheus("x{a=b} 1").is_err());
        assert!(parse_prometheus("x{a} 1").is_err());
        assert_eq!(
            parse_prometheus("x{a=\"1\",} 2").unwrap()[0].labels.len(),
            1
        );
        assert!(parse_prometheus("x 1.2.3").is_err());
        assert_eq!(parse_prometheus("x +Inf").unwrap()[0].value, f64::INFINITY);
    }

    #[test]
    fn frame_computes_rates_between_scrapes() {
        let t0 = Instant::now();
        let before = scrape(BEFORE, t0);
        let after = scrape(AFTER, t0 + Duration::from_secs(2));
        let frame = Frame::new(Some(&before), &after);
        assert_eq!(frame.version, "0.1.0");
        assert_eq!(frame.shards.len(), 2);
        assert_eq!(frame.shards[0].connections, 3.0);
        assert_eq!(frame.shards[0].ring_depth, 12.0);
        assert_eq!(frame.shards[1].busy_ratio, Some(0.25));
        let orders = &frame.topics[0];
        assert_eq!(orders.topic, "orders");
        assert_eq!(orders.partitions, 2);
        assert_eq!(orders.size_bytes, 8000.0);
        // (3000 + 5000 - 2000) bytes over 2 s.
        assert_eq!(orders.bytes_in_rate, Some(3000.0));
        assert_eq!(orders.records_in_rate, Some(30.0));
        assert_eq!(orders.bytes_out_rate, Some(2048.0));
        assert_eq!(frame.latency[0].api, "Produce", "Produce is listed first");
        assert_eq!(frame.latency[0].requests_rate, Some(100.0));
        assert_eq!(frame.latency[0].p99, Some(0.0025));
        assert_eq!(frame.latency[1].api, "Metadata");
        assert_eq!(frame.latency[1].requests_rate, Some(0.0));
        assert_eq!(frame.latency[1].p50, None);

        let text = frame.render("127.0.0.1:9644");
        assert!(
            text.starts_with("sluice 0.1.0  admin 127.0.0.1:9644  up 1h02m07s\n"),
            "{text}"
        );
        let orders_line = text.lines().find(|l| l.starts_with("orders")).unwrap();
        let cols: Vec<&str> = orders_line.split_whitespace().collect();
        assert_eq!(
            cols,
            ["orders", "2", "2.9KiB", "30.0", "2.0KiB", "0.0", "7.8KiB"]
        );
        let produce = text.lines().find(|l| l.starts_with("Produce")).unwrap();
        let cols: Vec<&str> = produce.split_whitespace().collect();
        assert_eq!(cols, ["Produce", "100.0", "400us", "2.50ms", "1.50s"]);
        let shard1 = text.lines().find(|l| l.starts_with("1 ")).unwrap();
        assert_eq!(
            shard1.split_whitespace().collect::<Vec<_>>(),
            ["1", "25.0", "4", "0", "0"]
        );
    }

    #[test]
    fn no_rates_without_a_previous_scrape_or_after_a_restart() {
        let t0 = Instant::now();
        let after = scrape(AFTER, t0);
        let frame = Frame::new(None, &after);
        assert_eq!(frame.topics[0].bytes_in_rate, None);
        // Counters going backwards (broker restarted): no rate rather than a negative one.
        let restarted = Frame::new(Some(&after), &scrape(BEFORE, t0 + Duration::from_secs(1)));
        assert_eq!(restarted.topics[0].bytes_in_rate, None);
    }

    /// End to end: what the admin listener renders is what `top` reads.
    #[test]
    fn reads_a_live_admin_listener() {
        use crate::admin::{AdminSource, spawn_admin_server};
        use crate::metrics::{BrokerInfo, ShardMetrics, ShardSnapshot};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};

        struct Source(AtomicU64);
        impl AdminSource for Source {
            fn collect(&self) -> Vec<ShardSnapshot> {
                let scrape = self.0.fetch_add(1, Ordering::SeqCst);
                let m = ShardMetrics::new(0, true);
                m.partition("orders", 0)
                    .record_in(1000 * (scrape + 1), 10 * (scrape + 1));
                m.record_request(0, 1_000, 1_000, 2_000_000);
                m.connection_opened();
                vec![m.snapshot()]
            }
            fn status(&self) -> serde_json::Value {
                serde_json::Value::Null
            }
            fn ready(&self) -> bool {
                true
            }
            fn broker_info(&self) -> BrokerInfo {
                BrokerInfo::new(0, Instant::now())
            }
        }
        let handle = spawn_admin_server(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Source(AtomicU64::new(0))),
        )
        .unwrap();
        let admin = handle.local_addr().to_string();
        let first = Scrape::take(&admin).unwrap();
        let second = Scrape::take(&admin).unwrap();
        let frame = Frame::new(Some(&first), &second);
        assert_eq!(frame.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(frame.shards[0].connections, 1.0);
        assert_eq!(frame.topics[0].topic, "orders");
        assert!(frame.topics[0].bytes_in_rate.is_some_and(|r| r > 0.0));
        let p50 = frame.latency[0].p50.unwrap();
        assert!((p50 - 0.002).abs() / 0.002 < 0.01, "{p50}");
        assert!(frame.render(&admin).contains("Produce"));
    }

    #[test]
    fn scraping_a_closed_port_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = fetch_metrics(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
