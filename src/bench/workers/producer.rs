//! The benchmark's producer threads: per partition a few pre-encoded batch templates (so
//! sends vary without encoding on the hot path), sequences for idempotence, and one
//! pipelined connection per leader; max throughput or paced to a fixed rate. A transactional
//! producer (`--transactional-id`) opens a transaction before its first batch and commits it
//! once every batch of it is answered, every `transaction_duration`.
//!
//! Must not: read answers (the connection's reader thread does) or print.

use super::pacing::Pace;
use super::pipeline::{InFlightBatch, PipelinedConnection};
use super::raw::init_producer_id;
use super::txn::TxnSession;
use super::{Counters, WorkerResult, count_produced};
use crate::bench::batch::{BatchTemplate, ProducerIdentity, RecordSize, TemplateSpec, now_ms};
use crate::bench::slow_log::BatchSend;
use crate::bench::stats::Recorder;
use crate::bench::{BenchConfig, Mode};
use crate::client::{Acks, Client, Compression, produce_request_of};
use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Distinct batches a producer cycles through per partition and batch record count (so uniform record sizes and
/// keys vary between sends without encoding on the hot path).
pub const TEMPLATES_PER_PARTITION: usize = 8;

/// The template owner of every unkeyed partition (no real partition is negative).
const SHARED_TEMPLATES: i32 = -1;

/// What one producer thread does.
pub struct ProducerPlan {
    pub index: usize,
    pub topic: String,
    pub partitions: Vec<i32>,
    /// Records this producer sends (None: until the deadline).
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    /// Records per second for this producer (None: as fast as the window allows).
    pub rate: Option<f64>,
    /// Records per batch in fixed-rate mode (what arrives within `linger`).
    pub records_per_batch: usize,
    /// Records in a full batch (`batch_bytes` / record size).
    pub records_per_batch_max: usize,
    pub keys: Vec<Bytes>,
}

/// Runs one producer until its budget or deadline; returns its latencies.
pub fn run_producer(
    config: &BenchConfig,
    plan: ProducerPlan,
    start: Instant,
    counters: &Arc<Counters>,
) -> WorkerResult {
    let mut recorder = Recorder::new(start);
    let mut error = produce_loop(config, &plan, start, counters, &mut recorder).err();
    if let Some(e) = &mut error {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        *e = format!("producer {}: {e}", plan.index);
    }
    WorkerResult { recorder, error }
}

fn produce_loop(
    config: &BenchConfig,
    plan: &ProducerPlan,
    start: Instant,
    counters: &Arc<Counters>,
    recorder: &mut Recorder,
) -> Result<(), String> {
    let mut client = config.connect().map_err(|e| e.to_string())?;
    let mut txn = match &config.transactional_id {
        Some(prefix) => Some(TxnSession::begin(
            &config.bootstrap,
            &format!("{prefix}-{}", plan.index),
        )?),
        None => None,
    };
    let identity = match &txn {
        Some(session) => Some(session.identity),
        None if config.idempotence => Some(init_producer_id(&config.bootstrap)?),
        None => None,
    };
    let full = plan.records_per_batch_max.max(1);
    let mut batches = BatchSource::new(config, plan, identity, full, txn.is_some());
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    for &p in &plan.partitions {
        leaders.insert(
            p,
            client
                .leader_for(&plan.topic, p)
                .map_err(|e| e.to_string())?,
        );
    }
    let mut connections = connect_leaders(&client, &leaders, config, plan, start, counters)?;
    let acks_none = config.acks == Acks::None;
    let pace = plan.rate.map(|rate| Pace {
        start,
        rate,
        target: plan.records_per_batch.clamp(1, full) as u64,
        full,
        linger: config.linger,
        deadline: plan.deadline,
    });
    // A fixed rate sends each batch when it is due, on its own; at max throughput a
    // request takes up to `partitions_per_request` batches of one leader's partitions.
    let per_request = match config.partitions_per_request {
        _ if pace.is_some() => 1,
        0 => usize::MAX,
        n => n,
    };
    let groups = leader_groups(&plan.partitions, &leaders);
    if groups.is_empty() {
        return Err("no partition to produce to".to_string());
    }
    let mut cursors = vec![0usize; groups.len()];
    let mut sent_records: u64 = 0;
    let mut batch_no: usize = 0;
    let mut request_no: usize = 0;
    let mut result = Ok(());
    let mut txn_opened_at = Instant::now();
    loop {
        if counters.abort.load(Ordering::Relaxed)
            || plan.records.is_some_and(|n| sent_records >= n)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        if let Some(session) = &mut txn
            && let Err(e) =
                cycle_transaction(session, &connections, plan, config, &mut txn_opened_at)
        {
            result = Err(e);
            break;
        }
        let group = request_no % groups.len();
        request_no += 1;
        let (leader, partitions) = &groups[group];
        let conn = connections
            .get_mut(leader)
            .ok_or("no connection for leader")?;
        let remaining = plan.records.map_or(u64::MAX, |n| n - sent_records);
        let first_count = match &pace {
            None => (full as u64).min(remaining) as usize,
            Some(pace) => match pace.next_batch(conn, &counters.abort, sent_records, remaining) {
                Some(count) => count,
                None => break,
            },
        };
        let mut carried = Vec::with_capacity(per_request.min(partitions.len()));
        let mut in_flight = InFlightBatch {
            correlation_id: 0,
            sent_at: Instant::now(),
            intended_first: None,
            records: 0,
            payload_bytes: 0,
            batch_bytes: 0,
            partition: partitions[cursors[group] % partitions.len()],
        };
        // Distinct partitions only: Kafka takes one batch per partition into a request.
        while carried.len() < per_request.min(partitions.len()) {
            let count = if carried.is_empty() {
                first_count
            } else {
                let left = plan.records.map_or(u64::MAX, |n| n - sent_records);
                let next_bytes = in_flight.batch_bytes / carried.len();
                if left == 0 || in_flight.batch_bytes + next_bytes > config.max_request_bytes {
                    break;
                }
                (full as u64).min(left) as usize
            };
            let partition = partitions[cursors[group] % partitions.len()];
            cursors[group] += 1;
            batch_no += 1;
            let batch = batches.prepare(plan, start, partition, count, sent_records, batch_no)?;
            if carried.is_empty() {
                in_flight.intended_first = batch.intended_first;
            }
            in_flight.records += count;
            in_flight.payload_bytes += batch.payload_bytes;
            in_flight.batch_bytes += batch.batch_bytes;
            if acks_none {
                count_produced(counters, count, batch.payload_bytes, batch.batch_bytes);
            }
            sent_records += count as u64;
            carried.push((partition, batch.bytes));
        }
        let mut request =
            produce_request_of(&plan.topic, carried, config.acks, config.produce_timeout_ms);
        if let Some(prefix) = &config.transactional_id {
            request.transactional_id = Some(kafka_protocol::messages::TransactionalId(
                kafka_protocol::protocol::StrBytes::from_string(format!("{prefix}-{}", plan.index)),
            ));
        }
        let intended_first = in_flight.intended_first;
        // Latency is measured from here, the wait for a window slot included (as always).
        in_flight.sent_at = Instant::now();
        if let Err(e) = conn.send(&request, (!acks_none).then_some(in_flight)) {
            result = Err(e);
            break;
        }
        if let (Some(log), Some(intended)) = (&counters.slow_log, intended_first) {
            log.note_send(BatchSend {
                intended_ns: intended.saturating_duration_since(start).as_nanos() as u64,
                sent_ns: start.elapsed().as_nanos() as u64,
            });
        }
    }
    // The last transaction commits once its batches are answered.
    if let Some(session) = &mut txn
        && result.is_ok()
    {
        connections.values().for_each(PipelinedConnection::drain);
        result = session.commit();
    }
    // Collect every reader's latencies; a reader's error explains a writer's.
    for (_, conn) in std::mem::take(&mut connections) {
        match conn.finish() {
            Ok(r) => recorder.merge(&r),
            Err(e) => result = Err(e),
        }
    }
    result
}

/// Commits the open transaction once it has been open `transaction_duration` (after every
/// batch of it is answered), and opens the next before the coming batch.
fn cycle_transaction(
    session: &mut TxnSession,
    connections: &BTreeMap<i32, PipelinedConnection>,
    plan: &ProducerPlan,
    config: &BenchConfig,
    opened_at: &mut Instant,
) -> Result<(), String> {
    if opened_at.elapsed() >= config.transaction_duration {
        connections.values().for_each(PipelinedConnection::drain);
        session.commit()?;
    }
    if !session.is_open() {
        session.ensure_open(&plan.topic, &plan.partitions)?;
        *opened_at = Instant::now();
    }
    Ok(())
}

/// The producer's partitions by leader, each list in the producer's order (leaders in
/// id order): requests take turns over the leaders, and each leader's partitions in turn.
fn leader_groups(partitions: &[i32], leaders: &BTreeMap<i32, i32>) -> Vec<(i32, Vec<i32>)> {
    let mut groups: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        if let Some(leader) = leaders.get(p) {
            groups.entry(*leader).or_default().push(*p);
        }
    }
    groups.into_iter().collect()
}

