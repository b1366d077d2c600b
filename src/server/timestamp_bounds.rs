//! Kafka's `message.timestamp.before.max.ms` / `after.max.ms` (and the 3.x
//! `difference.max.ms`) for Produce: with CreateTime, a record whose timestamp lies too far
//! from the broker's clock rejects its whole partition's append with INVALID_TIMESTAMP and a
//! per-record `record_errors` entry. Must not: decompress anything (a compressed batch is
//! judged by its header's first and max timestamps), or read records when the header's max
//! timestamp already clears the only bound set (Kafka 4.x's default: one hour ahead).

use crate::config::{LogConfig, TimestampType};
use crate::storage::batch::BatchSummary;

/// Bytes of the v2 batch header before the first record.
const RECORDS_START: usize = 61;
/// Attribute bits holding the codec; 0 is uncompressed.
const COMPRESSION_MASK: i16 = 0x07;
/// Most record errors reported for one partition, so an answer stays small.
const MAX_RECORD_ERRORS: usize = 100;
/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record without a create time, never refused.
const NO_TIMESTAMP: i64 = -1;

/// The partition's refusal: Kafka's top-level message and (record index in its batch,
/// message) per offending record.
pub struct TimestampRefusal {
    pub message: String,
    pub record_errors: Vec<(i32, String)>,
}

/// Reads a zigzag varint of at most 10 bytes at `*pos`.
fn varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Calls `visit(record index, timestamp)` for every record of an uncompressed batch; false
/// if the records do not parse (the log's own checks answer for those). Allocates nothing.
fn for_each_record_timestamp(
    batch: &[u8],
    base_timestamp: i64,
    mut visit: impl FnMut(i32, i64),
) -> bool {
    let mut pos = RECORDS_START;
    let mut index = 0;
    while pos < batch.len() {
        let Some(length) = varlong(batch, &mut pos).and_then(|l| usize::try_from(l).ok()) else {
            return false;
        };
        let Some(end) = pos.checked_add(length) else {
            return false;
        };
        let mut field = pos + 1; // the record's attributes byte
        let Some(delta) = batch
            .get(..end)
            .and_then(|record| varlong(record, &mut field))
        else {
            return false;
        };
        visit(index, base_timestamp.saturating_add(delta));
        index += 1;
        pos = end;
    }
    true
}

/// Checks every batch of one partition's payload against the topic's timestamp bounds.
pub fn check(
    config: &LogConfig,
    payload: &[u8],
    batches: &[BatchSummary],
    now_ms: i64,
) -> Result<(), TimestampRefusal> {
    if config.message_timestamp_type != TimestampType::CreateTime {
        return Ok(());
    }
    let (before, after) = config.timestamp_bounds_ms();
    if before == i64::MAX && after == i64::MAX {
        return Ok(());
    }
    let (lowest, highest) = (now_ms.saturating_sub(before), now_ms.saturating_add(after));
    let mut record_errors = Vec::new();
    let mut note = |index: i32, timestamp: i64| {
        // Kafka skips records without a create time (NO_TIMESTAMP).
        let out_of_range = timestamp != NO_TIMESTAMP && (timestamp < lowest || timestamp > highest);
        if out_of_range && record_errors.len() < MAX_RECORD_ERRORS {
            record_errors.push((
                index,
                format!(
                    "Timestamp {timestamp} of message with offset {index} is out of range. The timestamp should be within [{lowest}, {highest}]"
                ),
            ));
        }
    };
    for b in batches {
        let h = &b.header;
        // Kafka 4.x's defaults bound only the future (after = 1 hour): the header's max
        // timestamp answers for every record of the batch without reading one, so the
        // default costs one comparison per batch. Records are read only to name offenders.
        if before == i64::MAX && h.max_timestamp <= highest {
            continue;
        }
        let uncompressed = h.attributes & COMPRESSION_MASK == 0;
        let parsed = uncompressed
            && payload
                .get(b.position..b.position + b.size_bytes())
                .is_some_and(|bytes| for_each_record_timestamp(bytes, h.base_timestamp, &mut note));
        if !parsed {
            note(0, h.base_timestamp);
            note(h.last_offset_delta, h.max_timestamp);
        }
    }
    if record_errors.is_empty() {
        return Ok(());
    }
    Err(TimestampRefusal {
        message: "One or more records have been rejected due to invalid timestamp".into(),
        record_errors,
    })
}
