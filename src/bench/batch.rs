//! Pre-encoded RecordBatch v2 templates for the benchmark producers: built once with the
//! `kafka-protocol` encoder (any codec), then re-sent many times with only the header fields
//! that must change patched in place (timestamps, producer id/epoch, base sequence) and the
//! CRC-32C recomputed, so that encoding records never becomes the harness's bottleneck.
//! For e2e runs the send time is written into the first bytes of every record value.
//!
//! Must not: talk to a broker or measure anything.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rand::Rng;

/// RecordBatch v2 header layout (offsets from the start of the batch).
const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
/// The CRC covers everything from `attributes` to the end of the batch.
const CRC_COVERS_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_AT: usize = 61;
/// Bytes of a batch before `batchLength` starts counting (baseOffset + batchLength).
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// Codec bits of `attributes`.
const COMPRESSION_MASK: u16 = 0x07;
/// Bytes at the front of each record value that carry the intended send time in e2e mode.
pub const SEND_TIME_BYTES: usize = 8;

/// Record size: fixed, or drawn uniformly from an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RecordSize {
    Fixed(usize),
    Uniform { min: usize, max: usize },
}

impl RecordSize {
    pub fn mean(self) -> usize {
        match self {
            RecordSize::Fixed(n) => n,
            RecordSize::Uniform { min, max } => (min + max) / 2,
        }
    }

    pub fn min(self) -> usize {
        match self {
            RecordSize::Fixed(n) => n,
            RecordSize::Uniform { min, .. } => min,
        }
    }

    fn sample(self, rng: &mut impl Rng) -> usize {
        match self {
            RecordSize::Fixed(n) => n,
            RecordSize::Uniform { min, max } => rng.random_range(min..=max),
        }
    }
}

impl std::str::FromStr for RecordSize {
    type Err = String;
    /// `1024` or `100-2000` (bytes, inclusive).
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("invalid record size `{s}`: expected BYTES or MIN-MAX"))
        };
        match s.split_once('-') {
            None => Ok(RecordSize::Fixed(parse(s)?)),
            Some((a, b)) => {
                let (min, max) = (parse(a)?, parse(b)?);
                if min > max {
                    return Err(format!("invalid record size `{s}`: MIN is above MAX"));
                }
                Ok(RecordSize::Uniform { min, max })
            }
        }
    }
}

/// Identity of an idempotent producer (from InitProducerId).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
}

/// One reusable batch.
pub struct BatchTemplate {
    /// The encoded batch; patched in place before each send.
    bytes: BytesMut,
    /// The records, kept when values must be rewritten inside a compressed payload.
    records: Option<Vec<Record>>,
    compression: Compression,
    /// Offsets of each record value in `bytes` (uncompressed batches only).
    value_offsets: Vec<usize>,
    pub record_count: usize,
    /// Sum of key and value lengths: the "payload" every report counts.
    pub payload_bytes: usize,
}

/// What to build: `count` records of `size` with keys from `keys` (none if empty).
pub struct TemplateSpec<'a> {
    pub count: usize,
    pub size: RecordSize,
    pub keys: &'a [Bytes],
    pub compression: Compression,
    pub identity: Option<ProducerIdentity>,
    /// Keep what is needed to stamp send times into values.
    pub stamp_values: bool,
    /// Mark the batch transactional (a `--transactional-id` producer's batches).
    pub transactional: bool,
}

