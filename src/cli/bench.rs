//! `sluice bench produce|consume|e2e`: flags → `crate::bench::BenchConfig`, then prints the
//! report (human summary, or JSON with `--json`) and writes the HdrHistogram log.
//!
//! Must not: measure anything itself; `crate::bench` does.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::bench::{self, BenchConfig, Mode, batch::RecordSize};
use crate::client::{Acks, Compression, ConsumerConfig, OffsetSpec, parse_compression};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Default batch size in bytes (Java producer `batch.size`).
const BENCH_BATCH_BYTES_DEFAULT: usize = 16 * 1024;
/// Default linger in fixed-rate mode (Java `linger.ms` is 5 since Kafka 4.0).
const BENCH_LINGER_MS_DEFAULT: u64 = 5;
/// Default Produce requests in flight per connection (Java default is 5).
const BENCH_MAX_IN_FLIGHT_DEFAULT: usize = 5;
/// Default partitions one Produce request carries: librdkafka's shape (it sends one
/// partition's batch per ProduceRequest); the Java producer drains every ready partition
/// of a broker into one request, which `--partitions-per-request` models.
const BENCH_PARTITIONS_PER_REQUEST_DEFAULT: usize = 1;
/// Default cap of a Produce request's size (Java producer `max.request.size`).
const BENCH_MAX_REQUEST_BYTES_DEFAULT: usize = 1024 * 1024;
/// How long a benchmark transaction stays open (issue 16's "a commit every 100 ms").
const BENCH_TRANSACTION_DURATION_MS_DEFAULT: u64 = 100;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: BenchMode,
}

