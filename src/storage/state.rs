//! The per-partition state file `partition.state`: log start offset, recovery point, high
//! watermark and the clean-shutdown flag, CRC-32C protected and replaced atomically
//! (temp file + fsync + rename + directory fsync). Also hosts the small file helpers used by
//! the rest of storage. Must not hold any log data.

use std::path::{Path, PathBuf};

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};

use super::error::StorageError;

pub const STATE_FILE_NAME: &str = "partition.state";
const STATE_MAGIC: &[u8; 4] = b"SLPS";
const STATE_VERSION: u16 = 1;
/// magic + version + 3 x i64 + flag + crc.
pub const STATE_FILE_BYTES: usize = 4 + 2 + 24 + 1 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub log_start_offset: i64,
    /// Every batch below this offset was synced to disk; recovery re-validates from here.
    pub recovery_point: i64,
    pub written_end_offset: i64,
    pub clean_shutdown: bool,
}

impl PartitionState {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(STATE_FILE_BYTES);
        b.extend_from_slice(STATE_MAGIC);
        b.extend_from_slice(&STATE_VERSION.to_be_bytes());
        b.extend_from_slice(&self.log_start_offset.to_be_bytes());
        b.extend_from_slice(&self.recovery_point.to_be_bytes());
        b.extend_from_slice(&self.written_end_offset.to_be_bytes());
        b.push(self.clean_shutdown as u8);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    pub fn decode(buf: &[u8], path: &Path) -> Result<PartitionState, StorageError> {
        let bad = |pos: u64, why: &str| StorageError::corrupt(path, pos, why);
        if buf.len() != STATE_FILE_BYTES {
            return Err(bad(0, "state file has the wrong size"));
        }
        let body = &buf[..STATE_FILE_BYTES - 4];
        let stored = u32::from_be_bytes([buf[31], buf[32], buf[33], buf[34]]);
        if crc32c::crc32c(body) != stored {
            return Err(bad(31, "state file CRC mismatch"));
        }
        if &buf[0..4] != STATE_MAGIC {
            return Err(bad(0, "state file magic mismatch"));
        }
        if u16::from_be_bytes([buf[4], buf[5]]) != STATE_VERSION {
            return Err(bad(4, "unknown state file version"));
        }
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&buf[at..at + 8]);
            i64::from_be_bytes(a)
        };
        Ok(PartitionState {
            log_start_offset: i64_at(6),
            recovery_point: i64_at(14),
            written_end_offset: i64_at(22),
            clean_shutdown: buf[30] == 1,
        })
    }
}

/// Reads a whole small file, `None` if it does not exist.
pub async fn read_small_file(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match compio::fs::read(path).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

pub async fn read_state(dir: &Path) -> Result<Option<PartitionState>, StorageError> {
    let path = dir.join(STATE_FILE_NAME);
    match read_small_file(&path).await? {
        None => Ok(None),
        Some(b) => PartitionState::decode(&b, &path).map(Some),
    }
}

pub async fn write_state(dir: &Path, state: &PartitionState) -> Result<(), StorageError> {
    write_file_atomically(dir, STATE_FILE_NAME, state.encode()).await
}

/// Creates `dir` (and missing parents) and, when it did not exist, fsyncs its parent so the
/// new entry survives a power loss; without it, everything later synced inside `dir` could
/// vanish with the directory. Blocking: for start-up and partition creation, not hot paths.
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// fsyncs a directory so renames/creates/unlinks inside it are durable.
pub async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = OpenOptions::new()
        .read(true)
        .open(dir)
        .await
        .map_err(|e| StorageError::io(dir, e))?;
    d.sync_all().await.map_err(|e| StorageError::io(dir, e))
}

/// Replaces `dir/name` with `bytes`: temp file + fsync + rename + directory fsync, so a crash
/// leaves either the old or the new content, never a mix.
pub async fn write_file_atomically(
    dir: &Path,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(), StorageError> {
    let tmp: PathBuf = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp)
        .await
        .map_err(|e| StorageError::io(&tmp, e))?;
    let BufResult(r, _) = f.write_all_at(bytes, 0).await;
    r.map_err(|e| StorageError::io(&tmp, e))?;
    f.sync_all().await.map_err(|e| StorageError::io(&tmp, e))?;
    drop(f);
    compio::fs::rename(&tmp, &path)
        .await
        .map_err(|e| StorageError::io(&path, e))?;
    sync_dir(dir).await
}

/// Reads exactly `len` bytes at `pos`.
pub async fn read_exact_at(
    file: &File,
    path: &Path,
    pos: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let buf = vec![0u8; len].slice(0..len);
    let BufResult(r, buf) = file.read_exact_at(buf, pos).await;
    r.map_err(|e| StorageError::io(path, e))?;
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_detects_flips() {
        let s = PartitionState {
            log_start_offset: 5,
            recovery_point: 10,
            written_end_offset: 12,
            clean_shutdown: true,
        };
        let b = s.encode();
        let p = Path::new("x/partition.state");
        assert_eq!(PartitionState::decode(&b, p).unwrap(), s);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(PartitionState::decode(&c, p).is_err(), "flip at {i}");
        }
    }

    #[compio::test]
    async fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PartitionState {
            log_start_offset: 0,
            recovery_point: 0,
            written_end_offset: 0,
            clean_shutdown: false,
        };
        write_state(dir.path(), &s).await.unwrap();
        s.written_end_offset = 99;
        write_state(dir.path(), &s).await.unwrap();
        assert_eq!(read_state(dir.path()).await.unwrap(), Some(s));
        assert!(!dir.path().join("partition.state.tmp").exists());
        let f = File::open(dir.path().join(STATE_FILE_NAME)).await.unwrap();
        let b = read_exact_at(&f, dir.path(), 0, STATE_FILE_BYTES)
            .await
            .unwrap();
        assert_eq!(b.len(), STATE_FILE_BYTES);
    }
}
