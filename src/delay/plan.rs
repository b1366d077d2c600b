//! Which records of a produce payload ask for a delay, and until when: the produce path's
//! check. A payload on a topic without `sluice.delivery.delay.ms` costs one walk over the
//! record framing (length, key and value skipped by their lengths, header keys compared):
//! a few varints per record, never a pass over the record bytes. Only a payload with a delay
//! header is parsed further.
//!
//! Owns: the header value rules (decimal milliseconds, `[log] delivery_delay_max_ms`) and
//! the split of each record into its timestamp and the bytes kept verbatim in the delay log
//! (key, value and headers). Must not: allocate on the fast path (no delay anywhere).

use bytes::{BufMut, Bytes, BytesMut};

use super::{DELAY_HEADER, DELIVER_AT_HEADER, HEADER_KEY_PREFIX};
use crate::storage::batch::{BatchSummary, RECORD_BATCH_HEADER_BYTES, read_varint};

/// Digits a header value may have (i64::MAX has 19).
const DECIMAL_DIGITS_MAX: usize = 19;

/// One record bound for the delay log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayedRecord {
    /// Epoch milliseconds at which it may be appended to its partition.
    pub due_ms: i64,
    /// The record's own timestamp (batch base timestamp + its delta), kept on delivery.
    pub timestamp_ms: i64,
    /// The record's bytes from its key length on: key, value, headers, verbatim.
    pub tail: Bytes,
}

/// A record's delay request was malformed or too long: INVALID_RECORD, with the record's
/// index in its batch (Kafka's `RecordError.batch_index`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayRefused {
    pub batch_index: i32,
    pub message: String,
}

/// What the topic and broker allow.
#[derive(Debug, Clone, Copy)]
pub struct DelayRules {
    /// `sluice.delivery.delay.ms` of the topic (0: records without a header are not delayed).
    pub topic_delay_ms: i64,
    /// `[log] delivery_delay_max_ms`.
    pub max_delay_ms: i64,
    /// When the broker received the records (epoch ms): delays count from here.
    pub receipt_ms: i64,
}

/// Cheap test: may this payload carry a delay at all? False means "append as usual" and is
/// the answer for every payload on a topic without a delay whose uncompressed batches have no
/// record with a header key starting with the delay prefix. Compressed batches are not looked
/// into (decision 0009): on a topic without a delay they are stored as sent.
///
/// This replaced a memmem pass over the whole payload, which cost about 0.5 instructions per
/// byte, 14 % of the broker's instructions for 1 KiB records (`perf/instructions.sh`); the
/// walk costs a few varint reads per record whatever the record size.
pub fn may_delay(records: &[u8], batches: &[BatchSummary], rules: &DelayRules) -> bool {
    rules.topic_delay_ms > 0
        || batches.iter().any(|batch| {
            batch.header.compression() == 0
                && records
                    .get(batch.position..batch.position + batch.size_bytes())
                    .is_some_and(|bytes| has_delay_header(bytes, batch.header.record_count))
        })
}

/// Whether any record of an uncompressed batch has a header key starting with the delay
/// prefix. Reads only the framing: each record's length, its key and value lengths (their
/// bytes skipped) and its header keys. A record whose framing does not parse ends the walk
/// with false, as the memmem pass it replaced would have for a payload without the prefix:
/// the batch's CRC held, and the delay path's own parse reports malformed records when a
/// delay header does appear.
fn has_delay_header(batch_bytes: &[u8], record_count: i32) -> bool {
    let Some(body) = batch_bytes.get(RECORD_BATCH_HEADER_BYTES..) else {
        return false;
    };
    let mut at = 0usize;
    for _ in 0..record_count.max(0) {
        let Some(end) = read_varint(body, &mut at)
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| at.checked_add(len))
            .filter(|&end| end <= body.len())
        else {
            return false;
        };
        let record = &body[..end];
        let mut p = at + 1; // attributes
        let has = (|| {
            read_varint(record, &mut p)?; // timestamp delta
            read_varint(record, &mut p)?; // offset delta
            skip_bytes(record, &mut p)?; // key
            skip_bytes(record, &mut p)?; // value
            let header_count = read_varint(record, &mut p)?;
            for _ in 0..header_count.max(0) {
                let key = read_bytes(record, &mut p)?.unwrap_or_default();
                if key.starts_with(HEADER_KEY_PREFIX) {
                    return Some(true);
                }
                skip_bytes(record, &mut p)?; // value
            }
            Some(false)
        })();
        match has {
            Some(true) => return true,
            Some(false) => at = end,
            None => return false,
        }
    }
    false
}

