//! One `syncfs(2)` of the data directory's filesystem in place of one fdatasync per partition,
//! for a background-flush tick with many partitions due (decision 0020). With 1,000 active
//! partitions and `flush.ms` = 100, nearly every 16 KiB batch got its own fdatasync, and on
//! ext4 each of those writes the inode's metadata buffers and flushes the device cache: about
//! half of a 1,000-partition produce's cost (perf/RESULTS.md, session 14). One `syncfs` writes
//! back every dirty page of the filesystem in one pass and flushes the device cache once.
//!
//! The order that keeps the bound of decision 0002 ("Background flush"): each due log's
//! written end is taken (`filesystem_sync_mark`: writes completed by then, no await between),
//! then the filesystem is synced, then each log is marked durable up to its mark
//! (`flush_after_filesystem_sync`); what was written meanwhile stays dirty for the next tick.
//!
//! The once-a-second recovery-point persist rides the same syncfs (session 22): a log whose
//! persist is due writes its new index entries after its mark and before the syncfs
//! (`write_indexes_before_sync`), so the syncfs covers them, and after it writes the state
//! file in place without an fdatasync: the next tick's syncfs covers that. Per partition and
//! second that saves three fdatasyncs (two index files, the state file) and, at 1,000
//! partitions, 3,000 io-wq fdatasyncs a second. The recovery point on disk then lags by up to
//! one tick more, and is never ahead of synced data or synced index entries.
//!
//! Errors: since Linux 5.8 `syncfs` reports a write-back error of any file on the filesystem
//! to each descriptor that was open when it happened, so the descriptor is opened once (a
//! shard keeps it) and an older kernel gets none (`FilesystemSync::open`). A failed `syncfs`
//! names no file: the caller then fdatasyncs each partition as before, which reports the
//! error on the file it belongs to.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::error::StorageError;
use super::log::{FlushSync, PartitionLog};
use super::segment::Segment;

/// The first Linux release whose `syncfs` returns write-back errors (before 5.8 it returned
/// 0 even when pages failed to reach the disk, which would ack a loss as durable).
const SYNCFS_REPORTS_ERRORS_SINCE: (u32, u32) = (5, 8);

/// A descriptor on the data directory to `syncfs` its filesystem with.
pub struct FilesystemSync {
    dir: Arc<std::fs::File>,
    path: PathBuf,
}

impl FilesystemSync {
    /// `None` when the kernel's `syncfs` does not report write-back errors (or its release
    /// cannot be read), or the directory cannot be opened: the background flush then
    /// fdatasyncs each partition.
    pub fn open(data_dir: &Path) -> Option<FilesystemSync> {
        let release = kernel_release()?;
        if parse_release(&release)? < SYNCFS_REPORTS_ERRORS_SINCE {
            tracing::info!(kernel = %release, "syncfs does not report write-back errors on this kernel: background flushes fdatasync each partition");
            return None;
        }
        match std::fs::File::open(data_dir) {
            Ok(dir) => Some(FilesystemSync {
                dir: Arc::new(dir),
                path: data_dir.to_path_buf(),
            }),
            Err(e) => {
                tracing::warn!(dir = %data_dir.display(), error = %e, "cannot open the data directory for syncfs: background flushes fdatasync each partition");
                None
            }
        }
    }

    /// Writes back every dirty page and inode of the filesystem and flushes the device
    /// cache. Blocking in the kernel for as long as that takes, so on a blocking-pool
    /// thread, not the shard's.
    pub async fn sync(&self) -> Result<(), StorageError> {
        use std::os::fd::AsRawFd;
        let dir = Arc::clone(&self.dir);
        let sync = move || loop {
            // SAFETY: syncfs on a descriptor `dir` keeps open for the call.
            if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
                return Ok(());
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        };
        compio::runtime::spawn_blocking(sync)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("syncfs thread panicked")))
            .map_err(|e| StorageError::io(&self.path, e))
    }
}

/// `uname -r`.
fn kernel_release() -> Option<String> {
    let mut name = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: a buffer of the right type for the kernel to fill.
    if unsafe { libc::uname(name.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: uname returned 0, so it filled the struct with NUL-terminated strings.
    let name = unsafe { name.assume_init() };
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) };
    Some(release.to_string_lossy().into_owned())
}

