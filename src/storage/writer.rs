//! The partition's writer: the queue of dispatched writes and rolls, the one detached task
//! that drains it (adjacent writes to a segment coalesced into one writev), group commit
//! (one fdatasync shared by every durable append waiting at that moment) and the waits
//! appends make for their data to be written or synced. Also the disk-full path: abandon
//! what was not written, refuse appends for a while. Must not assign offsets or decide
//! rolls (`append.rs`, `sealer.rs`); it only writes what was dispatched, in order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use compio::buf::BufResult;
use compio::io::AsyncWriteAtExt;

use super::error::StorageError;
use super::log::{PartitionLog, SyncObserver};
use super::notify::Event;
use super::sealer::ProducerSnapshot;
use super::segment::Segment;

/// Most buffers handed to one writev (Linux IOV_MAX).
pub const MAX_IOVECS_PER_WRITE: usize = 1024;
/// After a write fails for lack of space, appends are refused at once for this long before
/// the next attempt (so a full disk costs one failed write per interval, not per request).
pub const WRITE_RETRY_BACKOFF_MS: i64 = 500;
/// Most buffers one inline write takes (its iovec array lives on the stack); a longer run
/// goes through io_uring whatever its size.
pub const INLINE_WRITE_MAX_IOVECS: usize = 64;
/// A client append's small run is written inline only when its partition's previous
/// write run ended at least this long ago (`[log] write_inline_max_bytes`). A partition
/// written back to back keeps io_uring: its batches coalesce into longer runs while the
/// worker copies, and the copy runs on the other core while the shard goes on receiving
/// (decision 0012, session 13). A partition written now and then (a producer spreading its
/// batches over many partitions) gets nothing from the worker but a hand-off and two
/// context switches per batch (decision 0005, session 20), and so does a fixed-rate
/// producer's partition (a 16 KiB batch every ~320 µs at 50 MB/s), where the worker's copy
/// overlaps nothing; one partition at full speed writes every ~40 µs (decision 0026,
/// session 25; 1 ms before, which no fixed-rate partition above 16 MB/s met).
pub const INLINE_WRITE_MIN_GAP_US: u64 = 150;
/// An inline write that slept (a voluntary context switch of the shard's thread) and took
/// longer than this blocked the shard on the page cache (dirty-page throttling, reclaim):
/// a copy of a few KiB takes microseconds. The `RWF_NOWAIT` check that would refuse such a
/// write up front is not available for buffered writes on ext4 (EOPNOTSUPP on 6.18), so
/// the shard notices after the fact. Being preempted is no stall (involuntary switches).
pub const INLINE_WRITE_STALL_US: u64 = 1_000;
/// After a stalled inline write, every write of the shard goes through io_uring for this
/// long (the worker thread then waits for the page cache, not the shard's other partitions).
pub const INLINE_WRITE_PAUSE_MS: u64 = 1_000;