/// The payload's records with their due times when at least one of them is due after its
/// receipt (then all of them go to the delay log); `Ok(None)` when none is. Compressed
/// batches are decompressed only here, i.e. only on the delay path (decision 0009).
pub fn plan(
    records: &Bytes,
    batches: &[BatchSummary],
    rules: &DelayRules,
) -> Result<Option<Vec<DelayedRecord>>, DelayRefused> {
    if !may_delay(records, batches, rules) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for batch in batches {
        let bytes = records.slice(batch.position..batch.position + batch.size_bytes());
        if batch.header.compression() != 0 {
            decoded_records(&bytes, rules, &mut out)?;
        } else {
            uncompressed_records(&bytes, batch, rules, &mut out)?;
        }
    }
    if out.iter().all(|r| r.due_ms <= rules.receipt_ms) {
        return Ok(None);
    }
    Ok(Some(out))
}

fn malformed(batch_index: i32) -> DelayRefused {
    DelayRefused {
        batch_index,
        message: format!(
            "record {batch_index}: malformed record in a batch asking for delayed delivery"
        ),
    }
}

/// Walks an uncompressed batch record by record (no decoding beyond the headers).
fn uncompressed_records(
    batch_bytes: &Bytes,
    batch: &BatchSummary,
    rules: &DelayRules,
    out: &mut Vec<DelayedRecord>,
) -> Result<(), DelayRefused> {
    let body = batch_bytes.slice(RECORD_BATCH_HEADER_BYTES.min(batch_bytes.len())..);
    let mut at = 0usize;
    for index in 0..batch.header.record_count.max(0) {
        let bad = || malformed(index);
        let len = read_varint(&body, &mut at).ok_or_else(bad)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= body.len())
            .ok_or_else(bad)?;
        let record = &body[..end];
        let mut p = at + 1; // attributes
        let timestamp_delta = read_varint(record, &mut p).ok_or_else(bad)?;
        read_varint(record, &mut p).ok_or_else(bad)?; // offset delta
        let tail_start = p;
        skip_bytes(record, &mut p).ok_or_else(bad)?; // key
        skip_bytes(record, &mut p).ok_or_else(bad)?; // value
        let header_count = read_varint(record, &mut p).ok_or_else(bad)?;
        let mut request = DelayRequest::default();
        for _ in 0..header_count.max(0) {
            let key = read_bytes(record, &mut p).ok_or_else(bad)?;
            let value = read_bytes(record, &mut p).ok_or_else(bad)?;
            request.note(key.unwrap_or_default(), value, index)?;
        }
        if p != end {
            return Err(bad());
        }
        out.push(DelayedRecord {
            due_ms: request.due_ms(rules, index)?,
            timestamp_ms: batch.header.base_timestamp.saturating_add(timestamp_delta),
            tail: body.slice(tail_start..end),
        });
        at = end;
    }
    Ok(())
}