#[derive(Debug, Subcommand)]
pub enum BenchMode {
    /// Produce records and measure acknowledgement latency and throughput.
    Produce(CommonArgs),
    /// Fetch a topic's existing records (from the beginning) as fast as possible.
    Consume(CommonArgs),
    /// Produce (usually at --rate) and consume at once; latency = receive − send time.
    E2e(CommonArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    #[arg(long, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    #[arg(long, default_value = "sluice-bench")]
    pub topic: String,
    /// Partitions to use (the topic is created with this many if missing).
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Bytes per record value: N, or MIN-MAX for a uniform distribution.
    #[arg(long, default_value = "1024")]
    pub record_size: RecordSize,
    /// Records to produce (consume: to read; default: what the topic holds now).
    #[arg(long)]
    pub records: Option<u64>,
    /// Run this long: 30s, 500ms, 2m (or plain seconds).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Target records per second over all producers (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Distinct record keys (0 = null keys); keyed records go to their murmur2 partition.
    #[arg(long, default_value_t = 0)]
    pub keys: u32,
    /// 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Target batch size in bytes (records per batch = this / record size).
    #[arg(long, default_value_t = BENCH_BATCH_BYTES_DEFAULT)]
    pub batch_size: usize,
    /// With --rate: the most a record waits for its batch to fill, in ms.
    #[arg(long, default_value_t = BENCH_LINGER_MS_DEFAULT)]
    pub linger_ms: u64,
    /// Produce requests outstanding per connection.
    #[arg(long, default_value_t = BENCH_MAX_IN_FLIGHT_DEFAULT)]
    pub max_in_flight: usize,
    /// Max-throughput mode: batches of distinct partitions with the same leader one Produce
    /// request carries (1: one batch per request, as librdkafka; 0: as many as
    /// --max-request-size allows, as the Java producer's drain). A fixed --rate always
    /// sends each batch on its own.
    #[arg(long, default_value_t = BENCH_PARTITIONS_PER_REQUEST_DEFAULT)]
    pub partitions_per_request: usize,
    /// With --partitions-per-request: no batch joins a request that would grow past this
    /// many bytes (Java `max.request.size`).
    #[arg(long, default_value_t = BENCH_MAX_REQUEST_BYTES_DEFAULT)]
    pub max_request_size: usize,
    /// Idempotent producer: InitProducerId, then sequence numbers per partition.
    #[arg(long)]
    pub idempotence: bool,
    /// Transactional producers: producer i uses transactional id `<ID>-<i>` and commits
    /// every --transaction-duration-ms (as kafka-producer-perf-test). Needs --acks all.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// With --transactional-id: how long each transaction stays open before its commit.
    #[arg(long, default_value_t = BENCH_TRANSACTION_DURATION_MS_DEFAULT)]
    pub transaction_duration_ms: u64,
    /// Consumers' isolation level: read_uncommitted or read_committed.
    #[arg(long, default_value = "read_uncommitted", value_parser = parse_isolation_level)]
    pub isolation_level: i8,
    #[arg(long, default_value_t = crate::client::producer::PRODUCE_TIMEOUT_MS_DEFAULT)]
    pub produce_timeout_ms: i32,
    /// Consumer `fetch.wait.max.ms` (Java default 500).
    #[arg(long, default_value_t = crate::client::consumer::FETCH_MAX_WAIT_MS_DEFAULT)]
    pub fetch_max_wait_ms: i32,
    #[arg(long, default_value_t = crate::client::consumer::FETCH_MIN_BYTES_DEFAULT)]
    pub fetch_min_bytes: i32,
    #[arg(long, default_value_t = crate::client::consumer::FETCH_MAX_BYTES_DEFAULT)]
    pub fetch_max_bytes: i32,
    #[arg(long, default_value_t = crate::client::consumer::FETCH_PARTITION_MAX_BYTES_DEFAULT)]
    pub fetch_partition_max_bytes: i32,
    /// Topic config KEY=VALUE used if the topic is created (repeatable), e.g.
    /// `sluice.durability=none` on Sluice.
    #[arg(long = "topic-config", value_parser = super::topic::parse_key_value)]
    pub topic_configs: Vec<(String, String)>,
    /// Broker process to measure: CPU-seconds per GB and peak RSS from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write latencies as an HdrHistogram interval log (one histogram per second, µs).
    #[arg(long)]
    pub hdr_log: Option<PathBuf>,
    /// e2e: write every record at least 1 ms late with its timeline (intended send, batch
    /// written, fetch sent, answer read; µs since the start, which is given on
    /// CLOCK_MONOTONIC as `perf record -k mono` prints), to tell harness from broker.
    #[arg(long)]
    pub slow_log: Option<PathBuf>,
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
}

/// Kafka's IsolationLevel codes: 0 read_uncommitted, 1 read_committed.
fn parse_isolation_level(s: &str) -> Result<i8, String> {
    match s {
        "read_uncommitted" => Ok(0),
        "read_committed" => Ok(1),
        other => Err(format!(
            "{other:?} is not an isolation level (read_uncommitted or read_committed)"
        )),
    }
}

/// `30s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{s}`: expected e.g. 30s, 500ms, 2m");
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    let (mode, a) = match args.mode {
        BenchMode::Produce(a) => (Mode::Produce, a),
        BenchMode::Consume(a) => (Mode::Consume, a),
        BenchMode::E2e(a) => (Mode::E2e, a),
    };
    let config = BenchConfig {
        connection: a.security.connection_config()?,
        mode,
        bootstrap: a.bootstrap_server,
        topic: a.topic,
        partitions: a.partitions,
        record_size: a.record_size,
        records: a.records,
        duration: a.duration,
        rate: a.rate,
        producers: a.producers,
        consumers: a.consumers,
        keys: a.keys,
        acks: a.acks,
        compression: a.compression,
        batch_bytes: a.batch_size.max(1),
        linger: Duration::from_millis(a.linger_ms),
        max_in_flight: a.max_in_flight.max(1),
        partitions_per_request: a.partitions_per_request,
        max_request_bytes: a.max_request_size.max(1),
        idempotence: a.idempotence,
        transactional_id: a.transactional_id,
        transaction_duration: Duration::from_millis(a.transaction_duration_ms.max(1)),
        produce_timeout_ms: a.produce_timeout_ms,
        fetch: ConsumerConfig {
            max_wait_ms: a.fetch_max_wait_ms,
            min_bytes: a.fetch_min_bytes,
            max_bytes: a.fetch_max_bytes,
            partition_max_bytes: a.fetch_partition_max_bytes,
            isolation_level: a.isolation_level,
            reset: OffsetSpec::Earliest,
        },
        broker_pid: a.broker_pid,
        topic_configs: a.topic_configs,
        slow_log: a.slow_log,
    };
    let report = bench::run(&config)?;
    if let Some(path) = &a.hdr_log {
        report.write_hdr_log(path)?;
    }
    if a.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| format!("json: {e}"))?;
        println!("{text}");
    } else {
        print!("{}", report.human());
    }
    if let Some(first) = report.errors.first() {
        return Err(format!("benchmark failed: {first}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
