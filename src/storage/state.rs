//! The per-partition state file `partition.state`: log start offset, recovery point, high
//! watermark and the clean-shutdown flag, CRC-32C protected. The file has two slots in
//! separate sectors, each stamped with a generation; an update overwrites the older slot in
//! place and fdatasyncs it (no new inode, no rename, no directory fsync: a background flush
//! of 1,000 active partitions rewrites 1,000 state files a second), and a read takes the
//! valid slot of the highest generation, so a write torn by a crash leaves the previous
//! state. The file is created whole (temp file + fsync + rename + directory fsync). Also
//! hosts the small file helpers used by the rest of storage. Must not hold any log data.

use std::path::{Path, PathBuf};

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAt, AsyncReadAtExt, AsyncWriteAtExt};

use super::error::StorageError;

pub const STATE_FILE_NAME: &str = "partition.state";
const STATE_MAGIC: &[u8; 4] = b"SLPS";
/// Version 1: one record, the whole file, replaced by rename (read, never written now).
const STATE_VERSION: u16 = 1;
/// magic + version + 3 x i64 + flag + crc.
pub const STATE_FILE_BYTES: usize = 4 + 2 + 24 + 1 + 4;
/// Version 2: two slots, each magic + version + generation u64 + 3 x i64 + flag + crc.
const STATE_SLOTS_VERSION: u16 = 2;
const STATE_SLOT_BYTES: usize = 4 + 2 + 8 + 24 + 1 + 4;
/// Slot `i` starts at `i * STATE_SLOT_STRIDE_BYTES`: one 512-byte sector each, so a torn
/// write of one slot cannot reach the other.
const STATE_SLOT_STRIDE_BYTES: usize = 512;
/// The size of a version-2 state file.
pub const STATE_SLOTS_FILE_BYTES: usize = STATE_SLOT_STRIDE_BYTES + STATE_SLOT_BYTES;
const _: () = assert!(STATE_SLOT_BYTES <= STATE_SLOT_STRIDE_BYTES);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub log_start_offset: i64,
    /// Every batch below this offset was synced to disk; recovery re-validates from here.
    pub recovery_point: i64,
    pub written_end_offset: i64,
    pub clean_shutdown: bool,
}

impl PartitionState {
    /// A whole version-2 file holding this state in slot 0 (generation 1).
    pub fn encode(&self) -> Vec<u8> {
        let mut whole = encode_slot(1, self);
        whole.resize(STATE_SLOTS_FILE_BYTES, 0);
        whole
    }

