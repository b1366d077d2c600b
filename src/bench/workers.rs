//! The benchmark's producer and consumer threads. Each producer owns one connection to each
//! partition leader it writes and keeps up to `max_in_flight` Produce requests outstanding on
//! it (pipelining: the producer writes, a reader thread per connection reads the answers); each consumer owns one connection per leader and fetches its
//! partitions. Both publish progress through shared atomic counters and keep their own
//! latency recorder, merged when they finish.
//!
//! Must not: print; the caller reports.

use super::batch::{BatchTemplate, ProducerIdentity, TemplateSpec, now_ms, summarize_fetched};
use super::stats::Recorder;
use super::{BenchConfig, Mode};
use crate::client::{Acks, Client, ClientError, Connection, ConsumerConfig, produce_request};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, InitProducerIdRequest,
    InitProducerIdResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
    fetch_request::{FetchPartition, FetchTopic},
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Distinct batches a producer cycles through per partition and batch record count (so uniform record sizes and
/// keys vary between sends without encoding on the hot path).
pub const TEMPLATES_PER_PARTITION: usize = 8;
/// Longest sleep slice while pacing a fixed rate; shorter slices would burn CPU spinning.
const PACING_SLEEP_MAX: Duration = Duration::from_millis(50);
/// InitProducerId version this harness speaks when the broker offers it (v0..v4 share the
/// fields it uses).
const INIT_PRODUCER_ID_VERSION_MAX: i16 = 4;
/// Largest InitProducerId/ApiVersions response accepted on the raw connection.
const RAW_RESPONSE_BYTES_MAX: usize = 1024 * 1024;

/// Progress counters shared by all workers, sampled once per interval for the timeline.
#[derive(Default)]
pub struct Counters {
    pub produced_records: AtomicU64,
    pub produced_payload_bytes: AtomicU64,
    pub produced_batch_bytes: AtomicU64,
    pub consumed_records: AtomicU64,
    pub consumed_payload_bytes: AtomicU64,
    pub consumed_batch_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Nanoseconds from the start to the latest fetch that returned records.
    pub last_consumed_ns: AtomicU64,
    /// Set when every producer has finished (e2e consumers then drain and stop).
    pub producers_done: AtomicBool,
    /// Set to stop everybody early (a fatal error).
    pub abort: AtomicBool,
}

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

/// What a worker reports when it stops.
pub struct WorkerResult {
    pub recorder: Recorder,
    pub error: Option<String>,
}

struct InFlightBatch {
    correlation_id: i32,
    sent_at: Instant,
    /// Intended send time of the batch's first record (fixed-rate mode).
    intended_first: Option<Instant>,
    records: usize,
    payload_bytes: usize,
    batch_bytes: usize,
    partition: i32,
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

/// Requests outstanding on one connection, shared by its writer and its reader.
#[derive(Default)]
struct Window {
    outstanding: Mutex<usize>,
    changed: Condvar,
    /// Set when the reader stopped: no slot will ever free up again.
    closed: AtomicBool,
}

impl Window {
    fn outstanding(&self) -> usize {
        self.outstanding.lock().map_or(0, |n| *n)
    }

    fn wait_below(&self, max: usize) {
        let Ok(mut n) = self.outstanding.lock() else {
            return;
        };
        while *n >= max && !self.closed.load(Ordering::Relaxed) {
            n = match self.changed.wait(n) {
                Ok(n) => n,
                Err(_) => return,
            };
        }
    }

    fn acquire(&self) {
        if let Ok(mut n) = self.outstanding.lock() {
            *n += 1;
        }
    }

    fn release(&self) {
        if let Ok(mut n) = self.outstanding.lock() {
            *n = n.saturating_sub(1);
        }
        self.changed.notify_one();
    }

    fn release_all(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }
}

/// The write half of one pipelined producer connection; a reader thread owns the read half,
/// matches answers to the requests in flight (in order, as Kafka guarantees per connection)
/// and records latencies the moment each answer arrives, so a producer pacing a fixed rate
/// never delays a send while waiting for an answer.
struct PipelinedConnection {
    stream: TcpStream,
    version: i16,
    correlation_id_next: i32,
    client_id: StrBytes,
    write_buf: BytesMut,
    /// Requests in flight, in send order, for the reader.
    in_flight: Option<Sender<InFlightBatch>>,
    window: Arc<Window>,
    window_max: usize,
    reader: Option<JoinHandle<Result<Recorder, String>>>,
}

impl PipelinedConnection {
    fn connect(
        addr: &str,
        client: &Client,
        window: usize,
        rate: Option<f64>,
        start: Instant,
        counters: &Arc<Counters>,
    ) -> Result<PipelinedConnection, String> {
        // Negotiate the Produce version as the client library does, on a short-lived connection.
        let version = Connection::connect(addr, client.connection_config())
            .and_then(|c| c.version_of::<ProduceRequest>())
            .map_err(|e| e.to_string())?;
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("{addr}: {e}"))?;
        let timeout = Some(client.connection_config().io_timeout);
        stream
            .set_read_timeout(timeout)
            .map_err(|e| format!("{addr}: {e}"))?;
        let read_half = stream.try_clone().map_err(|e| format!("{addr}: {e}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let window_state = Arc::new(Window::default());
        let reader_window = Arc::clone(&window_state);
        let counters = Arc::clone(counters);
        let addr_owned = addr.to_string();
        let reader = std::thread::Builder::new()
            .name("bench-acks".to_string())
            .spawn(move || {
                let mut recorder = Recorder::new(start);
                let r = read_answers(
                    read_half,
                    rx,
                    &reader_window,
                    version,
                    rate,
                    &mut recorder,
                    &counters,
                );
                // Never leave the writer waiting for a slot that will not come.
                reader_window.release_all();
                if r.is_err() {
                    counters.abort.store(true, Ordering::Relaxed);
                }
                r.map(|()| recorder)
                    .map_err(|e| format!("answers from {addr_owned}: {e}"))
            })
            .map_err(|e| format!("spawn reader: {e}"))?;
        Ok(PipelinedConnection {
            stream,
            version,
            correlation_id_next: 1,
            client_id: StrBytes::from_static_str("sluice-bench"),
            write_buf: BytesMut::with_capacity(64 * 1024),
            in_flight: Some(tx),
            window: window_state,
            window_max: window,
            reader: Some(reader),
        })
    }

    /// True if another request may be sent now without exceeding `max_in_flight`.
    fn has_room(&self) -> bool {
        self.window.outstanding() < self.window_max
    }

    /// Blocks until fewer than `max_in_flight` requests are outstanding.
    fn wait_for_room(&self) {
        self.window.wait_below(self.window_max);
    }

    /// Sends one request; with `batch` = Some, its answer is awaited by the reader (blocks
    /// while `max_in_flight` requests are outstanding).
    fn send(
        &mut self,
        request: &ProduceRequest,
        batch: Option<InFlightBatch>,
    ) -> Result<(), String> {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        if let Some(mut batch) = batch {
            self.window.wait_below(self.window_max);
            self.window.acquire();
            batch.correlation_id = correlation_id;
            self.in_flight
                .as_ref()
                .ok_or("connection closed")?
                .send(batch)
                .map_err(|_| "the answer reader stopped".to_string())?;
        }
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(self.version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        self.write_buf.clear();
        self.write_buf.put_i32(0);
        header
            .encode(
                &mut self.write_buf,
                ApiKey::Produce.request_header_version(self.version),
            )
            .map_err(|e| format!("encode header: {e}"))?;
        request
            .encode(&mut self.write_buf, self.version)
            .map_err(|e| format!("encode produce v{}: {e}", self.version))?;
        let len = (self.write_buf.len() - 4) as i32;
        self.write_buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&self.write_buf)
            .map_err(|e| format!("send produce: {e}"))
    }

    /// Waits for every answer; returns the reader's latencies.
    fn finish(mut self) -> Result<Recorder, String> {
        drop(self.in_flight.take());
        let reader = self.reader.take().ok_or("reader already joined")?;
        reader
            .join()
            .map_err(|_| "the answer reader panicked".to_string())?
    }
}

fn read_answers(
    mut stream: TcpStream,
    in_flight: Receiver<InFlightBatch>,
    window: &Window,
    version: i16,
    rate: Option<f64>,
    recorder: &mut Recorder,
    counters: &Counters,
) -> Result<(), String> {
    let header_version = ApiKey::Produce.response_header_version(version);
    let mut size = [0u8; 4];
    // Ends when the writer closed the channel and every answer was read.
    while let Ok(batch) = in_flight.recv() {
        stream
            .read_exact(&mut size)
            .map_err(|e| format!("read: {e}"))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RAW_RESPONSE_BYTES_MAX {
            return Err(format!("answer size {size} out of range"));
        }
        let mut body = vec![0u8; size as usize];
        stream
            .read_exact(&mut body)
            .map_err(|e| format!("read: {e}"))?;
        let acked_at = Instant::now();
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| format!("decode answer header: {e}"))?;
        if header.correlation_id != batch.correlation_id {
            return Err(format!(
                "correlation id {} where {} was expected",
                header.correlation_id, batch.correlation_id
            ));
        }
        let response = ProduceResponse::decode(&mut body, version)
            .map_err(|e| format!("decode produce v{version} answer: {e}"))?;
        for topic in &response.responses {
            for p in &topic.partition_responses {
                if let Some(err) = ClientError::from_code(
                    p.error_code,
                    format!("produce to partition {}", batch.partition),
                    p.error_message.as_deref(),
                ) {
                    return Err(err.to_string());
                }
            }
        }
        match (batch.intended_first, rate) {
            (Some(first), Some(rate)) => {
                // Coordinated-omission correction: each record from its own intended time.
                for i in 0..batch.records {
                    let intended = first + Duration::from_secs_f64(i as f64 / rate);
                    recorder.record_n(acked_at, acked_at.saturating_duration_since(intended), 1);
                }
            }
            _ => recorder.record_n(acked_at, acked_at - batch.sent_at, batch.records as u64),
        }
        count_produced(
            counters,
            batch.records,
            batch.payload_bytes,
            batch.batch_bytes,
        );
        window.release();
    }
    Ok(())
}

fn produce_loop(
    config: &BenchConfig,
    plan: &ProducerPlan,
    start: Instant,
    counters: &Arc<Counters>,
    recorder: &mut Recorder,
) -> Result<(), String> {
    let mut client = Client::connect(&config.bootstrap).map_err(|e| e.to_string())?;
    let identity = if config.idempotence {
        Some(init_producer_id(&config.bootstrap)?)
    } else {
        None
    };
    let stamp_values = config.mode == Mode::E2e;
    let mut rng = rand::rngs::StdRng::seed_from_u64(plan.index as u64 + 1);
    // Per partition: its keys, its leader, its next sequence, and batch templates by record
    // count (built on first use: fixed-rate batches vary in size, like a real accumulator's).
    let mut partition_keys: BTreeMap<i32, Vec<Bytes>> = BTreeMap::new();
    let mut templates: BTreeMap<(i32, usize), Vec<BatchTemplate>> = BTreeMap::new();
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    for &p in &plan.partitions {
        let keys: Vec<Bytes> = plan
            .keys
            .iter()
            .filter(|k| crate::client::partition_for_key(k, config.partitions as i32) == p)
            .cloned()
            .collect();
        partition_keys.insert(p, keys);
        leaders.insert(
            p,
            client
                .leader_for(&plan.topic, p)
                .map_err(|e| e.to_string())?,
        );
        sequences.insert(p, 0);
    }
    let window = config.max_in_flight.max(1);
    // One pipelined connection per leader.
    let mut connections: BTreeMap<i32, PipelinedConnection> = BTreeMap::new();
    for leader in leaders.values() {
        if !connections.contains_key(leader) {
            let addr = client
                .brokers()
                .get(leader)
                .map(|b| b.addr.clone())
                .ok_or_else(|| format!("leader {leader} is not in the metadata"))?;
            let conn =
                PipelinedConnection::connect(&addr, &client, window, plan.rate, start, counters)?;
            connections.insert(*leader, conn);
        }
    }
    let acks_none = config.acks == Acks::None;
    let full = plan.records_per_batch_max.max(1);
    let target = plan.records_per_batch.clamp(1, full) as u64;
    let mut sent_records: u64 = 0;
    let mut batch_no: usize = 0;
    let mut stamp_times: Vec<u64> = Vec::with_capacity(full);
    let mut result = Ok(());
    'send: loop {
        if counters.abort.load(Ordering::Relaxed)
            || plan.records.is_some_and(|n| sent_records >= n)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let remaining = plan.records.map_or(u64::MAX, |n| n - sent_records);
        let partition = plan.partitions[batch_no % plan.partitions.len()];
        let leader = leaders[&partition];
        let conn = connections
            .get_mut(&leader)
            .ok_or("no connection for leader")?;
        let count = match plan.rate {
            None => (full as u64).min(remaining) as usize,
            Some(rate) => {
                // Like a Kafka producer's accumulator: a batch is ready once `target` records
                // are due or its oldest record lingered `linger`; while every request slot is
                // taken, due records keep piling into the batch (up to a full batch).
                loop {
                    let now = Instant::now();
                    if counters.abort.load(Ordering::Relaxed)
                        || plan.deadline.is_some_and(|d| now >= d)
                    {
                        break 'send;
                    }
                    let elapsed = now.saturating_duration_since(start).as_secs_f64();
                    let due_total = ((elapsed * rate).floor() as u64 + 1)
                        .min(sent_records.saturating_add(remaining));
                    let pending = due_total.saturating_sub(sent_records);
                    let oldest = start + Duration::from_secs_f64(sent_records as f64 / rate);
                    let ready = pending >= target || (pending > 0 && now >= oldest + config.linger);
                    if ready && conn.has_room() {
                        break pending.min(full as u64) as usize;
                    }
                    if ready {
                        conn.wait_for_room();
                        continue;
                    }
                    let target_due =
                        start + Duration::from_secs_f64((sent_records + target - 1) as f64 / rate);
                    let wake = target_due.min(oldest + config.linger);
                    if wake > now {
                        std::thread::sleep((wake - now).min(PACING_SLEEP_MAX));
                    }
                }
            }
        };
        batch_no += 1;
        let variants = templates.entry((partition, count)).or_default();
        if variants.len() < TEMPLATES_PER_PARTITION {
            let spec = TemplateSpec {
                count,
                size: config.record_size,
                keys: partition_keys.get(&partition).map_or(&[], Vec::as_slice),
                compression: config.compression,
                identity,
                stamp_values,
            };
            variants.push(BatchTemplate::build(&spec, &mut rng)?);
        }
        let variant = batch_no % variants.len();
        let template = &mut variants[variant];
        let intended_first = plan
            .rate
            .map(|r| start + Duration::from_secs_f64(sent_records as f64 / r));
        if stamp_values {
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
        let sequence = sequences.get_mut(&partition).ok_or("no sequence")?;
        let seq = identity.map(|_| *sequence);
        *sequence = sequence.wrapping_add(count as i32);
        let batch = template.prepare(
            now_ms(),
            seq,
            stamp_values.then_some(stamp_times.as_slice()),
        )?;
        let request = produce_request(
            &plan.topic,
            partition,
            batch,
            config.acks,
            config.produce_timeout_ms,
        );
        let in_flight = (!acks_none).then(|| InFlightBatch {
            correlation_id: 0,
            sent_at: Instant::now(),
            intended_first,
            records: count,
            payload_bytes: template.payload_bytes,
            batch_bytes: template.batch_bytes(),
            partition,
        });
        if let Err(e) = conn.send(&request, in_flight) {
            result = Err(e);
            break;
        }
        if acks_none {
            count_produced(
                counters,
                count,
                template.payload_bytes,
                template.batch_bytes(),
            );
        }
        sent_records += count as u64;
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

fn count_produced(counters: &Counters, records: usize, payload: usize, batch: usize) {
    counters
        .produced_records
        .fetch_add(records as u64, Ordering::Relaxed);
    counters
        .produced_payload_bytes
        .fetch_add(payload as u64, Ordering::Relaxed);
    counters
        .produced_batch_bytes
        .fetch_add(batch as u64, Ordering::Relaxed);
}

/// What one consumer thread does.
pub struct ConsumerPlan {
    pub topic: String,
    /// (partition, first offset, end offset: stop there; None = run until told)
    pub partitions: Vec<(i32, i64, Option<i64>)>,
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    pub fetch: ConsumerConfig,
}

/// Runs one consumer; in e2e mode records receive time − send time per record, otherwise the
/// fetch round trip per request.
pub fn run_consumer(
    config: &BenchConfig,
    plan: ConsumerPlan,
    start: Instant,
    counters: &Counters,
) -> WorkerResult {
    let mut recorder = Recorder::new(start);
    let error = consume_loop(config, &plan, start, counters, &mut recorder).err();
    if error.is_some() {
        counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    WorkerResult { recorder, error }
}

/// How long e2e consumers keep reading after the producers stop, for stragglers.
const E2E_DRAIN: Duration = Duration::from_secs(10);

fn consume_loop(
    config: &BenchConfig,
    plan: &ConsumerPlan,
    start: Instant,
    counters: &Counters,
    recorder: &mut Recorder,
) -> Result<(), String> {
    let e2e = config.mode == Mode::E2e;
    let mut client = Client::connect(&config.bootstrap).map_err(|e| e.to_string())?;
    let mut by_leader: BTreeMap<i32, Vec<(i32, i64, Option<i64>)>> = BTreeMap::new();
    for &(p, from, end) in &plan.partitions {
        let leader = client
            .leader_for(&plan.topic, p)
            .map_err(|e| e.to_string())?;
        by_leader.entry(leader).or_default().push((p, from, end));
    }
    let mut consumed: u64 = 0;
    let mut drain_until: Option<Instant> = None;
    loop {
        if counters.abort.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if plan.records.is_some_and(|n| consumed >= n) || plan.deadline.is_some_and(|d| now >= d) {
            break;
        }
        let all_at_end = by_leader
            .values()
            .flatten()
            .all(|(_, pos, end)| end.is_some_and(|e| *pos >= e));
        if all_at_end {
            break;
        }
        if e2e && counters.producers_done.load(Ordering::Relaxed) {
            let produced = counters.produced_records.load(Ordering::Relaxed);
            if counters.consumed_records.load(Ordering::Relaxed) >= produced {
                break;
            }
            let until = *drain_until.get_or_insert(now + E2E_DRAIN);
            if now >= until {
                return Err(format!(
                    "e2e: {} of {produced} records arrived within {} s after the producers stopped",
                    counters.consumed_records.load(Ordering::Relaxed),
                    E2E_DRAIN.as_secs()
                ));
            }
        }
        // One Fetch per leader, all pipelined, then the answers in order.
        let leaders: Vec<i32> = by_leader.keys().copied().collect();
        let mut sent = Vec::new();
        for leader in &leaders {
            let parts = &by_leader[leader];
            let request = fetch_for(&plan.topic, parts, &plan.fetch);
            let conn = client
                .broker_connection(*leader)
                .map_err(|e| e.to_string())?;
            conn.send(&request).map_err(|e| e.to_string())?;
            sent.push((*leader, Instant::now()));
        }
        for (leader, sent_at) in sent {
            let conn = client
                .broker_connection(leader)
                .map_err(|e| e.to_string())?;
            let (_, response) = conn.receive::<FetchRequest>().map_err(|e| e.to_string())?;
            let received_at = Instant::now();
            let now_ns = received_at.saturating_duration_since(start).as_nanos() as u64;
            if !e2e {
                recorder.record_n(received_at, received_at - sent_at, 1);
            }
            let parts = by_leader.get_mut(&leader).ok_or("unknown leader")?;
            for topic in &response.responses {
                for pd in &topic.partitions {
                    if let Some(err) = ClientError::from_code(
                        pd.error_code,
                        format!("fetch partition {}", pd.partition_index),
                        None,
                    ) {
                        return Err(err.to_string());
                    }
                    let Some(entry) = parts.iter_mut().find(|(p, ..)| *p == pd.partition_index)
                    else {
                        continue;
                    };
                    let Some(records) = &pd.records else { continue };
                    let summary = summarize_fetched(records, entry.1, e2e, |sent_ns| {
                        let latency = Duration::from_nanos(now_ns.saturating_sub(sent_ns));
                        recorder.record_n(received_at, latency, 1);
                    })?;
                    if let Some(next) = summary.next_offset {
                        entry.1 = entry.1.max(next);
                    } else if !records.is_empty() {
                        return Err(format!(
                            "fetch partition {} at {}: one batch exceeds the {} bytes returned; \
                             raise --fetch-partition-max-bytes",
                            pd.partition_index,
                            entry.1,
                            records.len()
                        ));
                    }
                    consumed += summary.records;
                    if summary.records > 0 {
                        let at = received_at.saturating_duration_since(start).as_nanos() as u64;
                        counters.last_consumed_ns.fetch_max(at, Ordering::Relaxed);
                    }
                    counters
                        .consumed_records
                        .fetch_add(summary.records, Ordering::Relaxed);
                    counters
                        .consumed_payload_bytes
                        .fetch_add(summary.payload_bytes, Ordering::Relaxed);
                    counters
                        .consumed_batch_bytes
                        .fetch_add(summary.batch_bytes, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}

fn fetch_for(
    topic: &str,
    parts: &[(i32, i64, Option<i64>)],
    config: &ConsumerConfig,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(config.isolation_level)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, offset, _)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*offset)
                                .with_partition_max_bytes(config.partition_max_bytes)
                        })
                        .collect(),
                ),
        ])
}

/// Asks `bootstrap` for a producer id (no transactional id) over a short-lived connection.
/// The CLI client does not negotiate InitProducerId, so this speaks it directly.
pub fn init_producer_id(bootstrap: &str) -> Result<ProducerIdentity, String> {
    let addr = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let timeout = Some(Duration::from_millis(
        crate::client::connection::IO_TIMEOUT_MS,
    ));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let versions: ApiVersionsResponse =
        raw_call(&mut stream, &ApiVersionsRequest::default(), 0, 1)?;
    let broker_max = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::InitProducerId as i16)
        .map(|k| k.max_version)
        .ok_or_else(|| {
            format!("{addr} does not offer InitProducerId (needed for --idempotence)")
        })?;
    let version = broker_max.min(INIT_PRODUCER_ID_VERSION_MAX);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = raw_call(&mut stream, &request, version, 2)?;
    if let Some(err) =
        ClientError::from_code(response.error_code, "InitProducerId".to_string(), None)
    {
        return Err(err.to_string());
    }
    Ok(ProducerIdentity {
        producer_id: response.producer_id.0,
        epoch: response.producer_epoch,
    })
}

fn raw_call<R: Request, T: Decodable>(
    stream: &mut std::net::TcpStream,
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<T, String> {
    let name = format!(
        "{:?}",
        ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
    );
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-bench")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| format!("encode {name} header: {e}"))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| format!("encode {name}: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    stream
        .write_all(&buf)
        .map_err(|e| format!("send {name}: {e}"))?;
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("read {name}: {e}"))?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > RAW_RESPONSE_BYTES_MAX {
        return Err(format!("{name}: response size {size} out of range"));
    }
    let mut body = vec![0u8; size as usize];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("read {name}: {e}"))?;
    let mut body = Bytes::from(body);
    let header_version = ApiKey::try_from(R::KEY)
        .map(|k| k.response_header_version(version))
        .unwrap_or(0);
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|e| format!("decode {name} header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!("{name}: correlation id mismatch"));
    }
    T::decode(&mut body, version).map_err(|e| format!("decode {name} v{version}: {e}"))
}
