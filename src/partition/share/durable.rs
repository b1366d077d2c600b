//! The durable share-partition state (KIP-932's share coordinator state, kept next to the
//! partition it describes): `<partition dir>/share-state.log`, one checksummed frame
//! (`storage::frames`) per write, each holding one share group's whole state here — start
//! offset and the in-flight records' states and delivery counts, run-length encoded — so
//! the last frame of a group wins on replay and compaction keeps one frame per group.
//!
//! An acknowledgement is answered only after the frame holding it is fdatasync'ed; releases
//! and lock expiries are written too, so delivery counts survive a crash. Records acquired
//! at a crash come back available (with their delivery counts as last written).
//!
//! Payload: `format u8 | group (u16 len + bytes) | deleted u8 | start_offset i64 |
//! runs u32 | (len u32, state u8, delivery_count u16) * runs` and, from format 2 on,
//! `intent u8 | [base_sequence i32 | offsets u32 | offset i64 * offsets]`: the dead-letter
//! append in progress (KIP-1191), written before the append is made.
//!
//! Owns: the file format, replay and the single writer. Must not: decide record states.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::state::{DLQ_BATCH_RECORDS_MAX, DlqCause, DlqIntent, RecordState, SharePartitionState};
use crate::storage::frames;
use crate::storage::le_reader::LeReader;

pub const SHARE_STATE_FILE: &str = "share-state.log";
/// Format 1 had no dead-letter intent; it is still read.
const RECORD_FORMAT: u8 = 2;
const RECORD_FORMAT_V1: u8 = 1;
/// Largest payload: a full window of records each in its own run, with a long group id.
const MAX_PAYLOAD_BYTES: u32 = 64 * 1024;
/// Compaction: once the file passes this size and this many times its live frames.
const COMPACTION_MIN_BYTES: u64 = 1024 * 1024;
const COMPACTION_RATIO: u64 = 4;

/// One group's state as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    pub start_offset: i64,
    /// (records, state, delivery count) runs from the start offset on.
    pub runs: Vec<(u32, RecordState, u16)>,
    /// The dead-letter append in progress.
    pub intent: Option<DlqIntent>,
}

fn state_code(s: RecordState) -> u8 {
    match s {
        RecordState::Available | RecordState::Acquired => 0,
        RecordState::Acknowledged => 1,
        RecordState::Archived => 2,
        RecordState::Archiving(DlqCause::Rejected) => 3,
        RecordState::Archiving(DlqCause::DeliveryCountExceeded) => 4,
    }
}

fn state_from(code: u8) -> Option<RecordState> {
    match code {
        0 => Some(RecordState::Available),
        1 => Some(RecordState::Acknowledged),
        2 => Some(RecordState::Archived),
        3 => Some(RecordState::Archiving(DlqCause::Rejected)),
        4 => Some(RecordState::Archiving(DlqCause::DeliveryCountExceeded)),
        _ => None,
    }
}

/// Appends one frame: the group's state (None: the group was deleted here).
pub fn encode(buf: &mut Vec<u8>, group_id: &str, state: Option<&SharePartitionState>) {
    let start = frames::begin_frame(buf);
    buf.push(RECORD_FORMAT);
    let id = &group_id.as_bytes()[..group_id.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&(id.len() as u16).to_le_bytes());
    buf.extend_from_slice(id);
    buf.push(u8::from(state.is_none()));
    let start_offset = state.map_or(0, |s| s.start_offset());
    buf.extend_from_slice(&start_offset.to_le_bytes());
    let runs_at = buf.len();
    buf.extend_from_slice(&0u32.to_le_bytes());
    let mut runs = 0u32;
    let mut current: Option<(u32, u8, u16)> = None;
    let mut flush = |buf: &mut Vec<u8>, run: (u32, u8, u16)| {
        buf.extend_from_slice(&run.0.to_le_bytes());
        buf.push(run.1);
        buf.extend_from_slice(&run.2.to_le_bytes());
        runs += 1;
    };
    for (_, record_state, count) in state.into_iter().flat_map(|s| s.in_flight()) {
        let code = state_code(record_state);
        match &mut current {
            Some((len, c, d)) if *c == code && *d == count => *len += 1,
            _ => {
                if let Some(run) = current.take() {
                    flush(buf, run);
                }
                current = Some((1, code, count));
            }
        }
    }
    if let Some(run) = current {
        flush(buf, run);
    }
    buf[runs_at..runs_at + 4].copy_from_slice(&runs.to_le_bytes());
    match state.and_then(|s| s.dlq_intent()) {
        Some(intent) => {
            buf.push(1);
            buf.extend_from_slice(&intent.base_sequence.to_le_bytes());
            buf.extend_from_slice(&(intent.offsets.len() as u32).to_le_bytes());
            for offset in &intent.offsets {
                buf.extend_from_slice(&offset.to_le_bytes());
            }
        }
        None => buf.push(0),
    }
    frames::end_frame(buf, start);
}

fn decode_payload(payload: &[u8]) -> Option<(String, Option<SavedState>)> {
    let mut r = LeReader::new(payload);
    let format = r.u8()?;
    if format != RECORD_FORMAT && format != RECORD_FORMAT_V1 {
        return None;
    }
    let group = r.str16()?;
    let deleted = r.u8()? != 0;
    let start_offset = r.i64()?;
    let count = r.u32()?;
    let mut runs = Vec::new();
    for _ in 0..count {
        let len = r.u32()?;
        let state = state_from(r.u8()?)?;
        let delivery = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        runs.push((len, state, delivery));
    }
    let mut intent = None;
    if format == RECORD_FORMAT && r.u8()? == 1 {
        let base_sequence = r.i32()?;
        let count = r.u32()? as usize;
        if count > DLQ_BATCH_RECORDS_MAX {
            return None;
        }
        let mut offsets = Vec::with_capacity(count);
        for _ in 0..count {
            offsets.push(r.i64()?);
        }
        intent = Some(DlqIntent {
            base_sequence,
            offsets,
        });
    }
    if !r.is_at_end() {
        return None;
    }
    Some((
        group,
        (!deleted).then_some(SavedState {
            start_offset,
            runs,
            intent,
        }),
    ))
}

