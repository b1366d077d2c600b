//! Durable committed offsets: one append-only log file per consumer group at
//! `<data_dir>/__consumer_offsets/<escaped group id>.log`.
//!
//! Why per group and not per shard: group ownership is `hash(group) mod shard_count`, and the
//! shard count may change between runs. With one file per group, a shard's start-up only
//! decodes file names and loads the groups it owns now; no file is ever shared by two
//! shards, so there is no cross-shard merge or race on compaction.
//!
//! Record frame (little endian): `payload_len u32 | crc32c(payload) u32 | payload`.
//! Payload: `kind u8 | commit_ms i64 | group (u16 len + bytes)` then, for commits and
//! partition tombstones, `topic (u16 len + bytes) | partition i32`, and for commits
//! `offset i64 | leader_epoch i32 | metadata (u32 len + bytes)`.
//! Replay stops at the first frame that is short, oversized or fails its CRC (a torn tail
//! from a crash) and truncates the file there.
//!
//! Owns: the file format, file naming, replay and the (async, compio) append/fsync and
//! snapshot primitives. Must not: decide *when* to flush or compact, or touch group
//! membership — `GroupCoordinator` drives that.

use crate::storage::frames;
use crate::storage::le_reader::LeReader;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Sub-directory of the data dir holding the group logs (Kafka's internal topic name, so an
/// operator recognises it).
pub const OFFSETS_DIR_NAME: &str = "__consumer_offsets";
/// Largest payload a frame may carry; anything larger on replay is corruption.
pub const MAX_RECORD_PAYLOAD_BYTES: u32 = 64 * 1024;
/// Escaped group ids longer than this cannot be a file name (255 bytes minus `.log.tmp`).
pub const MAX_ESCAPED_GROUP_ID_BYTES: usize = 240;
/// Bytes of frame header in front of every payload.
pub use crate::storage::frames::FRAME_HEADER_BYTES;

const KIND_COMMIT: u8 = 1;
const KIND_DELETE_PARTITION: u8 = 2;
const KIND_DELETE_GROUP: u8 = 3;

/// One committed offset as stored and served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// Wall-clock commit time, for retention.
    pub commit_ms: i64,
}

/// Offsets of one group: topic -> partition -> entry (sorted, so fetch-all is stable).
pub type GroupOffsets = BTreeMap<String, BTreeMap<i32, OffsetEntry>>;

/// One logical change to a group's offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRecord {
    Commit {
        topic: String,
        partition: i32,
        entry: OffsetEntry,
    },
    DeletePartition {
        topic: String,
        partition: i32,
        at_ms: i64,
    },
    /// Retention: the partition's offset goes if it is still the commit of `commit_ms`
    /// (in cluster mode a newer commit may be applied between the decision and this).
    /// Written to a file as a `DeletePartition` at `commit_ms`: a file is applied in the
    /// order it was decided, so there it is the same.
    ExpirePartition {
        topic: String,
        partition: i32,
        commit_ms: i64,
    },
    /// Every offset of the group is gone (DeleteGroups).
    DeleteGroup { at_ms: i64 },
}

