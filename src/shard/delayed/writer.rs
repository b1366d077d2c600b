//! The delay log's writer on one shard: frames are staged in memory with their final
//! positions, and one task writes everything staged in one write per segment, with one
//! fdatasync when any caller of that round asked for it (group commit, as the partition
//! log does). When a round crosses into a new segment the older one is synced first, so a
//! sync always covers every frame written before it (decision 0009 relies on this).
//!
//! Owns: segment files (creation, rolling at `SEGMENT_BYTES`, deletion as a prefix), the
//! staging buffer, write errors (the first one fails the log: later stores are refused).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};

use crate::delay::log::{SEGMENT_BYTES, offset_of, position, segment_of, segment_path};

/// One segment file and how many of its frames are still needed.
pub(super) struct Segment {
    pub number: u64,
    /// Opened by the writer before its first write (so readers find it after any write).
    file: RefCell<Option<Rc<compio::fs::File>>>,
    /// Bytes staged or written: the next frame's offset.
    end: Cell<u64>,
    /// Frames still needed (pending records not delivered, intents not done).
    pub live: Cell<u64>,
    /// Its directory entry is known durable: the directory was synced after the file was
    /// created, before anything was written to it, so a segment replay found with data
    /// needs no directory sync when it is opened again after a restart (one fsync less
    /// between a restart and its first delivery).
    entry_durable: Cell<bool>,
}

/// Tells a caller of `flush` that its round is written (or why not).
type WriteDone = futures_channel::oneshot::Sender<Result<(), String>>;

struct Chunk {
    segment: Rc<Segment>,
    at: u64,
    bytes: Vec<u8>,
}

/// The log of one shard.
pub(super) struct DelayLogWriter {
    dir: PathBuf,
    segments: RefCell<VecDeque<Rc<Segment>>>,
    staged: RefCell<Vec<Chunk>>,
    staged_sync: Cell<bool>,
    /// Rounds staged so far; a caller waits until `written_round` reaches its own.
    staged_round: Cell<u64>,
    written_round: Cell<u64>,
    running: Cell<bool>,
    waiters: RefCell<Vec<(u64, WriteDone)>>,
    failed: RefCell<Option<String>>,
    /// The file the last write went to: a write to a newer segment syncs it first, in any
    /// round, so a sync covers every frame written before it in every segment.
    last_file: RefCell<Option<Rc<compio::fs::File>>>,
    /// The position the log is written and synced through (a frame boundary): where a
    /// pending-index checkpoint may cut. 0 until the first synced round.
    synced: Cell<u64>,
}

impl DelayLogWriter {
    /// A writer over the segments replay found (`(number, valid length, live frames)`).
    pub fn new(dir: PathBuf, replayed: &[(u64, u64, u64)]) -> Rc<DelayLogWriter> {
        let mut segments: VecDeque<Rc<Segment>> = replayed
            .iter()
            .map(|&(number, len, live)| {
                Rc::new(Segment {
                    number,
                    file: RefCell::new(None),
                    end: Cell::new(len),
                    live: Cell::new(live),
                    entry_durable: Cell::new(len > 0),
                })
            })
            .collect();
        if segments.is_empty() {
            segments.push_back(Rc::new(Segment {
                number: 0,
                file: RefCell::new(None),
                end: Cell::new(0),
                live: Cell::new(0),
                entry_durable: Cell::new(false),
            }));
        }
        Rc::new(DelayLogWriter {
            dir,
            segments: RefCell::new(segments),
            staged: RefCell::new(Vec::new()),
            staged_sync: Cell::new(false),
            staged_round: Cell::new(0),
            written_round: Cell::new(0),
            running: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            failed: RefCell::new(None),
            last_file: RefCell::new(None),
            synced: Cell::new(0),
        })
    }

    /// Why the log refuses writes, if it does.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Stages `frames` (whole frames, `len` bytes) and returns the position of the first;
    /// `live` frames among them count towards their segment. Rolls to a new segment first
    /// when the active one is full. Nothing is on disk until `flush` completes.
    pub fn stage(&self, frames: Vec<u8>, live: u64, sync: bool) -> u64 {
        let active = self.active_for(frames.len() as u64);
        let at = active.end.get();
        active.end.set(at + frames.len() as u64);
        active.live.set(active.live.get() + live);
        self.staged_sync.set(self.staged_sync.get() | sync);
        let mut staged = self.staged.borrow_mut();
        match staged.last_mut() {
            Some(last) if Rc::ptr_eq(&last.segment, &active) => {
                last.bytes.extend_from_slice(&frames)
            }
            _ => staged.push(Chunk {
                segment: active.clone(),
                at,
                bytes: frames,
            }),
        }
        position(active.number, at)
    }

    fn active_for(&self, len: u64) -> Rc<Segment> {
        let mut segments = self.segments.borrow_mut();
        let last = segments.back().cloned();
        match last {
            Some(s) if s.end.get() == 0 || s.end.get() + len <= SEGMENT_BYTES => s,
            other => {
                let number = other.map_or(0, |s| s.number + 1);
                let segment = Rc::new(Segment {
                    number,
                    file: RefCell::new(None),
                    end: Cell::new(0),
                    live: Cell::new(0),
                    entry_durable: Cell::new(false),
                });
                segments.push_back(segment.clone());
                segment
            }
        }
    }

