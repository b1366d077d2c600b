//! Freeing a deleted file's page cache in the background, paced, never in the shard's close.
//!
//! The last close of an unlinked file evicts its inode, and eviction frees every page of the
//! file still in the page cache, in the thread that closes it (`truncate_inode_pages`). A
//! shard holds a segment's descriptors until the segment is dropped, so that close ran on
//! the shard thread, and `perf record` put a deleting shard's time in `close` -> `evict` ->
//! `truncate_inode_pages_range`. But where the pages are freed matters less than how fast:
//! on the development VM (free page reporting to the host) freeing a just-written RF=3
//! topic's 0.6 GB at once stalled the acks=all traffic of the other partitions on all three
//! brokers for 150-380 ms, from the shard's close or from a pool thread alike, and not at
//! all when the pages were never freed. Dropped 1 MiB per 10 ms, an e2e run at 5,000
//! records/s started right after the delete measured what it measures without one (max
//! 6.4-8.4 ms in 5 of 5 runs; at 2 MiB per 5 ms one run of 5 still reached 60 ms). Figures:
//! perf/RESULTS.md, "Session 32".
//!
//! So a log file about to be unlinked is first opened once more here (`hold`). After the
//! unlink, the shard's own descriptors close cheaply (this one still references the inode),
//! and a per-shard background task drops the held file's cached pages a chunk at a time on a
//! blocking-pool thread (`POSIX_FADV_DONTNEED`, which frees clean pages and skips dirty
//! ones; chunks with nothing cached cost no pause), then closes it there, which evicts what
//! is left. A cached GiB takes ~10 s to go. Apache Kafka also deletes a log's files later,
//! from a background thread (`file.delete.delay.ms`).
//!
//! Limits: at most `HELD_FILES_MAX` files wait per shard (a descriptor each, outside the
//! open-file budget); past that a file is closed on a pool thread at once, its pages freed
//! unpaced (still not on the shard thread). A broker that stops with files waiting closes
//! them at exit; nothing durable depends on it (the names are gone already).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use super::error::StorageError;

/// Pages dropped per `posix_fadvise` call.
const DROP_CHUNK_BYTES: u64 = 1 << 20;
/// Pause after a chunk that held cached pages: at most ~100 MiB/s of freed page cache per
/// shard, the pace the measurement above left invisible to other partitions' traffic.
const DROP_CHUNK_PAUSE: Duration = Duration::from_millis(10);
/// Files waiting for their pages to be dropped, per shard.
const HELD_FILES_MAX: usize = 256;

/// A deleted log file still open, so its last close happens where its pages are freed.
pub(super) struct HeldFile(File);

/// Opens the files at `paths` that are logs (`.log`: the indexes are at most
/// `segment.index.bytes` each), before they are unlinked. A file that cannot be opened is
/// left to the old path: the shard's close frees it.
pub(super) fn hold(paths: &[impl AsRef<Path>]) -> Vec<HeldFile> {
    paths
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .filter_map(|p| File::open(p).ok().map(HeldFile))
        .collect()
}