/// One pipelined connection per distinct leader of the producer's partitions.
fn connect_leaders(
    client: &Client,
    leaders: &BTreeMap<i32, i32>,
    config: &BenchConfig,
    plan: &ProducerPlan,
    start: Instant,
    counters: &Arc<Counters>,
) -> Result<BTreeMap<i32, PipelinedConnection>, String> {
    let window = config.max_in_flight.max(1);
    let mut connections: BTreeMap<i32, PipelinedConnection> = BTreeMap::new();
    for leader in leaders.values() {
        if !connections.contains_key(leader) {
            let addr = client
                .brokers()
                .get(leader)
                .map(|b| b.addr.clone())
                .ok_or_else(|| format!("leader {leader} is not in the metadata"))?;
            let conn =
                PipelinedConnection::connect(&addr, client, window, plan.rate, start, counters)?;
            connections.insert(*leader, conn);
        }
    }
    Ok(connections)
}

/// One batch ready to send, with what the answer reader needs to account for it.
struct PreparedBatch {
    bytes: Bytes,
    /// Intended send time of the batch's first record (fixed-rate mode).
    intended_first: Option<Instant>,
    payload_bytes: usize,
    batch_bytes: usize,
}

/// Per partition: its keys, its next sequence, and batch templates by record count (built
/// on first use: fixed-rate batches vary in size, like a real accumulator's); partitions
/// without keys share their templates.
struct BatchSource {
    record_size: RecordSize,
    compression: Compression,
    identity: Option<ProducerIdentity>,
    transactional: bool,
    /// e2e: each value carries its record's send time.
    stamp_values: bool,
    rng: StdRng,
    partition_keys: BTreeMap<i32, Vec<Bytes>>,
    templates: BTreeMap<(i32, usize), Vec<BatchTemplate>>,
    sequences: BTreeMap<i32, i32>,
    stamp_times: Vec<u64>,
}

