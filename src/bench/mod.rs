//! `sluice bench`: a load generator for any Kafka-compatible broker. Produce, consume and
//! end-to-end scenarios; fixed-rate (coordinated-omission corrected) or max throughput;
//! latency in HdrHistogram; the harness's own CPU per GB and, with a broker PID, the
//! broker's CPU per GB and peak RSS. `perf/` drives it; `src/cli/bench.rs` parses flags.
//!
//! Must not: depend on broker internals (it speaks only the wire protocol through
//! `crate::client`), or print (the CLI prints the `Report`).

pub mod batch;
pub mod stats;
pub mod workers;

use crate::client::{Acks, Client, ClientError, Compression, ConsumerConfig, NewTopic, OffsetSpec};
use batch::RecordSize;
use bytes::Bytes;
use stats::{LatencySummary, Recorder};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use workers::{ConsumerPlan, Counters, ProducerPlan};

/// Bytes in the "GB" of every per-GB figure (decimal, like disk and network vendors).
pub const BYTES_PER_GB: f64 = 1e9;
/// Bytes in the "MB" of MB/s figures.
pub const BYTES_PER_MB: f64 = 1e6;
/// How long to wait for a new topic's partitions to have leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Produce,
    Consume,
    E2e,
}

/// Everything a run needs (the CLI fills it from flags).
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub mode: Mode,
    pub bootstrap: String,
    pub topic: String,
    /// Partitions used (and created, if the topic does not exist).
    pub partitions: u32,
    pub record_size: RecordSize,
    /// Records to produce (produce/e2e) or to consume (consume; None = to the end of the log).
    pub records: Option<u64>,
    pub duration: Option<Duration>,
    /// Target records per second across all producers (None = max throughput).
    pub rate: Option<f64>,
    pub producers: u32,
    pub consumers: u32,
    /// Distinct keys (0 = null keys).
    pub keys: u32,
    pub acks: Acks,
    pub compression: Compression,
    /// Target bytes of one batch (before compression).
    pub batch_bytes: usize,
    /// Most time a record waits for its batch to fill in fixed-rate mode.
    pub linger: Duration,
    pub max_in_flight: usize,
    pub idempotence: bool,
    pub produce_timeout_ms: i32,
    pub fetch: ConsumerConfig,
    pub broker_pid: Option<u32>,
    /// Configs for the topic if this run creates it.
    pub topic_configs: Vec<(String, String)>,
}

/// One row of the per-interval timeline.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub produced_records_per_s: f64,
    pub produced_mb_per_s: f64,
    pub consumed_records_per_s: f64,
    pub consumed_mb_per_s: f64,
    /// Broker CPU use in this interval (1.0 = one core), if a PID was given.
    pub broker_cpu_cores: Option<f64>,
    pub harness_cpu_cores: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Throughput {
    pub records: u64,
    /// Key + value bytes.
    pub payload_bytes: u64,
    /// Record batch bytes as stored by the broker.
    pub batch_bytes: u64,
    pub records_per_s: f64,
    /// Payload MB/s (1 MB = 10^6 bytes).
    pub mb_per_s: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerUsage {
    pub pid: u32,
    pub cpu_s: f64,
    /// Broker CPU seconds per GB of payload produced (produce, e2e) or fetched (consume).
    pub cpu_s_per_gb: f64,
    /// VmHWM: the broker's peak RSS since it started.
    pub peak_rss_mb: f64,
    pub rss_mb: f64,
}

/// The result of one run; `--json` prints it as is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub mode: Mode,
    pub bootstrap: String,
    pub topic: String,
    pub partitions: u32,
    pub record_size: RecordSize,
    pub rate: Option<f64>,
    pub producers: u32,
    pub consumers: u32,
    pub acks: i16,
    pub compression: String,
    pub batch_bytes: usize,
    pub max_in_flight: usize,
    pub idempotence: bool,
    pub fetch_max_wait_ms: i32,
    pub elapsed_s: f64,
    pub produced: Throughput,
    pub consumed: Throughput,
    pub latency: Option<LatencySummary>,
    pub harness_cpu_s: f64,
    /// Harness CPU seconds per GB of payload moved (produced + consumed).
    pub harness_cpu_s_per_gb: f64,
    pub broker: Option<BrokerUsage>,
    pub timeline: Vec<TimelinePoint>,
    pub errors: Vec<String>,
    #[serde(skip)]
    pub recorder: Option<Arc<Recorder>>,
    #[serde(skip)]
    pub start_unix_s: f64,
}