/// Removes a stopped log's directory (DeleteTopics, a replica moved away): holds its log
/// files, unlinks every file and the directory, syncs the parent, then hands the held files
/// to the background task.
pub(super) async fn remove_log_dir(dir: &Path) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    let paths = entries
        .map(|entry| {
            entry
                .map(|e| e.path())
                .map_err(|e| StorageError::io(dir, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let held = hold(&paths);
    let removed = async {
        for path in paths {
            compio::fs::remove_file(&path)
                .await
                .map_err(|e| StorageError::io(&path, e))?;
        }
        compio::fs::remove_dir(dir)
            .await
            .map_err(|e| StorageError::io(dir, e))?;
        match dir.parent() {
            Some(parent) => super::state::sync_dir(parent).await,
            None => Ok(()),
        }
    }
    .await;
    // Also after a failed unlink: the files already unlinked must not close on the shard.
    release_later(held).await;
    removed
}

#[derive(Default)]
struct Waiting {
    files: VecDeque<HeldFile>,
    draining: bool,
}

thread_local! {
    /// The shard's files waiting for their pages to be dropped (one queue per shard thread).
    static WAITING: RefCell<Waiting> = RefCell::new(Waiting::default());
}

/// Hands unlinked files to this shard's background task; when `HELD_FILES_MAX` already
/// wait, the rest are closed on a pool thread at once, so descriptors stay bounded.
pub(super) async fn release_later(files: Vec<HeldFile>) {
    let mut overflow = Vec::new();
    WAITING.with(|w| {
        let mut w = w.borrow_mut();
        for file in files {
            if w.files.len() < HELD_FILES_MAX {
                w.files.push_back(file);
            } else {
                overflow.push(file);
            }
        }
        if !w.files.is_empty() && !w.draining {
            w.draining = true;
            compio::runtime::spawn(drain()).detach();
        }
    });
    if !overflow.is_empty() {
        let close_all = move || drop(overflow);
        if compio::runtime::spawn_blocking(close_all).await.is_err() {
            tracing::warn!("closing deleted files on a pool thread failed");
        }
    }
}

async fn drain() {
    loop {
        let next = WAITING.with(|w| {
            let mut w = w.borrow_mut();
            let next = w.files.pop_front();
            w.draining = next.is_some();
            next
        });
        let Some(file) = next else {
            return;
        };
        release_on_pool(file).await;
    }
}

async fn release_on_pool(file: HeldFile) {
    if compio::runtime::spawn_blocking(move || release(file))
        .await
        .is_err()
    {
        tracing::warn!("dropping a deleted file's cached pages failed; its close frees them");
    }
}

/// Drops the file's cached pages a chunk at a time, then closes it (evicting the rest).
fn release(HeldFile(file): HeldFile) {
    let fd = file.as_raw_fd();
    let len = file.metadata().map_or(0, |m| m.len());
    let mut offset = 0;
    while offset < len {
        let chunk = DROP_CHUNK_BYTES.min(len - offset);
        // Unknown (no cachestat) counts as cached: pace as if it were.
        let cached = super::page_cache::cached_pages(fd, offset, chunk).is_none_or(|n| n > 0);
        if cached {
            // From the start of the file each time: DONTNEED frees only folios wholly inside
            // its range, and a large folio (a follower's 1 MiB writes, a cleaner's copy) may
            // straddle chunks; the part already dropped costs a walk over empty slots.
            // SAFETY: posix_fadvise on a descriptor this function owns; no memory is passed.
            unsafe {
                libc::posix_fadvise(
                    fd,
                    0,
                    (offset + chunk) as libc::off_t,
                    libc::POSIX_FADV_DONTNEED,
                )
            };
            std::thread::sleep(DROP_CHUNK_PAUSE);
        }
        offset += chunk;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(path: &Path) -> u64 {
        let file = File::open(path).expect("open");
        let len = file.metadata().expect("metadata").len();
        super::super::page_cache::cached_pages(file.as_raw_fd(), 0, len)
            .expect("this kernel answers cachestat (Linux 6.5+)")
    }

    #[compio::test]
    async fn a_held_file_is_unlinked_at_once_and_its_pages_freed_after() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("00000000000000000000.log");
        let index = dir.path().join("00000000000000000000.index");
        let bytes = vec![7u8; 16 << 20];
        std::fs::write(&log, &bytes).expect("write");
        std::fs::write(&index, [0u8; 4096]).expect("write");
        File::open(&log).expect("open").sync_all().expect("sync");
        assert!(cached(&log) > 0, "a file just written is cached");

        // A reader that had the file open before the delete keeps reading it whole.
        let reader = File::open(&log).expect("open");
        let held = hold(&[&log, &index]);
        assert_eq!(held.len(), 1, "only the log is held");
        let watch = held[0].0.try_clone().expect("dup");
        std::fs::remove_file(&log).expect("unlink");
        std::fs::remove_file(&index).expect("unlink");
        release_later(held).await;

        let len = bytes.len() as u64;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = super::super::page_cache::cached_pages(watch.as_raw_fd(), 0, len)
                .expect("cachestat");
            if left == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{left} pages still cached"
            );
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut read_back = Vec::new();
        std::io::Read::read_to_end(&mut &reader, &mut read_back).expect("read");
        assert_eq!(
            read_back, bytes,
            "dropped pages are read again from the disk"
        );
    }

    #[compio::test]
    async fn past_the_limit_files_are_closed_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut paths = Vec::new();
        for i in 0..HELD_FILES_MAX + 2 {
            let path = dir.path().join(format!("{i:020}.log"));
            std::fs::write(&path, [1u8; 8192]).expect("write");
            paths.push(path);
        }
        let held = hold(&paths);
        assert_eq!(held.len(), HELD_FILES_MAX + 2);
        release_later(held).await;
        let waiting = WAITING.with(|w| w.borrow().files.len());
        assert!(
            waiting <= HELD_FILES_MAX,
            "{waiting} files wait, limit {HELD_FILES_MAX}"
        );
    }
}
