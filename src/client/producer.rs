//! `Producer`: buffers records per partition, encodes RecordBatch v2 (optionally compressed)
//! and sends one Produce request per leader, pipelined across leaders. Retries retriable
//! per-partition errors after refreshing metadata; reports every record that finally failed.
//!
//! Must not: reorder records within a partition, or silently drop a failure.

use super::cluster::Client;
use super::error::{ClientError, Result};
use super::partitioner::{NullKeyStrategy, Partitioner};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ProduceRequest, TopicName,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default upper bound of one partition's batch, before compression (Java `batch.size` is
/// 16 KiB; larger batches suit a CLI piping files).
pub const BATCH_BYTES_MAX_DEFAULT: usize = 256 * 1024;
/// Default time a record may wait in a partial batch (Java `linger.ms`).
pub const LINGER_MS_DEFAULT: u64 = 5;
/// Default broker-side wait for acks (Java `request.timeout.ms`-ish).
pub const PRODUCE_TIMEOUT_MS_DEFAULT: i32 = 30_000;
/// Default sends of a batch that keeps hitting retriable errors.
pub const PRODUCE_ATTEMPTS_MAX_DEFAULT: u32 = 5;
/// Pause before re-sending batches that failed with a retriable error.
pub const RETRY_BACKOFF_MS: u64 = 100;
/// Bytes a record adds to a batch beyond key, value and headers (varint lengths, deltas).
const RECORD_OVERHEAD_BYTES: usize = 24;

/// `acks` for Produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: the broker does not answer.
    None,
    /// The leader has appended the batch.
    Leader,
    /// All in-sync replicas have it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("invalid acks `{other}`: expected 0, 1 or all")),
        }
    }
}

/// Parses a compression codec name as Kafka spells it.
pub fn parse_compression(s: &str) -> std::result::Result<Compression, String> {
    match s {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(format!(
            "invalid compression `{other}`: expected none, gzip, snappy, lz4 or zstd"
        )),
    }
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub compression: Compression,
    /// A partition's batch is sent once its records reach this many bytes.
    pub batch_bytes_max: usize,
    /// A partial batch is sent once its oldest record waited this long (see `poll`).
    pub linger: Duration,
    pub timeout_ms: i32,
    pub attempts_max: u32,
    pub null_key: NullKeyStrategy,
    /// Ask the broker to auto-create unknown topics (if it is configured to).
    pub allow_auto_topic_creation: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            compression: Compression::None,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            linger: Duration::from_millis(LINGER_MS_DEFAULT),
            timeout_ms: PRODUCE_TIMEOUT_MS_DEFAULT,
            attempts_max: PRODUCE_ATTEMPTS_MAX_DEFAULT,
            null_key: NullKeyStrategy::Sticky,
            allow_auto_topic_creation: true,
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    /// Explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Creation time; `None` = now.
    pub timestamp_ms: Option<i64>,
}

/// A record that could not be delivered, identified by the caller's tag.
#[derive(Debug)]
pub struct DeliveryFailure {
    pub tag: u64,
    pub topic: String,
    pub partition: i32,
    pub error: ClientError,
}

/// Outcome of a flush: records acknowledged (or sent, with acks=0) and those that failed.
#[derive(Debug, Default)]
pub struct FlushReport {
    pub delivered: u64,
    pub failures: Vec<DeliveryFailure>,
    /// Base offset assigned to each acknowledged batch, per (topic, partition) (acks≠0).
    pub base_offsets: Vec<(String, i32, i64)>,
}

impl FlushReport {
    fn merge(&mut self, other: FlushReport) {
        self.delivered += other.delivered;
        self.failures.extend(other.failures);
        self.base_offsets.extend(other.base_offsets);
    }
}

#[derive(Debug, Default)]
struct PartitionBatch {
    records: Vec<Record>,
    tags: Vec<u64>,
    bytes: usize,
    oldest: Option<Instant>,
    attempts: u32,
}

