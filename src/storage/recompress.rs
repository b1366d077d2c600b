//! Kafka's `compression.type` on append: a batch whose codec is not the topic's is
//! decompressed and recompressed before it reaches the log. Only the records section
//! changes: the batch header (base offset, timestamps, producer id, epoch, base sequence,
//! record count) is kept, and the records themselves are carried over byte for byte (their
//! offsets, timestamps, keys, values and headers are deltas inside the section, so they stay
//! exact); the length, the codec bits and the CRC are rewritten. Idempotent producers'
//! sequence numbers stay right because the record count does not change.
//!
//! Control and transactional batches are left as they are (Kafka's transaction markers and
//! transactional batches are the coordinator's business). A batch already in the topic's
//! codec is copied unchanged, as Kafka's in-place assignment does.
//!
//! Never on the `compression.type=producer` path: that append stays zero-copy.

use bytes::BytesMut;
use kafka_protocol::ResponseError;

use super::batch::{
    ATTRIBUTES_OFFSET, BatchError, BatchHeader, COMPRESSION_CODEC_MASK, CRC_OFFSET,
    LOG_OVERHEAD_BYTES, RECORD_BATCH_HEADER_BYTES, compute_crc, read_varint, walk_headers,
};
use super::codec::{self, CodecError};
use crate::config::CompressionType;

/// The most a batch's records may inflate to while being recompressed (32 MiB, 32 times
/// Kafka's default `max.message.bytes`): a decompression bomb is refused at this size with
/// MESSAGE_TOO_LARGE instead of exhausting the shard's memory. At most one batch is
/// decompressed at a time on a shard (the work does not await), so this bounds the memory.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecompressError {
    #[error("batch at byte {position}: {source}")]
    Codec {
        position: usize,
        #[source]
        source: CodecError,
    },
    #[error("batch at byte {position}: {reason}")]
    InvalidRecords {
        position: usize,
        reason: &'static str,
    },
    #[error("recompressed batch at byte {position} does not fit a batch length")]
    Oversized { position: usize },
    #[error(transparent)]
    Batch(#[from] BatchError),
}

impl RecompressError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            RecompressError::Codec {
                source: CodecError::TooLarge { .. },
                ..
            }
            | RecompressError::Oversized { .. } => ResponseError::MessageTooLarge.code(),
            RecompressError::Codec { .. } => ResponseError::CorruptMessage.code(),
            RecompressError::InvalidRecords { .. } => ResponseError::InvalidRecord.code(),
            RecompressError::Batch(e) => e.kafka_error_code(),
        }
    }
}

/// The batch codec a topic's `compression.type` stores, or `None` for `producer` (keep
/// whatever the producer sent).
pub fn target_codec(compression: CompressionType) -> Option<u8> {
    match compression {
        CompressionType::Producer => None,
        CompressionType::Uncompressed => Some(codec::CODEC_NONE),
        CompressionType::Gzip => Some(codec::CODEC_GZIP),
        CompressionType::Snappy => Some(codec::CODEC_SNAPPY),
        CompressionType::Lz4 => Some(codec::CODEC_LZ4),
        CompressionType::Zstd => Some(codec::CODEC_ZSTD),
    }
}

fn needs_recompression(header: &BatchHeader, target: u8) -> bool {
    !header.is_control() && !header.is_transactional() && header.compression() != target
}