    /// Completes when everything staged so far is written (and synced, if any stage of its
    /// round asked). Starts the writer task when none runs.
    pub async fn flush(self: &Rc<Self>) -> Result<(), String> {
        if let Some(why) = self.failure() {
            return Err(why);
        }
        let round = self.staged_round.get() + 1;
        let (tx, rx) = futures_channel::oneshot::channel();
        self.waiters.borrow_mut().push((round, tx));
        if !self.running.replace(true) {
            compio::runtime::spawn(self.clone().write_rounds()).detach();
        }
        rx.await
            .unwrap_or_else(|_| Err("delay log writer stopped".to_string()))
    }

    async fn write_rounds(self: Rc<Self>) {
        loop {
            let chunks = std::mem::take(&mut *self.staged.borrow_mut());
            let sync = self.staged_sync.replace(false);
            let round = self.staged_round.get() + 1;
            self.staged_round.set(round);
            if chunks.is_empty() {
                self.written_round.set(round);
                self.answer(round, Ok(()));
                self.running.set(false);
                return;
            }
            let result = self.write_chunks(chunks, sync).await;
            if let Err(e) = &result {
                tracing::error!(dir = %self.dir.display(), error = %e, "delay log write failed");
                *self.failed.borrow_mut() = Some(format!("delay log write failed: {e}"));
            }
            self.written_round.set(round);
            self.answer(round, result.map_err(|e| e.to_string()));
            if self.failure().is_some() {
                self.answer(u64::MAX, Err("delay log failed".into()));
                self.running.set(false);
                return;
            }
        }
    }

    fn answer(&self, round: u64, result: Result<(), String>) {
        let mut waiters = self.waiters.borrow_mut();
        let mut i = 0;
        while i < waiters.len() {
            if waiters[i].0 <= round {
                let (_, tx) = waiters.swap_remove(i);
                let _ = tx.send(result.clone());
            } else {
                i += 1;
            }
        }
    }

    async fn write_chunks(&self, chunks: Vec<Chunk>, sync: bool) -> io::Result<()> {
        let mut end = None;
        for chunk in chunks {
            let file = self.file_of(&chunk.segment).await?;
            let older = self.last_file.borrow().clone();
            if let Some(older) = older
                && !Rc::ptr_eq(&older, &file)
            {
                // A later segment's sync must cover everything before it.
                older.sync_data().await?;
            }
            *self.last_file.borrow_mut() = Some(file.clone());
            let len = chunk.bytes.len() as u64;
            let mut writer = &*file;
            let BufResult(r, _) = writer.write_all_at(chunk.bytes, chunk.at).await;
            r?;
            end = Some(position(chunk.segment.number, chunk.at + len));
        }
        if sync && let Some(end) = end {
            let file = self.last_file.borrow().clone();
            if let Some(file) = file {
                file.sync_data().await?;
            }
            self.synced.set(self.synced.get().max(end));
        }
        Ok(())
    }

    /// The position the log is written and synced through (0: none yet this run).
    pub fn synced(&self) -> u64 {
        self.synced.get()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    async fn file_of(&self, segment: &Segment) -> io::Result<Rc<compio::fs::File>> {
        if let Some(file) = segment.file.borrow().clone() {
            return Ok(file);
        }
        let path = segment_path(&self.dir, segment.number);
        let file = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .await?;
        // The new file's directory entry must survive a crash as its data would.
        if !segment.entry_durable.get() {
            std::fs::File::open(&self.dir)?.sync_all()?;
            segment.entry_durable.set(true);
        }
        let file = Rc::new(file);
        *segment.file.borrow_mut() = Some(file.clone());
        Ok(file)
    }

    fn segment(&self, number: u64) -> Option<Rc<Segment>> {
        let segments = self.segments.borrow();
        let first = segments.front()?.number;
        let index = usize::try_from(number.checked_sub(first)?).ok()?;
        segments.get(index).cloned()
    }

    /// Reads one whole frame back (it was written: the caller got it from the wheel or an
    /// intent, both filled only after `flush`).
    pub async fn read(&self, at: u64, len: u32) -> io::Result<Vec<u8>> {
        let segment = self
            .segment(segment_of(at))
            .ok_or_else(|| io::Error::other(format!("delay log segment of {at:#x} is gone")))?;
        let file = self.file_of(&segment).await?;
        let buf = vec![0u8; len as usize];
        let BufResult(r, slice) = file.read_exact_at(buf.slice(..), offset_of(at)).await;
        r?;
        Ok(slice.into_inner())
    }

    /// `frames` frames of segment `number` are no longer needed.
    pub fn release(&self, number: u64, frames: u64) {
        if let Some(segment) = self.segment(number) {
            segment.live.set(segment.live.get().saturating_sub(frames));
        }
    }

    /// Deletes the oldest segments while nothing in them is needed and a newer one exists
    /// (a prefix: a DONE frame never outlives its intent's segment). Returns how many.
    pub fn delete_released_prefix(&self) -> usize {
        let mut deleted = 0;
        loop {
            let oldest = {
                let segments = self.segments.borrow();
                match segments.front() {
                    Some(s) if segments.len() > 1 && s.live.get() == 0 => s.clone(),
                    _ => break,
                }
            };
            // Staged bytes for it would still be written: only written, idle segments go.
            if self.running.get() || !self.staged.borrow().is_empty() {
                break;
            }
            let path = segment_path(&self.dir, oldest.number);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "delay log: segment not deleted");
                    break;
                }
            }
            self.segments.borrow_mut().pop_front();
            deleted += 1;
        }
        if deleted > 0
            && let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all())
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "delay log: directory sync failed");
        }
        deleted
    }
}