/// Buffers and sends records. Owns its `Client`; take it back with `into_client`.
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    partitioner: Partitioner,
    batches: BTreeMap<(String, i32), PartitionBatch>,
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        Producer {
            partitioner: Partitioner::new(config.null_key),
            client,
            config,
            batches: BTreeMap::new(),
        }
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn into_client(self) -> Client {
        self.client
    }

    /// Records buffered and not yet sent.
    pub fn buffered(&self) -> usize {
        self.batches.values().map(|b| b.records.len()).sum()
    }

    /// Queues a record, tagged with `tag` for failure reports. Errors immediately for records
    /// that can never be delivered (unknown topic, partition out of range). May send full
    /// batches, whose outcome is returned.
    pub fn send(&mut self, record: ProducerRecord, tag: u64) -> Result<FlushReport> {
        let meta = self
            .client
            .topic(&record.topic, self.config.allow_auto_topic_creation)?;
        let count = meta.partitions.len() as i32;
        if count == 0 {
            return Err(ClientError::Invalid(format!(
                "topic `{}` has no partitions",
                record.topic
            )));
        }
        let partition = match record.partition {
            Some(p) if p < 0 || p >= count => {
                return Err(ClientError::Invalid(format!(
                    "topic `{}` has no partition {p} (it has {count})",
                    record.topic
                )));
            }
            Some(p) => p,
            None => self
                .partitioner
                .partition(&record.topic, record.key.as_deref(), count),
        };
        let size = RECORD_OVERHEAD_BYTES
            + record.key.as_ref().map_or(0, Bytes::len)
            + record.value.as_ref().map_or(0, Bytes::len)
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 2)
                .sum::<usize>();
        let mut report = FlushReport::default();
        let key = (record.topic.clone(), partition);
        let full = self
            .batches
            .get(&key)
            .is_some_and(|b| !b.records.is_empty() && b.bytes + size > self.config.batch_bytes_max);
        if full {
            report.merge(self.flush_partitions(|k| *k == key));
        }
        let timestamp = record.timestamp_ms.unwrap_or_else(now_ms);
        let batch = self.batches.entry(key).or_default();
        let index = batch.records.len() as i64;
        batch.records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: index,
            // The encoder splits batches where offset - sequence changes; keep it constant
            // and the base sequence at -1 (no idempotence).
            sequence: (index as i32).wrapping_sub(1),
            timestamp,
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|(k, v)| (StrBytes::from_string(k), v))
                .collect(),
        });
        batch.tags.push(tag);
        batch.bytes += size;
        batch.oldest.get_or_insert_with(Instant::now);
        Ok(report)
    }

    /// Sends batches whose linger time has passed.
    pub fn poll(&mut self) -> FlushReport {
        let linger = self.config.linger;
        let due: Vec<(String, i32)> = self
            .batches
            .iter()
            .filter(|(_, b)| b.oldest.is_some_and(|t| t.elapsed() >= linger))
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return FlushReport::default();
        }
        self.flush_partitions(|k| due.contains(k))
    }

    /// Sends everything buffered and waits for the outcome.
    pub fn flush(&mut self) -> FlushReport {
        self.flush_partitions(|_| true)
    }

    /// Sends the selected batches, retrying retriable failures up to `attempts_max`.
    fn flush_partitions(&mut self, select: impl Fn(&(String, i32)) -> bool) -> FlushReport {
        let mut pending: BTreeMap<(String, i32), PartitionBatch> = BTreeMap::new();
        let keys: Vec<(String, i32)> = self.batches.keys().filter(|k| select(k)).cloned().collect();
        for k in keys {
            if let Some(b) = self.batches.remove(&k)
                && !b.records.is_empty()
            {
                let count = self
                    .client
                    .topic(&k.0, false)
                    .map(|m| m.partitions.len() as i32)
                    .unwrap_or(1);
                self.partitioner.batch_sent(&k.0, count);
                pending.insert(k, b);
            }
        }
        let mut report = FlushReport::default();
        while !pending.is_empty() {
            let retry = self.send_round(&mut pending, &mut report);
            if retry.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(RETRY_BACKOFF_MS));
            pending = retry;
        }
        report
    }

    /// One round: group by leader, send one request per leader (pipelined), then collect.
    /// Returns the batches to retry.
    fn send_round(
        &mut self,
        pending: &mut BTreeMap<(String, i32), PartitionBatch>,
        report: &mut FlushReport,
    ) -> BTreeMap<(String, i32), PartitionBatch> {
        let mut retry = BTreeMap::new();
        let by_leader = self.group_by_leader(pending, report, &mut retry);
        // Phase 1: send to every leader.
        let sent = self.send_to_leaders(by_leader, pending, report, &mut retry);
        // Phase 2: collect the answers.
        for (leader, keys) in sent {
            self.collect_answer(leader, keys, pending, report, &mut retry);
        }
        retry
    }

    /// The pending partitions by leader node; a partition whose leader cannot be found
    /// fails or waits for the next round.
    fn group_by_leader(
        &mut self,
        pending: &mut BTreeMap<(String, i32), PartitionBatch>,
        report: &mut FlushReport,
        retry: &mut BTreeMap<(String, i32), PartitionBatch>,
    ) -> BTreeMap<i32, Vec<(String, i32)>> {
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (key, batch) in std::mem::take(pending) {
            match self.client.leader_for(&key.0, key.1) {
                Ok(leader) => {
                    by_leader.entry(leader).or_default().push(key.clone());
                    pending.insert(key, batch);
                }
                Err(e) => self.fail_or_retry(key, batch, e, report, retry),
            }
        }
        by_leader
    }

    /// Writes one Produce request per leader without waiting for answers. With acks=0 the
    /// batches count as delivered once written; otherwise returns the leaders to read from.
    fn send_to_leaders(
        &mut self,
        by_leader: BTreeMap<i32, Vec<(String, i32)>>,
        pending: &mut BTreeMap<(String, i32), PartitionBatch>,
        report: &mut FlushReport,
        retry: &mut BTreeMap<(String, i32), PartitionBatch>,
    ) -> Vec<(i32, Vec<(String, i32)>)> {
        let mut sent: Vec<(i32, Vec<(String, i32)>)> = Vec::new();
        for (leader, keys) in by_leader {
            let request = match self.build_request(&keys, pending) {
                Ok(r) => r,
                Err(e) => {
                    for key in keys {
                        if let Some(batch) = pending.remove(&key) {
                            self.fail(key, batch, e.to_string_error(), report);
                        }
                    }
                    continue;
                }
            };
            let acks_none = self.config.acks == Acks::None;
            let result = self.client.broker_connection(leader).and_then(|conn| {
                if acks_none {
                    conn.send_without_response(&request)
                } else {
                    conn.send(&request)
                }
            });
            match result {
                Ok(_) if acks_none => {
                    for key in keys {
                        if let Some(batch) = pending.remove(&key) {
                            report.delivered += batch.records.len() as u64;
                        }
                    }
                }
                Ok(_) => sent.push((leader, keys)),
                Err(e) => {
                    self.client.drop_connection(leader);
                    self.fail_or_retry_all(keys, &e, pending, report, retry);
                }
            }
        }
        sent
    }

    /// Reads one leader's Produce answer and settles every batch sent to it.
    fn collect_answer(
        &mut self,
        leader: i32,
        keys: Vec<(String, i32)>,
        pending: &mut BTreeMap<(String, i32), PartitionBatch>,
        report: &mut FlushReport,
        retry: &mut BTreeMap<(String, i32), PartitionBatch>,
    ) {
        let response = self
            .client
            .broker_connection(leader)
            .and_then(|conn| conn.receive::<ProduceRequest>());
        let response = match response {
            Ok((_, r)) => r,
            Err(e) => {
                self.client.drop_connection(leader);
                self.fail_or_retry_all(keys, &e, pending, report, retry);
                return;
            }
        };
        for topic in &response.responses {
            for p in &topic.partition_responses {
                let key = (topic.name.0.to_string(), p.index);
                let Some(batch) = pending.remove(&key) else {
                    continue;
                };
                match ClientError::from_code(
                    p.error_code,
                    format!("produce to {}-{}", key.0, key.1),
                    p.error_message.as_deref(),
                ) {
                    None => {
                        report.delivered += batch.records.len() as u64;
                        report.base_offsets.push((key.0, key.1, p.base_offset));
                    }
                    Some(err) => {
                        self.client.invalidate_topic(&key.0);
                        self.fail_or_retry(key, batch, err, report, retry);
                    }
                }
            }
        }
        // Partitions the broker did not answer for.
        for key in keys {
            if let Some(batch) = pending.remove(&key) {
                let err = ClientError::Invalid(format!(
                    "produce response from node {leader} omitted {}-{}",
                    key.0, key.1
                ));
                self.fail(key, batch, err, report);
            }
        }
    }

    /// A transport failure with `leader`: every batch sent to it fails or is retried.
    fn fail_or_retry_all(
        &mut self,
        keys: Vec<(String, i32)>,
        error: &ClientError,
        pending: &mut BTreeMap<(String, i32), PartitionBatch>,
        report: &mut FlushReport,
        retry: &mut BTreeMap<(String, i32), PartitionBatch>,
    ) {
        for key in keys {
            if let Some(batch) = pending.remove(&key) {
                self.fail_or_retry(key, batch, error.clone_lossy(), report, retry);
            }
        }
    }

    fn build_request(
        &self,
        keys: &[(String, i32)],
        pending: &BTreeMap<(String, i32), PartitionBatch>,
    ) -> Result<ProduceRequest> {
        let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: self.config.compression,
        };
        for key in keys {
            let Some(batch) = pending.get(key) else {
                continue;
            };
            let mut buf = BytesMut::with_capacity(batch.bytes + 128);
            RecordBatchEncoder::encode(&mut buf, batch.records.iter(), &options).map_err(|e| {
                ClientError::Invalid(format!("encode batch for {}-{}: {e}", key.0, key.1))
            })?;
            topics.entry(&key.0).or_default().push(
                PartitionProduceData::default()
                    .with_index(key.1)
                    .with_records(Some(buf.freeze())),
            );
        }
        Ok(ProduceRequest::default()
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(self.config.timeout_ms)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partition_data(partitions)
                    })
                    .collect(),
            ))
    }

    fn fail_or_retry(
        &mut self,
        key: (String, i32),
        mut batch: PartitionBatch,
        error: ClientError,
        report: &mut FlushReport,
        retry: &mut BTreeMap<(String, i32), PartitionBatch>,
    ) {
        batch.attempts += 1;
        if error.is_retriable() && batch.attempts < self.config.attempts_max {
            self.client.invalidate_topic(&key.0);
            retry.insert(key, batch);
        } else {
            self.fail(key, batch, error, report);
        }
    }

    fn fail(
        &mut self,
        key: (String, i32),
        batch: PartitionBatch,
        error: ClientError,
        report: &mut FlushReport,
    ) {
        let message = error.to_string();
        let mut first = Some(error);
        for tag in batch.tags {
            let error = first
                .take()
                .unwrap_or_else(|| ClientError::Invalid(message.clone()));
            report.failures.push(DeliveryFailure {
                tag,
                topic: key.0.clone(),
                partition: key.1,
                error,
            });
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

trait CloneLossy {
    fn clone_lossy(&self) -> ClientError;
    fn to_string_error(&self) -> ClientError;
}

impl CloneLossy for ClientError {
    /// `ClientError` holds `io::Error` and cannot derive Clone; keep the kind and message so
    /// retriability survives.
    fn clone_lossy(&self) -> ClientError {
        match self {
            ClientError::Io { addr, api, source } => ClientError::Io {
                addr: addr.clone(),
                api,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            ClientError::Closed { addr, api } => ClientError::Closed {
                addr: addr.clone(),
                api,
            },
            ClientError::Kafka {
                context,
                code,
                message,
            } => ClientError::Kafka {
                context: context.clone(),
                code: *code,
                message: message.clone(),
            },
            other => ClientError::Invalid(other.to_string()),
        }
    }

    fn to_string_error(&self) -> ClientError {
        ClientError::Invalid(self.to_string())
    }
}

/// Encodes `(key, value)` pairs as one RecordBatch v2 with creation time `timestamp_ms`:
/// for harnesses that build batches once and send them many times.
pub fn encode_batch(
    records: &[(Option<Bytes>, Option<Bytes>)],
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: (i as i32).wrapping_sub(1),
            timestamp: timestamp_ms,
            key: key.clone(),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| ClientError::Invalid(format!("encode batch: {e}")))?;
    Ok(buf.freeze())
}

/// A Produce request carrying one pre-encoded `batch` for one partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: Acks,
    timeout_ms: i32,
) -> ProduceRequest {
    produce_request_of(topic, vec![(partition, batch)], acks, timeout_ms)
}

/// A Produce request carrying one pre-encoded batch for each of `batches`' partitions (a
/// partition appears once: Kafka takes one batch per partition into a request).
pub fn produce_request_of(
    topic: &str,
    batches: Vec<(i32, Bytes)>,
    acks: Acks,
    timeout_ms: i32,
) -> ProduceRequest {
    let partitions = batches
        .into_iter()
        .map(|(partition, batch)| {
            PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(partitions),
        ])
}