impl BatchTemplate {
    pub fn build(spec: &TemplateSpec<'_>, rng: &mut impl Rng) -> Result<BatchTemplate, String> {
        let now = now_ms();
        let (producer_id, epoch) = spec
            .identity
            .map_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH), |i| {
                (i.producer_id, i.epoch)
            });
        let mut payload_bytes = 0;
        let records: Vec<Record> = (0..spec.count)
            .map(|i| {
                let key = (!spec.keys.is_empty())
                    .then(|| spec.keys[rng.random_range(0..spec.keys.len())].clone());
                let size = spec.size.sample(rng);
                // Random capital letters like kafka-producer-perf-test: compressible the
                // way text is, not like zeros.
                let value: Vec<u8> = (0..size).map(|_| rng.random_range(b'A'..=b'Z')).collect();
                payload_bytes += size + key.as_ref().map_or(0, Bytes::len);
                Record {
                    transactional: spec.transactional,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                    producer_id,
                    producer_epoch: epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    // The encoder derives the base sequence from offset - sequence; -1 means
                    // "no sequence" for a non-idempotent producer.
                    sequence: if spec.identity.is_some() {
                        i as i32
                    } else {
                        (i as i32).wrapping_sub(1)
                    },
                    timestamp: now,
                    key,
                    value: Some(Bytes::from(value)),
                    headers: Default::default(),
                }
            })
            .collect();
        let bytes = encode(&records, spec.compression)?;
        let value_offsets = if spec.compression == Compression::None {
            record_value_offsets(&bytes)?
        } else {
            Vec::new()
        };
        Ok(BatchTemplate {
            bytes,
            records: (spec.stamp_values && spec.compression != Compression::None)
                .then_some(records),
            compression: spec.compression,
            value_offsets,
            record_count: spec.count,
            payload_bytes,
        })
    }

    /// Bytes of the encoded batch (what the broker stores).
    pub fn batch_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Prepares the batch for one send: creation time `now_ms`, base sequence `sequence`
    /// (ignored without idempotence) and, if `send_times_ns` is given, record `i`'s value
    /// starting with `send_times_ns[i]`. Returns the bytes to put in the Produce request.
    pub fn prepare(
        &mut self,
        now_ms: i64,
        sequence: Option<i32>,
        send_times_ns: Option<&[u64]>,
    ) -> Result<Bytes, String> {
        if let Some(times) = send_times_ns {
            if let Some(records) = self.records.as_mut() {
                // Compressed: the values live inside the compressed payload; re-encode.
                for (record, t) in records.iter_mut().zip(times) {
                    if let Some(value) = record.value.as_mut() {
                        let mut v = value.to_vec();
                        stamp(&mut v, *t);
                        *value = Bytes::from(v);
                    }
                }
                self.bytes = encode(records, self.compression)?;
            } else {
                for (at, t) in self.value_offsets.iter().zip(times) {
                    stamp(&mut self.bytes[*at..], *t);
                }
            }
        }
        let b = &mut self.bytes[..];
        b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
        b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
        if let Some(seq) = sequence {
            b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&seq.to_be_bytes());
        }
        let crc = crc32c::crc32c(&b[CRC_COVERS_FROM..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::copy_from_slice(b))
    }

    /// Producer id and epoch in the header (for tests).
    pub fn producer_identity(&self) -> (i64, i16) {
        let b = &self.bytes;
        (
            i64::from_be_bytes(read_array(b, PRODUCER_ID_AT)),
            i16::from_be_bytes(read_array(b, PRODUCER_EPOCH_AT)),
        )
    }
}

/// Writes `t` into the first `SEND_TIME_BYTES` of a value (values shorter than that are
/// left alone; e2e refuses such record sizes up front).
fn stamp(value: &mut [u8], t: u64) {
    if value.len() >= SEND_TIME_BYTES {
        value[..SEND_TIME_BYTES].copy_from_slice(&t.to_be_bytes());
    }
}

fn read_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

fn encode(records: &[Record], compression: Compression) -> Result<BytesMut, String> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| format!("encode batch: {e}"))?;
    Ok(buf)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads a zigzag varint at `*at`, advancing it.
fn read_varint(b: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("record truncated inside a varint")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".to_string())
}

/// Offsets of every record value in one uncompressed batch.
fn record_value_offsets(batch: &[u8]) -> Result<Vec<usize>, String> {
    let mut offsets = Vec::new();
    walk_records(batch, |_, value_at, _| offsets.push(value_at))?;
    Ok(offsets)
}

/// Calls `f(key_len, value_at, value_len)` for every record of an uncompressed batch
/// (lengths are -1 for null).
fn walk_records(batch: &[u8], mut f: impl FnMut(i64, usize, i64)) -> Result<(), String> {
    let mut at = RECORDS_AT;
    while at < batch.len() {
        let len = read_varint(batch, &mut at)?;
        let end = at + usize::try_from(len).map_err(|_| "negative record length")?;
        if end > batch.len() {
            return Err("record runs past the batch".to_string());
        }
        at += 1; // attributes
        read_varint(batch, &mut at)?; // timestamp delta
        read_varint(batch, &mut at)?; // offset delta
        let key_len = read_varint(batch, &mut at)?;
        at += key_len.max(0) as usize;
        let value_len = read_varint(batch, &mut at)?;
        f(key_len, at, value_len);
        at = end;
    }
    Ok(())
}

/// What a consumer learns from the batches of one fetched partition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchedSummary {
    pub records: u64,
    pub payload_bytes: u64,
    pub batch_bytes: u64,
    /// Offset after the last complete batch (the next fetch position), if any was complete.
    pub next_offset: Option<i64>,
}

