//! `sluice bench`: a load generator for any Kafka-compatible broker. Produce, consume and
//! end-to-end scenarios; fixed-rate (coordinated-omission corrected) or max throughput;
//! latency in HdrHistogram; the harness's own CPU per GB and, with a broker PID, the
//! broker's CPU per GB and peak RSS. `perf/` drives it; `src/cli/bench.rs` parses flags.
//!
//! Must not: depend on broker internals (it speaks only the wire protocol through
//! `crate::client`), or print (the CLI prints the `Report`).
//!
//! Files: `workers` (producer and consumer threads), `timeline` (per-interval sampling),
//! `report` (turning measurements into the `Report`), `batch` and `stats` (encoding and
//! latency recording), `slow_log` (`--slow-log`: the timeline of slow e2e records). This file owns the configuration and the order of a run.

pub mod batch;
pub mod slow_log;
pub mod stats;
pub mod workers;

mod report;
mod timeline;

pub use report::{BrokerUsage, Report, Throughput};
pub use timeline::TimelinePoint;

use crate::client::{Acks, Client, ClientError, Compression, ConsumerConfig, NewTopic, OffsetSpec};
use batch::RecordSize;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use report::Measured;
use stats::Recorder;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use workers::{ConsumerPlan, Counters, ProducerPlan, WorkerResult};

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
    /// Max-throughput mode: batches of distinct partitions of one leader per request (0: as
    /// many as `max_request_bytes` allows).
    pub partitions_per_request: usize,
    /// The size a request may not outgrow by taking another batch.
    pub max_request_bytes: usize,
    pub idempotence: bool,
    /// Transactional producers (`<id>-<producer index>`), committing every
    /// `transaction_duration`; implies idempotence.
    pub transactional_id: Option<String>,
    pub transaction_duration: Duration,
    pub produce_timeout_ms: i32,
    pub fetch: ConsumerConfig,
    pub broker_pid: Option<u32>,
    /// Configs for the topic if this run creates it.
    pub topic_configs: Vec<(String, String)>,
    /// `--security-protocol` and its TLS / SASL settings, for every connection.
    pub connection: crate::client::ConnectionConfig,
    /// e2e: where to write the timeline of each slow record (`slow_log`).
    pub slow_log: Option<std::path::PathBuf>,
}

impl BenchConfig {
    /// A client of the bootstrap broker, over TLS and SASL when the run asks for them.
    pub fn connect(&self) -> crate::client::Result<Client> {
        Client::connect_with(&self.bootstrap, self.connection.clone())
    }
}

