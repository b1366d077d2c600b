//! `PartitionLog`: one partition's append-only log, owned by exactly one shard thread (`!Send`,
//! lives in an `Rc`). This file holds its state and the API the rest of the broker uses:
//! append in two stages (dispatched, then produced), flushing, the state file, close and
//! delete. The work behind it lives next door, each part owning its own state:
//! `append.rs` (an append's steps: validation, producer dedup, stamping), `writer.rs` (the
//! write queue, coalesced writes, group commit, durability waits), `sealer.rs` (rolling and
//! sealing segments), `read.rs` (fetch regions, timestamp lookups), `recovery.rs` (open) and
//! `retention.rs`. Interior mutability only through `Cell` / `RefCell`, and no borrow is
//! ever held across an `.await`. Must not parse records, talk to sockets or know about
//! other partitions.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use bytes::BytesMut;

use super::append::{ProducerCheck, check_payload, stamp_batches};
use super::cleaner::CleanerState;
use super::error::StorageError;
use super::notify::AsyncLock;
use super::producer_state::{AbortedTxn, ProducerStateInfo, ProducerStateManager};
use super::sealer::SealerState;
use super::segment::Segment;
use super::state::{PartitionState, write_state_in_place};
use super::sync_count::SyncCount;
use super::writer::WriterState;
use crate::config::LogConfig;

pub use super::append::LEADER_EPOCH;
pub use super::read::{FileRegion, ReadSlice};
pub use super::sealer::MAX_SEALS_IN_FLIGHT;
pub use super::writer::{MAX_IOVECS_PER_WRITE, WRITE_RETRY_BACKOFF_MS};

/// Least time between two background rewrites of a partition's state file (recovery point).
/// `flush.ms` syncs the data itself more often than this (default 100 ms).
pub const RECOVERY_POINT_PERSIST_MS: i64 = 1000;
/// DeleteRecords sentinel meaning "up to the written end" (Kafka's -1; the partition layer
/// resolves it to the high watermark before it gets here).
pub const DELETE_RECORDS_TO_WRITTEN_END: i64 = -1;

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

/// How a flush makes the log's data durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlushSync {
    /// fdatasync every segment with writes no sync covers, up to the written end.
    Fdatasync,
    /// A group commit already pending will sync everything written (see `flush_if_due`):
    /// only indexes and the recovery point (up to what is durable) are persisted.
    LeftToGroupCommit,
    /// A `syncfs` of the whole filesystem completed after the log had written up to
    /// `written_end` with `unflushed_records` of them not yet flushed
    /// (`filesystem_sync.rs`): durable up to there, nothing left to sync.
    SyncedThrough {
        written_end: i64,
        unflushed_records: i64,
        /// The index entries were written before the `syncfs` started, which covered them.
        indexes_written: bool,
    },
}

/// Receives the duration in nanoseconds of each segment fdatasync. Storage knows nothing of
/// metrics; the owning shard installs this hook when it opens the partition.
pub type SyncObserver = Rc<dyn Fn(u64)>;

/// How far the log has got, from its start to what is assigned.
#[derive(Default)]
pub(super) struct Offsets {
    pub(super) log_start_offset: Cell<i64>,
    /// Log end offset: one past the last offset assigned (dispatched).
    pub(super) next_offset: Cell<i64>,
    /// One past the last offset written to the file (readable). Not Kafka's high watermark:
    /// `partition::Partition` derives that from it (equal on one node with RF=1).
    pub(super) written_end_offset: Cell<i64>,
    /// One past the last offset known to be on stable storage.
    pub(super) durable_offset: Cell<i64>,
    /// The recovery point last persisted in the state file.
    pub(super) recovery_point: Cell<i64>,
}

