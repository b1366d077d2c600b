//! `Consumer`: fetches assigned partitions from their leaders (one Fetch per leader,
//! pipelined), decodes record batches (any codec), skips control batches and records below
//! the position, and keeps per-partition positions.
//!
//! Must not: commit offsets or talk to group coordinators (`group/` does).

use super::admin::OffsetSpec;
use super::cluster::Client;
use super::error::{ClientError, Result};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    FetchRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
use std::collections::BTreeMap;

/// Default longest time the broker holds a Fetch waiting for `min_bytes`.
pub const FETCH_MAX_WAIT_MS_DEFAULT: i32 = 500;
/// Default bytes the broker waits for before answering early.
pub const FETCH_MIN_BYTES_DEFAULT: i32 = 1;
/// Default cap on one Fetch response (Java `fetch.max.bytes`).
pub const FETCH_MAX_BYTES_DEFAULT: i32 = 50 * 1024 * 1024;
/// Default cap per partition (Java `max.partition.fetch.bytes`).
pub const FETCH_PARTITION_MAX_BYTES_DEFAULT: i32 = 1024 * 1024;
/// RecordBatch header: baseOffset(8) + batchLength(4).
const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// Offset of `lastOffsetDelta` from the start of a v2 batch.
const LAST_OFFSET_DELTA_AT: usize = 23;
/// Kafka error codes the consumer handles itself.
const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
    /// Where to go when the position is out of range (Java `auto.offset.reset`).
    pub reset: OffsetSpec,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait_ms: FETCH_MAX_WAIT_MS_DEFAULT,
            min_bytes: FETCH_MIN_BYTES_DEFAULT,
            max_bytes: FETCH_MAX_BYTES_DEFAULT,
            partition_max_bytes: FETCH_PARTITION_MAX_BYTES_DEFAULT,
            isolation_level: 0,
            reset: OffsetSpec::Latest,
        }
    }
}

