//! The durable Raft storage of the metadata quorum: the log, the hard state and the latest
//! snapshot, kept in memory for the Raft library (`raft::Storage`) and on disk under
//! `<data_dir>/meta/raft/`.
//!
//! `log` is an append-only file of frames `[u32 length][u32 crc32c][u8 kind][payload]`
//! (an entry or a hard state, protobuf-encoded), fdatasync'ed before the Raft library is told
//! they are persisted. Recovery replays it and stops at the first torn or corrupt frame (the
//! tail a crash left half-written), truncating it away. `snapshot` holds the state machine's
//! image at an index, replaced atomically; taking one rewrites `log` without the entries it
//! covers, so the log stays bounded (`MAX_UNCOMPACTED_ENTRIES`).
//! Must not: interpret entries (the state machine does) or do network I/O.

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const FRAME_HEADER_BYTES: usize = 9;
/// Largest frame recovery accepts: an entry is at most a proposal (`MAX_RECORD_BYTES`) plus
/// protobuf framing; anything longer is a corrupt length.
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Entries the log may hold past the last snapshot before proposals are refused until the
/// state machine takes a snapshot (it takes one every `SNAPSHOT_EVERY_ENTRIES`).
pub const MAX_UNCOMPACTED_ENTRIES: usize = 16_384;
/// Largest snapshot file read back (the whole metadata image).
const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("raft storage {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("raft snapshot {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
}

pub struct DurableLog {
    dir: PathBuf,
    file: std::fs::File,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// `entries[i].index == snapshot index + 1 + i`.
    entries: Vec<Entry>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LogStoreError + '_ {
    move |source| LogStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// The frames of `bytes` up to the first bad one, and how many bytes they cover.
fn read_frames(bytes: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= FRAME_HEADER_BYTES {
        let length =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if length == 0 || length > MAX_FRAME_BYTES || bytes.len() - at - 8 < length {
            break;
        }
        let body = &bytes[at + 8..at + 8 + length];
        if crc32c::crc32c(body) != crc {
            break;
        }
        frames.push((body[0], &body[1..]));
        at += 8 + length;
    }
    (frames, at)
}

impl DurableLog {
    /// Opens (or creates) the storage; a fresh one starts with `voters` as its configuration.
    pub fn open(dir: &Path, voters: &[u64]) -> Result<DurableLog, LogStoreError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let snapshot = read_snapshot(&dir.join("snapshot"))?;
        let log_path = dir.join("log");
        let mut bytes = Vec::new();
        match std::fs::File::open(&log_path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_error(&log_path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&log_path)(e)),
        }
        let conf_state = match &snapshot {
            Some(s) => s.get_metadata().get_conf_state().clone(),
            None => ConfState::from((voters.to_vec(), vec![])),
        };
        let mut store = DurableLog {
            dir: dir.to_path_buf(),
            file: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(io_error(&log_path))?,
            hard_state: HardState::default(),
            conf_state,
            snapshot: snapshot.unwrap_or_default(),
            entries: Vec::new(),
        };
        let (frames, good) = read_frames(&bytes);
        for (kind, payload) in frames {
            match kind {
                KIND_ENTRY => {
                    if let Ok(entry) = Entry::parse_from_bytes(payload) {
                        store.splice(vec![entry]);
                    }
                }
                KIND_HARD_STATE => {
                    if let Ok(hs) = HardState::parse_from_bytes(payload) {
                        store.hard_state = hs;
                    }
                }
                _ => {}
            }
        }
        if good < bytes.len() {
            tracing::warn!(
                path = %log_path.display(),
                kept = good,
                dropped = bytes.len() - good,
                "raft log ends in a torn or corrupt frame: truncated to the last whole one"
            );
            store
                .file
                .set_len(good as u64)
                .map_err(io_error(&log_path))?;
            store.file.sync_data().map_err(io_error(&log_path))?;
        }
        let snapshot_index = store.snapshot.get_metadata().index;
        if store.hard_state.commit < snapshot_index {
            store.hard_state.commit = snapshot_index;
        }
        if store.hard_state.term < store.snapshot.get_metadata().term {
            store.hard_state.term = store.snapshot.get_metadata().term;
        }
        Ok(store)
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    pub fn snapshot_data(&self) -> &[u8] {
        self.snapshot.get_data()
    }

    pub fn uncompacted_entries(&self) -> usize {
        self.entries.len()
    }

    /// In-memory append: drops any entries at or after the first new index (a new leader's
    /// log wins over an unacknowledged tail) and entries the snapshot already covers.
    fn splice(&mut self, new: Vec<Entry>) {
        let snapshot_index = self.snapshot_index();
        for entry in new {
            if entry.index <= snapshot_index {
                continue;
            }
            let keep = (entry.index - snapshot_index - 1) as usize;
            if keep < self.entries.len() {
                self.entries.truncate(keep);
            }
            if keep == self.entries.len() {
                self.entries.push(entry);
            }
        }
    }

    /// Appends entries and/or a new hard state, durably (fdatasync) before returning.
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), LogStoreError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for entry in entries {
            frame(
                KIND_ENTRY,
                &entry.write_to_bytes().unwrap_or_default(),
                &mut bytes,
            );
        }
        if let Some(hs) = hard_state {
            frame(
                KIND_HARD_STATE,
                &hs.write_to_bytes().unwrap_or_default(),
                &mut bytes,
            );
            self.hard_state = hs.clone();
        }
        self.splice(entries.to_vec());
        let path = self.dir.join("log");
        self.file.write_all(&bytes).map_err(io_error(&path))?;
        self.file.sync_data().map_err(io_error(&path))
    }

    /// Records a newer commit index (from a light ready); durable with the next write.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Installs a snapshot received from the leader: the log before it is gone.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), LogStoreError> {
        let meta = snapshot.get_metadata();
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        let index = meta.index;
        self.snapshot = snapshot;
        self.entries.retain(|e| e.index > index);
        self.rewrite()
    }

    /// Takes a snapshot of the state machine at `index` (applied, so committed) and drops
    /// the log entries it covers.
    pub fn compact(&mut self, index: u64, image: Vec<u8>) -> Result<(), LogStoreError> {
        if index <= self.snapshot_index() || index > self.hard_state.commit {
            return Ok(());
        }
        let term = raft::Storage::term(self, index).unwrap_or(self.hard_state.term);
        let mut snapshot = Snapshot::default();
        snapshot.set_data(image.into());
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        self.snapshot = snapshot;
        self.entries.retain(|e| e.index > index);
        self.rewrite()
    }

    /// Writes the snapshot, then a log of only the remaining entries, each atomically.
    fn rewrite(&mut self) -> Result<(), LogStoreError> {
        let snapshot_path = self.dir.join("snapshot");
        let mut bytes = Vec::new();
        frame(
            0,
            &self.snapshot.write_to_bytes().unwrap_or_default(),
            &mut bytes,
        );
        crate::metadata::write_atomically(&snapshot_path, &bytes)
            .map_err(io_error(&snapshot_path))?;
        let mut log = Vec::new();
        frame(
            KIND_HARD_STATE,
            &self.hard_state.write_to_bytes().unwrap_or_default(),
            &mut log,
        );
        for entry in &self.entries {
            frame(
                KIND_ENTRY,
                &entry.write_to_bytes().unwrap_or_default(),
                &mut log,
            );
        }
        let log_path = self.dir.join("log");
        crate::metadata::write_atomically(&log_path, &log).map_err(io_error(&log_path))?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io_error(&log_path))?;
        Ok(())
    }

    fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    fn last_index(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }
}

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, LogStoreError> {
    let corrupt = |message: String| LogStoreError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => {
            f.take(MAX_SNAPSHOT_BYTES)
                .read_to_end(&mut bytes)
                .map_err(io_error(path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    }
    // One frame, written atomically: a bad one is corruption, not a torn tail.
    let length = bytes.len().saturating_sub(8);
    let (frames, good) = read_frames_unbounded(&bytes);
    if good != bytes.len() || frames.is_none() {
        return Err(corrupt(format!("{length} bytes fail their checksum")));
    }
    let payload = frames.unwrap_or_default();
    Snapshot::parse_from_bytes(payload)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// The snapshot file's single frame (allowed up to `MAX_SNAPSHOT_BYTES`).
fn read_frames_unbounded(bytes: &[u8]) -> (Option<&[u8]>, usize) {
    if bytes.len() < FRAME_HEADER_BYTES {
        return (None, 0);
    }
    let length = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if length == 0 || bytes.len() - 8 != length {
        return (None, 0);
    }
    let body = &bytes[8..];
    if crc32c::crc32c(body) != crc {
        return (None, 0);
    }
    (Some(&body[1..]), bytes.len())
}

impl raft::Storage for DurableLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = self.first_index();
        let mut entries = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let snapshot_index = self.snapshot_index();
        if index == snapshot_index {
            return Ok(self.snapshot.get_metadata().term);
        }
        if index < snapshot_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(index - snapshot_index - 1) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(DurableLog::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(DurableLog::last_index(self))
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() == 0 || self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}").into_bytes().into(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_and_hard_state_survive_a_restart_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = DurableLog::open(dir.path(), &[1, 2, 3]).unwrap();
            let hs = HardState {
                term: 2,
                vote: 1,
                commit: 2,
                ..Default::default()
            };
            log.persist(&[entry(1, 1), entry(2, 1), entry(3, 1)], Some(&hs))
                .unwrap();
            // A new leader's entry 3 replaces the old, unacknowledged one.
            log.persist(&[entry(3, 2)], None).unwrap();
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("log"))
            .unwrap();
        file.write_all(&[42, 0, 0, 0, 1, 2]).unwrap();
        let log = DurableLog::open(dir.path(), &[1, 2, 3]).unwrap();
        let state = log.initial_state().unwrap();
        assert_eq!((state.hard_state.term, state.hard_state.vote), (2, 1));
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(log.term(3).unwrap(), 2);
        assert_eq!(Storage::last_index(&log).unwrap(), 3);
        let read = log
            .entries(1, 4, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(read[1].data.as_ref(), b"e2");
    }

    #[test]
    fn a_snapshot_compacts_the_log_and_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = DurableLog::open(dir.path(), &[1]).unwrap();
            let hs = HardState {
                term: 1,
                commit: 3,
                ..Default::default()
            };
            let entries: Vec<Entry> = (1..=4).map(|i| entry(i, 1)).collect();
            log.persist(&entries, Some(&hs)).unwrap();
            log.compact(3, b"image".to_vec()).unwrap();
            assert_eq!(log.uncompacted_entries(), 1);
        }
        let log = DurableLog::open(dir.path(), &[1]).unwrap();
        assert_eq!(log.snapshot_index(), 3);
        assert_eq!(log.snapshot_data(), b"image");
        assert_eq!(Storage::first_index(&log).unwrap(), 4);
        assert!(log.term(2).is_err());
        assert_eq!(log.snapshot(0, 0).unwrap().get_metadata().index, 3);
        // A corrupt snapshot is an error at start, never silently empty metadata.
        let path = dir.path().join("snapshot");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(DurableLog::open(dir.path(), &[1]).is_err());
    }
}