/// A compressed batch on the delay path: decompressed, and each record's tail re-encoded.
fn decoded_records(
    batch_bytes: &Bytes,
    rules: &DelayRules,
    out: &mut Vec<DelayedRecord>,
) -> Result<(), DelayRefused> {
    let mut bytes = batch_bytes.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).map_err(|e| {
        DelayRefused {
            batch_index: 0,
            message: format!("compressed batch asking for delayed delivery: {e}"),
        }
    })?;
    for (index, record) in (0i32..).zip(&set.records) {
        let mut request = DelayRequest::default();
        let mut tail = BytesMut::new();
        put_bytes(&mut tail, record.key.as_deref());
        put_bytes(&mut tail, record.value.as_deref());
        put_varint(&mut tail, record.headers.len() as i64);
        for (key, value) in &record.headers {
            request.note(key.as_bytes(), value.as_deref(), index)?;
            put_bytes(&mut tail, Some(key.as_bytes()));
            put_bytes(&mut tail, value.as_deref());
        }
        out.push(DelayedRecord {
            due_ms: request.due_ms(rules, index)?,
            timestamp_ms: record.timestamp,
            tail: tail.freeze(),
        });
    }
    Ok(())
}

/// The delay headers one record carries.
#[derive(Default)]
struct DelayRequest {
    delay_ms: Option<i64>,
    deliver_at_ms: Option<i64>,
}

impl DelayRequest {
    fn note(&mut self, key: &[u8], value: Option<&[u8]>, index: i32) -> Result<(), DelayRefused> {
        let slot = if key == DELAY_HEADER {
            &mut self.delay_ms
        } else if key == DELIVER_AT_HEADER {
            &mut self.deliver_at_ms
        } else {
            return Ok(());
        };
        let name = String::from_utf8_lossy(key);
        let refuse = |why: String| DelayRefused {
            batch_index: index,
            message: format!("record {index}: header {name} {why}"),
        };
        if slot.is_some() {
            return Err(refuse("appears more than once".into()));
        }
        let value = value.ok_or_else(|| refuse("has a null value".into()))?;
        *slot = Some(parse_decimal_ms(value).ok_or_else(|| {
            refuse(format!(
                "value {:?} is not a non-negative decimal number of milliseconds",
                String::from_utf8_lossy(&value[..value.len().min(32)])
            ))
        })?);
        Ok(())
    }

    /// The record's due time under the rules.
    fn due_ms(&self, rules: &DelayRules, index: i32) -> Result<i64, DelayRefused> {
        let refuse = |message: String| DelayRefused {
            batch_index: index,
            message: format!("record {index}: {message}"),
        };
        let delay = match (self.delay_ms, self.deliver_at_ms) {
            (Some(_), Some(_)) => {
                return Err(refuse(
                    "both sluice.delay.ms and sluice.deliver.at.ms are set; use one".into(),
                ));
            }
            (Some(delay), None) => delay,
            (None, Some(at)) => at.saturating_sub(rules.receipt_ms).max(0),
            (None, None) => rules.topic_delay_ms.max(0),
        };
        if delay > rules.max_delay_ms {
            return Err(refuse(format!(
                "a delay of {delay} ms exceeds the broker's delivery_delay_max_ms ({} ms)",
                rules.max_delay_ms
            )));
        }
        Ok(rules.receipt_ms.saturating_add(delay))
    }
}

/// `1..=19` ASCII digits that fit an i64.
fn parse_decimal_ms(value: &[u8]) -> Option<i64> {
    if value.is_empty() || value.len() > DECIMAL_DIGITS_MAX || !value.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse::<i64>().ok()
}

/// Skips a varint-length-prefixed field (length -1: null).
fn skip_bytes(buf: &[u8], at: &mut usize) -> Option<()> {
    read_bytes(buf, at).map(|_| ())
}

/// A varint-length-prefixed field: `Some(None)` when null.
fn read_bytes<'a>(buf: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varint(buf, at)?;
    if len < 0 {
        return Some(None);
    }
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let field = buf.get(*at..end)?;
    *at = end;
    Some(Some(field))
}

/// Appends a zig-zag varint (Kafka record encoding).
pub fn put_varint(out: &mut BytesMut, value: i64) {
    let mut z = ((value << 1) ^ (value >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

fn put_bytes(out: &mut BytesMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.put_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests;
