//! The benchmark's producer and consumer threads. Each producer owns one connection to each
//! partition leader it writes and keeps up to `max_in_flight` Produce requests outstanding on
//! it (send/receive pipelining); each consumer owns one connection per leader and fetches its
//! partitions. Both publish progress through shared atomic counters and keep their own
//! latency recorder, merged when they finish.
//!
//! Must not: print; the caller reports.

use super::batch::{BatchTemplate, ProducerIdentity, TemplateSpec, now_ms, summarize_fetched};
use super::stats::Recorder;
use super::{BenchConfig, Mode};
use crate::client::{Acks, Client, ClientError, ConsumerConfig, Connection, produce_request};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, InitProducerIdRequest,
    InitProducerIdResponse, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use rand::SeedableRng;
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Distinct batches a producer cycles through per partition (so uniform record sizes and
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
    pub records_per_batch: usize,
    pub keys: Vec<Bytes>,
}

/// What a worker reports when it stops.
pub struct WorkerResult {
    pub recorder: Recorder,
    pub error: Option<String>,
}

struct InFlightBatch {
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
    counters: &Counters,
) -> WorkerResult {
    let mut recorder = Recorder::new(start);
    let error = produce_loop(config, &plan, start, counters, &mut recorder).err();
    if error.is_some() {
        counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    WorkerResult { recorder, error }
}

fn produce_loop(
    config: &BenchConfig,
    plan: &ProducerPlan,
    start: Instant,
    counters: &Counters,
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
    // Per partition: its templates, its leader, and its next sequence.
    let mut templates: BTreeMap<i32, Vec<BatchTemplate>> = BTreeMap::new();
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    for &p in &plan.partitions {
        let keys: Vec<Bytes> = plan
            .keys
            .iter()
            .filter(|k| {
                crate::client::partition_for_key(k, config.partitions as i32) == p
            })
            .cloned()
            .collect();
        let spec = TemplateSpec {
            count: plan.records_per_batch,
            size: config.record_size,
            keys: if plan.keys.is_empty() { &[] } else { &keys },
            compression: config.compression,
            identity,
            stamp_values,
        };
        let list = (0..TEMPLATES_PER_PARTITION)
            .map(|_| BatchTemplate::build(&spec, &mut rng))
            .collect::<Result<Vec<_>, _>>()?;
        templates.insert(p, list);
        leaders.insert(p, client.leader_for(&plan.topic, p).map_err(|e| e.to_string())?);
        sequences.insert(p, 0);
    }
    // One connection per leader, each with its own window of requests in flight.
    let mut connections: BTreeMap<i32, (Connection, VecDeque<InFlightBatch>)> = BTreeMap::new();
    for leader in leaders.values() {
        if !connections.contains_key(leader) {
            let addr = client
                .brokers()
                .get(leader)
                .map(|b| b.addr.clone())
                .ok_or_else(|| format!("leader {leader} is not in the metadata"))?;
            let conn = Connection::connect(&addr, client.connection_config())
                .map_err(|e| e.to_string())?;
            connections.insert(*leader, (conn, VecDeque::new()));
        }
    }
    let window = config.max_in_flight.max(1);
    let acks_none = config.acks == Acks::None;
    let mut sent_records: u64 = 0;
    let mut batch_no: usize = 0;
    let mut stamp_times: Vec<u64> = Vec::with_capacity(plan.records_per_batch);
    loop {
        if counters.abort.load(Ordering::Relaxed) {
            break;
        }
        if plan.records.is_some_and(|n| sent_records >= n)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let partition = plan.partitions[batch_no % plan.partitions.len()];
        let leader = leaders[&partition];
        let template_list = templates
            .get_mut(&partition)
            .ok_or("partition without templates")?;
        let template = &mut template_list[(batch_no / plan.partitions.len()) % TEMPLATES_PER_PARTITION];
        batch_no += 1;
        // Fixed rate: the batch is due when its last record is due (a producer lingering
        // until the batch fills); every record's latency counts from its own intended time.
        let intended_first = plan
            .rate
            .map(|r| start + Duration::from_secs_f64(sent_records as f64 / r));
        let due = plan.rate.map(|r| {
            start + Duration::from_secs_f64((sent_records + template.record_count as u64 - 1) as f64 / r)
        });
        let (conn, in_flight) = connections
            .get_mut(&leader)
            .ok_or("no connection for leader")?;
        // Collect answers while waiting for the due time, and whenever the window is full.
        loop {
            let now = Instant::now();
            let waiting = due.is_some_and(|d| now < d);
            if in_flight.is_empty() || !(waiting || in_flight.len() >= window) {
                break;
            }
            receive_one(conn, in_flight, plan.rate, recorder, counters)?;
        }
        if let Some(d) = due {
            loop {
                let now = Instant::now();
                if now >= d {
                    break;
                }
                std::thread::sleep((d - now).min(PACING_SLEEP_MAX));
            }
        }
        if let Some(first) = intended_first {
            let offset = first.saturating_duration_since(start).as_nanos() as u64;
            let rate = plan.rate.unwrap_or(1.0);
            stamp_times.clear();
            stamp_times.extend(
                (0..template.record_count as u64)
                    .map(|i| offset + (i as f64 * 1e9 / rate) as u64),
            );
        } else if stamp_values {
            let now = start.elapsed().as_nanos() as u64;
            stamp_times.clear();
            stamp_times.resize(template.record_count, now);
        }
        let sequence = sequences.get_mut(&partition).ok_or("no sequence")?;
        let seq = identity.map(|_| *sequence);
        *sequence = sequence.wrapping_add(template.record_count as i32);
        let batch = template.prepare(
            now_ms(),
            seq,
            stamp_values.then_some(stamp_times.as_slice()),
        )?;
        let request = produce_request(&plan.topic, partition, batch, config.acks, config.produce_timeout_ms);
        let sent_at = Instant::now();
        if acks_none {
            conn.send_without_response(&request).map_err(|e| e.to_string())?;
            count_produced(counters, template.record_count, template.payload_bytes, template.batch_bytes());
        } else {
            conn.send(&request).map_err(|e| e.to_string())?;
            in_flight.push_back(InFlightBatch {
                sent_at,
                intended_first,
                records: template.record_count,
                payload_bytes: template.payload_bytes,
                batch_bytes: template.batch_bytes(),
                partition,
            });
        }
        sent_records += template.record_count as u64;
    }
    for (conn, in_flight) in connections.values_mut() {
        while !in_flight.is_empty() {
            receive_one(conn, in_flight, plan.rate, recorder, counters)?;
        }
    }
    Ok(())
}

fn count_produced(counters: &Counters, records: usize, payload: usize, batch: usize) {
    counters.produced_records.fetch_add(records as u64, Ordering::Relaxed);
    counters.produced_payload_bytes.fetch_add(payload as u64, Ordering::Relaxed);
    counters.produced_batch_bytes.fetch_add(batch as u64, Ordering::Relaxed);
}

/// Reads the oldest outstanding Produce answer and records its latency.
fn receive_one(
    conn: &mut Connection,
    in_flight: &mut VecDeque<InFlightBatch>,
    rate: Option<f64>,
    recorder: &mut Recorder,
    counters: &Counters,
) -> Result<(), String> {
    let (_, response) = conn.receive::<ProduceRequest>().map_err(|e| e.to_string())?;
    let acked_at = Instant::now();
    let batch = in_flight.pop_front().ok_or("answer without a request")?;
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
    count_produced(counters, batch.records, batch.payload_bytes, batch.batch_bytes);
    Ok(())
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
        let leader = client.leader_for(&plan.topic, p).map_err(|e| e.to_string())?;
        by_leader.entry(leader).or_default().push((p, from, end));
    }
    let mut consumed: u64 = 0;
    let mut drain_until: Option<Instant> = None;
    loop {
        if counters.abort.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if plan.records.is_some_and(|n| consumed >= n) || plan.deadline.is_some_and(|d| now >= d)
        {
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
            let conn = client.broker_connection(*leader).map_err(|e| e.to_string())?;
            conn.send(&request).map_err(|e| e.to_string())?;
            sent.push((*leader, Instant::now()));
        }
        for (leader, sent_at) in sent {
            let conn = client.broker_connection(leader).map_err(|e| e.to_string())?;
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
                    counters.consumed_records.fetch_add(summary.records, Ordering::Relaxed);
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
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let timeout = Some(Duration::from_millis(crate::client::connection::IO_TIMEOUT_MS));
    stream.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    let versions: ApiVersionsResponse = raw_call(&mut stream, &ApiVersionsRequest::default(), 0, 1)?;
    let broker_max = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::InitProducerId as i16)
        .map(|k| k.max_version)
        .ok_or_else(|| format!("{addr} does not offer InitProducerId (needed for --idempotence)"))?;
    let version = broker_max.min(INIT_PRODUCER_ID_VERSION_MAX);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = raw_call(&mut stream, &request, version, 2)?;
    if let Some(err) = ClientError::from_code(response.error_code, "InitProducerId".to_string(), None)
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
    let name = format!("{:?}", ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions));
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
    stream.write_all(&buf).map_err(|e| format!("send {name}: {e}"))?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(|e| format!("read {name}: {e}"))?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > RAW_RESPONSE_BYTES_MAX {
        return Err(format!("{name}: response size {size} out of range"));
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).map_err(|e| format!("read {name}: {e}"))?;
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