impl BatchSource {
    fn new(
        config: &BenchConfig,
        plan: &ProducerPlan,
        identity: Option<ProducerIdentity>,
        full: usize,
        transactional: bool,
    ) -> BatchSource {
        let mut partition_keys: BTreeMap<i32, Vec<Bytes>> = BTreeMap::new();
        let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
        for &p in &plan.partitions {
            let keys: Vec<Bytes> = plan
                .keys
                .iter()
                .filter(|k| crate::client::partition_for_key(k, config.partitions as i32) == p)
                .cloned()
                .collect();
            partition_keys.insert(p, keys);
            sequences.insert(p, 0);
        }
        BatchSource {
            record_size: config.record_size,
            compression: config.compression,
            identity,
            transactional,
            stamp_values: config.mode == Mode::E2e,
            rng: StdRng::seed_from_u64(plan.index as u64 + 1),
            partition_keys,
            templates: BTreeMap::new(),
            sequences,
            stamp_times: Vec::with_capacity(full),
        }
    }

    /// The `batch_no`th batch: `count` records for `partition`, stamped with the current
    /// time, its sequence and (e2e) each record's send time.
    fn prepare(
        &mut self,
        plan: &ProducerPlan,
        start: Instant,
        partition: i32,
        count: usize,
        sent_records: u64,
        batch_no: usize,
    ) -> Result<PreparedBatch, String> {
        let keys = self
            .partition_keys
            .get(&partition)
            .map_or(&[][..], Vec::as_slice);
        // A batch's bytes depend on its partition only through its keys (base offset,
        // timestamps and sequence are patched per send): unkeyed partitions share one set of
        // templates, so spreading over 1,000 partitions costs the harness no more encoding
        // than one partition does (a fair spread benchmark measures the broker).
        let owner = if keys.is_empty() {
            SHARED_TEMPLATES
        } else {
            partition
        };
        let variants = self.templates.entry((owner, count)).or_default();
        if variants.len() < TEMPLATES_PER_PARTITION {
            let spec = TemplateSpec {
                count,
                size: self.record_size,
                keys,
                compression: self.compression,
                identity: self.identity,
                stamp_values: self.stamp_values,
                transactional: self.transactional,
            };
            variants.push(BatchTemplate::build(&spec, &mut self.rng)?);
        }
        let variant = batch_no % variants.len();
        let template = &mut variants[variant];
        let intended_first = plan
            .rate
            .map(|r| start + Duration::from_secs_f64(sent_records as f64 / r));
        if self.stamp_values {
            let stamp_times = &mut self.stamp_times;
            stamp_times.clear();
            match (intended_first, plan.rate) {
                (Some(first), Some(rate)) => {
                    let offset = first.saturating_duration_since(start).as_nanos() as u64;
                    stamp_times
                        .extend((0..count as u64).map(|i| offset + (i as f64 * 1e9 / rate) as u64));
                }
                _ => stamp_times.resize(count, start.elapsed().as_nanos() as u64),
            }
        }
        let sequence = self.sequences.get_mut(&partition).ok_or("no sequence")?;
        let seq = self.identity.map(|_| *sequence);
        *sequence = sequence.wrapping_add(count as i32);
        let bytes = template.prepare(
            now_ms(),
            seq,
            self.stamp_values.then_some(self.stamp_times.as_slice()),
        )?;
        Ok(PreparedBatch {
            bytes,
            intended_first,
            payload_bytes: template.payload_bytes,
            batch_bytes: template.batch_bytes(),
        })
    }
}