/// Creates the topic if it is missing and waits until every partition has a leader.
fn prepare_topic(config: &BenchConfig) -> Result<u32, String> {
    let mut client = Client::connect(&config.bootstrap).map_err(|e| e.to_string())?;
    match client.create_topic(&NewTopic {
        name: config.topic.clone(),
        partitions: config.partitions as i32,
        replication_factor: 1,
        configs: config.topic_configs.clone(),
    }) {
        Ok(()) => {}
        Err(ClientError::Kafka { code: 36, .. }) => {} // TOPIC_ALREADY_EXISTS
        Err(e) => return Err(format!("create topic `{}`: {e}", config.topic)),
    }
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        client.invalidate_topic(&config.topic);
        let ready = client.describe_topic(&config.topic).map(|meta| {
            let count = meta.partitions.len() as u32;
            let led = meta.partitions.iter().all(|p| p.leader >= 0);
            (count, led)
        });
        match ready {
            Ok((count, true)) if count >= config.partitions => return Ok(count),
            Ok((count, true)) => {
                return Err(format!(
                    "topic `{}` exists with {count} partitions, fewer than --partitions {}",
                    config.topic, config.partitions
                ));
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(_) => {
                return Err(format!(
                    "topic `{}`: partitions without a leader",
                    config.topic
                ));
            }
            Err(e) => return Err(format!("describe topic `{}`: {e}", config.topic)),
        }
    }
}

fn partitions_of(worker: u32, workers: u32, partitions: u32) -> Vec<i32> {
    if workers >= partitions {
        // More workers than partitions: each works one partition, shared round-robin.
        vec![(worker % partitions) as i32]
    } else {
        (0..partitions)
            .filter(|p| p % workers == worker)
            .map(|p| p as i32)
            .collect()
    }
}

fn split(total: u64, parts: u32, index: u32) -> u64 {
    total / parts as u64 + u64::from((index as u64) < total % parts as u64)
}