/// Creates the topic if it is missing and waits until every partition has a leader.
fn prepare_topic(config: &BenchConfig) -> Result<u32, String> {
    let mut client = config.connect().map_err(|e| e.to_string())?;
    match client.create_topic(&NewTopic {
        name: config.topic.clone(),
        partitions: config.partitions as i32,
        replication_factor: 1,
        configs: config.topic_configs.clone(),
    }) {
        Ok(()) => {}
        Err(ClientError::Kafka { code, .. })
            if code == ResponseError::TopicAlreadyExists.code() => {}
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
    let counters = Arc::new(Counters {
        slow_log: config
            .slow_log
            .as_ref()
            .map(|_| slow_log::SlowLog::default()),
        ..Counters::default()
    });
    // Consumers' starting points are fixed before any producer starts.
    let consumer_plans = if config.mode != Mode::Produce {
        plan_consumers(config)?
    } else {
        Vec::new()
    };
    let keys: Vec<Bytes> = (0..config.keys)
        .map(|k| Bytes::from(format!("key-{k}")))
        .collect();
    let broker_cpu0 = config
        .broker_pid
        .map(stats::process_cpu_seconds)
        .transpose()?;
    let harness_cpu0 = stats::own_cpu_seconds();
    let start_unix_s = batch::now_ms() as f64 / 1000.0;
    let start = Instant::now();
    let start_monotonic_ns = slow_log::monotonic_now_ns();
    let deadline = config.duration.map(|d| start + d);
    let consumer_threads = spawn_consumers(config, consumer_plans, start, deadline, &counters);
    let producer_threads = if config.mode != Mode::Consume {
        spawn_producers(config, &keys, start, deadline, &counters)
    } else {
        Vec::new()
    };
    let sampled = timeline::sample_until_done(
        config,
        &counters,
        start,
        (broker_cpu0, harness_cpu0),
        &producer_threads,
        &consumer_threads,
    );
    let elapsed = start.elapsed().as_secs_f64();
    let harness_cpu = stats::own_cpu_seconds() - harness_cpu0;
    let (recorder, errors) = join_workers(config, start, producer_threads, consumer_threads)?;
    if let (Some(path), Some(log)) = (&config.slow_log, &counters.slow_log) {
        log.write(path, start_monotonic_ns)?;
    }
    Report::assemble(
        config,
        Measured {
            counters,
            elapsed,
            producers_elapsed: sampled.producers_elapsed,
            harness_cpu,
            broker_cpu0,
            recorder,
            timeline: sampled.timeline,
            errors,
            start_unix_s,
        },
    )
}

/// One plan per consumer: its partitions, where each starts (log end for e2e, log start
/// otherwise) and, for a consume run without a count or duration, where it stops.
fn plan_consumers(config: &BenchConfig) -> Result<Vec<ConsumerPlan>, String> {
    let mut consumer_plans = Vec::new();
    let mut client = config.connect().map_err(|e| e.to_string())?;
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
    Ok(consumer_plans)
}

/// Starts the consumer threads; a failing consumer stops everybody.
fn spawn_consumers(
    config: &BenchConfig,
    plans: Vec<ConsumerPlan>,
    start: Instant,
    deadline: Option<Instant>,
    counters: &Arc<Counters>,
) -> Vec<JoinHandle<WorkerResult>> {
    let mut consumer_threads = Vec::new();
    for mut plan in plans {
        if config.mode == Mode::Consume {
            plan.deadline = deadline;
        }
        let config = config.clone();
        let counters = Arc::clone(counters);
        consumer_threads.push(std::thread::spawn(move || {
            let result = workers::run_consumer(&config, plan, start, &counters);
            if result.error.is_some() {
                counters.abort.store(true, Ordering::Relaxed);
            }
            result
        }));
    }
    consumer_threads
}

/// Starts the producer threads, each with its share of partitions, records and rate; a
/// failing producer stops everybody.
fn spawn_producers(
    config: &BenchConfig,
    keys: &[Bytes],
    start: Instant,
    deadline: Option<Instant>,
    counters: &Arc<Counters>,
) -> Vec<JoinHandle<WorkerResult>> {
    let records_per_batch = records_per_batch(config);
    let mut producer_threads = Vec::new();
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
            keys: keys.to_vec(),
        };
        let config = config.clone();
        let counters = Arc::clone(counters);
        producer_threads.push(std::thread::spawn(move || {
            let result = workers::run_producer(&config, plan, start, &counters);
            if result.error.is_some() {
                counters.abort.store(true, Ordering::Relaxed);
            }
            result
        }));
    }
    producer_threads
}

/// Waits for every worker; merges the latencies that describe this mode (producer acks
/// only in produce mode) and collects the errors.
fn join_workers(
    config: &BenchConfig,
    start: Instant,
    producer_threads: Vec<JoinHandle<WorkerResult>>,
    consumer_threads: Vec<JoinHandle<WorkerResult>>,
) -> Result<(Recorder, Vec<String>), String> {
    let mut recorder = Recorder::new(start);
    let mut errors = Vec::new();
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
    Ok((recorder, errors))
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
    if config.slow_log.is_some() && config.mode != Mode::E2e {
        return Err("--slow-log is for e2e runs (it times records end to end)".to_string());
    }
    if config.mode == Mode::E2e && config.acks == Acks::None {
        // Fine: e2e latency is measured at the consumer.
    }
    if (config.idempotence || config.transactional_id.is_some()) && config.acks != Acks::All {
        return Err(
            "--idempotence and --transactional-id need --acks all (as in Kafka)".to_string(),
        );
    }
    Ok(())
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