impl LogRecord {
    /// Applies the change to the in-memory state (replay and live commits share this).
    pub fn apply(&self, offsets: &mut GroupOffsets) {
        match self {
            LogRecord::Commit {
                topic,
                partition,
                entry,
            } => {
                offsets
                    .entry(topic.clone())
                    .or_default()
                    .insert(*partition, entry.clone());
            }
            LogRecord::DeletePartition {
                topic, partition, ..
            } => {
                if let Some(parts) = offsets.get_mut(topic) {
                    parts.remove(partition);
                    if parts.is_empty() {
                        offsets.remove(topic);
                    }
                }
            }
            LogRecord::ExpirePartition {
                topic,
                partition,
                commit_ms,
            } => {
                let expired = offsets
                    .get(topic)
                    .and_then(|parts| parts.get(partition))
                    .is_some_and(|e| e.commit_ms <= *commit_ms);
                if expired {
                    LogRecord::DeletePartition {
                        topic: topic.clone(),
                        partition: *partition,
                        at_ms: *commit_ms,
                    }
                    .apply(offsets);
                }
            }
            LogRecord::DeleteGroup { .. } => offsets.clear(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OffsetLogError {
    #[error("cannot list {dir}: {source}")]
    ListDir { dir: PathBuf, source: io::Error },
    #[error("cannot read offsets log {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot truncate torn tail of {path}: {source}")]
    Truncate { path: PathBuf, source: io::Error },
    #[error("cannot create {dir}: {source}")]
    CreateDir { dir: PathBuf, source: io::Error },
}

/// `<data_dir>/__consumer_offsets`.
pub fn offsets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(OFFSETS_DIR_NAME)
}

/// Reversible file-name escaping: `[A-Za-z0-9_-]` kept, every other byte as `%XX`.
/// Returns None when the result would be too long for a file name.
pub fn escape_group_id(group_id: &str) -> Option<String> {
    let mut out = String::with_capacity(group_id.len());
    for b in group_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    (!out.is_empty() && out.len() <= MAX_ESCAPED_GROUP_ID_BYTES).then_some(out)
}

pub fn unescape_group_id(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The log file of a group, or None if the group id cannot be a file name.
pub fn log_path(dir: &Path, group_id: &str) -> Option<PathBuf> {
    escape_group_id(group_id).map(|name| dir.join(format!("{name}.log")))
}

fn put_str16(buf: &mut Vec<u8>, s: &str) {
    // Callers bound these lengths (group id <= MAX_ESCAPED_GROUP_ID_BYTES, topic names are
    // validated upstream); clamp defensively rather than write a length that lies.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Appends one framed record to `buf`.
pub fn encode_record(buf: &mut Vec<u8>, group_id: &str, record: &LogRecord) {
    let start = frames::begin_frame(buf);
    let (kind, at_ms) = match record {
        LogRecord::Commit { entry, .. } => (KIND_COMMIT, entry.commit_ms),
        LogRecord::DeletePartition { at_ms, .. } => (KIND_DELETE_PARTITION, *at_ms),
        LogRecord::ExpirePartition { commit_ms, .. } => (KIND_DELETE_PARTITION, *commit_ms),
        LogRecord::DeleteGroup { at_ms } => (KIND_DELETE_GROUP, *at_ms),
    };
    buf.push(kind);
    buf.extend_from_slice(&at_ms.to_le_bytes());
    put_str16(buf, group_id);
    match record {
        LogRecord::Commit {
            topic,
            partition,
            entry,
        } => {
            put_str16(buf, topic);
            buf.extend_from_slice(&partition.to_le_bytes());
            buf.extend_from_slice(&entry.offset.to_le_bytes());
            buf.extend_from_slice(&entry.leader_epoch.to_le_bytes());
            buf.extend_from_slice(&(entry.metadata.len() as u32).to_le_bytes());
            buf.extend_from_slice(entry.metadata.as_bytes());
        }
        LogRecord::DeletePartition {
            topic, partition, ..
        }
        | LogRecord::ExpirePartition {
            topic, partition, ..
        } => {
            put_str16(buf, topic);
            buf.extend_from_slice(&partition.to_le_bytes());
        }
        LogRecord::DeleteGroup { .. } => {}
    }
    debug_assert!(buf.len() - start - FRAME_HEADER_BYTES <= MAX_RECORD_PAYLOAD_BYTES as usize);
    frames::end_frame(buf, start);
}

/// Size of the live state written as a snapshot: what compaction would leave.
pub fn encode_snapshot(group_id: &str, offsets: &GroupOffsets) -> Vec<u8> {
    let mut buf = Vec::new();
    for (topic, parts) in offsets {
        for (partition, entry) in parts {
            let record = LogRecord::Commit {
                topic: topic.clone(),
                partition: *partition,
                entry: entry.clone(),
            };
            encode_record(&mut buf, group_id, &record);
        }
    }
    buf
}

fn decode_payload(payload: &[u8]) -> Option<(String, LogRecord)> {
    let mut r = LeReader::new(payload);
    let kind = r.u8()?;
    let at_ms = r.i64()?;
    let group = r.str16()?;
    let record = match kind {
        KIND_COMMIT => {
            let topic = r.str16()?;
            let partition = r.i32()?;
            let offset = r.i64()?;
            let leader_epoch = r.i32()?;
            let metadata = r.str32()?;
            LogRecord::Commit {
                topic,
                partition,
                entry: OffsetEntry {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_ms: at_ms,
                },
            }
        }
        KIND_DELETE_PARTITION => LogRecord::DeletePartition {
            topic: r.str16()?,
            partition: r.i32()?,
            at_ms,
        },
        KIND_DELETE_GROUP => LogRecord::DeleteGroup { at_ms },
        _ => return None,
    };
    r.is_at_end().then_some((group, record))
}

/// Decodes frames from the start of `bytes`; returns the records and the length of the
/// valid prefix (everything after it is a torn or corrupt tail).
pub fn decode_log(bytes: &[u8]) -> (Vec<(String, LogRecord)>, usize) {
    frames::decode_frames(bytes, MAX_RECORD_PAYLOAD_BYTES, decode_payload)
}

/// A group's offsets as replayed from its log at start-up.
pub struct LoadedGroup {
    pub group_id: String,
    pub path: PathBuf,
    pub offsets: GroupOffsets,
    pub log_len_bytes: u64,
}

/// Loads every group log in `dir` whose group `owns` accepts. Torn tails are truncated;
/// leftover snapshot temp files of owned groups are removed.
pub fn load_owned(
    dir: &Path,
    owns: impl Fn(&str) -> bool,
) -> Result<Vec<LoadedGroup>, OffsetLogError> {
    crate::storage::state::create_dir_durably(dir).map_err(|source| OffsetLogError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let entries = std::fs::read_dir(dir).map_err(|source| OffsetLogError::ListDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut loaded = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| OffsetLogError::ListDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let path = entry.path();
        if let Some(stem) = name.strip_suffix(".log.tmp") {
            // A compaction that crashed before its rename: the .log is still whole.
            if unescape_group_id(stem).is_some_and(|g| owns(&g)) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        let Some(group_id) = unescape_group_id(stem) else {
            tracing::warn!(file = %path.display(), "ignoring offsets log with an undecodable name");
            continue;
        };
        if !owns(&group_id) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| OffsetLogError::Read {
            path: path.clone(),
            source,
        })?;
        let (records, valid_len) = decode_log(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                valid_len,
                file_len = bytes.len(),
                "offsets log has a torn or corrupt tail; truncating"
            );
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| {
                    f.set_len(valid_len as u64)?;
                    f.sync_all()
                });
            file.map_err(|source| OffsetLogError::Truncate {
                path: path.clone(),
                source,
            })?;
        }
        let mut offsets = GroupOffsets::new();
        for (record_group, record) in &records {
            if *record_group != group_id {
                tracing::warn!(file = %path.display(), record_group, "skipping record of another group");
                continue;
            }
            record.apply(&mut offsets);
        }
        loaded.push(LoadedGroup {
            group_id,
            path,
            offsets,
            log_len_bytes: valid_len as u64,
        });
    }
    Ok(loaded)
}

pub use crate::storage::frames::{
    append_durably, open_for_append, replace_with_snapshot, sync_dir,
};

/// Removes a group's log (its live state is empty) durably.
pub fn remove_log(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_id_escaping_round_trips_and_is_a_safe_file_name() {
        for id in ["orders", "my.group/../x", "ü-ß %", "a_b-C9"] {
            let escaped = escape_group_id(id).unwrap();
            assert!(!escaped.contains('/') && !escaped.contains('.'));
            assert_eq!(unescape_group_id(&escaped).as_deref(), Some(id));
        }
        assert!(escape_group_id("").is_none());
        assert!(escape_group_id(&"x".repeat(241)).is_none());
    }

    #[test]
    fn an_expiry_spares_a_commit_made_after_the_one_it_expired() {
        let commit = |offset, commit_ms| LogRecord::Commit {
            topic: "t".into(),
            partition: 0,
            entry: OffsetEntry {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_ms,
            },
        };
        let expire = LogRecord::ExpirePartition {
            topic: "t".into(),
            partition: 0,
            commit_ms: 10,
        };
        let mut offsets = GroupOffsets::new();
        commit(5, 10).apply(&mut offsets);
        commit(6, 11).apply(&mut offsets);
        expire.apply(&mut offsets);
        assert_eq!(offsets["t"][&0].offset, 6, "the newer commit stays");
        commit(7, 9).apply(&mut offsets);
        expire.apply(&mut offsets);
        assert!(offsets.is_empty(), "the expired commit goes");
        // In a file it is a tombstone of the partition.
        let mut buf = Vec::new();
        encode_record(&mut buf, "g", &expire);
        let (decoded, _) = decode_log(&buf);
        assert!(matches!(
            decoded[0].1,
            LogRecord::DeletePartition { at_ms: 10, .. }
        ));
    }

    #[test]
    fn records_round_trip_and_torn_tail_is_cut() {
        let records = vec![
            LogRecord::Commit {
                topic: "t".into(),
                partition: 3,
                entry: OffsetEntry {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: "m".into(),
                    commit_ms: 7,
                },
            },
            LogRecord::DeletePartition {
                topic: "t".into(),
                partition: 3,
                at_ms: 8,
            },
            LogRecord::DeleteGroup { at_ms: 9 },
        ];
        let mut buf = Vec::new();
        for r in &records {
            encode_record(&mut buf, "g", r);
        }
        let full_len = buf.len();
        let (decoded, valid) = decode_log(&buf);
        assert_eq!(valid, full_len);
        assert_eq!(
            decoded.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records
        );
        // A torn write of a fourth record, and a flipped bit in the third.
        encode_record(&mut buf, "g", &LogRecord::DeleteGroup { at_ms: 10 });
        buf.truncate(buf.len() - 3);
        let (decoded, valid) = decode_log(&buf);
        assert_eq!((decoded.len(), valid), (3, full_len));
        let last = full_len - 1;
        buf[last] ^= 0x40;
        let (decoded, _) = decode_log(&buf);
        assert_eq!(decoded.len(), 2);
    }
}