/// Runs the benchmark described by `config`.
pub fn run(config: &BenchConfig) -> Result<Report, String> {
    validate(config)?;
    prepare_topic(config)?;
    let counters = Arc::new(Counters::default());
    // Consumers' starting points are fixed before any producer starts.
    let mut consumer_plans = Vec::new();
    if config.mode != Mode::Produce {
        let mut client = Client::connect(&config.bootstrap).map_err(|e| e.to_string())?;
        let all: Vec<i32> = (0..config.partitions as i32).collect();
        let starts = match config.mode {
            Mode::E2e => client.list_offsets(&config.topic, &all, OffsetSpec::Latest),
            _ => client.list_offsets(&config.topic, &all, OffsetSpec::Earliest),
        }
        .map_err(|e| e.to_string())?;
        let ends = client
            .list_offsets(&config.topic, &all, OffsetSpec::Latest)
            .map_err(|e| e.to_string())?;
        for c in 0..config.consumers {
            let mine = partitions_of(c, config.consumers, config.partitions);
            let partitions = mine
                .iter()
                .map(|p| {
                    let from = starts.iter().find(|(q, _)| q == p).map_or(0, |(_, o)| *o);
                    // consume without a count or duration: read what exists now.
                    let end = (config.mode == Mode::Consume
                        && config.records.is_none()
                        && config.duration.is_none())
                    .then(|| ends.iter().find(|(q, _)| q == p).map_or(0, |(_, o)| *o));
                    (*p, from, end)
                })
                .collect();
            consumer_plans.push(ConsumerPlan {
                topic: config.topic.clone(),
                partitions,
                records: config.records.map(|n| split(n, config.consumers, c)),
                deadline: None,
                fetch: config.fetch.clone(),
            });
        }
    }
    let keys: Vec<Bytes> = (0..config.keys)
        .map(|k| Bytes::from(format!("key-{k}")))
        .collect();
    let records_per_batch = records_per_batch(config);
    let broker_cpu0 = config
        .broker_pid
        .map(stats::process_cpu_seconds)
        .transpose()?;
    let harness_cpu0 = stats::own_cpu_seconds();
    let start_unix_s = batch::now_ms() as f64 / 1000.0;
    let start = Instant::now();
    let deadline = config.duration.map(|d| start + d);
    let mut consumer_threads = Vec::new();
    for mut plan in consumer_plans {
        if config.mode == Mode::Consume {
            plan.deadline = deadline;
        }
        let config = config.clone();
        let counters = Arc::clone(&counters);
        consumer_threads.push(std::thread::spawn(move || {
            let result = workers::run_consumer(&config, plan, start, &counters);
            if result.error.is_some() {
                counters.abort.store(true, Ordering::Relaxed);
            }
            result
        }));
    }
    let mut producer_threads = Vec::new();
    if config.mode != Mode::Consume {
        for p in 0..config.producers {
            let plan = ProducerPlan {
                index: p as usize,
                topic: config.topic.clone(),
                partitions: partitions_of(p, config.producers, config.partitions),
                records: config.records.map(|n| split(n, config.producers, p)),
                deadline,
                rate: config.rate.map(|r| r / config.producers as f64),
                records_per_batch,
                records_per_batch_max: records_per_batch_max(config),
                keys: keys.clone(),
            };
            let config = config.clone();
            let counters = Arc::clone(&counters);
            producer_threads.push(std::thread::spawn(move || {
                let result = workers::run_producer(&config, plan, start, &counters);
                if result.error.is_some() {
                    counters.abort.store(true, Ordering::Relaxed);
                }
                result
            }));
        }
    }
    // Sample the timeline until every worker is done.
    let mut timeline = Vec::new();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut last_cpu = (broker_cpu0, harness_cpu0);
    let mut last_t = 0.0;
    let mut next_sample = start + stats::INTERVAL;
    let mut producers_finished = false;
    let mut producers_elapsed = None;
    loop {
        let all_done = producer_threads.iter().all(|t| t.is_finished())
            && consumer_threads.iter().all(|t| t.is_finished());
        if !producers_finished && producer_threads.iter().all(|t| t.is_finished()) {
            producers_finished = true;
            producers_elapsed = Some(start.elapsed().as_secs_f64());
            counters.producers_done.store(true, Ordering::Relaxed);
        }
        let now = Instant::now();
        if now >= next_sample || all_done {
            let t = now.duration_since(start).as_secs_f64();
            let dt = (t - last_t).max(1e-6);
            let cur = (
                counters.produced_records.load(Ordering::Relaxed),
                counters.produced_payload_bytes.load(Ordering::Relaxed),
                counters.consumed_records.load(Ordering::Relaxed),
                counters.consumed_payload_bytes.load(Ordering::Relaxed),
            );
            let broker_cpu = config
                .broker_pid
                .and_then(|pid| stats::process_cpu_seconds(pid).ok());
            let harness_cpu = stats::own_cpu_seconds();
            if t - last_t > 0.05 {
                timeline.push(TimelinePoint {
                    t_s: t,
                    produced_records_per_s: (cur.0 - last.0) as f64 / dt,
                    produced_mb_per_s: (cur.1 - last.1) as f64 / dt / BYTES_PER_MB,
                    consumed_records_per_s: (cur.2 - last.2) as f64 / dt,
                    consumed_mb_per_s: (cur.3 - last.3) as f64 / dt / BYTES_PER_MB,
                    broker_cpu_cores: match (broker_cpu, last_cpu.0) {
                        (Some(now), Some(before)) => Some((now - before) / dt),
                        _ => None,
                    },
                    harness_cpu_cores: (harness_cpu - last_cpu.1) / dt,
                });
                last = cur;
                last_cpu = (broker_cpu.or(last_cpu.0), harness_cpu);
                last_t = t;
            }
            next_sample += stats::INTERVAL;
        }
        if all_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let harness_cpu = stats::own_cpu_seconds() - harness_cpu0;
    let mut recorder = Recorder::new(start);
    let mut errors = Vec::new();
    let latency_kind = match config.mode {
        Mode::Produce => "produce_ack",
        Mode::Consume => "fetch_rtt",
        Mode::E2e => "e2e",
    };
    for t in producer_threads {
        let r = t
            .join()
            .map_err(|_| "a producer thread panicked".to_string())?;
        if config.mode == Mode::Produce {
            recorder.merge(&r.recorder);
        }
        errors.extend(r.error);
    }
    for t in consumer_threads {
        let r = t
            .join()
            .map_err(|_| "a consumer thread panicked".to_string())?;
        recorder.merge(&r.recorder);
        errors.extend(r.error);
    }
    // Rates over each side's active time: producers until the last answer, consumers until
    // the last record (not the final empty long-poll).
    let throughput = |records: u64, payload: u64, batch: u64, secs: f64| Throughput {
        records,
        payload_bytes: payload,
        batch_bytes: batch,
        records_per_s: records as f64 / secs,
        mb_per_s: payload as f64 / secs / BYTES_PER_MB,
    };
    let last_consumed_s = counters.last_consumed_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let consumed_secs = if last_consumed_s > 0.0 {
        last_consumed_s
    } else {
        elapsed
    };
    let produced = throughput(
        counters.produced_records.load(Ordering::Relaxed),
        counters.produced_payload_bytes.load(Ordering::Relaxed),
        counters.produced_batch_bytes.load(Ordering::Relaxed),
        producers_elapsed.unwrap_or(elapsed).max(1e-9),
    );
    let consumed = throughput(
        counters.consumed_records.load(Ordering::Relaxed),
        counters.consumed_payload_bytes.load(Ordering::Relaxed),
        counters.consumed_batch_bytes.load(Ordering::Relaxed),
        consumed_secs.max(1e-9),
    );
    let moved_gb = (produced.payload_bytes + consumed.payload_bytes) as f64 / BYTES_PER_GB;
    let broker_gb = match config.mode {
        Mode::Consume => consumed.payload_bytes,
        _ => produced.payload_bytes,
    } as f64
        / BYTES_PER_GB;
    let broker = match (config.broker_pid, broker_cpu0) {
        (Some(pid), Some(cpu0)) => {
            let cpu = stats::process_cpu_seconds(pid)? - cpu0;
            let (peak, now) = stats::process_rss_bytes(pid)?;
            Some(BrokerUsage {
                pid,
                cpu_s: cpu,
                cpu_s_per_gb: per_gb(cpu, broker_gb),
                peak_rss_mb: peak as f64 / BYTES_PER_MB,
                rss_mb: now as f64 / BYTES_PER_MB,
            })
        }
        _ => None,
    };
    let latency =
        (!recorder.total.is_empty()).then(|| stats::summarize(latency_kind, &recorder.total));
    Ok(Report {
        mode: config.mode,
        bootstrap: config.bootstrap.clone(),
        topic: config.topic.clone(),
        partitions: config.partitions,
        record_size: config.record_size,
        rate: config.rate,
        producers: config.producers,
        consumers: config.consumers,
        acks: config.acks.wire(),
        compression: format!("{:?}", config.compression).to_lowercase(),
        batch_bytes: config.batch_bytes,
        max_in_flight: config.max_in_flight,
        idempotence: config.idempotence,
        fetch_max_wait_ms: config.fetch.max_wait_ms,
        elapsed_s: elapsed,
        produced,
        consumed,
        latency,
        harness_cpu_s: harness_cpu,
        harness_cpu_s_per_gb: per_gb(harness_cpu, moved_gb),
        broker,
        timeline,
        errors,
        recorder: Some(Arc::new(recorder)),
        start_unix_s,
    })
}

fn per_gb(cpu_s: f64, gb: f64) -> f64 {
    if gb > 0.0 { cpu_s / gb } else { f64::NAN }
}

/// Records in a full batch: as many as fit in `batch_bytes` (at least one).
pub fn records_per_batch_max(config: &BenchConfig) -> usize {
    (config.batch_bytes / config.record_size.mean().max(1)).max(1)
}

/// Records in one batch: as many as fit in `batch_bytes`; in fixed-rate mode no more than
/// arrive within `linger` at one producer's rate (a real producer would send then).
pub fn records_per_batch(config: &BenchConfig) -> usize {
    let fit = (config.batch_bytes / config.record_size.mean().max(1)).max(1);
    match config.rate {
        Some(rate) => {
            let per_producer = rate / config.producers.max(1) as f64;
            let in_linger = (per_producer * config.linger.as_secs_f64()).floor() as usize;
            fit.min(in_linger.max(1))
        }
        None => fit,
    }
}

fn validate(config: &BenchConfig) -> Result<(), String> {
    if config.partitions == 0 {
        return Err("--partitions must be at least 1".to_string());
    }
    if config.producers == 0 && config.mode != Mode::Consume {
        return Err("--producers must be at least 1".to_string());
    }
    if config.consumers == 0 && config.mode != Mode::Produce {
        return Err("--consumers must be at least 1".to_string());
    }
    if config.mode != Mode::Consume && config.records.is_none() && config.duration.is_none() {
        return Err("give --records N or --duration D".to_string());
    }
    if config.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of records per second".to_string());
    }
    if config.mode == Mode::E2e && config.record_size.min() < batch::SEND_TIME_BYTES {
        return Err(format!(
            "e2e stamps the send time in each value: records must be at least {} bytes",
            batch::SEND_TIME_BYTES
        ));
    }
    if config.mode == Mode::E2e && config.acks == Acks::None {
        // Fine: e2e latency is measured at the consumer.
    }
    if config.idempotence && config.acks != Acks::All {
        return Err("--idempotence needs --acks all (as in Kafka)".to_string());
    }
    Ok(())
}

