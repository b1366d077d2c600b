//! Whether a byte range of a file is in the page cache, from `cachestat(2)` (Linux 6.5+).
//!
//! Fetch uses it to choose how record bytes reach the socket: a range that is wholly cached
//! and readable is spliced from the shard thread, which cannot block on the disk; any other
//! range goes through io_uring `SPLICE`, which the kernel always runs on an io-wq worker, so
//! a cold read never stalls the shard (decision 0001, addendum on tailing fetches).
//!
//! `cachestat` counts a page that is being read from the disk (read-ahead started, not yet
//! up to date) as cached: a splice of it sleeps until the read ends. A 3 GB catch-up read
//! (2 GB of it past drop-behind's window, read ahead by `will_need` and the kernel) put the
//! shard thread to sleep in `filemap_splice_read` 15-189 times in 2,978 answers (session
//! 33), each a stall of every other connection of the shard. `readable_without_io` adds probes
//! that refuse such pages: a one-byte `preadv2(RWF_NOWAIT)` answers EAGAIN for a page that
//! is not up to date, without waiting.

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

/// Bytes between two probes of `readable_without_io`: read-ahead brings pages in by the
/// window (128 KiB to the device's `read_ahead_kb`) and a window's pages come up to date
/// together, so a page still being read sits near a probed one.
pub const READ_PROBE_STRIDE_BYTES: u64 = 128 * 1024;

/// Ranges shorter than this are not probed: a tailing read of pages just written (up to
/// date as they are written), or one partition's piece of a fetch over many, where a call
/// per piece would cost more than the rare wait. Catch-up answers (a consumer's 1 MiB
/// `max.partition.fetch.bytes`) are the ones read ahead.
pub const READ_PROBE_MIN_BYTES: u64 = 256 * 1024;

/// `is_fully_cached`, and, for a range of at least `READ_PROBE_MIN_BYTES`, each probed byte
/// (the first, one every `READ_PROBE_STRIDE_BYTES`, the last) readable now: no probed page
/// is still being read from the disk. A one-byte copy per probe (a 1 MiB range: 9 calls).
pub fn readable_without_io(fd: RawFd, position: u64, len: u64) -> bool {
    if !is_fully_cached(fd, position, len) {
        return false;
    }
    if len < READ_PROBE_MIN_BYTES {
        return true;
    }
    let last = position + len - 1;
    let mut at = position;
    loop {
        if !probe_readable(fd, at) {
            return false;
        }
        if at == last {
            return true;
        }
        at = (at + READ_PROBE_STRIDE_BYTES).min(last);
    }
}

/// Set when the kernel refuses `RWF_NOWAIT` reads: probes then pass (cachestat alone
/// decides, as before the probes).
static NOWAIT_READS_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Whether the byte at `position` can be read without waiting for the disk.
fn probe_readable(fd: RawFd, position: u64) -> bool {
    if NOWAIT_READS_UNSUPPORTED.load(Ordering::Relaxed) {
        return true;
    }
    let Ok(offset) = libc::off_t::try_from(position) else {
        return false;
    };
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: one iovec of one byte on this stack frame; the descriptor is the caller's.
    let n = unsafe { libc::preadv2(fd, &iov, 1, offset, libc::RWF_NOWAIT) };
    if n == 1 {
        return true;
    }
    if n < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        if matches!(
            errno,
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS)
        ) {
            NOWAIT_READS_UNSUPPORTED.store(true, Ordering::Relaxed);
            return true;
        }
    }
    // EAGAIN (not up to date), past the end, or another error: the worker's path.
    false
}

/// The part of `[position, position + len)` that lies inside the file (`fstat`), when any
/// of its pages is missing from the page cache: what a read of it would take from the
/// disk. `None` when it is all cached, past the end, or the kernel cannot tell.
pub fn missing_within_file(fd: RawFd, position: u64, len: u64) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is valid, and fstat only writes the struct we pass.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor the caller keeps open, into `stat`.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return None;
    }
    let end = (position.saturating_add(len)).min(u64::try_from(stat.st_size).ok()?);
    if end <= position {
        return None;
    }
    // `cachestat` answers None where the kernel cannot tell.
    let (stat, pages) = cachestat(fd, position, end - position)?;
    (stat.nr_cache < pages).then_some((position, end - position))
}

/// Asks the kernel to read `[position, position + len)` of `fd` into the page cache
/// (`POSIX_FADV_WILLNEED`): it starts the reads and returns. May wait for the block
/// layer's queue or the inode's extent lock, so never on a shard's thread.
pub fn will_need(fd: RawFd, position: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(position), libc::off_t::try_from(len))
    else {
        return;
    };
    // SAFETY: posix_fadvise on a descriptor the caller keeps open; no memory is passed.
    // A failure only leaves the pages to be read when they are fetched.
    unsafe { libc::posix_fadvise(fd, offset, len, libc::POSIX_FADV_WILLNEED) };
}

/// How many pages holding `len` bytes from `position` of `fd` are dirty (written, no
/// write-back started); `None` when `len` is 0 or the kernel cannot tell.
pub fn dirty_pages(fd: RawFd, position: u64, len: u64) -> Option<u64> {
    cachestat(fd, position, len).map(|(stat, _)| stat.nr_dirty)
}

/// How many pages holding `len` bytes from `position` of `fd` are in the page cache;
/// `None` when `len` is 0 or the kernel cannot tell.
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
    fn a_range_read_ahead_after_eviction_comes_back_and_the_end_of_file_bounds_it() {
        let Some((_dir, file)) = written_file(256 * 1024) else {
            return;
        };
        let fd = file.as_raw_fd();
        assert_eq!(
            missing_within_file(fd, 0, 1 << 20),
            None,
            "written: all cached"
        );
        assert_eq!(
            missing_within_file(fd, 256 * 1024, 4096),
            None,
            "past the end"
        );
        // SAFETY: posix_fadvise on a descriptor we own.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(
            missing_within_file(fd, 64 * 1024, 1 << 20),
            Some((64 * 1024, 192 * 1024)),
            "missing, up to the end of the file"
        );
        will_need(fd, 64 * 1024, 192 * 1024);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while missing_within_file(fd, 64 * 1024, 192 * 1024).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "read ahead within 5 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn a_probe_refuses_a_page_the_disk_would_have_to_give_and_passes_a_cached_one() {
        let len = 512 * 1024;
        let Some((dir, _written)) = written_file(len) else {
            return; // page cache state not observable here (see `written_file`)
        };
        let file = std::fs::File::open(dir.path().join("f")).unwrap();
        let fd = file.as_raw_fd();
        assert!(readable_without_io(fd, 0, len as u64));
        assert!(probe_readable(fd, len as u64 - 1));
        // SAFETY: posix_fadvise on our own open descriptor.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert!(
            !probe_readable(fd, 0),
            "a page not in the cache must not pass a probe"
        );
        assert!(!readable_without_io(fd, 0, len as u64));
        assert!(!probe_readable(fd, len as u64 + 4096), "past the end");
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