    /// A version-1 file (what brokers before version 2 wrote), for compatibility tests.
    #[cfg(test)]
    fn encode_v1(&self) -> Vec<u8> {
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

    /// Decodes either version: a version-1 file is its one record; a version-2 file is its
    /// newest valid slot (a file with none is corrupt).
    pub fn decode(buf: &[u8], path: &Path) -> Result<PartitionState, StorageError> {
        let bad = |pos: u64, why: &str| StorageError::corrupt(path, pos, why);
        if buf.len() == STATE_SLOTS_FILE_BYTES {
            return newest_slot(buf)
                .map(|(_, _, state)| state)
                .ok_or_else(|| bad(0, "no valid slot in the state file"));
        }
        if buf.len() != STATE_FILE_BYTES {
            return Err(bad(0, "state file has the wrong size"));
        }
        let body = &buf[..STATE_FILE_BYTES - 4];
        let stored = u32::from_be_bytes(read_array(buf, 31));
        if crc32c::crc32c(body) != stored {
            return Err(bad(31, "state file CRC mismatch"));
        }
        if &buf[0..4] != STATE_MAGIC {
            return Err(bad(0, "state file magic mismatch"));
        }
        if u16::from_be_bytes(read_array(buf, 4)) != STATE_VERSION {
            return Err(bad(4, "unknown state file version"));
        }
        let i64_at = |at: usize| i64::from_be_bytes(read_array(buf, at));
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

/// One slot of a version-2 file: (generation, state), or None when torn, zero or foreign.
fn decode_slot(slot: &[u8]) -> Option<(u64, PartitionState)> {
    if slot.len() < STATE_SLOT_BYTES {
        return None;
    }
    let body = &slot[..STATE_SLOT_BYTES - 4];
    let stored = u32::from_be_bytes(read_array(slot, STATE_SLOT_BYTES - 4));
    if crc32c::crc32c(body) != stored
        || &slot[0..4] != STATE_MAGIC
        || u16::from_be_bytes(read_array(slot, 4)) != STATE_SLOTS_VERSION
    {
        return None;
    }
    let i64_at = |at: usize| i64::from_be_bytes(read_array(slot, at));
    let state = PartitionState {
        log_start_offset: i64_at(14),
        recovery_point: i64_at(22),
        written_end_offset: i64_at(30),
        clean_shutdown: slot[38] == 1,
    };
    Some((u64::from_be_bytes(read_array(slot, 6)), state))
}

fn encode_slot(generation: u64, state: &PartitionState) -> Vec<u8> {
    let mut b = Vec::with_capacity(STATE_SLOT_BYTES);
    b.extend_from_slice(STATE_MAGIC);
    b.extend_from_slice(&STATE_SLOTS_VERSION.to_be_bytes());
    b.extend_from_slice(&generation.to_be_bytes());
    b.extend_from_slice(&state.log_start_offset.to_be_bytes());
    b.extend_from_slice(&state.recovery_point.to_be_bytes());
    b.extend_from_slice(&state.written_end_offset.to_be_bytes());
    b.push(state.clean_shutdown as u8);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn read_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

/// The newest valid slot of a version-2 file: (generation, its slot index, state).
fn newest_slot(buf: &[u8]) -> Option<(u64, usize, PartitionState)> {
    (0..2)
        .filter_map(|i| {
            let at = i * STATE_SLOT_STRIDE_BYTES;
            let slot = buf.get(at..(at + STATE_SLOT_BYTES).min(buf.len()))?;
            decode_slot(slot).map(|(generation, state)| (generation, i, state))
        })
        .max_by_key(|(generation, _, _)| *generation)
}

pub async fn read_state(dir: &Path) -> Result<Option<PartitionState>, StorageError> {
    let path = dir.join(STATE_FILE_NAME);
    match read_small_file(&path).await? {
        None => Ok(None),
        Some(b) => PartitionState::decode(&b, &path).map(Some),
    }
}

/// Makes `state` durable: in place into the older slot of an existing version-2 file (one
/// pwrite and one fdatasync), else by creating the whole file atomically (first write, a
/// version-1 file from an older broker, or a file with no valid slot).
pub async fn write_state(dir: &Path, state: &PartitionState) -> Result<(), StorageError> {
    write_state_in_place(dir, state, true).await
}

/// `write_state`, with `durable` false leaving an in-place slot write in the page cache for
/// a later sync to cover (a file that must be created is still created durably). Safe only
/// while the other slot is on disk: the caller must not write again in place before a sync
/// covered this write (`PartitionLog::write_state_file`), so a crash finds the slot this
/// one overwrote, or this one, whole in at least one of the two sectors.
pub async fn write_state_in_place(
    dir: &Path,
    state: &PartitionState,
    durable: bool,
) -> Result<(), StorageError> {
    let path = dir.join(STATE_FILE_NAME);
    let existing = match OpenOptions::new().read(true).write(true).open(&path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StorageError::io(&path, e)),
    };
    if let Some(mut f) = existing {
        let buf = vec![0u8; STATE_SLOTS_FILE_BYTES];
        let BufResult(r, buf) = f.read_at(buf, 0).await;
        let read = r.map_err(|e| StorageError::io(&path, e))?;
        if read == STATE_SLOTS_FILE_BYTES
            && let Some((generation, index, _)) = newest_slot(&buf)
        {
            let at = ((1 - index) * STATE_SLOT_STRIDE_BYTES) as u64;
            let BufResult(r, _) = f.write_all_at(encode_slot(generation + 1, state), at).await;
            r.map_err(|e| StorageError::io(&path, e))?;
            if !durable {
                return Ok(());
            }
            return f.sync_data().await.map_err(|e| StorageError::io(&path, e));
        }
    }
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
        let p = Path::new("x/partition.state");
        // Version 2 (slot 0 only: slot 1 is empty) and version 1 (the whole file).
        for (b, covered) in [
            (s.encode(), STATE_SLOT_BYTES),
            (s.encode_v1(), STATE_FILE_BYTES),
        ] {
            assert_eq!(PartitionState::decode(&b, p).unwrap(), s);
            for i in 0..covered {
                let mut c = b.clone();
                c[i] ^= 1;
                assert!(PartitionState::decode(&c, p).is_err(), "flip at {i}");
            }
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
        let b = read_exact_at(&f, dir.path(), 0, STATE_SLOTS_FILE_BYTES)
            .await
            .unwrap();
        assert_eq!(b.len(), STATE_SLOTS_FILE_BYTES);
    }

    #[compio::test]
    async fn updates_alternate_slots_and_a_torn_slot_leaves_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE_NAME);
        let mut s = PartitionState {
            log_start_offset: 3,
            recovery_point: 7,
            written_end_offset: 9,
            clean_shutdown: false,
        };
        write_state(dir.path(), &s).await.unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        for end in 10..14 {
            s.written_end_offset = end;
            write_state(dir.path(), &s).await.unwrap();
            assert_eq!(read_state(dir.path()).await.unwrap(), Some(s));
        }
        // Updated in place: the same file, no new inode per update.
        let now = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        assert_eq!(inode, now);
        // Tear the newest slot: the read falls back to the state before it.
        let mut bytes = std::fs::read(&path).unwrap();
        let (_, newest, _) = newest_slot(&bytes).unwrap();
        bytes[newest * STATE_SLOT_STRIDE_BYTES + 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let previous = PartitionState {
            written_end_offset: 12,
            ..s
        };
        assert_eq!(read_state(dir.path()).await.unwrap(), Some(previous));
        // The next write replaces the torn slot and is read back.
        s.written_end_offset = 20;
        write_state(dir.path(), &s).await.unwrap();
        assert_eq!(read_state(dir.path()).await.unwrap(), Some(s));
    }

    #[compio::test]
    async fn a_version_1_file_is_read_and_rewritten_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PartitionState {
            log_start_offset: 1,
            recovery_point: 2,
            written_end_offset: 3,
            clean_shutdown: true,
        };
        std::fs::write(dir.path().join(STATE_FILE_NAME), s.encode_v1()).unwrap();
        assert_eq!(read_state(dir.path()).await.unwrap(), Some(s));
        s.clean_shutdown = false;
        write_state(dir.path(), &s).await.unwrap();
        assert_eq!(read_state(dir.path()).await.unwrap(), Some(s));
        let len = std::fs::metadata(dir.path().join(STATE_FILE_NAME))
            .unwrap()
            .len();
        assert_eq!(len as usize, STATE_SLOTS_FILE_BYTES);
    }
}
