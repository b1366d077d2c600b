//! Reading and rewriting one stored record batch for the cleaner: walking its records (keys,
//! tombstones, offsets, timestamps), and writing a batch that keeps only some of them. The
//! kept batch has the original header (base offset, last offset delta, producer id, epoch,
//! base sequence, attributes, base timestamp: its offset range and producer state are
//! unchanged, as Kafka keeps them), the kept records byte for byte (their deltas stay
//! exact), the record count, max timestamp, length and CRC rewritten, and the records
//! compressed again with the batch's own codec. A batch that loses every record is written
//! as an empty header when it must stay (Kafka's empty batch for producer state), else
//! dropped. Must not read files or decide which records to keep.

use std::ops::Range;

use super::super::batch::{
    ATTRIBUTES_OFFSET, BatchHeader, COMPRESSION_CODEC_MASK, CRC_OFFSET, LOG_OVERHEAD_BYTES,
    MAX_TIMESTAMP_OFFSET, RECORD_BATCH_HEADER_BYTES, compute_crc, read_varint,
};
use super::super::codec::{self, CODEC_NONE};

/// Byte position of the record count in the batch header.
const RECORD_COUNT_OFFSET: usize = 57;
/// Byte position of the batch length.
const BATCH_LENGTH_OFFSET: usize = 8;

/// One record of a batch, as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp: i64,
    /// `None` for a null key (refused on compacted topics, but older data may hold some).
    pub key: Option<&'a [u8]>,
    /// A null value: a delete marker for its key.
    pub is_tombstone: bool,
}

/// Buffers reused from batch to batch so a pass allocates per pass, not per batch.
#[derive(Default)]
pub struct FilterScratch {
    plain: Vec<u8>,
    kept: Vec<u8>,
    packed: Vec<u8>,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtered {
    /// Every record stays: the caller copies the batch unchanged.
    KeepWhole,
    /// No record stays and the batch need not: nothing was written.
    Dropped,
    /// A smaller (possibly empty) batch was appended to `out`.
    Rewritten { records_kept: i32 },
}

/// The batch's records section, decompressed into `plain` when the batch is compressed.
/// `limit` bounds the decompressed size (a decompression bomb fails, it does not grow).
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: usize,
    plain: &'a mut Vec<u8>,
) -> Result<&'a [u8], String> {
    let section = batch
        .get(RECORD_BATCH_HEADER_BYTES..header.size_bytes())
        .ok_or("batch shorter than its header says")?;
    if header.compression() == CODEC_NONE {
        return Ok(section);
    }
    codec::decompress(header.compression(), section, limit, plain).map_err(|e| e.to_string())?;
    Ok(plain.as_slice())
}

/// Calls `f` with each record of a records section and its byte range there.
pub fn walk_records<'a>(
    plain: &'a [u8],
    header: &BatchHeader,
    mut f: impl FnMut(&RecordView<'a>, Range<usize>),
) -> Result<(), &'static str> {
    let mut at = 0usize;
    for _ in 0..header.record_count.max(0) {
        let start = at;
        let length = read_varint(plain, &mut at).ok_or("truncated record length")?;
        let length = usize::try_from(length).map_err(|_| "negative record length")?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= plain.len())
            .ok_or("record runs past the end of the batch")?;
        let record = &plain[..end];
        let mut p = at + 1; // attributes
        let timestamp_delta = read_varint(record, &mut p).ok_or("truncated timestamp delta")?;
        let offset_delta = read_varint(record, &mut p).ok_or("truncated offset delta")?;
        let key_length = read_varint(record, &mut p).ok_or("truncated key length")?;
        let key = if key_length < 0 {
            None
        } else {
            let key_end = p
                .checked_add(usize::try_from(key_length).map_err(|_| "bad key length")?)
                .filter(|e| *e <= end)
                .ok_or("key runs past the record")?;
            let key = &record[p..key_end];
            p = key_end;
            Some(key)
        };
        let value_length = read_varint(record, &mut p).ok_or("truncated value length")?;
        let view = RecordView {
            offset: header.base_offset + offset_delta,
            timestamp: header.base_timestamp.saturating_add(timestamp_delta),
            key,
            is_tombstone: value_length < 0,
        };
        f(&view, start..end);
        at = end;
    }
    if at != plain.len() {
        return Err("bytes after the last record of the batch");
    }
    Ok(())
}

