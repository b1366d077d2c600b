//! `PartitionLog`: one partition's append-only log, owned by exactly one shard thread (`!Send`,
//! lives in an `Rc`). Owns offset assignment, the write queue with group commit (one writev and
//! one fdatasync shared by every append waiting at that moment), reads as file regions for
//! zero-copy fetch, flushing and the state file. Interior mutability only through `Cell` /
//! `RefCell`, and no borrow is ever held across an `.await`. Must not parse records, talk to
//! sockets or know about other partitions.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use bytes::BytesMut;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::AsyncWriteAtExt;

use super::batch::{
    BatchHeader, apply_log_append_time, first_record_at_or_after, patch_base_offset,
    patch_leader_epoch,
};
use super::error::StorageError;
use super::notify::{AsyncLock, Event};
use super::offset_index::OFFSET_INDEX_ENTRY_BYTES;
use super::producer_state::{
    ProducerEntry, ProducerStateInfo, ProducerStateManager, SequenceCheck, check_sequence,
};
use super::segment::{MAX_SEGMENT_POSITION_BYTES, Segment};
use super::state::{PartitionState, read_exact_at, write_state};
use super::time_index::TIME_INDEX_ENTRY_BYTES;
use crate::config::{Durability, LogConfig, TimestampType};

/// The leader epoch written into every stored batch (single-replica broker: always 0).
pub const LEADER_EPOCH: i32 = 0;
/// Least time between two background rewrites of a partition's state file (recovery point).
/// `flush.ms` syncs the data itself more often than this (default 100 ms).
pub const RECOVERY_POINT_PERSIST_MS: i64 = 1000;

/// Most buffers handed to one writev (Linux IOV_MAX).
pub const MAX_IOVECS_PER_WRITE: usize = 1024;
/// After a write fails for lack of space, appends are refused at once for this long before
/// the next attempt (so a full disk costs one failed write per interval, not per request).
pub const WRITE_RETRY_BACKOFF_MS: i64 = 500;
/// DeleteRecords sentinel meaning "up to the high watermark".
pub const DELETE_RECORDS_TO_HIGH_WATERMARK: i64 = -1;
/// Rolled segments waiting to be sealed (synced) off the write path, or being sealed. One
/// task seals them one at a time, in roll order (each persists its segment's end as the
/// recovery point). Past this the writer waits: the disk is behind, and a tiny
/// `segment.bytes` must not pile up work.
pub const MAX_SEALS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime topics, -1 for CreateTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log; offsets are the original ones.
    pub duplicate: bool,
}

/// A byte range of a segment file, for zero-copy fetch (`splice` from `fd`). `Send + Sync`
/// so it can travel from the partition's shard to the connection's; cloning keeps the fd open
/// even if retention deletes the segment meanwhile.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub fd: Arc<OwnedFd>,
    pub path: Arc<Path>,
    pub position: u64,
    pub len: u32,
}

impl FileRegion {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Every page of the region is in the page cache, so reading it cannot wait on the disk.
    pub fn is_fully_cached(&self) -> bool {
        super::page_cache::is_fully_cached(self.raw_fd(), self.position, u64::from(self.len))
    }

