//! Whether a byte range of a file is in the page cache, from `cachestat(2)` (Linux 6.5+).
//!
//! Fetch uses it to choose how record bytes reach the socket: a range that is wholly cached
//! is spliced from the shard thread, which cannot block on the disk; any other
//! range goes through io_uring `SPLICE`, which the kernel always runs on an io-wq worker, so
//! a cold read never stalls the shard (decision 0001, addendum on tailing fetches).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// `cachestat` has the same number on every architecture (it came after the unification).
const SYS_CACHESTAT: libc::c_long = 451;

/// Set when the kernel refuses `cachestat` (older than 6.5, or a seccomp filter): every
/// range then counts as not cached, and fetches keep the worker-thread path.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// `true` when every page holding `len` bytes from `position` of `fd` is in the page cache.
/// `false` when any is not, when `len` is 0, or when the kernel cannot tell.
pub fn is_fully_cached(fd: RawFd, position: u64, len: u64) -> bool {
    cachestat(fd, position, len).is_some_and(|(stat, pages)| stat.nr_cache >= pages)
}

/// How many pages holding `len` bytes from `position` of `fd` are dirty (written, no
/// write-back started); `None` when `len` is 0 or the kernel cannot tell.
pub fn dirty_pages(fd: RawFd, position: u64, len: u64) -> Option<u64> {
    cachestat(fd, position, len).map(|(stat, _)| stat.nr_dirty)
}

/// How many pages holding `len` bytes from `position` of `fd` are in the page cache;
/// `None` when `len` is 0 or the kernel cannot tell.
#[cfg(test)]
pub fn cached_pages(fd: RawFd, position: u64, len: u64) -> Option<u64> {
    cachestat(fd, position, len).map(|(stat, _)| stat.nr_cache)
}

/// `cachestat` of the pages holding `len` bytes from `position`, with their count.
fn cachestat(fd: RawFd, position: u64, len: u64) -> Option<(Cachestat, u64)> {
    if len == 0 || UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let page = page_size();
    let first_page = position / page;
    let end_page = (position + len).div_ceil(page);
    let range = CachestatRange {
        off: first_page * page,
        len: (end_page - first_page) * page,
    };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both valid for the call; a bad
    // descriptor is reported as an error, not undefined behaviour.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if rc != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        if matches!(errno, Some(libc::ENOSYS) | Some(libc::EPERM)) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return None;
    }
    Some((stat, end_page - first_page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// A file of `len` bytes just written (and synced), kept alive with its directory; `None`
    /// when this kernel has no cachestat, the only case in which written pages may read as
    /// not cached.
    fn written_file(len: usize) -> Option<(tempfile::TempDir, std::fs::File)> {
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::File::create(dir.path().join("f")).unwrap();
        file.write_all(&vec![7u8; len]).unwrap();
        file.sync_all().unwrap();
        if is_fully_cached(file.as_raw_fd(), 0, len as u64) {
            return Some((dir, file));
        }
        assert!(
            UNSUPPORTED.load(Ordering::Relaxed),
            "written pages not cached"
        );
        None
    }

    #[test]
    fn a_range_just_written_is_cached_and_one_past_the_end_is_not() {
        let Some((_dir, file)) = written_file(64 * 1024) else {
            return;
        };
        let fd = file.as_raw_fd();
        assert!(is_fully_cached(fd, 1000, 5000));
        assert!(
            !is_fully_cached(fd, 60 * 1024, 8 * 1024),
            "range runs past the end"
        );
        assert!(!is_fully_cached(fd, 0, 0));
    }

    #[test]
    fn pages_dropped_from_the_cache_are_reported_missing() {
        let Some((_dir, file)) = written_file(256 * 1024) else {
            return;
        };
        let fd = file.as_raw_fd();
        // Clean pages of a synced file can be dropped on request.
        // SAFETY: posix_fadvise on a descriptor we own.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert!(!is_fully_cached(fd, 0, 256 * 1024));
    }
}
