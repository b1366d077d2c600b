//! The durable transaction log: `TXN_LOG_SLOTS` append-only files at
//! `<data_dir>/__transaction_state/<slot:02>.log`, like the partitions of Kafka's internal
//! `__transaction_state` topic. A transactional id always lives in slot
//! `fnv1a32(id) % TXN_LOG_SLOTS`, and a slot belongs to shard `slot % shard_count`, so a
//! changed shard count needs no migration and every file has one writer; one slot's pending
//! changes share one write and one fdatasync (group commit). A slot is a unit that could be
//! replicated like any other partition (cluster mode).
//!
//! Record frame (little endian): `payload_len u32 | crc32c(payload) u32 | payload`.
//! Payload: `format u8 | update_ms i64 | id (u16 len + bytes) | producer_id i64 |
//! producer_epoch i16 | last_producer_id i64 | last_producer_epoch i16 | timeout_ms i32 |
//! state u8 | start_ms i64 | partitions (u32 count, then topic u16 len + bytes, partition
//! i32) | groups (u32 count, then u16 len + bytes) | offsets (u32 count, then group and
//! topic (u16 len + bytes each), partition i32, offset i64, leader_epoch i32, metadata (u16
//! len + bytes))`. Every record is the id's whole state,
//! so the last record of an id wins and compaction keeps one record per id. Replay stops at
//! the first short, oversized or CRC-failing frame (a torn tail) and truncates there.
//!
//! Owns: the file format, slot naming, replay. Must not: decide when to write or compact
//! (the coordinator does); the file primitives are the offsets log's
//! (`group::offset_log`), shared so both logs get the same crash-safety.

use crate::storage::frames;
use crate::storage::le_reader::LeReader;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::state::{TxnMetadata, TxnState};

/// Sub-directory of the data dir (Kafka's internal topic name, so operators recognise it).
pub const TXN_DIR_NAME: &str = "__transaction_state";
/// Slots of the log (Kafka's `transaction.state.log.num.partitions` default). Fixed
/// forever: an id's slot must not change between runs.
pub const TXN_LOG_SLOTS: usize = 50;
/// Largest payload a frame may carry (a transaction of `MAX_PARTITIONS_PER_TRANSACTION`
/// partitions with long topic names fits); anything larger on replay is corruption.
pub const MAX_RECORD_PAYLOAD_BYTES: u32 = 16 * 1024 * 1024;
pub use crate::storage::frames::FRAME_HEADER_BYTES;
const RECORD_FORMAT: u8 = 2;
/// Records written before transactions v2: no `next_producer_id`, read as NO_PRODUCER_ID.
const RECORD_FORMAT_V1: u8 = 1;

/// The slot an id's records go to.
pub fn slot_of(transactional_id: &str) -> usize {
    crate::shard::placement::fnv1a32(transactional_id.as_bytes()) as usize % TXN_LOG_SLOTS
}

/// `<data_dir>/__transaction_state`.
pub fn txn_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TXN_DIR_NAME)
}

pub fn slot_path(dir: &Path, slot: usize) -> PathBuf {
    dir.join(format!("{slot:02}.log"))
}