/// Rewrites the batches of a validated produce payload into `target`'s codec at `level`
/// (None: Kafka's default for the codec). `Ok(None)` when every batch may stay as it is (the
/// caller keeps its buffer: no copy).
pub fn recompress_batches(
    records: &[u8],
    target: u8,
    level: Option<i32>,
    max_decompressed_bytes: usize,
) -> Result<Option<BytesMut>, RecompressError> {
    let mut batches: Vec<(usize, BatchHeader)> = Vec::new();
    walk_headers(records, |position, header| {
        batches.push((position, *header))
    })?;
    if !batches.iter().any(|(_, h)| needs_recompression(h, target)) {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    let mut plain = Vec::new();
    let mut packed = Vec::new();
    for (position, header) in batches {
        let batch = &records[position..position + header.size_bytes()];
        if !needs_recompression(&header, target) {
            out.extend_from_slice(batch);
            continue;
        }
        let codec_error = |source| RecompressError::Codec { position, source };
        let section = &batch[RECORD_BATCH_HEADER_BYTES..];
        codec::decompress(
            header.compression(),
            section,
            max_decompressed_bytes,
            &mut plain,
        )
        .map_err(codec_error)?;
        check_records(&plain, &header)
            .map_err(|reason| RecompressError::InvalidRecords { position, reason })?;
        packed.clear();
        codec::compress(target, level, &plain, &mut packed).map_err(codec_error)?;
        write_batch(&mut out, batch, target, &packed)
            .ok_or(RecompressError::Oversized { position })?;
    }
    Ok(Some(out))
}

/// Appends `original`'s header with the new codec, length and CRC, then `section`.
fn write_batch(out: &mut BytesMut, original: &[u8], target: u8, section: &[u8]) -> Option<()> {
    let batch_length =
        i32::try_from(RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + section.len()).ok()?;
    let start = out.len();
    out.extend_from_slice(&original[..RECORD_BATCH_HEADER_BYTES]);
    out.extend_from_slice(section);
    let batch = &mut out[start..];
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]]);
    let attributes = (attributes & !COMPRESSION_CODEC_MASK) | target as i16;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Some(())
}