/// (major, minor) of a release like "6.18.44-fc-v1147".
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What a `syncfs` that starts after `PartitionLog::filesystem_sync_mark` makes durable of
/// one log: the writes completed when the mark was taken.
pub struct FilesystemSyncMark {
    written_end: i64,
    unflushed_records: i64,
    /// Segments with writes no sync covers yet, with the count of writes made to each.
    segments: Vec<(Rc<Segment>, u64)>,
    /// The flush at `now_ms` persists the recovery point (`RECOVERY_POINT_PERSIST_MS`).
    persist: bool,
    /// Segments whose index files took this flush's entries before the syncfs, with their
    /// index write counts then; set by `write_indexes_before_sync`.
    indexes: Option<Vec<(Rc<Segment>, u64)>>,
    /// Writes to the state file completed by the mark.
    state_writes: u64,
}

impl FlushSync {
    /// Whether the index entries were written before a `syncfs` that covered them.
    pub(super) fn indexes_written(&self) -> bool {
        matches!(
            self,
            FlushSync::SyncedThrough {
                indexes_written: true,
                ..
            }
        )
    }
}

impl PartitionLog {
    /// The log's completed writes now, for a `syncfs` about to start. No I/O.
    pub fn filesystem_sync_mark(&self, now_ms: i64) -> FilesystemSyncMark {
        let segments = self
            .segments
            .borrow()
            .iter()
            .filter(|s| s.is_dirty())
            .map(|s| (Rc::clone(s), s.writes_so_far()))
            .collect();
        FilesystemSyncMark {
            written_end: self.offsets.written_end_offset.get(),
            unflushed_records: self.flush.unflushed_records.get(),
            segments,
            persist: now_ms - self.flush.last_state_persist_ms.get()
                >= super::log::RECOVERY_POINT_PERSIST_MS,
            indexes: None,
            state_writes: self.flush.state_sync.so_far(),
        }
    }

    /// Between the mark and the `syncfs`: when this flush persists the recovery point, its
    /// index entries are written now so the syncfs covers them. Every entry of a batch below
    /// the mark's written end is in memory by then (entries are made when a batch is placed,
    /// before its write completes). A failed write is left to the flush after the syncfs,
    /// which writes the entries again, fdatasyncs them and reports the error.
    pub async fn write_indexes_before_sync(&self, mark: &mut FilesystemSyncMark) {
        if !mark.persist || self.offline.borrow().is_some() {
            return;
        }
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        let mut written = Vec::with_capacity(segments.len());
        for s in segments {
            if s.persist_indexes().await.is_err() {
                return;
            }
            let count = s.index_sync.so_far();
            written.push((s, count));
        }
        mark.indexes = Some(written);
    }

    /// The background flush of a log whose data up to `mark` a completed `syncfs` made
    /// durable: what `flush_if_due` does, without an fdatasync of the log files.
    pub async fn flush_after_filesystem_sync(
        &self,
        now_ms: i64,
        mark: FilesystemSyncMark,
    ) -> Result<(), StorageError> {
        self.check_online()?;
        let persist = self.start_background_flush(now_ms);
        // Once per partition: the syncfs wrote its directory entries too, but the flag
        // belongs to the per-file path.
        self.ensure_dir_durable().await?;
        for (segment, covered) in &mark.segments {
            segment.note_synced(*covered)?;
        }
        if let Some(indexes) = &mark.indexes {
            for (segment, covered) in indexes {
                segment.index_sync.note_synced(*covered);
            }
        }
        self.flush.state_sync.note_synced(mark.state_writes);
        let sync = FlushSync::SyncedThrough {
            written_end: mark.written_end,
            unflushed_records: mark.unflushed_records,
            // Only when this flush persists: the mark's choice and `persist` agree, both
            // taken at `now_ms` with no persist in between (one flush of a log at a time).
            indexes_written: persist && mark.indexes.is_some(),
        };
        self.flush_inner(persist, sync).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_release("6.18.44-fc-v1147"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(parse_release("5.10-rc1"), Some((5, 10)));
        assert_eq!(parse_release("garbage"), None);
        assert!(parse_release("5.4.0").unwrap() < SYNCFS_REPORTS_ERRORS_SINCE);
        assert!(parse_release("5.10.1").unwrap() >= SYNCFS_REPORTS_ERRORS_SINCE);
    }
}