/// Background-flush bookkeeping (`flush.messages`, `flush.ms`).
#[derive(Default)]
pub(super) struct FlushState {
    pub(super) unflushed_records: Cell<i64>,
    pub(super) last_flush_ms: Cell<i64>,
    /// When a background flush last rewrote the state file (see `RECOVERY_POINT_PERSIST_MS`).
    pub(super) last_state_persist_ms: Cell<i64>,
    /// The shard's hook for logs with background-flush work, and whether it was told of
    /// this one and has not let it go since (`flush_watch`).
    pub(super) watch: RefCell<Option<super::flush_watch::FlushWatch>>,
    pub(super) watched: Cell<bool>,
    /// (active segment base, its size) when the last producer snapshot was taken by a flush
    /// (see `PRODUCER_SNAPSHOT_INTERVAL_BYTES`); a roll takes its own.
    pub(super) producer_snapshot_at: Cell<(i64, u64)>,
    /// Writes to the state file, against what a completed sync covers (`write_state_file`).
    pub(super) state_sync: SyncCount,
}

pub struct PartitionLog {
    pub(super) self_ref: Weak<PartitionLog>,
    pub(super) dir: PathBuf,
    pub(super) name: String,
    pub(super) config: RefCell<LogConfig>,
    pub(super) segments: RefCell<VecDeque<Rc<Segment>>>,
    pub(super) offsets: Offsets,
    pub(super) producers: RefCell<ProducerStateManager>,
    /// Offset assignment, rolls and the enqueue happen under it, so queue order is offset
    /// order.
    pub(super) dispatch_lock: AsyncLock,
    /// One state-file writer at a time.
    pub(super) state_lock: AsyncLock,
    pub(super) writer: WriterState,
    pub(super) sealer: SealerState,
    pub(super) flush: FlushState,
    pub(super) offline: RefCell<Option<String>>,
    pub(super) closed: Cell<bool>,
    /// Whether the last open found a clean-shutdown mark (and so skipped the recovery scan).
    pub(super) opened_clean: Cell<bool>,
    /// Log compaction: the cleaner checkpoint and the segment-swap lock.
    pub(super) cleaner: CleanerState,
    /// The partition directory (a new one, or one whose log file is created lazily) and
    /// its entry in the data directory are not known to be on stable storage: the first
    /// data sync makes them so before anything is acknowledged as durable. Creating a
    /// partition then needs no fsync: its topic is durable in metadata, and an open
    /// recreates a partition directory a crash lost.
    pub(super) dir_unsynced: Cell<bool>,
    /// The state file on disk says the log was not shut down cleanly. An open that found a
    /// clean mark leaves it in place (rewriting it cost two fsyncs per partition at every
    /// start: 100,000 partitions took minutes); the first change to the log's files (an
    /// append, a cleaner pass) clears it first (`mark_unclean`).
    pub(super) marked_unclean: Cell<bool>,
    /// The leader epoch this node's appends are stamped with (cluster mode; 0 otherwise).
    pub(super) leader_epoch: Cell<i32>,
    /// Where each leader epoch started (`leader-epoch-checkpoint`).
    pub(super) epochs: RefCell<super::leader_epochs::LeaderEpochCache>,
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
            offsets: Offsets::default(),
            producers: RefCell::new(ProducerStateManager::default()),
            dispatch_lock: AsyncLock::default(),
            state_lock: AsyncLock::default(),
            writer: WriterState::default(),
            sealer: SealerState::default(),
            flush: FlushState::default(),
            offline: RefCell::new(None),
            closed: Cell::new(false),
            opened_clean: Cell::new(false),
            cleaner: CleanerState::default(),
            dir_unsynced: Cell::new(false),
            marked_unclean: Cell::new(true),
            leader_epoch: Cell::new(0),
            epochs: RefCell::new(Default::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_start_offset(&self) -> i64 {
        self.offsets.log_start_offset.get()
    }
    pub fn log_end_offset(&self) -> i64 {
        self.offsets.next_offset.get()
    }
    /// One past the last offset written to the file: what a read may serve. Kafka's high
    /// watermark is derived from it by `partition::Partition`.
    pub fn written_end_offset(&self) -> i64 {
        self.offsets.written_end_offset.get()
    }
    /// One past the last offset known to be synced to stable storage.
    pub fn durable_offset(&self) -> i64 {
        self.offsets.durable_offset.get()
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
    /// True when the last open found a clean-shutdown mark and skipped the recovery scan.
    pub fn opened_clean(&self) -> bool {
        self.opened_clean.get()
    }
    /// fdatasync calls on log files since open (observability; group-commit tests).
    pub fn fdatasync_count(&self) -> u64 {
        self.writer.fdatasyncs.get()
    }
    /// Write runs copied inline on the shard's thread since open, not through io_uring
    /// (observability; which appends take the inline path).
    pub fn inline_write_count(&self) -> u64 {
        self.writer.inline_writes.get()
    }
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
    /// Reads the config in place: for the append path, which must not copy the whole
    /// config (its stored-only map included) per request.
    pub fn with_config<R>(&self, read: impl FnOnce(&LogConfig) -> R) -> R {
        read(&self.config.borrow())
    }
    pub fn update_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }
    pub fn producer_states(&self) -> Vec<ProducerStateInfo> {
        self.producers.borrow().infos()
    }

    /// First offset of the oldest transaction still open in this log, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.borrow().first_unstable_offset()
    }