thread_local! {
    /// Until when this shard's writes avoid the inline path (see `INLINE_WRITE_STALL_US`).
    /// Per thread, i.e. per shard: the page cache's back-pressure is the machine's, not one
    /// partition's, so one stalled write steers all of the shard's partitions.
    static INLINE_PAUSED_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Whether this shard may write inline at `now` (no stalled inline write in the last
/// `INLINE_WRITE_PAUSE_MS`).
fn inline_allowed(now: Instant) -> bool {
    INLINE_PAUSED_UNTIL.with(|until| until.get().is_none_or(|t| now >= t))
}

/// Records an inline write that ended at `now` after `took`, during which the thread slept
/// (`slept`: voluntary context switches) or not; a stall pauses the shard's inline path.
fn note_inline_write(took: std::time::Duration, slept: bool, now: Instant) {
    if slept && took > std::time::Duration::from_micros(INLINE_WRITE_STALL_US) {
        tracing::debug!(
            took_us = took.as_micros() as u64,
            "inline write stalled; this shard writes through io_uring for a while"
        );
        INLINE_PAUSED_UNTIL.with(|until| {
            until.set(Some(
                now + std::time::Duration::from_millis(INLINE_WRITE_PAUSE_MS),
            ))
        });
    }
}

/// This thread's voluntary context switches so far (it slept: blocked on I/O or a lock).
fn voluntary_switches() -> i64 {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD reads the calling thread's counters.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return 0;
    }
    usage.ru_nvcsw
}

pub(super) enum WriteItem {
    Write {
        segment: Rc<Segment>,
        position: u64,
        buf: BytesMut,
        /// One past the last offset in `buf`.
        end_offset: i64,
        /// Part of a replication round: a follower's copy of its leader's records, or a
        /// leader's append its in-sync followers will fetch (`[log]
        /// replica_write_inline_max_bytes` applies, not `write_inline_max_bytes`).
        replicated: bool,
    },
    /// The segment was rolled: sync it, persist its indexes, the new segment's directory
    /// entry and the producer snapshot taken at the roll, alongside later writes.
    Seal {
        segment: Rc<Segment>,
        producer_snapshot: ProducerSnapshot,
    },
}

/// What the writer task shares with the appends waiting on it.
#[derive(Default)]
pub(super) struct WriterState {
    pub(super) queue: RefCell<VecDeque<WriteItem>>,
    /// A writer task is running; at most one per log.
    pub(super) running: Cell<bool>,
    /// End offset of the newest append that asked for durability.
    pub(super) durable_requested: Cell<i64>,
    /// Notified when the written end advances, the writer goes idle or the log fails.
    pub(super) written_advanced: Rc<Event>,
    /// Notified after each group commit, and when waiters must give up.
    pub(super) synced: Rc<Event>,
    /// Bumped when queued writes are abandoned (disk full): waiters from an older epoch fail
    /// instead of mistaking later appends at the same offsets for their own.
    pub(super) epoch: Cell<u64>,
    /// Appends are refused until this wall-clock time after a failed write (disk full).
    pub(super) refused_until_ms: Cell<i64>,
    /// fdatasync calls on log files since open.
    pub(super) fdatasyncs: Cell<u64>,
    /// Write runs `pwritev`'d on the shard's thread since open.
    pub(super) inline_writes: Cell<u64>,
    /// When the last write run ended (see `INLINE_WRITE_MIN_GAP_US`).
    pub(super) last_run_end: Cell<Option<Instant>>,
    /// The last run's partition was not written back to back (`INLINE_WRITE_MIN_GAP_US`):
    /// only then does write-behind watch its ranges' write-back end (`write_behind.rs`),
    /// a thread hand-off per range a busy partition's io-wq writes do not need.
    pub(super) last_run_quiet: Cell<bool>,
    /// An fdatasync of one of the log's segments is running (group commit, background
    /// flush): its write-back holds the inode's lock an inline write would wait for.
    pub(super) syncing: Cell<bool>,
    /// Told the duration (ns) of every segment fdatasync: the shard's metrics hook.
    pub(super) sync_observer: RefCell<Option<SyncObserver>>,
}

impl PartitionLog {
    /// Refuses an append while a failed write's backoff lasts (disk full).
    pub(super) fn check_writes_allowed(&self, now_ms: i64) -> Result<(), StorageError> {
        if now_ms < self.writer.refused_until_ms.get() {
            return Err(StorageError::io(
                &self.dir,
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        Ok(())
    }

    /// Queues dispatched bytes behind everything dispatched before. Caller holds the
    /// dispatch lock and starts the writer (`ensure_writer`) once it is released.
    pub(super) fn enqueue_write(
        &self,
        segment: Rc<Segment>,
        position: u64,
        buf: BytesMut,
        end_offset: i64,
        durable: bool,
        replicated: bool,
    ) {
        if durable {
            self.writer.durable_requested.set(end_offset);
        }
        self.note_flush_work();
        self.writer.queue.borrow_mut().push_back(WriteItem::Write {
            segment,
            position,
            buf,
            end_offset,
            replicated,
        });
    }

    /// Waits until `end_offset` is readable (and synced if `durable`).
    pub(super) async fn wait_written(
        &self,
        end_offset: i64,
        durable: bool,
        epoch: u64,
    ) -> Result<(), StorageError> {
        loop {
            let event = if durable {
                &self.writer.synced
            } else {
                &self.writer.written_advanced
            };
            let listen = event.listen();
            if self.writer.epoch.get() != epoch {
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
                self.offsets.durable_offset.get() >= end_offset
            } else {
                self.offsets.written_end_offset.get() >= end_offset
            };
            if done {
                return Ok(());
            }
            if durable && self.writer.durable_requested.get() < end_offset {
                self.writer.durable_requested.set(end_offset);
            }
            // A durable wait with an idle writer (e.g. a duplicate of data written without
            // sync) needs someone to sync.
            if durable && !self.writer.running.get() {
                self.spawn_writer();
            }
            listen.await;
        }
    }

    pub(super) fn ensure_writer(&self) {
        if self.writer.running.get() || self.writer.queue.borrow().is_empty() {
            return;
        }
        self.spawn_writer();
    }

    fn spawn_writer(&self) {
        let Some(me) = self.self_ref.upgrade() else {
            return;
        };
        self.writer.running.set(true);
        // A detached task, not the appending future: a dropped append (client went away)
        // must not strand the queue or lose a buffer mid-write.
        compio::runtime::spawn(async move { me.run_writer().await }).detach();
    }

    async fn run_writer(self: Rc<Self>) {
        let mut iov: Vec<BytesMut> = Vec::new();
        let mut items: VecDeque<WriteItem> = VecDeque::new();
        loop {
            std::mem::swap(&mut items, &mut *self.writer.queue.borrow_mut());
            let need_sync = self.writer.durable_requested.get() > self.offsets.durable_offset.get();
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
        self.writer.running.set(false);
        // Wake anyone waiting for the writer to go idle (close, delete).
        self.writer.written_advanced.notify();
    }

    /// Writes (or hands to the sealer) every item taken from the queue, in order, then
    /// group-commits if a durable append is waiting.
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
                    replicated,
                } => {
                    let end_position = position + buf.len() as u64;
                    iov.push(buf);
                    let (end_position, end_offset) =
                        take_contiguous(&segment, end_position, end_offset, items, iov);
                    self.write_run(
                        &segment,
                        position,
                        end_position,
                        end_offset,
                        iov,
                        replicated,
                    )
                    .await?;
                }
                WriteItem::Seal {
                    segment,
                    producer_snapshot,
                } => self.start_seal(segment, producer_snapshot).await?,
            }
        }
        if self.writer.durable_requested.get() > self.offsets.durable_offset.get() {
            self.group_commit().await?;
        }
        Ok(())
    }

    /// The largest run written inline: a replication round's write (a follower's copy, a
    /// leader's append with in-sync followers) has its own setting
    /// (`replica_write_inline_max_bytes`), other appends the broker's.
    fn inline_max_bytes(&self, replicated: bool) -> u32 {
        let config = self.config.borrow();
        if replicated {
            config.replica_write_inline_max_bytes
        } else {
            config.write_inline_max_bytes
        }
    }

    /// Whether a run of `len` bytes in `iovecs` buffers is written on this thread: small
    /// enough for its setting, no stalled inline write on this shard lately, and (a client
    /// append on a leader alone in its ISR) the partition not written back to back.
    fn write_inline(
        &self,
        segment: &Segment,
        len: u64,
        iovecs: usize,
        replicated: bool,
        now: Instant,
    ) -> bool {
        let quiet = self.writer.last_run_end.get().is_none_or(|end| {
            now.duration_since(end) >= std::time::Duration::from_micros(INLINE_WRITE_MIN_GAP_US)
        });
        self.writer.last_run_quiet.set(quiet);
        len <= u64::from(self.inline_max_bytes(replicated))
            && iovecs <= INLINE_WRITE_MAX_IOVECS
            && inline_allowed(now)
            && (replicated || (quiet && !self.writing_back(segment)))
    }

    /// Whether write-back of this log may hold the segment's inode lock now: a range
    /// write-behind started has not finished, or an fdatasync runs.
    fn writing_back(&self, segment: &Segment) -> bool {
        segment.write_behind.writing_back() || self.writer.syncing.get()
    }

    /// One writev of `iov` at `position`, then the written end moves to `end_offset`.
    /// A small run may be written on this thread (`write_inline`).
    async fn write_run(
        &self,
        segment: &Rc<Segment>,
        position: u64,
        end_position: u64,
        end_offset: i64,
        iov: &mut Vec<BytesMut>,
        replicated: bool,
    ) -> Result<(), StorageError> {
        assert_eq!(
            segment.visible_bytes.get(),
            position,
            "writes to {} are sequential",
            segment.log_path.display()
        );
        let mut file = segment.files.log().await?;
        let started = Instant::now();
        let r = if self.write_inline(
            segment,
            end_position - position,
            iov.len(),
            replicated,
            started,
        ) {
            // A small run is copied into the page cache on this thread: through io_uring
            // ext4 punts a buffered write to an io-wq worker, a thread wake-up per append
            // that costs more than the copy (decisions 0012, session 13, and 0005, session
            // 20). No sync here: the fsync path is unchanged.
            let slept_before = voluntary_switches();
            let r = pwritev_all(file.as_raw_fd(), iov, position);
            let now = Instant::now();
            let took = now.duration_since(started);
            // Only a slow write is asked whether it slept (one more syscall).
            let slept = took > std::time::Duration::from_micros(INLINE_WRITE_STALL_US)
                && voluntary_switches() != slept_before;
            note_inline_write(took, slept, now);
            iov.clear();
            self.writer
                .inline_writes
                .set(self.writer.inline_writes.get() + 1);
            r
        } else {
            let BufResult(r, back) = file
                .write_vectored_all_at(std::mem::take(iov), position)
                .await;
            *iov = back;
            iov.clear();
            r
        };
        self.writer.last_run_end.set(Some(Instant::now()));
        r.map_err(|e| StorageError::io(&segment.log_path, e))?;
        segment.mark_written();
        segment.visible_bytes.set(end_position);
        self.start_write_behind(segment, end_position);
        assert!(
            end_offset > self.offsets.written_end_offset.get(),
            "the written end only grows"
        );
        self.offsets.written_end_offset.set(end_offset);
        self.writer.written_advanced.notify();
        Ok(())
    }

    /// Group commit: one fdatasync covers every append written so far.
    async fn group_commit(&self) -> Result<(), StorageError> {
        let target = self.offsets.written_end_offset.get();
        // Everything below `target` in rolled segments must be on disk too: seals in
        // flight finish first, and a segment rolled while this pass was writing (its
        // seal is still queued behind this writer) is synced here, not left to that
        // seal. Segments wholly below the durable offset are synced already.
        self.wait_seals(0).await;
        // Stop if a seal failed meanwhile (offline). Not `check_online`: a close that began
        // while this pass was writing waits for it to finish; failing here would take the
        // partition offline, fail the close and leave no clean-shutdown mark, so the next
        // start would run recovery (issue 19, point 5).
        self.check_not_offline()?;
        let durable = self.offsets.durable_offset.get();
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
        if target > self.offsets.durable_offset.get() {
            self.offsets.durable_offset.set(target);
        }
        self.writer.synced.notify();
        Ok(())
    }

    /// fdatasyncs `segment` if it holds unsynced writes; counts and times the sync.
    pub(super) async fn sync_if_dirty(&self, segment: &Segment) -> Result<(), StorageError> {
        if !segment.is_dirty() {
            return Ok(());
        }
        self.ensure_dir_durable().await?;
        let started = Instant::now();
        let synced = {
            // Cleared on drop too: a sync whose future is dropped (shutdown) must not leave
            // the partition off the inline path for good.
            let _syncing = FlagWhile::set(&self.writer.syncing);
            segment.sync_log().await
        };
        synced?;
        self.writer.fdatasyncs.set(self.writer.fdatasyncs.get() + 1);
        if let Some(observer) = self.writer.sync_observer.borrow().as_ref() {
            observer(started.elapsed().as_nanos() as u64);
        }
        Ok(())
    }

    /// fsyncs the partition directory and the data directory holding it once, before the
    /// first data sync of a partition created without them (`dir_unsynced`): the log file's
    /// name and the directory's must survive a power loss with the data they hold.
    pub(super) async fn ensure_dir_durable(&self) -> Result<(), StorageError> {
        if !self.dir_unsynced.get() {
            return Ok(());
        }
        super::state::sync_dir(&self.dir).await?;
        if let Some(parent) = self.dir.parent() {
            super::state::sync_dir(parent).await?;
        }
        self.dir_unsynced.set(false);
        Ok(())
    }

    /// Disk full: drop every queued (unwritten) append, cut the active segment back to what
    /// was written, rebuild producer state for that end, and refuse appends for a short
    /// while. Reads go on; nothing acknowledged is touched; writes resume once space is free.
    async fn abandon_unwritten(&self, cause: &StorageError) -> Result<(), StorageError> {
        tracing::warn!(partition = %self.name, error = %cause, "write failed for lack of space; abandoning unwritten appends");
        self.writer
            .refused_until_ms
            .set(super::recovery::wall_clock_ms() + WRITE_RETRY_BACKOFF_MS);
        let guard = self.dispatch_lock.lock().await;
        self.writer.queue.borrow_mut().clear();
        self.writer.epoch.set(self.writer.epoch.get() + 1);
        let written_end = self.offsets.written_end_offset.get();
        let active = self.active_segment();
        if active.base_offset > written_end {
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
            .truncate_to_offset((written_end - active.base_offset) as u32);
        active.next_offset.set(written_end);
        self.offsets.next_offset.set(written_end);
        if self.writer.durable_requested.get() > written_end {
            self.writer.durable_requested.set(written_end);
        }
        self.rebuild_producer_state().await?;
        drop(guard);
        // Waiters of abandoned appends see the new epoch and fail.
        self.writer.written_advanced.notify();
        self.writer.synced.notify();
        Ok(())
    }

    /// Waits until every queued write has reached the file.
    pub(super) async fn wait_writer_idle(&self) {
        loop {
            let listen = self.writer.written_advanced.listen();
            if !self.writer.running.get()
                && self.writer.queue.borrow().is_empty()
                && self.sealer.in_flight.get() == 0
            {
                return;
            }
            listen.await;
        }
    }
}

/// Moves the queued writes that continue `segment` at `end_position` into `iov` (up to
/// `MAX_IOVECS_PER_WRITE`), so one writev carries them all. Returns the run's new end
/// position and end offset.
fn take_contiguous(
    segment: &Rc<Segment>,
    mut end_position: u64,
    mut end_offset: i64,
    items: &mut VecDeque<WriteItem>,
    iov: &mut Vec<BytesMut>,
) -> (u64, i64) {
    while iov.len() < MAX_IOVECS_PER_WRITE {
        match items.front() {
            Some(WriteItem::Write {
                segment: s,
                position: p,
                ..
            }) if Rc::ptr_eq(s, segment) && *p == end_position => {}
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
    (end_position, end_offset)
}

/// Writes every byte of `bufs` (at most `INLINE_WRITE_MAX_IOVECS` of them) at `position`
/// with blocking `pwritev` calls on this thread, resuming after short writes and EINTR.
fn pwritev_all(fd: RawFd, bufs: &[BytesMut], mut position: u64) -> std::io::Result<()> {
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iovecs = [empty; INLINE_WRITE_MAX_IOVECS];
    let count = bufs.len().min(INLINE_WRITE_MAX_IOVECS);
    for (slot, buf) in iovecs.iter_mut().zip(bufs) {
        slot.iov_base = buf.as_ptr() as *mut libc::c_void;
        slot.iov_len = buf.len();
    }
    let mut first = 0;
    loop {
        while first < count && iovecs[first].iov_len == 0 {
            first += 1;
        }
        if first == count {
            return Ok(());
        }
        let offset = libc::off_t::try_from(position)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: every iovec in `first..count` points into a live buffer of `bufs` (or was
        // advanced within one below) for its length; the kernel only reads them.
        let written = unsafe {
            libc::pwritev(
                fd,
                iovecs[first..count].as_ptr(),
                (count - first) as libc::c_int,
                offset,
            )
        };
        if written < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut written = written as usize;
        position += written as u64;
        while first < count && written >= iovecs[first].iov_len {
            written -= iovecs[first].iov_len;
            first += 1;
        }
        if written > 0 {
            // A short write ended inside this buffer: resume at its first unwritten byte.
            let slot = &mut iovecs[first];
            // SAFETY: `written` is less than the slot's length, so the pointer stays inside
            // the same buffer.
            slot.iov_base = unsafe { slot.iov_base.cast::<u8>().add(written) }.cast();
            slot.iov_len -= written;
        }
    }
}

/// Sets a flag for as long as it lives, and clears it when dropped (also when the future
/// holding it is dropped mid-await).
struct FlagWhile<'a>(&'a Cell<bool>);

impl<'a> FlagWhile<'a> {
    fn set(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        FlagWhile(flag)
    }
}

impl Drop for FlagWhile<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stalled inline write sends the shard's writes through io_uring for
    /// `INLINE_WRITE_PAUSE_MS`, then the inline path is back; a quick one changes nothing.
    #[test]
    fn a_stalled_inline_write_pauses_the_inline_path_for_a_while() {
        use std::time::Duration;
        // Each test runs on its own thread: the shard-wide state starts empty.
        let t0 = Instant::now();
        assert!(inline_allowed(t0));
        let slow = Duration::from_micros(INLINE_WRITE_STALL_US + 1);
        note_inline_write(Duration::from_micros(INLINE_WRITE_STALL_US), true, t0);
        assert!(inline_allowed(t0), "at the bound: not a stall");
        note_inline_write(slow, false, t0);
        assert!(inline_allowed(t0), "preempted, not asleep: not a stall");
        note_inline_write(slow, true, t0);
        assert!(!inline_allowed(t0));
        let pause = Duration::from_millis(INLINE_WRITE_PAUSE_MS);
        assert!(!inline_allowed(t0 + pause - Duration::from_millis(1)));
        assert!(inline_allowed(t0 + pause));
    }

    #[test]
    fn pwritev_all_writes_every_buffer_in_order_at_the_position_skipping_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        let bufs = [
            BytesMut::from(&b"abc"[..]),
            BytesMut::new(),
            BytesMut::from(&b"defg"[..]),
            BytesMut::new(),
        ];
        pwritev_all(file.as_raw_fd(), &bufs, 5).unwrap();
        pwritev_all(file.as_raw_fd(), &[BytesMut::new()], 100).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0\0\0\0\0abcdefg");
    }
}
