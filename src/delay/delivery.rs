//! The batch a delivery appends: the due records of one partition, in due order, as one
//! uncompressed v2 batch of the shard's delivery producer (decision 0009), so that the
//! partition's idempotence recognises the same delivery appended twice after a crash.
//!
//! Owns: those bytes. Must not: decide what is due or write anything.

use bytes::{BufMut, BytesMut};

use super::plan::put_varint;
use crate::storage::batch::{
    CRC_OFFSET, CURRENT_MAGIC, LOG_OVERHEAD_BYTES, RECORD_BATCH_HEADER_BYTES, compute_crc,
};

/// One record to deliver: its original timestamp and its key/value/headers bytes.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRecord<'a> {
    pub timestamp_ms: i64,
    pub tail: &'a [u8],
}

/// Who appends a delivery: the shard's delivery producer and the batch's first sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// Varint bytes a record's length prefix and fixed fields take at most.
const RECORD_OVERHEAD_MAX: usize = 5 + 1 + 10 + 5;

/// Builds the batch (base offset 0: the log assigns it). `records` must not be empty.
pub fn build_delivery_batch(
    records: &[DeliveryRecord<'_>],
    producer: DeliveryProducer,
) -> BytesMut {
    let base_timestamp = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let max_timestamp = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let body_bytes: usize = records
        .iter()
        .map(|r| r.tail.len() + RECORD_OVERHEAD_MAX)
        .sum();
    let mut b = BytesMut::with_capacity(RECORD_BATCH_HEADER_BYTES + body_bytes);
    b.put_i64(0); // base offset
    b.put_i32(0); // batch length (below)
    b.put_i32(-1); // partition leader epoch (the log patches it)
    b.put_i8(CURRENT_MAGIC);
    b.put_u32(0); // crc (below)
    b.put_i16(0); // attributes: uncompressed, CreateTime, not transactional
    b.put_i32(records.len() as i32 - 1); // last offset delta
    b.put_i64(base_timestamp);
    b.put_i64(max_timestamp);
    b.put_i64(producer.producer_id);
    b.put_i16(producer.epoch);
    b.put_i32(producer.base_sequence);
    b.put_i32(records.len() as i32);
    let mut fields = BytesMut::with_capacity(16);
    for (offset_delta, record) in (0i64..).zip(records) {
        fields.clear();
        fields.put_u8(0); // attributes
        put_varint(&mut fields, record.timestamp_ms - base_timestamp);
        put_varint(&mut fields, offset_delta);
        put_varint(&mut b, (fields.len() + record.tail.len()) as i64);
        b.put_slice(&fields);
        b.put_slice(record.tail);
    }
    let batch_length = (b.len() - LOG_OVERHEAD_BYTES) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Whether a partition whose last sequence is `last` holds sequence `target` already, on
/// the wrapping sequence space `0..=i32::MAX`: `last` is at `target` or less than half the
/// space after it.
pub fn sequence_reached(last: i32, target: i32) -> bool {
    if last < 0 {
        return false;
    }
    let space = i32::MAX as i64 + 1;
    let distance = (last as i64 - target as i64).rem_euclid(space);
    distance < space / 2
}

#[cfg(test)]
mod tests {
    use super::sequence_reached;

    #[test]
    fn sequence_reached_follows_the_wrapping_sequence_space() {
        assert!(sequence_reached(10, 10));
        assert!(sequence_reached(11, 10));
        assert!(!sequence_reached(9, 10));
        assert!(!sequence_reached(-1, 0), "no batch yet");
        // Across the wrap: 3 comes after i32::MAX - 2.
        assert!(sequence_reached(3, i32::MAX - 2));
        assert!(!sequence_reached(i32::MAX - 2, 3));
    }
}