/// Walks the complete batches in a fetched `records` buffer, counting records at or after
/// `position` and their key+value bytes; calls `on_send_time(t)` with the send time stamped
/// in each value when `send_times` is on. Uncompressed batches are walked without decoding;
/// compressed ones are decoded.
pub fn summarize_fetched(
    records: &Bytes,
    position: i64,
    send_times: bool,
    mut on_send_time: impl FnMut(u64),
) -> Result<FetchedSummary, String> {
    let mut summary = FetchedSummary::default();
    let mut at = 0;
    while records.len() - at >= RECORDS_AT {
        let b = &records[at..];
        let base_offset = i64::from_be_bytes(read_array(b, 0));
        let length = i32::from_be_bytes(read_array(b, BATCH_LENGTH_AT));
        let whole = BATCH_LENGTH_PREFIX_BYTES
            + usize::try_from(length).map_err(|_| "negative batch length")?;
        if whole > b.len() {
            break;
        }
        let batch = &b[..whole];
        let last_delta = i32::from_be_bytes(read_array(batch, LAST_OFFSET_DELTA_AT));
        let attributes = u16::from_be_bytes(read_array(batch, ATTRIBUTES_AT));
        let control = attributes & 0x20 != 0;
        if !control && base_offset + i64::from(last_delta) >= position {
            summary.batch_bytes += whole as u64;
            if attributes & COMPRESSION_MASK == 0 {
                let mut offset_delta_index = 0i64;
                walk_records(batch, |key_len, value_at, value_len| {
                    if base_offset + offset_delta_index >= position {
                        summary.records += 1;
                        summary.payload_bytes += (key_len.max(0) + value_len.max(0)) as u64;
                        if send_times && value_len >= SEND_TIME_BYTES as i64 {
                            on_send_time(u64::from_be_bytes(read_array(batch, value_at)));
                        }
                    }
                    offset_delta_index += 1;
                })?;
            } else {
                let mut buf = records.slice(at..at + whole);
                let set = RecordBatchDecoder::decode(&mut buf)
                    .map_err(|e| format!("decode batch at offset {base_offset}: {e}"))?;
                for r in set.records {
                    if r.offset < position {
                        continue;
                    }
                    summary.records += 1;
                    let value_len = r.value.as_ref().map_or(0, Bytes::len);
                    summary.payload_bytes +=
                        (r.key.as_ref().map_or(0, Bytes::len) + value_len) as u64;
                    if send_times
                        && value_len >= SEND_TIME_BYTES
                        && let Some(v) = &r.value
                    {
                        on_send_time(u64::from_be_bytes(read_array(v, 0)));
                    }
                }
            }
        }
        summary.next_offset = Some(base_offset + i64::from(last_delta) + 1);
        at += whole;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spec(compression: Compression, stamp_values: bool) -> TemplateSpec<'static> {
        TemplateSpec {
            count: 5,
            size: RecordSize::Uniform { min: 16, max: 64 },
            keys: &[],
            compression,
            identity: Some(ProducerIdentity {
                producer_id: 42,
                epoch: 3,
            }),
            stamp_values,
            transactional: false,
        }
    }

    #[test]
    fn record_size_parses_fixed_and_ranges() {
        assert_eq!("1024".parse::<RecordSize>(), Ok(RecordSize::Fixed(1024)));
        assert_eq!(
            "10-20".parse::<RecordSize>(),
            Ok(RecordSize::Uniform { min: 10, max: 20 })
        );
        assert!("20-10".parse::<RecordSize>().is_err());
        assert!("x".parse::<RecordSize>().is_err());
    }

    #[test]
    fn prepared_batches_validate_and_carry_sequence_and_send_times() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut t = BatchTemplate::build(&spec(compression, true), &mut rng).expect("build");
            assert_eq!(t.producer_identity(), (42, 3));
            let times = [10u64, 11, 12, 13, 14];
            let bytes = t
                .prepare(1_700_000_000_123, Some(77), Some(&times))
                .expect("prepare");
            // The broker's own validator accepts it (CRC, lengths, counts).
            let summaries = crate::storage::batch::validate_batches(&bytes).expect("valid batch");
            assert_eq!(summaries.len(), 1);
            let mut decoded = bytes.clone();
            let set = RecordBatchDecoder::decode(&mut decoded).expect("decode");
            assert_eq!(set.records.len(), 5);
            assert_eq!(set.records[0].sequence, 77, "{compression:?}");
            assert_eq!(set.records[4].sequence, 81);
            assert_eq!(set.records[0].timestamp, 1_700_000_000_123);
            let mut seen = Vec::new();
            let s = summarize_fetched(&bytes, 0, true, |t| seen.push(t)).expect("summary");
            assert_eq!(seen, times, "{compression:?}");
            assert_eq!(s.records, 5);
            assert_eq!(s.payload_bytes, t.payload_bytes as u64);
            assert_eq!(s.next_offset, Some(5));
            // Records before the position are not counted.
            let s = summarize_fetched(&bytes, 3, false, |_| {}).expect("summary");
            assert_eq!(s.records, 2);
        }
    }

    #[test]
    fn a_trailing_partial_batch_is_left_for_the_next_fetch() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut t = BatchTemplate::build(&spec(Compression::None, false), &mut rng).expect("build");
        let one = t.prepare(1, None, None).expect("prepare");
        let mut two = one.to_vec();
        two.extend_from_slice(&one[..one.len() - 3]);
        let s = summarize_fetched(&Bytes::from(two), 0, false, |_| {}).expect("summary");
        assert_eq!(s.records, 5);
        assert_eq!(s.next_offset, Some(5));
    }
}
