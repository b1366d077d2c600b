//! Which filesystem holds the data directory. Appends are buffered io_uring writes; whether
//! the kernel completes them inline or hands each one to an io-wq worker thread depends on
//! the filesystem (see `docs/decisions/0005-filesystem.md`), so the broker says which one it
//! is running on.

use std::path::Path;

/// `statfs(2)` magic numbers of the filesystems a broker is likely to run on.
const KNOWN_FILESYSTEMS: &[(i64, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x2FC1_2FC1, "zfs"),
    (0x0102_1994, "tmpfs"),
    (0x794C_7630, "overlayfs"),
    (0x6969, "nfs"),
];

/// How the filesystem treats io_uring's non-blocking buffered writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendPath {
    /// Buffered writes can complete inside the ring (FMODE_BUF_WASYNC: XFS, btrfs).
    Inline,
    /// Every buffered write is handed to an io-wq worker thread (ext4; measured).
    WorkerThread,
    /// Not measured here.
    Unknown,
}

/// The filesystem's name (or its magic number in hex when it is not one we know), and
/// which append path io_uring takes on it. `None` if `statfs` fails.
pub fn describe(path: &Path) -> Option<(String, AppendPath)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: a valid NUL-terminated path and a buffer of the right type for the kernel to fill.
    if unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statfs returned 0, so it filled the struct.
    let f_type = unsafe { stat.assume_init() }.f_type;
    // `f_type`'s C type differs between architectures (i64 on x86_64 glibc).
    #[allow(clippy::unnecessary_cast)]
    let magic = f_type as i64;
    let name = KNOWN_FILESYSTEMS
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("{magic:#x}"), |(_, n)| n.to_string());
    let path = match name.as_str() {
        "xfs" | "btrfs" => AppendPath::Inline,
        "ext4" => AppendPath::WorkerThread,
        _ => AppendPath::Unknown,
    };
    Some((name, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_filesystem_of_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (name, _) = describe(dir.path()).expect("statfs of a temp dir");
        assert!(!name.is_empty());
        // /proc is procfs everywhere: not in the table, so reported by its magic number.
        let (proc_name, proc_path) = describe(Path::new("/proc")).expect("statfs /proc");
        assert_eq!(proc_name, "0x9fa0");
        assert_eq!(proc_path, AppendPath::Unknown);
    }

    #[test]
    fn a_missing_path_is_not_described() {
        assert_eq!(describe(Path::new("/no/such/sluice/dir")), None);
    }
}