/// Where a newly assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    /// An absolute offset.
    At(i64),
    /// First offset with timestamp >= ms.
    Timestamp(i64),
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Fetches from a fixed set of partitions.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Next offset to fetch, per (topic, partition).
    positions: BTreeMap<(String, i32), i64>,
    /// High watermark from the latest fetch, per partition.
    high_watermarks: BTreeMap<(String, i32), i64>,
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
        }
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn into_client(self) -> Client {
        self.client
    }

    /// Adds a partition at `start` (resolving earliest/latest/timestamp with ListOffsets).
    pub fn assign(&mut self, topic: &str, partition: i32, start: StartOffset) -> Result<i64> {
        let offset = match start {
            StartOffset::At(o) if o >= 0 => o,
            StartOffset::At(o) => {
                return Err(ClientError::Invalid(format!("offset {o} is negative")));
            }
            StartOffset::Earliest => self.resolve(topic, partition, OffsetSpec::Earliest)?,
            StartOffset::Latest => self.resolve(topic, partition, OffsetSpec::Latest)?,
            StartOffset::Timestamp(ms) => {
                let o = self.resolve(topic, partition, OffsetSpec::Timestamp(ms))?;
                // No record that late: start at the end.
                if o < 0 {
                    self.resolve(topic, partition, OffsetSpec::Latest)?
                } else {
                    o
                }
            }
        };
        self.positions
            .insert((topic.to_string(), partition), offset);
        Ok(offset)
    }

    /// Removes every assigned partition.
    pub fn unassign_all(&mut self) {
        self.positions.clear();
        self.high_watermarks.clear();
    }

    /// Assigned partitions with their next offset.
    pub fn positions(&self) -> &BTreeMap<(String, i32), i64> {
        &self.positions
    }

    /// High watermark seen in the last fetch of a partition.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.high_watermarks
            .get(&(topic.to_string(), partition))
            .copied()
    }

    fn resolve(&mut self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<i64> {
        let found = self.client.list_offsets(topic, &[partition], spec)?;
        Ok(found.first().map(|(_, o)| *o).unwrap_or(-1))
    }

    /// One fetch round over all assigned partitions. Returns records in offset order per
    /// partition (partitions may interleave). Blocks up to `max_wait_ms` when idle.
    pub fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        if self.positions.is_empty() {
            return Err(ClientError::Invalid(
                "poll with no assigned partitions".to_string(),
            ));
        }
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let keys: Vec<(String, i32)> = self.positions.keys().cloned().collect();
        for key in keys {
            let leader = self.client.leader_for(&key.0, key.1)?;
            by_leader.entry(leader).or_default().push(key);
        }
        let mut sent = Vec::new();
        for (leader, keys) in by_leader {
            let request = self.build_request(&keys);
            match self
                .client
                .broker_connection(leader)
                .and_then(|c| c.send(&request))
            {
                Ok(_) => sent.push(leader),
                Err(e) => {
                    self.client.drop_connection(leader);
                    return Err(e);
                }
            }
        }
        let mut out = Vec::new();
        let mut first_error = None;
        for leader in sent {
            let response = match self
                .client
                .broker_connection(leader)
                .and_then(|c| c.receive::<FetchRequest>())
            {
                Ok((_, r)) => r,
                Err(e) => {
                    self.client.drop_connection(leader);
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if let Some(err) = ClientError::from_code(response.error_code, "fetch", None) {
                first_error.get_or_insert(err);
                continue;
            }
            for topic in response.responses {
                let name = topic.topic.0.to_string();
                for p in topic.partitions {
                    let key = (name.clone(), p.partition_index);
                    if let Err(e) = self.handle_partition(&key, p, &mut out) {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            // Records already decoded are returned; the error shows up on the next poll if
            // it persists.
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    fn build_request(&self, keys: &[(String, i32)]) -> FetchRequest {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for key in keys {
            let offset = self.positions.get(key).copied().unwrap_or(0);
            topics.entry(&key.0).or_default().push(
                FetchPartition::default()
                    .with_partition(key.1)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(self.config.partition_max_bytes),
            );
        }
        FetchRequest::default()
            .with_max_wait_ms(self.config.max_wait_ms)
            .with_min_bytes(self.config.min_bytes)
            .with_max_bytes(self.config.max_bytes)
            .with_isolation_level(self.config.isolation_level)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    fn handle_partition(
        &mut self,
        key: &(String, i32),
        p: kafka_protocol::messages::fetch_response::PartitionData,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<()> {
        let Some(position) = self.positions.get(key).copied() else {
            return Ok(());
        };
        if p.error_code == OFFSET_OUT_OF_RANGE {
            let reset = self.config.reset;
            let offset = self.resolve(&key.0, key.1, reset)?;
            self.positions.insert(key.clone(), offset.max(0));
            return Ok(());
        }
        if let Some(err) = ClientError::from_code(
            p.error_code,
            format!("fetch {}-{} at offset {position}", key.0, key.1),
            None,
        ) {
            self.client.invalidate_topic(&key.0);
            if err.is_retriable() {
                return Ok(());
            }
            return Err(err);
        }
        self.high_watermarks.insert(key.clone(), p.high_watermark);
        let Some(records) = p.records else {
            return Ok(());
        };
        let next = decode_batches(key, records, position, out)?;
        self.positions.insert(key.clone(), next);
        Ok(())
    }
}

/// A Fetch request for one partition from `offset`, for harnesses driving a `Connection`
/// directly; decode the answer's records with `decode_batches`.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    config: &ConsumerConfig,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(config.isolation_level)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(config.partition_max_bytes),
                ]),
        ])
}

/// Decodes every complete batch in `records` (a trailing partial batch is normal: the broker
/// cut the response at max bytes), appends records at or after `position` to `out`, and
/// returns the next position.
pub fn decode_batches(
    key: &(String, i32),
    mut records: Bytes,
    position: i64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<i64> {
    let mut next = position;
    let total_len = records.len();
    while records.len() >= BATCH_LENGTH_PREFIX_BYTES {
        let base_offset = i64::from_be_bytes(records[0..8].try_into().unwrap_or([0; 8]));
        let batch_len = i32::from_be_bytes(records[8..12].try_into().unwrap_or([0; 4]));
        if batch_len < 0 {
            return Err(ClientError::Invalid(format!(
                "fetch {}-{}: negative batch length {batch_len}",
                key.0, key.1
            )));
        }
        let whole = BATCH_LENGTH_PREFIX_BYTES + batch_len as usize;
        if records.len() < whole {
            break;
        }
        let mut batch = records.split_to(whole);
        if whole < LAST_OFFSET_DELTA_AT + 4 {
            return Err(ClientError::Invalid(format!(
                "fetch {}-{}: batch at offset {base_offset} is {whole} bytes, too short",
                key.0, key.1
            )));
        }
        let last_delta = i32::from_be_bytes(
            batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            ClientError::Invalid(format!(
                "fetch {}-{}: cannot decode batch at offset {base_offset}: {e}",
                key.0, key.1
            ))
        })?;
        for r in set.records {
            if r.control || r.offset < position {
                continue;
            }
            out.push(ConsumedRecord {
                topic: key.0.clone(),
                partition: key.1,
                offset: r.offset,
                timestamp_ms: r.timestamp,
                timestamp_type: r.timestamp_type,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
        next = next.max(base_offset + last_delta as i64 + 1);
    }
    if next == position && total_len > 0 && records.len() == total_len {
        return Err(ClientError::Invalid(format!(
            "fetch {}-{} at offset {position}: the first batch is larger than the {total_len} \
             bytes returned; raise the partition fetch size",
            key.0, key.1
        )));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

    fn record(offset: i64, value: &str) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32 - 1,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> BytesMut {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf
    }

    #[test]
    fn decodes_complete_batches_and_skips_records_before_position() {
        let key = ("t".to_string(), 0);
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut buf = encode(
                &[record(10, "a"), record(11, "b"), record(12, "c")],
                compression,
            );
            buf.extend_from_slice(&encode(&[record(13, "d")], compression));
            let mut out = Vec::new();
            let next = decode_batches(&key, buf.freeze(), 11, &mut out).expect("decode");
            assert_eq!(next, 14, "{compression:?}");
            let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
            assert_eq!(values, vec!["b", "c", "d"], "{compression:?}");
            assert_eq!(out[0].offset, 11);
            assert_eq!(out[0].key.as_deref(), Some(&b"k11"[..]));
        }
    }

    #[test]
    fn trailing_partial_batch_is_left_for_the_next_fetch() {
        let key = ("t".to_string(), 0);
        let mut buf = encode(&[record(0, "a")], Compression::None);
        let second = encode(&[record(1, "b")], Compression::None);
        buf.extend_from_slice(&second[..second.len() - 5]);
        let mut out = Vec::new();
        let next = decode_batches(&key, buf.freeze(), 0, &mut out).expect("decode");
        assert_eq!(next, 1);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_lone_partial_batch_is_an_error_not_a_silent_stall() {
        let key = ("t".to_string(), 0);
        let buf = encode(&[record(0, "a")], Compression::None);
        let mut out = Vec::new();
        let err = decode_batches(&key, buf.freeze().slice(..20), 0, &mut out).unwrap_err();
        assert!(
            err.to_string().contains("raise the partition fetch size"),
            "{err}"
        );
    }
}