/// Largest frame `encode` writes (header included): what a replicated share state may be.
pub const MAX_FRAME_BYTES: usize = MAX_PAYLOAD_BYTES as usize + frames::FRAME_HEADER_BYTES;

/// One whole frame as `encode` wrote it (the replicated form, decision 0025): its group and
/// state (None: the group was deleted here). None for anything else (torn, corrupt, a
/// second frame or trailing bytes).
pub fn decode_frame(bytes: &[u8]) -> Option<(String, Option<SavedState>)> {
    let (mut records, valid) = frames::decode_frames(bytes, MAX_PAYLOAD_BYTES, decode_payload);
    if valid != bytes.len() || records.len() != 1 {
        return None;
    }
    records.pop()
}

/// Replays a log: the last state of each group still present, and the valid length.
pub fn decode_log(bytes: &[u8]) -> (HashMap<String, SavedState>, usize) {
    let (records, valid) = frames::decode_frames(bytes, MAX_PAYLOAD_BYTES, decode_payload);
    let mut out = HashMap::new();
    for (group, state) in records {
        match state {
            Some(s) => out.insert(group, s),
            None => out.remove(&group),
        };
    }
    (out, valid)
}

/// The single writer of one partition's share-state log.
pub struct ShareStateLog {
    path: PathBuf,
    file: RefCell<Option<Rc<compio::fs::File>>>,
    len: Cell<u64>,
    /// A write failed part-way: cut the file back before the next one.
    torn: Cell<bool>,
    /// Bytes of each group's latest frame (what compaction would keep).
    live: RefCell<HashMap<String, u64>>,
    /// One write at a time, in order (an async mutex: it is held across the write).
    writing: futures_util::lock::Mutex<()>,
}

impl ShareStateLog {
    /// Reads `<dir>/share-state.log` (truncating a torn tail) and returns the log with the
    /// states it holds. A missing file is an empty log.
    pub fn open(dir: &Path) -> io::Result<(ShareStateLog, HashMap<String, SavedState>)> {
        let path = dir.join(SHARE_STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (states, valid) = decode_log(&bytes);
        if valid < bytes.len() {
            tracing::warn!(file = %path.display(), valid, file_len = bytes.len(),
                "share-state log has a torn or corrupt tail; truncating");
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(valid as u64)?;
            f.sync_all()?;
        }
        let live = states
            .iter()
            .map(|(g, s)| (g.clone(), 32 + g.len() as u64 + 7 * s.runs.len() as u64))
            .collect();
        let log = ShareStateLog {
            path,
            file: RefCell::new(None),
            len: Cell::new(valid as u64),
            torn: Cell::new(false),
            live: RefCell::new(live),
            writing: futures_util::lock::Mutex::new(()),
        };
        Ok((log, states))
    }

    /// Writes what `encode_now` produces (called once the write's turn has come, so the
    /// frame holds every change applied before it) and fdatasyncs.
    pub async fn write(
        &self,
        encode_now: impl FnOnce(&mut Vec<u8>) -> Vec<(String, u64)>,
    ) -> io::Result<()> {
        let _turn = self.writing.lock().await;
        let mut bytes = Vec::new();
        let sizes = encode_now(&mut bytes);
        let file = self.file_for_append().await?;
        let position = self.len.get();
        let written = bytes.len() as u64;
        if let Err(e) = frames::append_durably(&file, position, bytes, self.torn.get()).await {
            self.torn.set(true);
            return Err(e);
        }
        self.torn.set(false);
        self.len.set(position + written);
        let mut live = self.live.borrow_mut();
        for (group, size) in sizes {
            live.insert(group, size);
        }
        Ok(())
    }

    async fn file_for_append(&self) -> io::Result<Rc<compio::fs::File>> {
        let existing = self.file.borrow().clone();
        if let Some(f) = existing {
            return Ok(f);
        }
        let f = Rc::new(frames::open_for_append(&self.path, self.len.get() == 0).await?);
        *self.file.borrow_mut() = Some(Rc::clone(&f));
        Ok(f)
    }

    /// Whether the file has grown enough past its live frames to be rewritten.
    pub fn wants_compaction(&self) -> bool {
        let live: u64 = self.live.borrow().values().sum();
        self.len.get() > COMPACTION_MIN_BYTES && self.len.get() > live * COMPACTION_RATIO
    }

    /// Replaces the file with `snapshot` (every group's current frame).
    pub async fn compact(&self, snapshot: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let _turn = self.writing.lock().await;
        let mut bytes = Vec::new();
        snapshot(&mut bytes);
        let len = bytes.len() as u64;
        let file = frames::replace_with_snapshot(&self.path, bytes).await?;
        *self.file.borrow_mut() = Some(Rc::new(file));
        self.len.set(len);
        self.torn.set(false);
        Ok(())
    }
}

impl SharePartitionState {
    /// A state as written: acquired records were not, so everything not settled is
    /// available again.
    pub fn restore(saved: &SavedState, max_in_flight: usize) -> SharePartitionState {
        let mut s = SharePartitionState::new(saved.start_offset, max_in_flight);
        for &(len, state, delivery_count) in &saved.runs {
            for _ in 0..len {
                s.push_restored(state, delivery_count);
            }
        }
        s.restore_intent(saved.intent.clone());
        s
    }
}
