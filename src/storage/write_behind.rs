//! Write-behind (`[log] write_behind_bytes`): once a segment holds that many written bytes
//! no write-back has been started for, `sync_file_range(SYNC_FILE_RANGE_WRITE)` starts it
//! for their whole pages, on a blocking-pool thread, while the writer goes on. The
//! background flush's fdatasync (`flush.ms`) then finds little left to write.
//!
//! Why (issue 22, decision 0026): a background flush that found 100 ms of appends dirty
//! (40 MB at 400 MB/s) made ext4 allocate their blocks and submit their pages in one go;
//! the allocation holds the inode's `i_data_sem`, which the next append's delalloc
//! reservation (`ext4_da_get_block_prep`) waits for, and the submission's CPU burst
//! competes with the writer's io-wq worker and the shard on a small box. Started in
//! `write_behind_bytes` pieces, each allocation and submission is short and the work is
//! spread over the interval.
//!
//! Drop-behind (`[log] drop_behind_bytes`, session 22): with each range started, the pages
//! of the partition's log more than that many bytes behind its written end are dropped from
//! the page cache (`POSIX_FADV_DONTNEED`; the kernel skips any still dirty or under
//! write-back). A producer writing faster than the page cache is reclaimed otherwise made
//! every new page cost the broker's copy thread a page allocation with direct reclaim and
//! compaction, or on this VM a fresh page the host had to fault in; the dropped pages are
//! reused at once instead. The newest `drop_behind_bytes` stay cached for tailing and
//! catch-up consumers; a consumer further behind reads from the disk (cold reads go
//! through io_uring, never the shard's thread).
//!
//! Durability is unchanged: nothing here waits for the data or counts it synced; the
//! fdatasync of the flush or group commit is still what makes it durable, and a write-back
//! error is recorded on the file and reported by that fdatasync. Must not await in the
//! writer's path; at most one range per segment is in flight.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use super::log::PartitionLog;
use super::segment::Segment;

/// Write-back is started on whole pages only: the last, partial page is still being
/// appended to, and writing it now would write it again with the next append.
const PAGE_BYTES: u64 = 4096;

/// A segment's write-behind progress.
#[derive(Default)]
pub struct WriteBehind {
    /// Bytes from the start of the file whose write-back has been started.
    started_to: Cell<u64>,
    /// A `sync_file_range` of this segment is running on the blocking pool.
    in_flight: Cell<bool>,
    /// Ranges started whose write-back may still run (`wait_write_back` has not returned):
    /// while it does, ext4's block allocation and unwritten-extent conversion hold the
    /// inode's `i_data_sem`, which an append's copy into the page cache also takes.
    writing_back: Cell<u32>,
    /// Bytes from the start of the file whose pages drop-behind has dropped, or left to
    /// the kernel: what the file held when this process opened it (`opened_with`).
    dropped_to: Cell<u64>,
}

/// A range of a segment's log file to drop from the page cache, with its own descriptor.
struct DropRange {
    file: OwnedFd,
    from: u64,
    to: u64,
}

impl WriteBehind {
    /// The progress of a segment whose file holds `size_bytes` when opened: drop-behind
    /// leaves those pages to the kernel (they may not be cached, and walking every old
    /// segment after a restart would open them all).
    pub(super) fn opened_with(size_bytes: u64) -> WriteBehind {
        WriteBehind {
            dropped_to: Cell::new(size_bytes),
            ..WriteBehind::default()
        }
    }

    /// The pages of `[dropped_to, keep_from)` to drop (whole ones, or all of a segment
    /// behind the window), given that the segment's
    /// written bytes end at `written_end` and everything from `keep_from` on stays cached;
    /// records them as dropped. `None` when there are none.
    fn drop_due(&self, written_end: u64, keep_from: u64) -> Option<(u64, u64)> {
        if written_end < self.dropped_to.get() {
            // The file was cut back: count from its new end.
            self.dropped_to.set(written_end);
        }
        // A segment wholly behind the window is complete (only the active segment takes
        // appends, and it holds the window's start): its partial last page goes too.
        let to = if keep_from >= written_end {
            written_end
        } else {
            keep_from - keep_from % PAGE_BYTES
        };
        let from = self.dropped_to.get();
        if to <= from {
            return None;
        }
        self.dropped_to.set(to);
        Some((from, to))
    }