fn put_str16(buf: &mut Vec<u8>, s: &str) {
    // Ids are bounded by MAX_TRANSACTIONAL_ID_BYTES, topics and groups upstream; clamp
    // defensively rather than write a length that lies.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Appends one framed record holding `meta` whole to `buf`.
pub fn encode_record(buf: &mut Vec<u8>, meta: &TxnMetadata) {
    let start = frames::begin_frame(buf);
    buf.push(RECORD_FORMAT);
    buf.extend_from_slice(&meta.update_ms.to_le_bytes());
    put_str16(buf, &meta.transactional_id);
    buf.extend_from_slice(&meta.producer_id.to_le_bytes());
    buf.extend_from_slice(&meta.producer_epoch.to_le_bytes());
    buf.extend_from_slice(&meta.last_producer_id.to_le_bytes());
    buf.extend_from_slice(&meta.last_producer_epoch.to_le_bytes());
    buf.extend_from_slice(&meta.timeout_ms.to_le_bytes());
    buf.push(meta.state.code());
    buf.extend_from_slice(&meta.start_ms.to_le_bytes());
    buf.extend_from_slice(&(meta.partitions.len() as u32).to_le_bytes());
    for (topic, partition) in &meta.partitions {
        put_str16(buf, topic);
        buf.extend_from_slice(&partition.to_le_bytes());
    }
    buf.extend_from_slice(&(meta.groups.len() as u32).to_le_bytes());
    for group in &meta.groups {
        put_str16(buf, group);
    }
    buf.extend_from_slice(&(meta.offsets.len() as u32).to_le_bytes());
    for ((group, topic, partition), o) in &meta.offsets {
        put_str16(buf, group);
        put_str16(buf, topic);
        buf.extend_from_slice(&partition.to_le_bytes());
        buf.extend_from_slice(&o.offset.to_le_bytes());
        buf.extend_from_slice(&o.leader_epoch.to_le_bytes());
        put_str16(buf, &o.metadata);
    }
    buf.extend_from_slice(&meta.next_producer_id.to_le_bytes());
    debug_assert!(buf.len() - start - FRAME_HEADER_BYTES <= MAX_RECORD_PAYLOAD_BYTES as usize);
    frames::end_frame(buf, start);
}

/// One id's whole state as a single frame: what cluster mode's `TxnState` metadata record
/// carries (decision 0022), so the replicated state and the slot log share one format.
pub fn encode_state(meta: &TxnMetadata) -> Vec<u8> {
    let mut buf = Vec::with_capacity(record_len(meta) as usize);
    encode_record(&mut buf, meta);
    buf
}

/// The state `encode_state` wrote: exactly one whole, checksummed frame, else `None`.
pub fn decode_state(bytes: &[u8]) -> Option<TxnMetadata> {
    let (mut records, valid_len) = decode_log(bytes);
    if valid_len != bytes.len() || records.len() != 1 {
        return None;
    }
    records.pop()
}

/// Bytes `encode_record` takes for `meta` (for the compaction ratio, without encoding).
pub fn record_len(meta: &TxnMetadata) -> u64 {
    let fixed = FRAME_HEADER_BYTES + 1 + 8 + 2 + 8 + 2 + 8 + 2 + 4 + 1 + 8 + 4 + 4 + 4 + 8;
    let ids = meta.transactional_id.len()
        + meta
            .partitions
            .iter()
            .map(|(t, _)| 2 + t.len() + 4)
            .sum::<usize>()
        + meta.groups.iter().map(|g| 2 + g.len()).sum::<usize>()
        + meta
            .offsets
            .iter()
            .map(|((g, t, _), o)| 2 + g.len() + 2 + t.len() + 4 + 8 + 4 + 2 + o.metadata.len())
            .sum::<usize>();
    (fixed + ids) as u64
}

fn decode_payload(payload: &[u8]) -> Option<TxnMetadata> {
    let mut r = LeReader::new(payload);
    let format = r.u8()?;
    if format != RECORD_FORMAT && format != RECORD_FORMAT_V1 {
        return None;
    }
    let update_ms = r.i64()?;
    let transactional_id = r.str16()?;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let last_producer_id = r.i64()?;
    let last_producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_code(r.u8()?)?;
    let start_ms = r.i64()?;
    let mut partitions = std::collections::BTreeSet::new();
    for _ in 0..r.u32()? {
        let topic = r.str16()?;
        partitions.insert((topic, r.i32()?));
    }
    let mut groups = std::collections::BTreeSet::new();
    for _ in 0..r.u32()? {
        groups.insert(r.str16()?);
    }
    let mut offsets = super::state::TxnOffsets::new();
    for _ in 0..r.u32()? {
        let key = (r.str16()?, r.str16()?, r.i32()?);
        let offset = super::state::TxnGroupOffset {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.str16()?,
        };
        offsets.insert(key, offset);
    }
    let next_producer_id = if format == RECORD_FORMAT_V1 {
        super::state::NO_PRODUCER_ID
    } else {
        r.i64()?
    };
    r.is_at_end().then_some(TxnMetadata {
        transactional_id,
        producer_id,
        producer_epoch,
        last_producer_id,
        last_producer_epoch,
        next_producer_id,
        timeout_ms,
        state,
        partitions,
        groups,
        offsets,
        start_ms,
        update_ms,
    })
}

/// Decodes frames from the start of `bytes`: the records and the valid prefix's length.
pub fn decode_log(bytes: &[u8]) -> (Vec<TxnMetadata>, usize) {
    frames::decode_frames(bytes, MAX_RECORD_PAYLOAD_BYTES, decode_payload)
}

#[derive(Debug, thiserror::Error)]
pub enum TxnLogError {
    #[error("cannot create {dir}: {source}")]
    CreateDir { dir: PathBuf, source: io::Error },
    #[error("cannot read transaction log {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot truncate torn tail of {path}: {source}")]
    Truncate { path: PathBuf, source: io::Error },
}

/// One slot as replayed at start-up: the last state of each id and the file's valid length.
pub struct LoadedSlot {
    pub slot: usize,
    pub txns: HashMap<String, TxnMetadata>,
    pub log_len_bytes: u64,
}

/// Replays the slots `owns` accepts; a torn tail is truncated, a leftover compaction temp
/// file removed.
pub fn load_owned(
    dir: &Path,
    owns: impl Fn(usize) -> bool,
) -> Result<Vec<LoadedSlot>, TxnLogError> {
    crate::storage::state::create_dir_durably(dir).map_err(|source| TxnLogError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut loaded = Vec::new();
    for slot in (0..TXN_LOG_SLOTS).filter(|s| owns(*s)) {
        let path = slot_path(dir, slot);
        let _ = std::fs::remove_file(path.with_extension("log.tmp"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(TxnLogError::Read { path, source }),
        };
        let (records, valid_len) = decode_log(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(file = %path.display(), valid_len, file_len = bytes.len(),
                "transaction log has a torn or corrupt tail; truncating");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| {
                    f.set_len(valid_len as u64)?;
                    f.sync_all()
                })
                .map_err(|source| TxnLogError::Truncate {
                    path: path.clone(),
                    source,
                })?;
        }
        let mut txns = HashMap::new();
        for meta in records {
            if slot_of(&meta.transactional_id) != slot {
                tracing::warn!(file = %path.display(), id = %meta.transactional_id,
                    "skipping a transactional id of another slot");
                continue;
            }
            if meta.state == TxnState::Dead {
                txns.remove(&meta.transactional_id);
            } else {
                txns.insert(meta.transactional_id.clone(), meta);
            }
        }
        loaded.push(LoadedSlot {
            slot,
            txns,
            log_len_bytes: valid_len as u64,
        });
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let mut m = TxnMetadata::new("orders-tx".into(), 9, 30_000, 5);
        m = m
            .with_added(&[("a".into(), 1), ("b".into(), 0)], Some("g"), 6)
            .unwrap();
        let offset = crate::txn::state::TxnGroupOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
        };
        m = m
            .with_offsets("g", vec![("in".into(), 2, offset)], 7)
            .unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, &m);
        assert_eq!(buf.len() as u64, record_len(&m));
        let whole = buf.len();
        encode_record(&mut buf, &m.bumped(7));
        buf.truncate(buf.len() - 2);
        let (records, valid) = decode_log(&buf);
        assert_eq!(valid, whole);
        assert_eq!(records, vec![m]);
        buf[whole - 1] ^= 1;
        assert!(decode_log(&buf).0.is_empty());
    }

    #[test]
    fn the_next_producer_id_survives_and_pre_v2_records_still_load() {
        let mut m = TxnMetadata::new("v2".into(), 9, 30_000, 5)
            .with_added(&[("a".into(), 0)], None, 6)
            .unwrap()
            .prepared_v2(true, 1234, 7);
        let mut buf = Vec::new();
        encode_record(&mut buf, &m);
        assert_eq!(buf.len() as u64, record_len(&m));
        assert_eq!(decode_log(&buf).0, vec![m.clone()]);

        // A format-1 record (written before transactions v2): same payload, no trailing id.
        m.next_producer_id = crate::txn::NO_PRODUCER_ID;
        let mut old = Vec::new();
        encode_record(&mut old, &m);
        let payload_end = old.len() - 8;
        let mut v1 = old[..payload_end].to_vec();
        v1[FRAME_HEADER_BYTES] = RECORD_FORMAT_V1;
        crate::storage::frames::end_frame(&mut v1, 0);
        assert_eq!(decode_log(&v1).0, vec![m]);
    }
}
