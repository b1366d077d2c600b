//! One page of the console's message browser: records read from a partition on its owning
//! shard, decoded, and shaped as JSON (keys, values and header values as UTF-8 text when
//! they are, as hex otherwise; the page decides nothing about JSON — the console pretty-prints).
//!
//! Owns: the page's byte and record limits. Must not: read past the high watermark or show
//! control records (transaction markers are not messages).

use crate::admin::console::api::ConsoleError;
use crate::partition::{Isolation, Partition};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde_json::{Value, json};

pub struct Page {
    pub records: Vec<Value>,
    /// Where the next page starts (the end offset when this one reached it).
    pub next_offset: i64,
}

/// Reads records from `start` until `max_bytes` of keys, values and headers (the first record
/// always fits) or `max_records`, whichever comes first.
pub async fn read_page(
    partition: &Partition,
    start: i64,
    max_bytes: u32,
    max_records: usize,
) -> Result<Page, ConsoleError> {
    let unavailable = |e: &dyn std::fmt::Display| ConsoleError::Unavailable(e.to_string());
    let mut page = Page {
        records: Vec::new(),
        next_offset: start,
    };
    if start >= partition.high_watermark() {
        return Ok(page);
    }
    let slice = partition
        .read(start, max_bytes, Isolation::ReadUncommitted)
        .await
        .map_err(|e| unavailable(&e))?;
    let mut bytes_shown: u64 = 0;
    'regions: for region in &slice.regions {
        let raw = region.read_to_vec().await.map_err(|e| unavailable(&e))?;
        let mut buf = bytes::Bytes::from(raw);
        let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
            ConsoleError::Unavailable(format!("cannot decode a batch near offset {start}: {e}"))
        })?;
        for record in sets.iter().flat_map(|s| s.records.iter()) {
            if record.offset < page.next_offset {
                continue;
            }
            if record.control {
                page.next_offset = record.offset + 1;
                continue;
            }
            let size = record_size(record);
            let full = !page.records.is_empty()
                && (bytes_shown + size > u64::from(max_bytes) || page.records.len() >= max_records);
            if full {
                break 'regions;
            }
            bytes_shown += size;
            page.records.push(record_json(record));
            page.next_offset = record.offset + 1;
        }
    }
    Ok(page)
}

fn record_size(record: &Record) -> u64 {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
    let headers: u64 = record
        .headers
        .iter()
        .map(|(k, v)| k.len() as u64 + len(v))
        .sum();
    len(&record.key) + len(&record.value) + headers
}

fn record_json(record: &Record) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": k.to_string(), "value": bytes_json(v.as_deref()) }))
        .collect();
    json!({
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": bytes_json(record.key.as_deref()),
        "value": bytes_json(record.value.as_deref()),
        "headers": headers,
    })
}

/// `null`, `{"text": ...}` for valid UTF-8, or `{"hex": ...}` for anything else.
pub fn bytes_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json!({ "text": text }),
            Err(_) => {
                let mut hex = String::with_capacity(b.len() * 2);
                for byte in b {
                    hex.push_str(&format!("{byte:02x}"));
                }
                json!({ "hex": hex })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_show_as_text_or_hex() {
        assert_eq!(bytes_json(None), Value::Null);
        assert_eq!(bytes_json(Some(b"{\"a\":1}")), json!({"text": "{\"a\":1}"}));
        assert_eq!(
            bytes_json(Some(&[0xff, 0x00, 0x1a])),
            json!({"hex": "ff001a"})
        );
    }
}