    /// Aborted transactions overlapping `[from_offset, to_offset)` (read_committed fetch).
    pub fn aborted_transactions(&self, from_offset: i64, to_offset: i64) -> Vec<AbortedTxn> {
        self.producers.borrow().aborted_in(from_offset, to_offset)
    }

    /// Forgets aborted transactions wholly below the log start (after retention or
    /// DeleteRecords moved it).
    pub fn trim_aborted_transactions(&self) {
        let log_start = self.offsets.log_start_offset.get();
        self.producers.borrow_mut().trim_aborted_before(log_start);
    }

    /// Completes when the written end next advances (an append was written), the writer goes
    /// idle or the log fails; `Partition::wait_for_append` (Fetch long-poll) builds on it.
    /// Owns its state, so it can be raced against a timer.
    pub fn wait_for_append(&self) -> impl Future<Output = ()> + 'static {
        self.writer.written_advanced.listen()
    }

    pub(super) fn check_online(&self) -> Result<(), StorageError> {
        self.check_not_offline()?;
        if self.closed.get() {
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason: "log is closed".into(),
            });
        }
        Ok(())
    }

    /// Like `check_online`, but a closed log passes. For the writer and sealer: `close` waits
    /// for them to finish what was dispatched before it (`wait_writer_idle`), so to them
    /// closing is not a failure; only a failed write or seal (offline) stops them.
    pub(super) fn check_not_offline(&self) -> Result<(), StorageError> {
        if let Some(reason) = self.offline.borrow().as_ref() {
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason: reason.clone(),
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
        self.writer.queue.borrow_mut().clear();
        self.writer.written_advanced.notify();
        self.writer.synced.notify();
        // The shard's next tick reports it and lists the partition offline, even when the
        // damage was found by a read of a partition with nothing to flush (`flush_watch`).
        self.note_flush_work();
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

    /// Appends already-validated batches (CRC was checked at the boundary), bytes exactly as
    /// received except the broker-owned fields patched in place. Returns once the data is
    /// written (and, if `durable`, synced — group-committed with concurrent appends).
    /// `durable` is the caller's decision: the topic's `durability` policy is applied once,
    /// by `partition::Partition::append`, never again here.
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
        batches: BytesMut,
        durable: bool,
        now_ms: i64,
        on_dispatched: impl FnOnce(),
    ) -> Result<AppendOutcome, StorageError> {
        self.append_staged_as(batches, durable, false, now_ms, on_dispatched)
            .await
    }

    /// `append_staged` for a leader whose in-sync followers will fetch this append
    /// (`replicated`): its write is part of a replication round and takes `[log]
    /// replica_write_inline_max_bytes`, as a follower's copy does. The acknowledgement waits
    /// for followers that can fetch only what is written, so nothing overlaps with the
    /// write: an io-wq worker's wake-up (and the shard's after it) would be pure cost.
    pub async fn append_staged_as(
        &self,
        mut batches: BytesMut,
        durable: bool,
        replicated: bool,
        now_ms: i64,
        on_dispatched: impl FnOnce(),
    ) -> Result<AppendOutcome, StorageError> {
        self.check_online()?;
        self.check_writes_allowed(now_ms)?;
        let settings = self.append_settings(durable);
        // Structure and size limits first: nothing below may fail on a malformed payload.
        let shape = check_payload(&batches, settings.max_bytes)?;

        let guard = self.dispatch_lock.lock().await;
        self.check_online()?;
        self.mark_unclean().await?;
        let active = self.active_segment();
        let last_offset = self.offsets.next_offset.get() + shape.offset_span - 1;
        if self.needs_roll(&active, batches.len() as u64, last_offset, now_ms) {
            self.roll().await?;
        }
        // From here to the enqueue there is no await: offsets, producer state and the queue
        // change together.
        let base_offset = self.offsets.next_offset.get();
        let check = self.check_producers(&batches, base_offset)?;
        let epoch = self.writer.epoch.get();
        let staged = match check {
            ProducerCheck::Append(staged) => staged,
            ProducerCheck::Duplicate(original) => {
                drop(guard);
                on_dispatched();
                return self.finish_duplicate(epoch, original, settings).await;
            }
        };
        let segment = self.active_segment();
        let position = segment.size_bytes.get();
        let end_offset = stamp_batches(
            &segment,
            &mut batches,
            position,
            base_offset,
            now_ms,
            settings,
        )?;
        assert_eq!(
            end_offset,
            base_offset + shape.offset_span,
            "offsets are gap-free"
        );
        if segment.first_append_ms.get() < 0 {
            segment.first_append_ms.set(now_ms);
        }
        self.record_producers(staged);
        self.offsets.next_offset.set(end_offset);
        self.flush
            .unflushed_records
            .set(self.flush.unflushed_records.get() + shape.record_count);
        self.enqueue_write(
            segment,
            position,
            batches,
            end_offset,
            settings.durable,
            replicated,
        );
        drop(guard);
        self.ensure_writer();
        on_dispatched();
        self.wait_written(end_offset, settings.durable, epoch)
            .await?;
        Ok(AppendOutcome {
            base_offset,
            last_offset: end_offset - 1,
            log_append_time_ms: settings.log_append_time_ms(now_ms),
            log_start_offset: self.offsets.log_start_offset.get(),
            duplicate: false,
        })
    }

    /// Whether any segment file was created (a new log creates its first on first append).
    fn has_files(&self) -> bool {
        let segments = self.segments.borrow();
        segments.len() > 1 || segments.iter().any(|s| s.files.log_created())
    }

    /// Writes the state file and makes it durable (serialised: one writer at a time).
    pub(super) async fn persist_state(&self, clean_shutdown: bool) -> Result<(), StorageError> {
        self.write_state_file(clean_shutdown, true).await
    }

    /// `durable` false leaves the write for the next `syncfs` to cover (a background flush's
    /// recovery point, `filesystem_sync.rs`), unless an earlier such write is not covered
    /// yet: then this one fdatasyncs both, so the slot it overwrites is always on disk.
    pub(super) async fn write_state_file(
        &self,
        clean: bool,
        durable: bool,
    ) -> Result<(), StorageError> {
        let _g = self.state_lock.lock().await;
        let state = PartitionState {
            log_start_offset: self.offsets.log_start_offset.get(),
            recovery_point: self.offsets.recovery_point.get(),
            written_end_offset: self.offsets.written_end_offset.get(),
            clean_shutdown: clean,
        };
        let durable = durable || self.flush.state_sync.is_dirty();
        write_state_in_place(&self.dir, &state, durable).await?;
        self.flush.state_sync.note_write();
        if durable {
            self.flush
                .state_sync
                .note_synced(self.flush.state_sync.so_far());
        }
        self.marked_unclean.set(!clean);
        Ok(())
    }

    /// Clears the clean-shutdown mark an open left on disk, before the log's files change:
    /// a crash after that must run recovery.
    pub(super) async fn mark_unclean(&self) -> Result<(), StorageError> {
        if self.marked_unclean.get() {
            return Ok(());
        }
        self.persist_state(false).await
    }

    /// Reports the duration of every segment fdatasync to `observer` (the shard's metrics).
    pub fn observe_syncs(&self, observer: SyncObserver) {
        *self.writer.sync_observer.borrow_mut() = Some(observer);
    }

    /// fdatasyncs every segment with unsynced data, persists new index entries and advances
    /// the recovery point in the state file.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.check_online()?;
        self.flush_inner(true, FlushSync::Fdatasync).await
    }

    /// `persist_recovery_point`: also write new index entries to the index files and
    /// rewrite the state file when the recovery point moved. Background flushes do that at
    /// most every `RECOVERY_POINT_PERSIST_MS`: the state write costs an fdatasync, and a
    /// recovery point that lags only makes recovery scan a little more (it is never ahead of
    /// the synced data). The index writes go with it because nothing reads an index file
    /// between a flush and the next seal or close, which write (and sync) every entry left:
    /// recovery after a crash trusts only the entries below the persisted recovery point
    /// (synced before it, below) and rebuilds the rest from the batches, and a read uses
    /// the indexes in memory. Written on every `flush.ms` tick they were two more
    /// io-wq writes per partition and tick, the bulk of a 1,000-partition spread's flush
    /// work after the fdatasync (perf/RESULTS.md, session 14).
    ///
    /// `sync` says how the data becomes durable: see `FlushSync`.
    pub(super) async fn flush_inner(
        &self,
        persist_recovery_point: bool,
        sync: FlushSync,
    ) -> Result<(), StorageError> {
        let (target, flushed_records) = match sync {
            FlushSync::Fdatasync => (
                self.offsets.written_end_offset.get(),
                self.flush.unflushed_records.get(),
            ),
            FlushSync::LeftToGroupCommit => (
                self.offsets.durable_offset.get(),
                self.flush.unflushed_records.get(),
            ),
            FlushSync::SyncedThrough {
                written_end,
                unflushed_records,
                ..
            } => (written_end, unflushed_records),
        };
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for s in &segments {
            if sync == FlushSync::Fdatasync {
                self.sync_if_dirty(s).await?;
            }
            if persist_recovery_point && !sync.indexes_written() {
                s.persist_indexes().await?;
            }
        }
        if target > self.offsets.durable_offset.get() {
            self.offsets.durable_offset.set(target);
        }
        self.flush
            .unflushed_records
            .set((self.flush.unflushed_records.get() - flushed_records).max(0));
        if persist_recovery_point && target > self.offsets.recovery_point.get() {
            // An unclean open trusts the index entries below the recovery point (it resumes
            // re-validation from them, `revalidate.rs`): they reach the disk before the
            // recovery point that covers them, as Kafka's flush syncs its indexes. At most
            // once per `RECOVERY_POINT_PERSIST_MS`, and only files that took entries.
            for s in &segments {
                s.sync_indexes().await?;
            }
            self.offsets.recovery_point.set(target);
            // After a syncfs, the next one makes the new recovery point durable: it may lag
            // (recovery then scans a little more), never lead (decision 0020, session 22).
            let durable = !matches!(sync, FlushSync::SyncedThrough { .. });
            self.write_state_file(false, durable).await?;
            self.snapshot_producers_if_due().await?;
        }
        Ok(())
    }

    /// Writes a producer snapshot at the log end when the active segment grew by
    /// `PRODUCER_SNAPSHOT_INTERVAL_BYTES` since the last one (a roll's or a flush's), so the
    /// producer-state replay after a crash reads at most about that much of the log, as the
    /// re-validation reads only from the recovery point. Taken where the state file is
    /// rewritten (at most every `RECOVERY_POINT_PERSIST_MS`), which bounds the extra writes.
    /// A snapshot may describe batches still queued: recovery ignores one past the
    /// recovered end, and one it cannot read (never synced) for an older one.
    async fn snapshot_producers_if_due(&self) -> Result<(), StorageError> {
        let active = self.active_segment();
        let size = active.size_bytes.get();
        let (base, size_then) = self.flush.producer_snapshot_at.get();
        let grown = if base == active.base_offset {
            size.saturating_sub(size_then)
        } else {
            size
        };
        if grown < super::recovery::PRODUCER_SNAPSHOT_INTERVAL_BYTES {
            return Ok(());
        }
        // Marked before the write's awaits: a flush running meanwhile finds nothing due.
        self.flush
            .producer_snapshot_at
            .set((active.base_offset, size));
        let offset = self.offsets.next_offset.get();
        let snapshot = self.producers.borrow().encode_snapshot();
        super::recovery::write_producer_snapshot(&self.dir, offset, snapshot).await
    }

    /// Background flush by `flush.messages` / `flush.ms`.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), StorageError> {
        self.check_online()?;
        if self.flush_due(now_ms) {
            let written_end = self.offsets.written_end_offset.get();
            let persist = self.start_background_flush(now_ms);
            // Durable appends waiting for the writer's group commit (acks=all traffic): it
            // will fdatasync everything written so far, so a second, concurrent fdatasync
            // of the same file would only contend with it.
            let requested = self.writer.durable_requested.get();
            let group_commit_covers =
                requested >= written_end && requested > self.offsets.durable_offset.get();
            let sync = if group_commit_covers {
                FlushSync::LeftToGroupCommit
            } else {
                FlushSync::Fdatasync
            };
            self.flush_inner(persist, sync).await?;
        }
        Ok(())
    }

    /// Notes a background flush starting at `now_ms`; whether it also persists the index
    /// entries and the recovery point (at most every `RECOVERY_POINT_PERSIST_MS`).
    pub(super) fn start_background_flush(&self, now_ms: i64) -> bool {
        self.flush.last_flush_ms.set(now_ms);
        let persist = now_ms - self.flush.last_state_persist_ms.get() >= RECOVERY_POINT_PERSIST_MS;
        if persist {
            self.flush.last_state_persist_ms.set(now_ms);
        }
        persist
    }

    /// Whether `flush_if_due` would flush now (`flush.messages` / `flush.ms` reached, with
    /// something unflushed), or has an error to report (the log went offline): a check with
    /// no I/O, run each maintenance tick on the logs with flush work (`flush_watch`).
    pub fn background_flush_due(&self, now_ms: i64) -> bool {
        self.offline.borrow().is_some() || (!self.closed.get() && self.flush_due(now_ms))
    }

    fn flush_due(&self, now_ms: i64) -> bool {
        let (flush_messages, flush_ms) = {
            let c = self.config.borrow();
            (c.flush_messages, c.flush_ms)
        };
        let unflushed = self.flush.unflushed_records.get();
        let written_end = self.offsets.written_end_offset.get();
        let by_count = flush_messages > 0 && unflushed >= flush_messages;
        let by_time = flush_ms >= 0
            && now_ms - self.flush.last_flush_ms.get() >= flush_ms
            && (unflushed > 0 || self.offsets.recovery_point.get() < written_end);
        by_count || by_time
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
        self.flush_inner(true, FlushSync::Fdatasync).await?;
        if !self.marked_unclean.get() || !self.has_files() {
            // The clean mark an open found still holds (nothing changed since), or the log
            // never took data and has no file to recover: nothing to write, which keeps
            // stopping a broker of 100,000 idle partitions short.
            return Ok(());
        }
        let active = self.active_segment();
        active.seal_time_index();
        active.persist_indexes().await?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for s in &segments {
            s.sync_indexes().await?;
        }
        let snapshot = self.producers.borrow().encode_snapshot();
        let log_end = self.offsets.next_offset.get();
        super::recovery::write_producer_snapshot(&self.dir, log_end, snapshot).await?;
        self.persist_state(true).await
    }

    /// DeleteTopics: stops the log and removes its directory.
    pub async fn delete(&self) -> Result<(), StorageError> {
        let guard = self.dispatch_lock.lock().await;
        self.closed.set(true);
        drop(guard);
        self.wait_writer_idle().await;
        super::evict::remove_log_dir(&self.dir).await
    }
}