    /// The range `[from, to)` to start write-back for when the segment's written bytes
    /// end at `written_end`, or `None` while less than `threshold_bytes` of whole pages
    /// wait, a range is still in flight, or write-behind is off (`threshold_bytes` 0).
    /// Whether a range of this segment is being started now (tests wait for it to end).
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> bool {
        self.in_flight.get()
    }

    /// Marks write-back as running (or not) without starting any: tests of the inline
    /// writer's choice.
    #[cfg(test)]
    pub(super) fn set_writing_back(&self, running: bool) {
        self.writing_back.set(u32::from(running));
    }

    /// Whether write-back started here may still be running on this segment's file: an
    /// append written on the shard's thread now could wait for the inode's lock for as
    /// long as the write-back's holder runs (decision 0026, session 25).
    pub(super) fn writing_back(&self) -> bool {
        self.writing_back.get() > 0
    }

    fn due(&self, written_end: u64, threshold_bytes: u64) -> Option<(u64, u64)> {
        if threshold_bytes == 0 || self.in_flight.get() {
            return None;
        }
        let to = written_end - written_end % PAGE_BYTES;
        if to < self.started_to.get() {
            // The file was cut back (disk full, a follower's truncation): count from there.
            self.started_to.set(to);
        }
        let from = self.started_to.get();
        (to - from >= threshold_bytes).then_some((from, to))
    }
}

impl PartitionLog {
    /// Called by the writer after a write run ended at `end_position` of `segment`:
    /// starts write-back of the completed whole pages once `write_behind_bytes` of them
    /// wait. Not when a durable append waits (its group commit's fdatasync follows at
    /// once), nor with `flush.ms` = -1 (no background flush to shorten: the kernel's own
    /// write-back runs, as in Kafka).
    pub(super) fn start_write_behind(&self, segment: &Rc<Segment>, end_position: u64) {
        let (threshold, watch) = {
            let config = self.config.borrow();
            if config.flush_ms < 0 {
                return;
            }
            // Only an inline writer needs to know when the write-back ends: a partition
            // that may write inline, not one written back to back.
            (
                u64::from(config.write_behind_bytes),
                config.write_inline_max_bytes > 0 && self.writer.last_run_quiet.get(),
            )
        };
        if self.writer.durable_requested.get() > self.offsets.durable_offset.get() {
            return;
        }
        let Some((from, to)) = segment.write_behind.due(end_position, threshold) else {
            return;
        };
        segment.write_behind.in_flight.set(true);
        segment.write_behind.started_to.set(to);
        let wb = &segment.write_behind;
        wb.writing_back
            .set(wb.writing_back.get() + u32::from(watch));
        let drops = self.due_drops();
        let segment = Rc::clone(segment);
        // Detached: the writer never waits for write-back. The segment's `in_flight` keeps
        // one range per segment at a time; a range that finds the file gone (deleted,
        // truncated) just has nothing to write.
        compio::runtime::spawn(async move {
            let drops = open_drop_ranges(drops).await;
            if let Ok(file) = segment.files.log().await {
                let started = start_write_back(file, from, to, drops).await;
                if let Err(e) = started {
                    // The fdatasync that makes these bytes durable reports a write-back
                    // error on the file; this only failed to start early.
                    tracing::debug!(segment = %segment.log_path.display(), error = %e, "write-behind failed to start");
                }
            }
            segment.write_behind.in_flight.set(false);
            if watch {
                // The next range may start meanwhile (`in_flight` is clear); only the
                // inline writer waits for this count to fall.
                wait_write_back(segment.log_path.clone(), to).await;
                let wb = &segment.write_behind;
                wb.writing_back.set(wb.writing_back.get().saturating_sub(1));
            }
        })
        .detach();
    }

