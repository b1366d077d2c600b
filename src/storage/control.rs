//! Transaction control batches (Kafka's COMMIT/ABORT markers): building the one-record
//! control batch the transaction coordinator asks a partition to append, and reading back
//! which marker a stored control batch is. The format is Kafka's: a v2 batch with the
//! transactional and control attribute bits, one record whose key is `version i16 = 0 |
//! type i16` (0 = ABORT, 1 = COMMIT) and whose value is `version i16 = 0 | coordinator
//! epoch i32`.
//!
//! Owns: those bytes. Must not: decide when a marker is written (the coordinator does) or
//! touch producer state (`producer_state` does, from the type read here).

use super::batch::{
    CONTROL_BIT, CRC_OFFSET, CURRENT_MAGIC, LOG_OVERHEAD_BYTES, RECORD_BATCH_HEADER_BYTES,
    TRANSACTIONAL_BIT, compute_crc,
};

/// Control record type of an ABORT marker (Kafka's `ControlRecordType.ABORT`).
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a COMMIT marker (Kafka's `ControlRecordType.COMMIT`).
pub const CONTROL_TYPE_COMMIT: i16 = 1;
/// Version of the control record key and of the end-transaction marker value.
const CONTROL_RECORD_VERSION: i16 = 0;
/// Key bytes: version i16 + type i16.
const CONTROL_KEY_BYTES: usize = 4;
/// Value bytes: version i16 + coordinator epoch i32.
const CONTROL_VALUE_BYTES: usize = 6;

/// A COMMIT (`commit`) or ABORT marker batch for `producer_id`/`producer_epoch` at
/// `timestamp_ms` (base offset 0: the log assigns it).
pub fn build_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let kind = if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    // Record body: attributes, timestamp delta 0, offset delta 0, key, value, no headers.
    // Every varint here is one byte (all values below 64), so the body length is fixed.
    let mut body = Vec::with_capacity(16);
    body.push(0); // attributes
    body.push(0); // timestamp delta (zigzag 0)
    body.push(0); // offset delta
    body.push((CONTROL_KEY_BYTES as u8) << 1); // key length (zigzag)
    body.extend_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    body.extend_from_slice(&kind.to_be_bytes());
    body.push((CONTROL_VALUE_BYTES as u8) << 1); // value length (zigzag)
    body.extend_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    body.extend_from_slice(&coordinator_epoch.to_be_bytes());
    body.push(0); // header count
    let mut b = Vec::with_capacity(RECORD_BATCH_HEADER_BYTES + body.len() + 1);
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let batch_length = (RECORD_BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + 1 + body.len()) as i32;
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch (patched)
    b.push(CURRENT_MAGIC as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc (below)
    b.extend_from_slice(&(TRANSACTIONAL_BIT | CONTROL_BIT).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence: markers carry none
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    b.push((body.len() as u8) << 1); // record length (zigzag)
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Reads a zigzag varint at `*pos` (at most 5 bytes), advancing `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// The control record type (`CONTROL_TYPE_ABORT`, `CONTROL_TYPE_COMMIT`, or another
/// Kafka control type) of a whole, uncompressed control batch; None when the bytes do not
/// hold a readable control record key.
pub fn control_record_type(batch: &[u8]) -> Option<i16> {
    let mut pos = RECORD_BATCH_HEADER_BYTES;
    let _record_length = varint(batch, &mut pos)?;
    pos += 1; // attributes
    let _timestamp_delta = varint(batch, &mut pos)?;
    let _offset_delta = varint(batch, &mut pos)?;
    let key_length = varint(batch, &mut pos)?;
    if key_length < CONTROL_KEY_BYTES as i64 {
        return None;
    }
    let key = batch.get(pos..pos + CONTROL_KEY_BYTES)?;
    Some(i16::from_be_bytes([key[2], key[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batches;

    #[test]
    fn marker_batches_are_valid_control_batches_of_their_type() {
        for (commit, kind) in [(true, CONTROL_TYPE_COMMIT), (false, CONTROL_TYPE_ABORT)] {
            let b = build_marker_batch(42, 3, commit, 0, 1_000);
            let summary = validate_batches(&b).expect("valid batch");
            let h = summary[0].header;
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.record_count),
                (42, 3, 1)
            );
            assert_eq!(control_record_type(&b), Some(kind));
        }
        assert_eq!(control_record_type(&[0u8; 10]), None);
    }
}