/// Walks the decompressed records as Kafka's broker does before it re-encodes them: exactly
/// `record_count` records, each whole, with offset deltas 0, 1, 2, ... and nothing after the
/// last. Only the length, timestamp and offset varints are read; the rest is carried over.
fn check_records(plain: &[u8], header: &BatchHeader) -> Result<(), &'static str> {
    let mut at = 0usize;
    for index in 0..header.record_count as i64 {
        let length = read_varint(plain, &mut at).ok_or("truncated record length")?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l > 0)
            .ok_or("invalid record length")?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= plain.len())
            .ok_or("record runs past the end of the batch")?;
        let record = &plain[..end];
        let mut field = at + 1; // attributes
        read_varint(record, &mut field).ok_or("truncated timestamp delta")?;
        let offset_delta = read_varint(record, &mut field).ok_or("truncated offset delta")?;
        if offset_delta != index {
            return Err("record offset deltas are not consecutive");
        }
        at = end;
    }
    if at != plain.len() {
        return Err("bytes after the last record of the batch");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{build_test_batch, validate_batches};
    use crate::storage::codec::{CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD};

    const LIMIT: usize = 1 << 20;

    /// A batch in `codec`, built by recompressing an uncompressed test batch.
    fn batch_in(codec: u8, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
        let plain = build_test_batch(5, 300, 1_000, producer);
        match recompress_batches(&plain, codec, None, LIMIT).unwrap() {
            Some(b) => b.to_vec(),
            None => plain,
        }
    }

    #[test]
    fn every_codec_keeps_the_header_and_the_records() {
        let original = build_test_batch(5, 300, 1_000, Some((42, 3, 17)));
        let before = BatchHeader::parse(&original).unwrap();
        for target in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let out = recompress_batches(&original, target, None, LIMIT)
                .unwrap()
                .unwrap();
            let after = validate_batches(&out).unwrap()[0].header; // CRC checked here
            assert_eq!(after.compression(), target);
            assert!(out.len() < original.len(), "{target}: values compress");
            let same = |h: &BatchHeader| {
                (
                    h.base_offset,
                    h.last_offset_delta,
                    h.base_timestamp,
                    h.max_timestamp,
                )
            };
            assert_eq!(same(&after), same(&before));
            let producer = |h: &BatchHeader| (h.producer_id, h.producer_epoch, h.base_sequence);
            assert_eq!(producer(&after), producer(&before));
            assert_eq!(after.record_count, before.record_count);
            // And back: byte for byte the producer's batch.
            let back = recompress_batches(&out, CODEC_NONE, None, LIMIT)
                .unwrap()
                .unwrap();
            assert_eq!(&back[..], &original[..], "{target} round trip");
        }
    }

    #[test]
    fn a_batch_already_in_the_codec_is_not_copied() {
        let zstd = batch_in(CODEC_ZSTD, None);
        assert_eq!(
            recompress_batches(&zstd, CODEC_ZSTD, None, LIMIT).unwrap(),
            None
        );
        let plain = build_test_batch(2, 10, 0, None);
        assert_eq!(
            recompress_batches(&plain, CODEC_NONE, None, LIMIT).unwrap(),
            None
        );
    }

    #[test]
    fn control_and_transactional_batches_are_left_alone() {
        for bit in [
            crate::storage::batch::CONTROL_BIT,
            crate::storage::batch::TRANSACTIONAL_BIT,
        ] {
            let mut b = build_test_batch(1, 10, 0, Some((1, 0, 0)));
            b[ATTRIBUTES_OFFSET + 1] |= bit as u8;
            let crc = compute_crc(&b);
            b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            assert_eq!(
                recompress_batches(&b, CODEC_GZIP, None, LIMIT).unwrap(),
                None
            );
            // Mixed with an ordinary batch: that one is recompressed, this one copied.
            let mut two = build_test_batch(1, 10, 0, None);
            two.extend_from_slice(&b);
            let out = recompress_batches(&two, CODEC_GZIP, None, LIMIT)
                .unwrap()
                .unwrap();
            let batches = validate_batches(&out).unwrap();
            assert_eq!(batches[0].header.compression(), CODEC_GZIP);
            assert_eq!(&out[batches[1].position..], &b[..]);
        }
    }

    #[test]
    fn a_decompression_bomb_is_message_too_large() {
        let big = build_test_batch(64, 16 * 1024, 0, None); // 1 MiB of 'x'
        let bomb = recompress_batches(&big, CODEC_ZSTD, None, 2 << 20)
            .unwrap()
            .unwrap();
        assert!(bomb.len() < 8 * 1024, "{} bytes", bomb.len());
        let err = recompress_batches(&bomb, CODEC_NONE, None, 64 * 1024).unwrap_err();
        assert_eq!(
            err.kafka_error_code(),
            ResponseError::MessageTooLarge.code()
        );
    }

    #[test]
    fn undecodable_data_is_corrupt_message() {
        let mut b = batch_in(CODEC_GZIP, None);
        let last = b.len() - 12;
        b[last] ^= 0xff; // inside the deflate stream / its CRC-32 trailer
        let crc = compute_crc(&b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let err = recompress_batches(&b, CODEC_NONE, None, LIMIT).unwrap_err();
        assert_eq!(
            err.kafka_error_code(),
            ResponseError::CorruptMessage.code(),
            "{err}"
        );
    }

    #[test]
    fn records_that_do_not_match_the_header_are_invalid_record() {
        // Header says 3 records, but the section holds 2 (taken from a 2-record batch).
        let two = build_test_batch(2, 10, 0, None);
        let mut b = build_test_batch(3, 10, 0, None);
        b.truncate(RECORD_BATCH_HEADER_BYTES);
        b.extend_from_slice(&two[RECORD_BATCH_HEADER_BYTES..]);
        let length = (b.len() - LOG_OVERHEAD_BYTES) as i32;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = compute_crc(&b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let err = recompress_batches(&b, CODEC_LZ4, None, LIMIT).unwrap_err();
        assert_eq!(
            err.kafka_error_code(),
            ResponseError::InvalidRecord.code(),
            "{err}"
        );
    }
}