    /// Copies the region into memory through io_uring (tests, tools, non-splice fallbacks).
    pub async fn read_to_vec(&self) -> Result<Vec<u8>, StorageError> {
        let len = self.len as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let op = compio::driver::op::ReadAt::new(
                Arc::clone(&self.fd),
                self.position + done as u64,
                buf.slice(done..len),
            );
            let BufResult(r, slice) = compio::runtime::submit(op).await.into_inner();
            buf = slice.into_inner();
            let n = r.map_err(|e| StorageError::io(self.path.as_ref(), e))?;
            if n == 0 {
                return Err(StorageError::io(
                    self.path.as_ref(),
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            done += n;
        }
        Ok(buf)
    }
}

impl AsFd for FileRegion {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub regions: Vec<FileRegion>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub total_bytes: u64,
    /// Records in the returned batches (offsets they span), for the records-out counter.
    pub record_count: u64,
}

pub(super) enum WriteItem {
    Write {
        segment: Rc<Segment>,
        position: u64,
        buf: BytesMut,
        /// One past the last offset in `buf`.
        end_offset: i64,
    },
    /// The segment was rolled: sync it, persist its indexes, the new segment's directory
    /// entry and the producer snapshot taken at the roll, alongside later writes.
    Seal {
        segment: Rc<Segment>,
        producer_snapshot: ProducerSnapshot,
    },
}

/// Producer state as of a roll, to be written as `<offset>.snapshot`.
pub(super) struct ProducerSnapshot {
    pub(super) offset: i64,
    pub(super) bytes: Vec<u8>,
}

/// Receives the duration in nanoseconds of each segment fdatasync. Storage knows nothing of
/// metrics; the owning shard installs this hook when it opens the partition.
pub type SyncObserver = Rc<dyn Fn(u64)>;

pub struct PartitionLog {
    pub(super) self_ref: Weak<PartitionLog>,
    pub(super) dir: PathBuf,
    pub(super) name: String,
    pub(super) config: RefCell<LogConfig>,
    pub(super) segments: RefCell<VecDeque<Rc<Segment>>>,
    pub(super) log_start_offset: Cell<i64>,
    /// Log end offset: one past the last offset assigned (dispatched).
    pub(super) next_offset: Cell<i64>,
    /// One past the last offset written to the file (readable).
    pub(super) high_watermark: Cell<i64>,
    /// One past the last offset known to be on stable storage.
    pub(super) durable_offset: Cell<i64>,
    /// The recovery point last persisted in the state file.
    pub(super) recovery_point: Cell<i64>,
    /// End offset of the newest append that asked for durability.
    pub(super) durable_requested: Cell<i64>,
    pub(super) queue: RefCell<VecDeque<WriteItem>>,
    pub(super) writer_running: Cell<bool>,
    pub(super) hw_advanced: Rc<Event>,
    pub(super) synced: Rc<Event>,
    /// Rolled segments queued for or being sealed (see `start_seal`), in roll order.
    pub(super) seals_in_flight: Cell<usize>,
    pub(super) seal_queue: RefCell<VecDeque<(Rc<Segment>, ProducerSnapshot)>>,
    pub(super) seal_finished: Rc<Event>,
    pub(super) offline: RefCell<Option<String>>,
    pub(super) closed: Cell<bool>,
    pub(super) producers: RefCell<ProducerStateManager>,
    pub(super) dispatch_lock: AsyncLock,
    pub(super) state_lock: AsyncLock,
    pub(super) unflushed_records: Cell<i64>,
    pub(super) last_flush_ms: Cell<i64>,
    /// When a background flush last rewrote the state file (see `RECOVERY_POINT_PERSIST_MS`).
    pub(super) last_state_persist_ms: Cell<i64>,
    pub(super) fdatasyncs: Cell<u64>,
    /// Told the duration (ns) of every segment fdatasync: the shard's metrics hook.
    pub(super) sync_observer: RefCell<Option<SyncObserver>>,
    /// Whether the last open found a clean-shutdown mark (and so skipped the recovery scan).
    pub(super) opened_clean: Cell<bool>,
    /// Bumped when queued writes are abandoned (disk full): waiters from an older epoch fail
    /// instead of mistaking later appends at the same offsets for their own.
    pub(super) write_epoch: Cell<u64>,
    /// Appends are refused until this wall-clock time after a failed write (disk full).
    pub(super) writes_refused_until_ms: Cell<i64>,
}

impl PartitionLog {
    pub(super) fn new_in(
        self_ref: Weak<PartitionLog>,
        dir: PathBuf,
        name: String,
        config: LogConfig,
    ) -> PartitionLog {
        PartitionLog {
            self_ref,
            dir,
            name,
            config: RefCell::new(config),
            segments: RefCell::new(VecDeque::new()),
            log_start_offset: Cell::new(0),
            next_offset: Cell::new(0),
            high_watermark: Cell::new(0),
            durable_offset: Cell::new(0),
            recovery_point: Cell::new(0),
            durable_requested: Cell::new(0),
            queue: RefCell::new(VecDeque::new()),
            writer_running: Cell::new(false),
            hw_advanced: Rc::new(Event::default()),
            synced: Rc::new(Event::default()),
            seals_in_flight: Cell::new(0),
            seal_queue: RefCell::new(VecDeque::new()),
            seal_finished: Rc::new(Event::default()),
            offline: RefCell::new(None),
            closed: Cell::new(false),
            producers: RefCell::new(ProducerStateManager::default()),
            dispatch_lock: AsyncLock::default(),
            state_lock: AsyncLock::default(),
            unflushed_records: Cell::new(0),
            last_flush_ms: Cell::new(0),
            last_state_persist_ms: Cell::new(0),
            fdatasyncs: Cell::new(0),
            sync_observer: RefCell::new(None),
            opened_clean: Cell::new(false),
            write_epoch: Cell::new(0),
            writes_refused_until_ms: Cell::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset.get()
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }
    /// One past the last offset known to be synced to stable storage.
    pub fn durable_offset(&self) -> i64 {
        self.durable_offset.get()
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .borrow()
            .iter()
            .map(|s| s.size_bytes.get())
            .sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments
            .borrow()
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }
    /// fdatasync calls on log files since open (observability; group-commit tests).
    /// True when the last open found a clean-shutdown mark and skipped the recovery scan.
    pub fn opened_clean(&self) -> bool {
        self.opened_clean.get()
    }

    pub fn fdatasync_count(&self) -> u64 {
        self.fdatasyncs.get()
    }
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
    pub fn update_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }
    pub fn producer_states(&self) -> Vec<ProducerStateInfo> {
        self.producers.borrow().infos()
    }

    /// (max timestamp, offset) over the whole log for ListOffsets MAX_TIMESTAMP; (-1, -1) if
    /// no batch carries a timestamp.
    pub fn max_timestamp(&self) -> (i64, i64) {
        let mut best = (-1i64, -1i64);
        for s in self.segments.borrow().iter() {
            if s.max_timestamp.get() > best.0
                && s.offset_of_max_timestamp.get() < self.high_watermark.get()
            {
                best = (s.max_timestamp.get(), s.offset_of_max_timestamp.get());
            }
        }
        best
    }

    /// Completes when the high watermark next advances (Fetch long-poll). Owns its state,
    /// so it can be raced against a timer.
    pub fn wait_for_append(&self) -> impl Future<Output = ()> + 'static {
        self.hw_advanced.listen()
    }

    pub(super) fn check_online(&self) -> Result<(), StorageError> {
        if let Some(reason) = self.offline.borrow().as_ref() {
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason: reason.clone(),
            });
        }
        if self.closed.get() {
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason: "log is closed".into(),
            });
        }
        Ok(())
    }

    /// Stops the partition loudly: in-memory state may be ahead of the file, so nothing more
    /// is appended or acknowledged until it is reopened (which runs recovery).
    pub(super) fn go_offline(&self, error: &StorageError) {
        tracing::error!(partition = %self.name, %error, "partition log going offline");
        self.offline
            .borrow_mut()
            .get_or_insert_with(|| error.to_string());
        self.queue.borrow_mut().clear();
        self.hw_advanced.notify();
        self.synced.notify();
    }

    pub(super) fn active_segment(&self) -> Rc<Segment> {
        let segs = self.segments.borrow();
        Rc::clone(segs.back().expect("a log always has an active segment"))
    }

    pub(super) fn segment_for(&self, offset: i64) -> Option<Rc<Segment>> {
        let segs = self.segments.borrow();
        let idx = segs.partition_point(|s| s.base_offset <= offset);
        if idx == 0 {
            None
        } else {
            Some(Rc::clone(&segs[idx - 1]))
        }
    }

    fn needs_roll(&self, seg: &Segment, payload_bytes: u64, last_offset: i64, now_ms: i64) -> bool {
        if seg.is_empty() {
            return false;
        }
        let cfg = self.config.borrow();
        let size = seg.size_bytes.get();
        size + payload_bytes > cfg.segment_bytes
            || size + payload_bytes > MAX_SEGMENT_POSITION_BYTES
            || (seg.first_append_ms.get() >= 0
                && now_ms - seg.first_append_ms.get() >= cfg.segment_ms)
            || (seg.offset_index.borrow().len() + 1) * OFFSET_INDEX_ENTRY_BYTES
                > cfg.segment_index_bytes as usize
            || (seg.time_index.borrow().len() + 2) * TIME_INDEX_ENTRY_BYTES
                > cfg.segment_index_bytes as usize
            || last_offset - seg.base_offset > i32::MAX as i64
    }

    /// Starts a new active segment at the log end offset. Caller holds the dispatch lock.
    pub(super) async fn roll(&self) -> Result<(), StorageError> {
        let old = self.active_segment();
        let base = self.next_offset.get();
        assert_eq!(
            old.next_offset.get(),
            base,
            "active segment ends at the log end"
        );
        let seg = Segment::create(&self.dir, base).await?;
        old.seal_time_index();
        self.segments.borrow_mut().push_back(seg);
        // Bounds producer-state replay after a crash to the active segment. Taken now, written
        // by the seal; it may describe batches still queued, and recovery ignores snapshots
        // past the recovered end.
        let producer_snapshot = ProducerSnapshot {
            offset: base,
            bytes: self.producers.borrow().encode_snapshot(),
        };
        self.queue.borrow_mut().push_back(WriteItem::Seal {
            segment: old,
            producer_snapshot,
        });
        self.ensure_writer();
        Ok(())
    }

    /// Appends already-validated batches (CRC was checked at the boundary), bytes exactly as
    /// received except the broker-owned fields patched in place. Returns once the data is
    /// written (and, if `durable`, synced — group-committed with concurrent appends).
    pub async fn append(
        &self,
        batches: BytesMut,
        durable: bool,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_staged(batches, durable, now_ms, || {}).await
    }

    /// `append` in its two stages: `on_dispatched` runs once the batches have their offsets
    /// and their place in the write queue (order fixed; later appends go after them), and
    /// the future completes when they are *produced* (written, and synced if durable).
    /// Callers use the first stage to dispatch the next request while this one syncs, so
    /// pipelined requests share one fdatasync. Not called when the append fails before
    /// dispatch.
    pub async fn append_staged(
        &self,
        mut batches: BytesMut,
        durable: bool,
        now_ms: i64,
        on_dispatched: impl FnOnce(),
    ) -> Result<AppendOutcome, StorageError> {
        self.check_online()?;
        if now_ms < self.writes_refused_until_ms.get() {
            return Err(StorageError::io(
                &self.dir,
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        let (max_bytes, timestamp_type, durability, index_interval) = {
            let c = self.config.borrow();
            (
                c.max_message_bytes,
                c.message_timestamp_type,
                c.durability,
                c.index_interval_bytes,
            )
        };
        let durable = match durability {
            Durability::Always => true,
            Durability::None => false,
            Durability::AcksAll => durable,
        };
        // Structure and size limits first: nothing below may fail on a malformed payload.
        let mut record_count: i64 = 0;
        let mut offset_span: i64 = 0;
        {
            let mut pos = 0usize;
            if batches.is_empty() {
                return Err(super::batch::BatchError::Empty.into());
            }
            while pos < batches.len() {
                let h = BatchHeader::parse_at(&batches[pos..], pos)?;
                let size = h.size_bytes();
                if size > batches.len() - pos {
                    return Err(super::batch::BatchError::Truncated {
                        position: pos,
                        needed: size,
                        available: batches.len() - pos,
                    }
                    .into());
                }
                if size > max_bytes as usize {
                    return Err(StorageError::MessageTooLarge {
                        size_bytes: size,
                        max_bytes,
                    });
                }
                record_count += h.record_count as i64;
                offset_span += h.last_offset_delta as i64 + 1;
                pos += size;
            }
        }

        let guard = self.dispatch_lock.lock().await;
        self.check_online()?;
        let active = self.active_segment();
        if self.needs_roll(
            &active,
            batches.len() as u64,
            self.next_offset.get() + offset_span - 1,
            now_ms,
        ) {
            self.roll().await?;
        }
        // From here to the enqueue there is no await: offsets, producer state and the queue
        // change together.
        let base_offset = self.next_offset.get();
        let mut staged: Vec<ProducerEntry> = Vec::new();
        let mut duplicate = None;
        'check: {
            let producers = self.producers.borrow();
            let mut pos = 0usize;
            let mut next = base_offset;
            while pos < batches.len() {
                let mut h = BatchHeader::parse_at(&batches[pos..], pos)?;
                h.base_offset = next;
                if h.has_producer_id() {
                    let current = staged
                        .iter()
                        .find(|e| e.producer_id == h.producer_id)
                        .or_else(|| producers.get(h.producer_id))
                        .copied();
                    match check_sequence(current.as_ref(), &h)? {
                        SequenceCheck::Duplicate(m) => {
                            duplicate = Some(m);
                            break 'check;
                        }
                        SequenceCheck::Append => {
                            let mut e = current.unwrap_or_else(|| {
                                ProducerEntry::new(h.producer_id, h.producer_epoch)
                            });
                            e.record(&h, next);
                            match staged.iter_mut().find(|s| s.producer_id == h.producer_id) {
                                Some(s) => *s = e,
                                None => staged.push(e),
                            }
                        }
                    }
                }
                next = h.last_offset() + 1;
                pos += h.size_bytes();
            }
        }
        let epoch = self.write_epoch.get();
        if let Some(m) = duplicate {
            drop(guard);
            on_dispatched();
            return self
                .finish_duplicate(
                    epoch,
                    m.base_offset,
                    m.last_offset,
                    durable,
                    timestamp_type,
                    m.max_timestamp,
                )
                .await;
        }
        let segment = self.active_segment();
        let position = segment.size_bytes.get();
        let log_append_time_ms = match timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };
        let mut pos = 0usize;
        let mut next = base_offset;
        while pos < batches.len() {
            let size = {
                let h = BatchHeader::parse_at(&batches[pos..], pos)?;
                h.size_bytes()
            };
            let batch = &mut batches[pos..pos + size];
            patch_base_offset(batch, next);
            patch_leader_epoch(batch, LEADER_EPOCH);
            if timestamp_type == TimestampType::LogAppendTime {
                apply_log_append_time(batch, now_ms);
            }
            let h = BatchHeader::parse_at(batch, pos)?;
            segment.record_batch(&h, position + pos as u64, index_interval);
            next = h.last_offset() + 1;
            pos += size;
        }
        assert_eq!(next, base_offset + offset_span, "offsets are gap-free");
        if segment.first_append_ms.get() < 0 {
            segment.first_append_ms.set(now_ms);
        }
        {
            let mut producers = self.producers.borrow_mut();
            for e in staged {
                producers.insert(e);
            }
        }
        self.next_offset.set(next);
        self.unflushed_records
            .set(self.unflushed_records.get() + record_count);
        if durable {
            self.durable_requested.set(next);
        }
        self.queue.borrow_mut().push_back(WriteItem::Write {
            segment,
            position,
            buf: batches,
            end_offset: next,
        });
        drop(guard);
        self.ensure_writer();
        on_dispatched();
        self.wait_written(next, durable, epoch).await?;
        Ok(AppendOutcome {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms,
            log_start_offset: self.log_start_offset.get(),
            duplicate: false,
        })
    }

    async fn finish_duplicate(
        &self,
        epoch: u64,
        base_offset: i64,
        last_offset: i64,
        durable: bool,
        timestamp_type: TimestampType,
        max_timestamp: i64,
    ) -> Result<AppendOutcome, StorageError> {
        if durable && self.durable_requested.get() < last_offset + 1 {
            self.durable_requested.set(last_offset + 1);
            self.ensure_writer();
        }
        self.wait_written(last_offset + 1, durable, epoch).await?;
        Ok(AppendOutcome {
            base_offset,
            last_offset,
            log_append_time_ms: match timestamp_type {
                TimestampType::LogAppendTime => max_timestamp,
                TimestampType::CreateTime => -1,
            },
            log_start_offset: self.log_start_offset.get(),
            duplicate: true,
        })
    }

    /// Waits until `end_offset` is readable (and synced if `durable`).
    async fn wait_written(
        &self,
        end_offset: i64,
        durable: bool,
        epoch: u64,
    ) -> Result<(), StorageError> {
        loop {
            let event = if durable {
                &self.synced
            } else {
                &self.hw_advanced
            };
            let listen = event.listen();
            if self.write_epoch.get() != epoch {
                return Err(StorageError::io(
                    &self.dir,
                    std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "the write was abandoned after a failed write (disk full); not stored",
                    ),
                ));
            }
            if let Some(reason) = self.offline.borrow().as_ref() {
                return Err(StorageError::Offline {
                    partition: self.name.clone(),
                    reason: reason.clone(),
                });
            }
            let done = if durable {
                self.durable_offset.get() >= end_offset
            } else {
                self.high_watermark.get() >= end_offset
            };
            if done {
                return Ok(());
            }
            if durable && self.durable_requested.get() < end_offset {
                self.durable_requested.set(end_offset);
            }
            // A durable wait with an idle writer (e.g. a duplicate of data written without
            // sync) needs someone to sync.
            if durable && !self.writer_running.get() {
                self.spawn_writer();
            }
            listen.await;
        }
    }

    pub(super) fn ensure_writer(&self) {
        if self.writer_running.get() || self.queue.borrow().is_empty() {
            return;
        }
        self.spawn_writer();
    }

    fn spawn_writer(&self) {
        let Some(me) = self.self_ref.upgrade() else {
            return;
        };
        self.writer_running.set(true);
        // A detached task, not the appending future: a dropped append (client went away)
        // must not strand the queue or lose a buffer mid-write.
        compio::runtime::spawn(async move { me.run_writer().await }).detach();
    }

    async fn run_writer(self: Rc<Self>) {
        let mut iov: Vec<BytesMut> = Vec::new();
        let mut items: VecDeque<WriteItem> = VecDeque::new();
        loop {
            std::mem::swap(&mut items, &mut *self.queue.borrow_mut());
            let need_sync = self.durable_requested.get() > self.durable_offset.get();
            if items.is_empty() && !need_sync {
                break;
            }
            if let Err(e) = self.write_items(&mut items, &mut iov).await {
                items.clear();
                iov.clear();
                if e.is_out_of_space() {
                    if let Err(e2) = self.abandon_unwritten(&e).await {
                        self.go_offline(&e2);
                    }
                } else {
                    // Any other I/O error: stop the partition loudly, as Kafka takes a log
                    // directory offline; reopening runs recovery.
                    self.go_offline(&e);
                }
                break;
            }
        }
        self.writer_running.set(false);
        // Wake anyone waiting for the writer to go idle (close, delete).
        self.hw_advanced.notify();
    }

    async fn write_items(
        &self,
        items: &mut VecDeque<WriteItem>,
        iov: &mut Vec<BytesMut>,
    ) -> Result<(), StorageError> {
        while let Some(item) = items.pop_front() {
            match item {
                WriteItem::Write {
                    segment,
                    position,
                    buf,
                    end_offset,
                } => {
                    let mut end_position = position + buf.len() as u64;
                    let mut end_offset = end_offset;
                    iov.push(buf);
                    while iov.len() < MAX_IOVECS_PER_WRITE {
                        match items.front() {
                            Some(WriteItem::Write {
                                segment: s,
                                position: p,
                                ..
                            }) if Rc::ptr_eq(s, &segment) && *p == end_position => {}
                            _ => break,
                        }
                        if let Some(WriteItem::Write {
                            buf, end_offset: e, ..
                        }) = items.pop_front()
                        {
                            end_position += buf.len() as u64;
                            end_offset = e;
                            iov.push(buf);
                        }
                    }
                    assert_eq!(
                        segment.visible_bytes.get(),
                        position,
                        "writes to {} are sequential",
                        segment.log_path.display()
                    );
                    let mut file = &segment.log;
                    let BufResult(r, back) = file
                        .write_vectored_all_at(std::mem::take(iov), position)
                        .await;
                    *iov = back;
                    iov.clear();
                    r.map_err(|e| StorageError::io(&segment.log_path, e))?;
                    segment.dirty.set(true);
                    segment.visible_bytes.set(end_position);
                    assert!(
                        end_offset > self.high_watermark.get(),
                        "high watermark only grows"
                    );
                    self.high_watermark.set(end_offset);
                    self.hw_advanced.notify();
                }
                WriteItem::Seal {
                    segment,
                    producer_snapshot,
                } => self.start_seal(segment, producer_snapshot).await?,
            }
        }
        // Group commit: one fdatasync covers every append written so far.
        if self.durable_requested.get() > self.durable_offset.get() {
            let target = self.high_watermark.get();
            // Everything below `target` in rolled segments must be on disk too: seals in
            // flight finish first, and a segment rolled while this pass was writing (its
            // seal is still queued behind this writer) is synced here, not left to that
            // seal. Segments wholly below the durable offset are synced already.
            self.wait_seals(0).await;
            self.check_online()?;
            let durable = self.durable_offset.get();
            let not_yet_durable: Vec<Rc<Segment>> = self
                .segments
                .borrow()
                .iter()
                .rev()
                .take_while(|s| s.next_offset.get() > durable)
                .cloned()
                .collect();
            for segment in &not_yet_durable {
                self.sync_if_dirty(segment).await?;
            }
            if target > self.durable_offset.get() {
                self.durable_offset.set(target);
            }
            self.synced.notify();
        }
        Ok(())
    }

    /// Finishes a roll in a task of its own, so appends to the new segment go on meanwhile.
    /// The rolled segment's fdatasync (a full segment's dirty pages, about a second here)
    /// and the directory and snapshot fsyncs wait behind the disk's writeback queue; done
    /// in line they stalled every acks=1 append for 0.5–1.4 s per roll with 256 KiB
    /// batches. Durable acknowledgements still wait for it (`wait_seals` in the group
    /// commit), and one task seals the queued segments one at a time, in roll order.
    ///
    /// The seal ends by persisting the rolled segment's end as the recovery point. A durable
    /// acknowledgement in a later segment waits for that, so after a crash a torn batch at
    /// or past the recovery point means every later segment holds only unsynced appends,
    /// which recovery may then drop (`recovery.rs`).
    async fn start_seal(
        &self,
        segment: Rc<Segment>,
        producer_snapshot: ProducerSnapshot,
    ) -> Result<(), StorageError> {
        self.wait_seals(MAX_SEALS_IN_FLIGHT - 1).await;
        let Some(me) = self.self_ref.upgrade() else {
            // The log is being dropped: nothing runs after us, seal in line.
            return self.seal(&segment, producer_snapshot).await;
        };
        self.seal_queue
            .borrow_mut()
            .push_back((segment, producer_snapshot));
        self.seals_in_flight.set(self.seals_in_flight.get() + 1);
        if self.seals_in_flight.get() > 1 {
            // The running sealer takes it in turn.
            return Ok(());
        }
        compio::runtime::spawn(async move {
            loop {
                let next = me.seal_queue.borrow_mut().pop_front();
                let Some((segment, producer_snapshot)) = next else {
                    break;
                };
                if let Err(e) = me.seal(&segment, producer_snapshot).await {
                    me.go_offline(&e);
                }
                me.seals_in_flight.set(me.seals_in_flight.get() - 1);
                me.seal_finished.notify();
                // `wait_writer_idle` counts seals as writer work.
                me.hw_advanced.notify();
            }
        })
        .detach();
        Ok(())
    }

    async fn seal(
        &self,
        segment: &Segment,
        producer_snapshot: ProducerSnapshot,
    ) -> Result<(), StorageError> {
        self.sync_if_dirty(segment).await?;
        segment.persist_indexes().await?;
        // The new segment's directory entry.
        super::state::sync_dir(&self.dir).await?;
        super::recovery::write_producer_snapshot(
            &self.dir,
            producer_snapshot.offset,
            producer_snapshot.bytes,
        )
        .await?;
        let end = segment.next_offset.get();
        if end > self.recovery_point.get() {
            self.recovery_point.set(end);
            self.persist_state(false).await?;
        }
        Ok(())
    }

    /// Waits until at most `at_most` rolled segments are still being synced.
    async fn wait_seals(&self, at_most: usize) {
        loop {
            let listen = self.seal_finished.listen();
            if self.seals_in_flight.get() <= at_most {
                return;
            }
            listen.await;
        }
    }

    /// Disk full: drop every queued (unwritten) append, cut the active segment back to what
    /// was written, rebuild producer state for that end, and refuse appends for a short
    /// while. Reads go on; nothing acknowledged is touched; writes resume once space is free.
    async fn abandon_unwritten(&self, cause: &StorageError) -> Result<(), StorageError> {
        tracing::warn!(partition = %self.name, error = %cause, "write failed for lack of space; abandoning unwritten appends");
        self.writes_refused_until_ms
            .set(super::recovery::wall_clock_ms() + WRITE_RETRY_BACKOFF_MS);
        let guard = self.dispatch_lock.lock().await;
        self.queue.borrow_mut().clear();
        self.write_epoch.set(self.write_epoch.get() + 1);
        let hw = self.high_watermark.get();
        let active = self.active_segment();
        if active.base_offset > hw {
            // The failure hit the tail of a segment that has since been rolled: not a state
            // we can cut back safely in place. Reopening (recovery) handles it.
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason: format!("{cause}; unwritten data spans a segment roll"),
            });
        }
        active.truncate_to(active.visible_bytes.get()).await?;
        active
            .time_index
            .borrow_mut()
            .truncate_to_offset((hw - active.base_offset) as u32);
        active.next_offset.set(hw);
        self.next_offset.set(hw);
        if self.durable_requested.get() > hw {
            self.durable_requested.set(hw);
        }
        self.rebuild_producer_state().await?;
        drop(guard);
        // Waiters of abandoned appends see the new epoch and fail.
        self.hw_advanced.notify();
        self.synced.notify();
        Ok(())
    }

    /// Waits until every queued write has reached the file.
    pub(super) async fn wait_writer_idle(&self) {
        loop {
            let listen = self.hw_advanced.listen();
            if !self.writer_running.get()
                && self.queue.borrow().is_empty()
                && self.seals_in_flight.get() == 0
            {
                return;
            }
            listen.await;
        }
    }

    /// File regions for a fetch at `fetch_offset`: starts at the batch holding it, ends on a
    /// batch boundary, never past the high watermark, at most `max_bytes` except that the
    /// first batch is always whole (KIP-74).
    pub async fn read(&self, fetch_offset: i64, max_bytes: u32) -> Result<ReadSlice, StorageError> {
        self.check_online()?;
        let hw = self.high_watermark.get();
        let log_start = self.log_start_offset.get();
        let empty = ReadSlice {
            regions: Vec::new(),
            high_watermark: hw,
            log_start_offset: log_start,
            total_bytes: 0,
            record_count: 0,
        };
        if fetch_offset < log_start || fetch_offset > self.next_offset.get() {
            return Err(StorageError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: log_start,
                log_end_offset: self.next_offset.get(),
            });
        }
        if fetch_offset >= hw {
            return Ok(empty);
        }
        let Some(segment) = self.segment_for(fetch_offset) else {
            return Ok(empty);
        };
        let Some((header, position)) = segment.find_batch(fetch_offset).await? else {
            return Ok(empty);
        };
        let first_end = position + header.size_bytes() as u64;
        let limit = (position + max_bytes as u64).max(first_end);
        let (end, next_offset) = segment
            .boundary_at_or_before(first_end, limit, header.last_offset() + 1, hw)
            .await?;
        // Data trusted from disk (clean shutdown, or before the recovery point) is CRC-checked
        // once before its first read; damage takes the partition offline, never to a client.
        if let Err(e) = segment.verify_before_serving(end).await {
            self.go_offline(&e);
            return Err(e);
        }
        let len = end - position;
        Ok(ReadSlice {
            regions: vec![FileRegion {
                fd: Arc::clone(&segment.shared_log_fd),
                path: Arc::clone(&segment.shared_log_path),
                position,
                len: len as u32,
            }],
            high_watermark: hw,
            log_start_offset: self.log_start_offset.get(),
            total_bytes: len,
            record_count: (next_offset - header.base_offset).max(0) as u64,
        })
    }

    /// ListOffsets by time: the first batch whose max timestamp is >= `timestamp_ms`, as
    /// (offset, timestamp). Batch granularity: records are never decoded here.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        self.check_online()?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for segment in segments {
            if segment.max_timestamp.get() < timestamp_ms {
                continue;
            }
            let rel = segment.time_index.borrow().lookup(timestamp_ms);
            let (_, start) = segment.offset_index.borrow().lookup(rel);
            let end = segment.visible_bytes.get();
            let log_start = self.log_start_offset.get();
            let found = segment
                .find_from(start as u64, end, |h| {
                    h.max_timestamp >= timestamp_ms && h.last_offset() >= log_start
                })
                .await?;
            if let Some((h, position)) = found {
                // Record granularity when the batch is plain (Kafka answers with the record).
                let bytes =
                    read_exact_at(&segment.log, &segment.log_path, position, h.size_bytes())
                        .await?;
                let (offset, ts) = first_record_at_or_after(&bytes, &h, timestamp_ms, log_start)
                    .unwrap_or((h.base_offset.max(log_start), h.max_timestamp));
                if offset < self.high_watermark.get() {
                    return Ok(Some((offset, ts)));
                }
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Writes the state file (serialised: one writer at a time).
    pub(super) async fn persist_state(&self, clean_shutdown: bool) -> Result<(), StorageError> {
        let _g = self.state_lock.lock().await;
        let state = PartitionState {
            log_start_offset: self.log_start_offset.get(),
            recovery_point: self.recovery_point.get(),
            high_watermark: self.high_watermark.get(),
            clean_shutdown,
        };
        write_state(&self.dir, &state).await
    }

    /// Reports the duration of every segment fdatasync to `observer` (the shard's metrics).
    pub fn observe_syncs(&self, observer: SyncObserver) {
        *self.sync_observer.borrow_mut() = Some(observer);
    }

    /// fdatasyncs `segment` if it holds unsynced writes; counts and times the sync.
    async fn sync_if_dirty(&self, segment: &Segment) -> Result<(), StorageError> {
        if !segment.dirty.get() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        segment.sync_log().await?;
        self.fdatasyncs.set(self.fdatasyncs.get() + 1);
        if let Some(observer) = self.sync_observer.borrow().as_ref() {
            observer(started.elapsed().as_nanos() as u64);
        }
        Ok(())
    }

    /// fdatasyncs every segment with unsynced data, persists new index entries and advances
    /// the recovery point in the state file.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.check_online()?;
        self.flush_inner(true, true).await
    }

    /// `persist_recovery_point`: also rewrite the state file when the recovery point moved.
    /// Background flushes do that at most every `RECOVERY_POINT_PERSIST_MS`: the rewrite
    /// costs a file create, two fsyncs and a rename, and a recovery point that lags only
    /// makes recovery scan a little more (it is never ahead of the synced data).
    ///
    /// `sync_data` false: a group commit already pending will sync everything written (see
    /// `flush_if_due`), so only indexes and the recovery point (up to what is durable) are
    /// persisted.
    async fn flush_inner(
        &self,
        persist_recovery_point: bool,
        sync_data: bool,
    ) -> Result<(), StorageError> {
        let target = if sync_data {
            self.high_watermark.get()
        } else {
            self.durable_offset.get()
        };
        let flushed_records = self.unflushed_records.get();
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for s in &segments {
            if sync_data {
                self.sync_if_dirty(s).await?;
            }
            s.persist_indexes().await?;
        }
        if target > self.durable_offset.get() {
            self.durable_offset.set(target);
        }
        self.unflushed_records
            .set((self.unflushed_records.get() - flushed_records).max(0));
        if persist_recovery_point && target > self.recovery_point.get() {
            self.recovery_point.set(target);
            self.persist_state(false).await?;
        }
        Ok(())
    }

    /// Background flush by `flush.messages` / `flush.ms`.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), StorageError> {
        self.check_online()?;
        let (flush_messages, flush_ms) = {
            let c = self.config.borrow();
            (c.flush_messages, c.flush_ms)
        };
        let unflushed = self.unflushed_records.get();
        let by_count = flush_messages > 0 && unflushed >= flush_messages;
        let by_time = flush_ms >= 0
            && now_ms - self.last_flush_ms.get() >= flush_ms
            && (unflushed > 0 || self.recovery_point.get() < self.high_watermark.get());
        if by_count || by_time {
            self.last_flush_ms.set(now_ms);
            let persist = now_ms - self.last_state_persist_ms.get() >= RECOVERY_POINT_PERSIST_MS;
            if persist {
                self.last_state_persist_ms.set(now_ms);
            }
            // Durable appends waiting for the writer's group commit (acks=all traffic): it
            // will fdatasync everything written so far, so a second, concurrent fdatasync
            // of the same file would only contend with it.
            let group_commit_covers = self.durable_requested.get() >= self.high_watermark.get()
                && self.durable_requested.get() > self.durable_offset.get();
            self.flush_inner(persist, !group_commit_covers).await?;
        }
        Ok(())
    }

    /// Flushes, seals the active segment's indexes, writes the producer snapshot and marks
    /// a clean shutdown so the next open skips the recovery scan.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.check_online()?;
        let guard = self.dispatch_lock.lock().await;
        self.closed.set(true);
        drop(guard);
        self.wait_writer_idle().await;
        if let Some(reason) = self.offline.borrow().clone() {
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason,
            });
        }
        self.flush_inner(true, true).await?;
        let active = self.active_segment();
        active.seal_time_index();
        active.persist_indexes().await?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for s in &segments {
            s.sync_indexes().await?;
        }
        let snapshot = self.producers.borrow().encode_snapshot();
        super::recovery::write_producer_snapshot(&self.dir, self.next_offset.get(), snapshot)
            .await?;
        self.persist_state(true).await
    }

    /// DeleteTopics: stops the log and removes its directory.
    pub async fn delete(&self) -> Result<(), StorageError> {
        let guard = self.dispatch_lock.lock().await;
        self.closed.set(true);
        drop(guard);
        self.wait_writer_idle().await;
        let dir = self.dir.clone();
        let entries = std::fs::read_dir(&dir).map_err(|e| StorageError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
            let path = entry.path();
            compio::fs::remove_file(&path)
                .await
                .map_err(|e| StorageError::io(&path, e))?;
        }
        compio::fs::remove_dir(&dir)
            .await
            .map_err(|e| StorageError::io(&dir, e))?;
        if let Some(parent) = dir.parent() {
            super::state::sync_dir(parent).await?;
        }
        Ok(())
    }
}
