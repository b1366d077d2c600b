//! RecordBatch v2 header: parsing, validation at the broker boundary (CRC-32C checked once,
//! here) and the in-place patches the log applies (base offset, leader epoch, LogAppendTime).
//! Must not decode or re-encode records: batches are stored exactly as the client sent them.

use kafka_protocol::ResponseError;

/// Size of the fixed v2 batch header, up to and including the record count.
pub const RECORD_BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Smallest legal `batchLength`: header after the length field, no records.
pub const MIN_BATCH_LENGTH: i32 = (RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
/// Position of the magic byte; the same for every message format version.
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
/// The CRC covers attributes..end.
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const CURRENT_MAGIC: i8 = 2;

pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_LOG_APPEND_BIT: i16 = 0x08;
pub const TRANSACTIONAL_BIT: i16 = 0x10;
pub const CONTROL_BIT: i16 = 0x20;

/// "No producer" marker for non-idempotent batches.
pub const NO_PRODUCER_ID: i64 = -1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("empty record set")]
    Empty,
    #[error("truncated batch at byte {position}: need {needed} bytes, have {available}")]
    Truncated {
        position: usize,
        needed: usize,
        available: usize,
    },
    #[error("invalid batch length {length} at byte {position}")]
    InvalidLength { position: usize, length: i32 },
    #[error("unsupported message format magic {magic} at byte {position}")]
    UnsupportedMagic { position: usize, magic: i8 },
    #[error("CRC mismatch at byte {position}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        position: usize,
        stored: u32,
        computed: u32,
    },
    #[error(
        "record count {record_count} does not match last offset delta {last_offset_delta} at byte {position}"
    )]
    InvalidRecordCount {
        position: usize,
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("batch of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge { size_bytes: usize, max_bytes: usize },
}

impl BatchError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            BatchError::UnsupportedMagic { .. } => {
                ResponseError::UnsupportedForMessageFormat.code()
            }
            BatchError::InvalidRecordCount { .. } => ResponseError::InvalidRecord.code(),
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
            BatchError::Empty
            | BatchError::Truncated { .. }
            | BatchError::InvalidLength { .. }
            | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage.code(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf` (structure only: no CRC check).
    /// Rejects magic < 2 and lengths below the header size.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        Self::parse_at(buf, 0)
    }

    /// Like [`BatchHeader::parse`], reporting `position` in errors.
    pub fn parse_at(buf: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
        Self::parse_with(buf, position, false)
    }

    /// Parses a batch read back from the log. Compaction keeps a batch's offset range
    /// (base offset and last offset delta) while dropping records from it, as Kafka does, so
    /// a stored batch may hold fewer records than its range, or none (kept for producer
    /// state); the produce path's rule (`record_count == last_offset_delta + 1`) does not
    /// apply to it.
    pub fn parse_stored_at(buf: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
        Self::parse_with(buf, position, true)
    }

    fn parse_with(
        buf: &[u8],
        position: usize,
        compacted_allowed: bool,
    ) -> Result<BatchHeader, BatchError> {
        if buf.len() <= MAGIC_OFFSET {
            return Err(BatchError::Truncated {
                position,
                needed: MAGIC_OFFSET + 1,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != CURRENT_MAGIC {
            return Err(BatchError::UnsupportedMagic { position, magic });
        }
        if buf.len() < RECORD_BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                position,
                needed: RECORD_BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, 8);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::InvalidLength {
                position,
                length: batch_length,
            });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, 12),
            magic,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        let span = header.last_offset_delta as i64 + 1;
        let count_fits = if compacted_allowed {
            (0..=span).contains(&(header.record_count as i64))
        } else {
            header.record_count >= 1 && header.record_count as i64 == span
        };
        if header.last_offset_delta < 0 || !count_fits {
            return Err(BatchError::InvalidRecordCount {
                position,
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Whole batch size on disk / on the wire, including baseOffset and batchLength.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + self.batch_length as usize
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_CODEC_MASK) as u8
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_LOG_APPEND_BIT != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }
    /// Last sequence number of the batch; sequences wrap at i32::MAX like Kafka's.
    pub fn last_sequence(&self) -> i32 {
        add_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `seq + delta` with Kafka's wrap-around at i32::MAX back to 0.
pub fn add_sequence(seq: i32, delta: i32) -> i32 {
    let sum = seq as i64 + delta as i64;
    (sum % (i32::MAX as i64 + 1)) as i32
}

/// CRC-32C of a complete batch, over attributes..end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Checks the stored CRC of a complete batch (`batch.len() == header.size_bytes()`).
pub fn verify_crc(batch: &[u8], header: &BatchHeader, position: usize) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            position,
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// One batch of a validated payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub header: BatchHeader,
    /// Byte position of the batch in the payload.
    pub position: usize,
}

impl BatchSummary {
    pub fn size_bytes(&self) -> usize {
        self.header.size_bytes()
    }
}

/// Validates a produce payload at the broker boundary: one or more complete v2 batches, sizes
/// consistent, magic == 2, CRC-32C correct, record_count >= 1 and == last_offset_delta + 1,
/// no trailing bytes. The CRC is checked once, here; the log trusts it afterwards.
pub fn validate_batches(buf: &[u8]) -> Result<Vec<BatchSummary>, BatchError> {
    let mut out = Vec::with_capacity(1);
    each_batch(buf, |position, header, bytes| {
        verify_crc(bytes, header, position)?;
        out.push(BatchSummary {
            header: *header,
            position,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Walks the batch headers of a payload that was already validated (no CRC work).
pub fn walk_headers(
    buf: &[u8],
    mut f: impl FnMut(usize, &BatchHeader),
) -> Result<usize, BatchError> {
    each_batch(buf, |position, header, _| {
        f(position, header);
        Ok(())
    })
}

/// Calls `f` with the position, header and bytes of each complete batch of a non-empty
/// payload, in order; a truncated batch or a bad header ends the walk with its error.
/// Returns how many batches there were.
fn each_batch(
    buf: &[u8],
    mut f: impl FnMut(usize, &BatchHeader, &[u8]) -> Result<(), BatchError>,
) -> Result<usize, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut position = 0usize;
    let mut count = 0usize;
    while position < buf.len() {
        let rest = &buf[position..];
        let header = BatchHeader::parse_at(rest, position)?;
        let size = header.size_bytes();
        if size > rest.len() {
            return Err(BatchError::Truncated {
                position,
                needed: size,
                available: rest.len(),
            });
        }
        f(position, &header, &rest[..size])?;
        count += 1;
        position += size;
    }
    Ok(count)
}

/// Broker-side patch: the assigned base offset (bytes 0..8, outside the CRC).
pub fn patch_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Broker-side patch: the partition leader epoch (bytes 12..16, outside the CRC).
pub fn patch_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// LogAppendTime topics: set the timestamp-type bit and maxTimestamp, then recompute the CRC,
/// as Kafka does. Returns the new CRC.
pub fn apply_log_append_time(batch: &mut [u8], now_ms: i64) -> u32 {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_LOG_APPEND_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    crc
}

/// Reads a zig-zag varint (Kafka record encoding); `None` if malformed or truncated.
///
/// One- and two-byte varints (deltas, header counts, lengths under 8 KiB: nearly every varint
/// of a record) take a branch each; the produce path reads several per record
/// (`delay::plan::may_delay`), where a general loop cost about twice the instructions.
#[inline]
pub fn read_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let first = *buf.get(*at)?;
    if first < 0x80 {
        *at += 1;
        return Some(zigzag(u64::from(first)));
    }
    let second = *buf.get(*at + 1)?;
    if second < 0x80 {
        *at += 2;
        return Some(zigzag(u64::from(first & 0x7f) | (u64::from(second) << 7)));
    }
    read_varint_long(buf, at)
}

/// A varint of three bytes or more (at most ten).
fn read_varint_long(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    let mut shift = 0u32;
    let mut next = *at;
    while shift < 70 {
        let b = *buf.get(next)?;
        next += 1;
        raw |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            *at = next;
            return Some(zigzag(raw));
        }
        shift += 7;
    }
    None
}

fn zigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// For an uncompressed CreateTime batch, the (offset, timestamp) of the first record with
/// timestamp >= `target` and offset >= `min_offset`, by walking record headers only (no
/// allocation, nothing decoded beyond the timestamp and offset deltas). `None` for compressed
/// or LogAppendTime batches, malformed records, or no match — the caller then falls back to
/// batch granularity.
pub fn first_record_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    target: i64,
    min_offset: i64,
) -> Option<(i64, i64)> {
    if header.compression() != 0 || header.is_log_append_time() || batch.len() < header.size_bytes()
    {
        return None;
    }
    let records = &batch[RECORD_BATCH_HEADER_BYTES..header.size_bytes()];
    let mut at = 0usize;
    for _ in 0..header.record_count {
        let len = read_varint(records, &mut at)?;
        let start = at;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > records.len() {
            return None;
        }
        let mut p = start + 1; // attributes
        let ts_delta = read_varint(&records[..end], &mut p)?;
        let offset_delta = read_varint(&records[..end], &mut p)?;
        let ts = header.base_timestamp.checked_add(ts_delta)?;
        let offset = header.base_offset + offset_delta;
        if ts >= target && offset >= min_offset {
            return Some((offset, ts));
        }
        at = end;
    }
    None
}

/// The offset of the first record whose timestamp is the batch's max timestamp (Kafka's
/// `RecordBatch.offsetOfMaxTimestamp`, ListOffsets MAX_TIMESTAMP since KAFKA-16310). With
/// LogAppendTime every record carries the batch's time, so it is the first record.
/// Compressed batches are decompressed (a query-time cost, never paid on append). `None`
/// when the batch is malformed or no record has that timestamp.
pub fn offset_of_max_timestamp(batch: &[u8], header: &BatchHeader) -> Option<i64> {
    if header.is_log_append_time() {
        return Some(header.base_offset);
    }
    if header.compression() == 0 {
        return first_record_at_or_after(batch, header, header.max_timestamp, i64::MIN)
            .filter(|&(_, ts)| ts == header.max_timestamp)
            .map(|(offset, _)| offset);
    }
    let mut whole = bytes::Bytes::copy_from_slice(batch.get(..header.size_bytes())?);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut whole).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp == header.max_timestamp)
        .map(|r| r.offset)
}

/// Indices (within the batch, as Kafka's `RecordError.batch_index`) of the records without a
/// key, for the produce rule of compacted topics. Uncompressed batches are walked record
/// header by record header; compressed ones are decompressed (only compacted topics pay
/// this). `None` when the records are malformed. Control batches have keys by construction.
pub fn keyless_records(batch: &[u8], header: &BatchHeader) -> Option<Vec<i32>> {
    if header.is_control() {
        return Some(Vec::new());
    }
    let whole = batch.get(..header.size_bytes())?;
    if header.compression() != 0 {
        let mut bytes = bytes::Bytes::copy_from_slice(whole);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).ok()?;
        return Some(
            (0i32..)
                .zip(&set.records)
                .filter(|(_, r)| r.key.is_none())
                .map(|(i, _)| i)
                .collect(),
        );
    }
    let records = whole.get(RECORD_BATCH_HEADER_BYTES..)?;
    let mut keyless = Vec::new();
    let mut at = 0usize;
    for index in 0..header.record_count.max(0) {
        let len = read_varint(records, &mut at)?;
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        let record = records.get(..end)?;
        let mut p = at + 1; // attributes
        read_varint(record, &mut p)?; // timestamp delta
        read_varint(record, &mut p)?; // offset delta
        if read_varint(record, &mut p)? < 0 {
            keyless.push(index);
        }
        at = end;
    }
    Some(keyless)
}

/// Test and bench helper: builds an uncompressed v2 batch with `count` records of
/// `value_len` bytes each (values filled with `fill`).
#[doc(hidden)]
pub fn build_test_batch(
    count: i32,
    value_len: usize,
    base_timestamp: i64,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                break;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }
    let mut records = Vec::with_capacity(count as usize * (value_len + 16));
    let mut body = Vec::with_capacity(value_len + 16);
    for i in 0..count {
        body.clear();
        body.push(0); // attributes
        varint(&mut body, i as i64); // timestamp delta
        varint(&mut body, i as i64); // offset delta
        varint(&mut body, -1); // null key
        varint(&mut body, value_len as i64);
        body.extend(std::iter::repeat_n(b'x', value_len));
        varint(&mut body, 0); // headers
        varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let (pid, epoch, seq) = producer.unwrap_or((NO_PRODUCER_ID, -1, -1));
    let mut b = Vec::with_capacity(RECORD_BATCH_HEADER_BYTES + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    let batch_length = (RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32;
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(CURRENT_MAGIC as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&(base_timestamp + count as i64 - 1).to_be_bytes());
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_batch_round_trips_its_header() {
        let b = build_test_batch(3, 10, 1000, Some((7, 1, 5)));
        let s = validate_batches(&b).unwrap();
        assert_eq!(s.len(), 1);
        let h = s[0].header;
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 5)
        );
        assert_eq!(h.last_sequence(), 7);
        assert_eq!(h.size_bytes(), b.len());
    }

    #[test]
    fn two_batches_are_both_reported() {
        let mut b = build_test_batch(1, 5, 0, None);
        let second = build_test_batch(2, 5, 0, None);
        b.extend_from_slice(&second);
        let s = validate_batches(&b).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].position, b.len() - second.len());
    }

    #[test]
    fn flipped_record_byte_fails_crc() {
        let mut b = build_test_batch(2, 10, 0, None);
        let last = b.len() - 3;
        b[last] ^= 0x40;
        let e = validate_batches(&b).unwrap_err();
        assert!(matches!(e, BatchError::CrcMismatch { .. }));
        assert_eq!(e.kafka_error_code(), 2);
    }

    #[test]
    fn base_offset_patch_keeps_crc_valid() {
        let mut b = build_test_batch(2, 10, 0, None);
        patch_base_offset(&mut b, 12345);
        patch_leader_epoch(&mut b, 3);
        let s = validate_batches(&b).unwrap();
        assert_eq!(s[0].header.base_offset, 12345);
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut b = build_test_batch(2, 10, 0, None);
        apply_log_append_time(&mut b, 99_000);
        let h = validate_batches(&b).unwrap()[0].header;
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99_000);
    }

    #[test]
    fn old_magic_is_unsupported_for_message_format() {
        let mut b = build_test_batch(1, 10, 0, None);
        b[MAGIC_OFFSET] = 1;
        let e = validate_batches(&b).unwrap_err();
        assert_eq!(e.kafka_error_code(), 43);
    }

    #[test]
    fn trailing_bytes_and_truncation_are_rejected() {
        let mut b = build_test_batch(1, 10, 0, None);
        b.push(0);
        assert!(validate_batches(&b).is_err());
        let b = build_test_batch(1, 10, 0, None);
        for cut in 0..b.len() {
            assert!(validate_batches(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn inconsistent_record_count_is_invalid_record() {
        let mut b = build_test_batch(2, 10, 0, None);
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate_batches(&b).unwrap_err().kafka_error_code(), 87);
    }

    #[test]
    fn record_level_timestamp_search() {
        // Records i have timestamps 100 + i and offsets base + i.
        let mut b = build_test_batch(5, 3, 100, None);
        patch_base_offset(&mut b, 40);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(first_record_at_or_after(&b, &h, 102, 0), Some((42, 102)));
        assert_eq!(first_record_at_or_after(&b, &h, 0, 43), Some((43, 103)));
        assert_eq!(first_record_at_or_after(&b, &h, 105, 0), None);
        apply_log_append_time(&mut b, 7);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(first_record_at_or_after(&b, &h, 0, 0), None);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
    }
}

#[cfg(test)]
mod keyless_tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(keys: &[Option<&str>], compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch unless offset - sequence stays constant.
                sequence: i as i32 - 1,
                timestamp: 1_000,
                key: key.map(|k| bytes::Bytes::from(k.to_string())),
                value: Some(bytes::Bytes::from_static(b"value")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn keyless_records_are_found_by_their_index_in_the_batch() {
        for compression in [Compression::None, Compression::Gzip] {
            let bytes = batch(&[Some("k0"), None, Some("k2"), None], compression);
            let batches = validate_batches(&bytes).unwrap();
            assert_eq!(batches.len(), 1, "one batch of four records");
            let header = batches[0].header;
            assert_eq!(keyless_records(&bytes, &header), Some(vec![1, 3]));
            let bytes = batch(&[Some("a"), Some("b")], compression);
            let header = validate_batches(&bytes).unwrap()[0].header;
            assert_eq!(keyless_records(&bytes, &header), Some(Vec::new()));
        }
    }
}