    /// Walking back from the written end over the partition's segments, newest first:
    /// the first `drop_behind_bytes` stay cached, the pages before them not dropped yet are
    /// due. Stops at the first segment dropped whole: every older one was dropped whole
    /// when this walk last reached it (or was on disk before this process opened it).
    fn due_drops(&self) -> Vec<(Rc<Segment>, u64, u64)> {
        let keep_bytes = self.config.borrow().drop_behind_bytes;
        let mut drops = Vec::new();
        if keep_bytes == 0 {
            return drops;
        }
        let mut keep = keep_bytes;
        for segment in self.segments.borrow().iter().rev() {
            let end = segment.visible_bytes.get();
            if keep == 0 && segment.write_behind.dropped_to.get() >= end {
                break;
            }
            let keep_from = end.saturating_sub(keep);
            keep = keep.saturating_sub(end);
            if let Some((from, to)) = segment.write_behind.drop_due(end, keep_from) {
                drops.push((Rc::clone(segment), from, to));
            }
        }
        drops
    }
}

/// A descriptor of its own for each range to drop (the segment's file, reopened if the
/// open-file budget closed it); a segment whose file is gone (deleted) has nothing to drop.
async fn open_drop_ranges(drops: Vec<(Rc<Segment>, u64, u64)>) -> Vec<DropRange> {
    use std::os::fd::AsFd;
    let mut ranges = Vec::with_capacity(drops.len());
    for (segment, from, to) in drops {
        let Ok(file) = segment.files.log().await else {
            continue;
        };
        if let Ok(file) = file.as_fd().try_clone_to_owned() {
            ranges.push(DropRange { file, from, to });
        }
    }
    ranges
}