impl Report {
    /// The human summary.
    pub fn human(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:?} on {} topic {} ({} partitions), records {:?}, acks {}, compression {}, \
             batch {} B, in flight {}{}",
            self.mode,
            self.bootstrap,
            self.topic,
            self.partitions,
            self.record_size,
            self.acks,
            self.compression,
            self.batch_bytes,
            self.max_in_flight,
            if self.idempotence { ", idempotent" } else { "" }
        );
        let _ = writeln!(s, "elapsed        {:.2} s", self.elapsed_s);
        for (name, t) in [("produced", &self.produced), ("consumed", &self.consumed)] {
            if t.records > 0 {
                let _ = writeln!(
                    s,
                    "{name:<14} {} records, {:.1} MB payload: {:.0} records/s, {:.1} MB/s",
                    t.records,
                    t.payload_bytes as f64 / BYTES_PER_MB,
                    t.records_per_s,
                    t.mb_per_s
                );
            }
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                s,
                "latency ({})  p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  \
                 max {:.3}  (n={})",
                l.kind, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.p9999_ms, l.max_ms, l.count
            );
        }
        let _ = writeln!(
            s,
            "harness CPU    {:.2} s, {:.3} CPU-s/GB",
            self.harness_cpu_s, self.harness_cpu_s_per_gb
        );
        if let Some(b) = &self.broker {
            let _ = writeln!(
                s,
                "broker CPU     {:.2} s, {:.3} CPU-s/GB (pid {}), peak RSS {:.1} MB",
                b.cpu_s, b.cpu_s_per_gb, b.pid, b.peak_rss_mb
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }

    /// Writes the HdrHistogram interval log.
    pub fn write_hdr_log(&self, path: &std::path::Path) -> Result<(), String> {
        let recorder = self.recorder.as_ref().ok_or("no latency recorded")?;
        let tag = self.latency.as_ref().map_or("latency", |l| l.kind.as_str());
        stats::write_hdr_log(path, recorder, self.start_unix_s, tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_split_without_losing_partitions_or_records() {
        assert_eq!(partitions_of(0, 2, 5), vec![0, 2, 4]);
        assert_eq!(partitions_of(1, 2, 5), vec![1, 3]);
        assert_eq!(partitions_of(3, 4, 2), vec![1]);
        assert_eq!((0..3).map(|i| split(10, 3, i)).sum::<u64>(), 10);
    }
}