/// Filters one batch: `keep` decides per record. `retain_empty`: a batch left with no
/// records is still written, as an empty header (its offset range and producer state stay).
pub fn filter_batch(
    batch: &[u8],
    header: &BatchHeader,
    limit: usize,
    retain_empty: bool,
    scratch: &mut FilterScratch,
    mut keep: impl FnMut(&RecordView) -> bool,
    out: &mut Vec<u8>,
) -> Result<Filtered, String> {
    let FilterScratch {
        plain,
        kept,
        packed,
    } = scratch;
    let section = records_section(batch, header, limit, plain)?;
    kept.clear();
    let mut records_kept = 0i32;
    let mut max_timestamp = i64::MIN;
    walk_records(section, header, |record, range| {
        if keep(record) {
            kept.extend_from_slice(&section[range]);
            records_kept += 1;
            max_timestamp = max_timestamp.max(record.timestamp);
        }
    })?;
    if records_kept == header.record_count {
        return Ok(Filtered::KeepWhole);
    }
    if records_kept == 0 && !retain_empty {
        return Ok(Filtered::Dropped);
    }
    let codec = if records_kept == 0 {
        // Kafka's empty batch header carries no codec: there is nothing to decompress.
        CODEC_NONE
    } else {
        header.compression()
    };
    packed.clear();
    codec::compress(codec, None, kept, packed).map_err(|e| e.to_string())?;
    let batch_length = i32::try_from(RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + packed.len())
        .map_err(|_| "rewritten batch does not fit a batch length".to_string())?;
    let start = out.len();
    out.extend_from_slice(&batch[..RECORD_BATCH_HEADER_BYTES]);
    out.extend_from_slice(packed);
    let written = &mut out[start..];
    written[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (header.attributes & !COMPRESSION_CODEC_MASK) | i16::from(codec);
    written[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    written[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
        .copy_from_slice(&records_kept.to_be_bytes());
    // LogAppendTime batches keep the broker's time; CreateTime ones the newest kept record's.
    if !header.is_log_append_time() && records_kept > 0 {
        written[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
    }
    let crc = compute_crc(written);
    written[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Rewritten { records_kept })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{patch_base_offset, validate_batches};
    use bytes::Bytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    const LIMIT: usize = 1 << 20;

    /// A batch at `base` of (key, value) records, timestamps 1000 + i.
    fn batch(base: i64, records: &[(&str, Option<&str>)], compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1_000 + i as i64,
                key: Some(Bytes::from(key.to_string())),
                value: value.map(|v| Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        let mut b = buf.to_vec();
        patch_base_offset(&mut b, base);
        b
    }

    fn decode(bytes: &[u8]) -> Vec<(i64, String, Option<String>)> {
        let mut b = Bytes::copy_from_slice(bytes);
        let set = RecordBatchDecoder::decode(&mut b).unwrap();
        set.records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap(),
                    r.value
                        .as_ref()
                        .map(|v| String::from_utf8(v.to_vec()).unwrap()),
                )
            })
            .collect()
    }

    fn stored_header(b: &[u8]) -> BatchHeader {
        BatchHeader::parse_stored_at(b, 0).unwrap()
    }

    #[test]
    fn walks_keys_offsets_and_tombstones() {
        let b = batch(100, &[("a", Some("1")), ("b", None)], Compression::None);
        let h = BatchHeader::parse(&b).unwrap();
        let mut seen = Vec::new();
        let mut plain = Vec::new();
        let section = records_section(&b, &h, LIMIT, &mut plain).unwrap();
        walk_records(section, &h, |r, _| {
            seen.push((
                r.offset,
                r.key.unwrap().to_vec(),
                r.is_tombstone,
                r.timestamp,
            ))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (100, b"a".to_vec(), false, 1000),
                (101, b"b".to_vec(), true, 1001)
            ]
        );
    }

    #[test]
    fn kept_records_keep_their_offsets_and_the_batch_its_range_in_every_codec() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(
                40,
                &[
                    ("a", Some("1")),
                    ("b", Some("2")),
                    ("a", Some("3")),
                    ("c", None),
                ],
                compression,
            );
            let h = BatchHeader::parse(&b).unwrap();
            let mut out = Vec::new();
            let mut scratch = FilterScratch::default();
            let keep = |r: &RecordView| r.offset != 40 && r.offset != 41;
            let result = filter_batch(&b, &h, LIMIT, false, &mut scratch, keep, &mut out).unwrap();
            assert_eq!(result, Filtered::Rewritten { records_kept: 2 });
            let after = stored_header(&out);
            assert_eq!(after.base_offset, 40);
            assert_eq!(after.last_offset(), 43, "the offset range is kept");
            assert_eq!(after.record_count, 2);
            assert_eq!(after.compression(), h.compression(), "codec kept");
            assert_eq!((after.producer_id, after.base_sequence), (7, 0));
            assert_eq!(after.max_timestamp, 1003);
            assert_eq!(after.size_bytes(), out.len());
            crate::storage::batch::verify_crc(&out, &after, 0).unwrap();
            assert_eq!(
                decode(&out),
                vec![(42, "a".into(), Some("3".into())), (43, "c".into(), None)],
                "{compression:?}"
            );
        }
    }

    #[test]
    fn all_kept_is_left_alone_and_all_dropped_is_dropped_or_emptied() {
        let b = batch(0, &[("a", Some("1")), ("b", Some("2"))], Compression::Gzip);
        let h = BatchHeader::parse(&b).unwrap();
        let mut scratch = FilterScratch::default();
        let mut out = Vec::new();
        let r = filter_batch(&b, &h, LIMIT, false, &mut scratch, |_| true, &mut out);
        assert_eq!(r, Ok(Filtered::KeepWhole));
        let r = filter_batch(&b, &h, LIMIT, false, &mut scratch, |_| false, &mut out);
        assert_eq!(r, Ok(Filtered::Dropped));
        assert!(out.is_empty());
        let r = filter_batch(&b, &h, LIMIT, true, &mut scratch, |_| false, &mut out);
        assert_eq!(r, Ok(Filtered::Rewritten { records_kept: 0 }));
        assert_eq!(out.len(), RECORD_BATCH_HEADER_BYTES);
        let empty = stored_header(&out);
        assert_eq!((empty.base_offset, empty.last_offset()), (0, 1));
        assert_eq!((empty.record_count, empty.compression()), (0, 0));
        crate::storage::batch::verify_crc(&out, &empty, 0).unwrap();
        assert!(
            validate_batches(&out).is_err(),
            "an empty batch is never accepted from a producer"
        );
    }

    #[test]
    fn a_corrupt_records_section_is_an_error_not_a_panic() {
        let mut b = batch(0, &[("a", Some("1"))], Compression::None);
        let len = b.len();
        b[RECORD_BATCH_HEADER_BYTES] = 0x7f; // record length far past the end
        let h = BatchHeader::parse(&b[..len]).unwrap();
        let mut scratch = FilterScratch::default();
        let mut out = Vec::new();
        assert!(filter_batch(&b, &h, LIMIT, false, &mut scratch, |_| true, &mut out).is_err());
        let mut b = batch(0, &[("a", Some("1"))], Compression::Gzip);
        b[RECORD_BATCH_HEADER_BYTES + 3] ^= 0xff;
        let h = BatchHeader::parse(&b).unwrap();
        assert!(filter_batch(&b, &h, LIMIT, false, &mut scratch, |_| true, &mut out).is_err());
    }
}