/// `POSIX_FADV_DONTNEED` of each range: the kernel drops its clean pages from the page
/// cache and skips dirty, under-write-back and mapped ones (nothing is lost: a later read
/// comes from the disk). A failure only leaves the pages to the kernel's reclaim.
fn drop_cached(ranges: &[DropRange]) {
    use std::os::fd::AsRawFd;
    for range in ranges {
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(range.from),
            libc::off64_t::try_from(range.to - range.from),
        ) else {
            continue;
        };
        // SAFETY: the descriptor is open for the call; the kernel reads no user memory.
        let rc = unsafe {
            libc::posix_fadvise64(
                range.file.as_raw_fd(),
                offset,
                len,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::from_raw_os_error(rc), "drop-behind failed");
        }
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` of `[from, to)` on a blocking-pool thread: it
/// allocates blocks and submits the pages, which may wait for the inode's locks and the
/// block device's queue, so not on the shard's thread. Waits for nothing to reach the disk.
/// `SYNC_FILE_RANGE_WRITE` alone, never `WAIT_AFTER`: waiting would consume the file's
/// write-back error (its errseq) here, where nothing takes the partition offline, instead
/// of in the fdatasync that must report it. Then drops `drops` from the page cache, on the
/// same thread (one hand-off for both).
async fn start_write_back(
    file: compio::fs::File,
    from: u64,
    to: u64,
    drops: Vec<DropRange>,
) -> std::io::Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    // A descriptor of its own for the pool thread (the same open file, so a write-back
    // error lands where the segment's fdatasync looks for it).
    let file = file.as_fd().try_clone_to_owned()?;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(from),
        libc::off64_t::try_from(to - from),
    ) else {
        return Err(std::io::Error::from_raw_os_error(libc::EFBIG));
    };
    let run = move || loop {
        // SAFETY: `file` stays open for the call (moved into this closure); the kernel
        // reads no user memory.
        let r = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if r == 0 {
            drop_cached(&drops);
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    compio::runtime::spawn_blocking(run)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("write-behind thread panicked")))
}

/// Waits on a blocking-pool thread until the write-back of the range ending at `to` of the
/// file at `path` has ended (`SYNC_FILE_RANGE_WAIT_AFTER`): ext4 ends a page's write-back
/// after converting its unwritten extent, the last step that takes the inode's
/// `i_data_sem`. Only the range's last page is waited for: its pages go out in order, and
/// a wait on all of them sleeps once per completed bio (a context switch each, 27 more
/// per MB at 16 KiB max throughput, session 25).
/// Through a descriptor of its own, opened here: a wait consumes the write-back error it
/// sees for its own open file only, and the segment's fdatasync must still report it
/// (`start_write_back`). A file gone (deleted, closed for good) has nothing to wait for.
async fn wait_write_back(path: std::path::PathBuf, to: u64) {
    use std::os::fd::AsRawFd;
    let last_page = to.saturating_sub(PAGE_BYTES);
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(last_page),
        libc::off64_t::try_from(to - last_page),
    ) else {
        return;
    };
    let run = move || {
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        loop {
            // SAFETY: `file` stays open for the call; the kernel reads no user memory.
            let r = unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    offset,
                    len,
                    libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )
            };
            if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        }
    };
    // A panicked pool thread only ends the wait early.
    let _ = compio::runtime::spawn_blocking(run).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_due_once_enough_whole_pages_wait_and_none_is_in_flight() {
        let wb = WriteBehind::default();
        assert_eq!(wb.due(1 << 20, 0), None, "0 is off");
        assert_eq!(
            wb.due((1 << 20) - 1, 1 << 20),
            None,
            "the partial page is not counted"
        );
        assert_eq!(wb.due((1 << 20) + 100, 1 << 20), Some((0, 1 << 20)));
        wb.started_to.set(1 << 20);
        assert_eq!(wb.due((2 << 20) + 4095, 1 << 20), Some((1 << 20, 2 << 20)));
        wb.in_flight.set(true);
        assert_eq!(wb.due(3 << 20, 1 << 20), None, "one range at a time");
        wb.in_flight.set(false);
        // A truncation below what was started (disk full, follower) makes no range.
        assert_eq!(wb.due(4096, 1 << 20), None);
        assert_eq!(
            wb.due((1 << 20) + 4096, 1 << 20),
            Some((4096, (1 << 20) + 4096))
        );
    }

    #[test]
    fn a_drop_takes_whole_pages_before_the_window_once() {
        let wb = WriteBehind::default();
        assert_eq!(wb.drop_due(1 << 20, 0), None, "all of it in the window");
        assert_eq!(wb.drop_due(1 << 20, 4095), None, "less than a page");
        assert_eq!(wb.drop_due(1 << 20, 8192 + 100), Some((0, 8192)));
        assert_eq!(wb.drop_due(1 << 20, 8192 + 200), None, "dropped already");
        assert_eq!(
            wb.drop_due(8192 + 100, 8192 + 100),
            Some((8192, 8192 + 100)),
            "a segment behind the window goes with its partial last page"
        );
        wb.dropped_to.set(8192);
        assert_eq!(
            wb.drop_due(3 << 20, 3 << 20),
            Some((8192, 3 << 20)),
            "a segment wholly behind the window goes whole"
        );
        // A cut below what was dropped (disk full, a follower) counts from the new end.
        assert_eq!(wb.drop_due(4096, 4096), None);
        assert_eq!(wb.drop_due(3 << 20, 2 << 20), Some((4096, 2 << 20)));
        let opened = WriteBehind::opened_with(1 << 20);
        assert_eq!(
            opened.drop_due(1 << 20, 1 << 20),
            None,
            "what the file held when opened is left to the kernel"
        );
        assert_eq!(opened.drop_due(2 << 20, 2 << 20), Some((1 << 20, 2 << 20)));
    }
}
