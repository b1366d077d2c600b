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
//! Durability is unchanged: nothing here waits for the data or counts it synced; the
//! fdatasync of the flush or group commit is still what makes it durable, and a write-back
//! error is recorded on the file and reported by that fdatasync. Must not await in the
//! writer's path; at most one range per segment is in flight.

use std::cell::Cell;
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
}

impl WriteBehind {
    /// The range `[from, to)` to start write-back for when the segment's written bytes
    /// end at `written_end`, or `None` while less than `threshold_bytes` of whole pages
    /// wait, a range is still in flight, or write-behind is off (`threshold_bytes` 0).
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
        let threshold = {
            let config = self.config.borrow();
            if config.flush_ms < 0 {
                return;
            }
            u64::from(config.write_behind_bytes)
        };
        if self.writer.durable_requested.get() > self.offsets.durable_offset.get() {
            return;
        }
        let Some((from, to)) = segment.write_behind.due(end_position, threshold) else {
            return;
        };
        segment.write_behind.in_flight.set(true);
        segment.write_behind.started_to.set(to);
        let segment = Rc::clone(segment);
        // Detached: the writer never waits for write-back. The segment's `in_flight` keeps
        // one range per segment at a time; a range that finds the file gone (deleted,
        // truncated) just has nothing to write.
        compio::runtime::spawn(async move {
            if let Ok(file) = segment.files.log().await {
                let started = start_write_back(file, from, to).await;
                if let Err(e) = started {
                    // The fdatasync that makes these bytes durable reports a write-back
                    // error on the file; this only failed to start early.
                    tracing::debug!(segment = %segment.log_path.display(), error = %e, "write-behind failed to start");
                }
            }
            segment.write_behind.in_flight.set(false);
        })
        .detach();
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` of `[from, to)` on a blocking-pool thread: it
/// allocates blocks and submits the pages, which may wait for the inode's locks and the
/// block device's queue, so not on the shard's thread. Waits for nothing to reach the disk.
/// `SYNC_FILE_RANGE_WRITE` alone, never `WAIT_AFTER`: waiting would consume the file's
/// write-back error (its errseq) here, where nothing takes the partition offline, instead
/// of in the fdatasync that must report it.
async fn start_write_back(file: compio::fs::File, from: u64, to: u64) -> std::io::Result<()> {
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
}
