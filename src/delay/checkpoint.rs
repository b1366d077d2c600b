//! The delay log's pending-index checkpoint (issue 18, decision 0009 "Restart"): per shard,
//! `<data_dir>/delay/shard-<id>/pending.ckpt` holds the log's state before a position, its
//! *cut*: every record still pending there (position, frame length, due time, partition)
//! and every intent not yet done. A restart rebuilds the wheel from it (~24 bytes per
//! pending record) and replays only the frames after the cut, instead of reading every
//! frame of the log (SIGKILL → ready was mostly that read: ~55 MB per shard at 1M records).
//!
//! The checkpoint is derived from the log alone, never from the delivery loop's memory: a
//! new one is the previous one plus a replay of the frames between the two cuts
//! (`log::replay_from`), so it says exactly what a whole-log replay would say about the
//! frames before its cut. The cut is a position the log is synced through, so a crash can
//! take nothing before it. Anything that does not fit the log on disk — a bad CRC, a cut
//! past the log's end, a segment length that changed — makes it unusable: it is removed and
//! the whole log is replayed. An old checkpoint is as good as a new one, only slower.
//!
//! File (little endian): `MAGIC | VERSION u32 | cut u64 | pending × (position u64,
//! frame_len u32, key u32, due_ms i64) | segments u32 × (number u64, len u64) | keys u32 ×
//! (partition i32, topic u16 len + bytes) | intents u32 × (position u64, intent frame) |
//! pending count u64 | crc32c u32` (the CRC of everything before it).
//!
//! **Memory: constant in the number of pending records.** The pending entries come first and
//! their count last, so a checkpoint is written as replay finds the records and read back
//! straight from the file into the caller's index, never held whole (session 17: holding it
//! whole cost up to ~500 MB per shard at 5M pending records, and pushed the broker's RSS at
//! 10M pending from 449 to 600–650 MB). Version 1 files (keys first, whole in memory) are
//! not read: the first restart after the upgrade replays the whole log once.
//!
//! Owns: the file's bytes, taking a checkpoint, loading and validating one. Must not: decide
//! when to take one (the shard's delay service does, off the delivery path).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::log::{
    self, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX, Frame, FrameRef, Intent, offset_of, segment_of,
    segment_path,
};

/// File name of a shard's checkpoint, beside its segments.
pub const CHECKPOINT_FILE: &str = "pending.ckpt";
const TEMP_FILE: &str = "pending.ckpt.tmp";
const MAGIC: &[u8; 4] = b"SDCK";
const VERSION: u32 = 2;
/// Largest checkpoint read back: the wheel's limit (64 Mi records per shard) at 24 bytes
/// each, with room for keys and intents. Anything larger is not ours.
pub const CHECKPOINT_BYTES_MAX: u64 = 2 << 30;
/// Bytes before the first pending entry: magic, version, cut.
const HEAD_BYTES: u64 = 16;
/// Bytes after the last section: the pending count and the CRC.
const FOOT_BYTES: u64 = 12;
const ENTRY_BYTES: u64 = 24;
/// Entries read or written per I/O call (~1 MiB): what taking or loading a checkpoint holds
/// of its pending records at any time.
const ENTRIES_PER_CHUNK: usize = 43_690;
/// Largest metadata part (segments, keys, intents) read back into memory. It is what the
/// caller holds anyway (the unresolved intents are kept whole by replay).
const META_BYTES_MAX: u64 = 256 << 20;

/// One pending record as the checkpoint keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub position: u64,
    pub len: u32,
    /// Index into `Checkpoint::keys`.
    pub key: u32,
    pub due_ms: i64,
}

impl Entry {
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.position.to_le_bytes());
        out[8..12].copy_from_slice(&self.len.to_le_bytes());
        out[12..16].copy_from_slice(&self.key.to_le_bytes());
        out[16..24].copy_from_slice(&self.due_ms.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Entry {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        Entry {
            position: u64_at(0),
            len: u32_at(8),
            key: u32_at(12),
            due_ms: u64_at(16) as i64,
        }
    }
}

/// The log's state before `cut`, as read back from a checkpoint file: everything but the
/// pending records, which stay in the file until `for_each_pending` reads them.
#[derive(Debug)]
pub struct Checkpoint {
    pub cut: u64,
    /// `(number, length)` of each segment up to the cut's (that one's length is the cut's
    /// offset).
    pub segments: Vec<(u64, u64)>,
    /// The partitions the pending records go to.
    pub keys: Vec<(String, i32)>,
    /// Intents written and not done, in log order.
    pub intents: Vec<(FrameRef, Intent)>,
    /// Pending records not in an intent.
    pub pending_count: u64,
    /// The file it was read from, held open: a newer checkpoint renamed over the name does
    /// not change what this one reads.
    file: File,
}

impl Checkpoint {
    /// The length a segment before the cut's had when the checkpoint was taken.
    pub fn segment_len(&self, number: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(n, _)| *n == number)
            .map(|&(_, len)| len)
    }

    /// Hands every pending record to `f`, in log order, reading the file a chunk at a time.
    /// An error is a read failure, or a file that changed since `load` checked it.
    pub fn for_each_pending(&self, mut f: impl FnMut(Entry)) -> io::Result<()> {
        let mut chunk = vec![0u8; ENTRIES_PER_CHUNK * ENTRY_BYTES as usize];
        let mut left = self.pending_count;
        let mut at = HEAD_BYTES;
        while left > 0 {
            let n = left.min(ENTRIES_PER_CHUNK as u64) as usize;
            let bytes = &mut chunk[..n * ENTRY_BYTES as usize];
            self.file.read_exact_at(bytes, at)?;
            for raw in bytes.chunks_exact(ENTRY_BYTES as usize) {
                let entry = Entry::decode(raw);
                if entry.key as usize >= self.keys.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "delay log checkpoint changed after it was checked",
                    ));
                }
                f(entry);
            }
            left -= n as u64;
            at += bytes.len() as u64;
        }
        Ok(())
    }
}

/// Writes a checkpoint as its pending records come: `push` each, then `finish` with the
/// rest. The file is a temporary one until `finish` renames it into place.
pub struct CheckpointWriter {
    dir: PathBuf,
    out: io::BufWriter<File>,
    crc: u32,
    pending: u64,
    /// The first write error: `push` cannot return one (it runs inside replay's callback);
    /// `finish` does.
    failed: Option<io::Error>,
}

impl CheckpointWriter {
    pub fn create(dir: &Path, cut: u64) -> io::Result<CheckpointWriter> {
        let file = File::create(dir.join(TEMP_FILE))?;
        let mut w = CheckpointWriter {
            dir: dir.to_path_buf(),
            out: io::BufWriter::with_capacity(ENTRIES_PER_CHUNK * ENTRY_BYTES as usize, file),
            crc: 0,
            pending: 0,
            failed: None,
        };
        let mut head = [0u8; HEAD_BYTES as usize];
        head[..4].copy_from_slice(MAGIC);
        head[4..8].copy_from_slice(&VERSION.to_le_bytes());
        head[8..].copy_from_slice(&cut.to_le_bytes());
        w.put(&head);
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        if let Err(e) = self.out.write_all(bytes) {
            self.failed = Some(e);
        }
    }

    pub fn push(&mut self, entry: Entry) {
        let mut raw = [0u8; ENTRY_BYTES as usize];
        entry.encode(&mut raw);
        self.put(&raw);
        self.pending += 1;
    }

    /// Writes the rest, syncs the file and renames it over the previous checkpoint (the
    /// name never points at a torn file; the directory is not synced: losing the rename in
    /// a crash leaves the previous checkpoint, which is still valid). Returns the number of
    /// pending records written.
    pub fn finish(
        mut self,
        segments: &[(u64, u64)],
        keys: &[(String, i32)],
        intents: &[(FrameRef, Intent)],
    ) -> io::Result<u64> {
        let mut meta = Vec::with_capacity(64 + segments.len() * 16 + keys.len() * 32);
        meta.extend_from_slice(&(segments.len() as u32).to_le_bytes());
        for (number, len) in segments {
            meta.extend_from_slice(&number.to_le_bytes());
            meta.extend_from_slice(&len.to_le_bytes());
        }
        meta.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for (topic, partition) in keys {
            meta.extend_from_slice(&partition.to_le_bytes());
            // Topic names are at most 249 bytes (validated at creation).
            let bytes = &topic.as_bytes()[..topic.len().min(usize::from(u16::MAX))];
            meta.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            meta.extend_from_slice(bytes);
        }
        meta.extend_from_slice(&(intents.len() as u32).to_le_bytes());
        for (at, intent) in intents {
            meta.extend_from_slice(&at.position.to_le_bytes());
            log::encode_intent(&mut meta, intent);
        }
        meta.extend_from_slice(&self.pending.to_le_bytes());
        self.put(&meta);
        let crc = self.crc;
        self.put(&crc.to_le_bytes());
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        drop(file);
        std::fs::rename(self.dir.join(TEMP_FILE), self.dir.join(CHECKPOINT_FILE))?;
        Ok(self.pending)
    }
}

/// Bounds-checked reads of the metadata part.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// `n` items of at least `min_bytes` each fit in what is left.
    fn count(&self, n: u64, min_bytes: u64) -> Option<usize> {
        let left = (self.buf.len() - self.at) as u64;
        (n.checked_mul(min_bytes)? <= left).then_some(n as usize)
    }
}

/// Everything a checkpoint holds besides its pending records.
type Meta = (Vec<(u64, u64)>, Vec<(String, i32)>, Vec<(FrameRef, Intent)>);

fn decode_meta(bytes: &[u8]) -> Option<Meta> {
    let mut c = Reader { buf: bytes, at: 0 };
    // Every count is checked against the bytes left before anything is allocated.
    let n = c.u32()? as u64;
    let n = c.count(n, 16)?;
    let mut segments = Vec::with_capacity(n);
    for _ in 0..n {
        segments.push((c.u64()?, c.u64()?));
    }
    let n = c.u32()? as u64;
    let n = c.count(n, 6)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let partition = c.i32()?;
        let len = u16::from_le_bytes(c.take(2)?.try_into().ok()?);
        let topic = std::str::from_utf8(c.take(usize::from(len))?).ok()?;
        keys.push((topic.to_string(), partition));
    }
    let n = c.u32()? as u64;
    let n = c.count(n, 8 + FRAME_HEADER_BYTES as u64)?;
    let mut intents = Vec::with_capacity(n);
    for _ in 0..n {
        let position = c.u64()?;
        let header = c.buf.get(c.at..c.at.checked_add(4)?)?;
        let len = u32::from_le_bytes(header.try_into().ok()?) as usize;
        if len > FRAME_PAYLOAD_MAX {
            return None;
        }
        let frame = c.take(FRAME_HEADER_BYTES + len)?;
        let Some(Frame::Intent(intent)) = log::decode_frame(frame) else {
            return None;
        };
        let at = FrameRef {
            position,
            len: frame.len() as u32,
        };
        intents.push((at, intent));
    }
    (c.at == bytes.len()).then_some((segments, keys, intents))
}

/// Reads and checks a checkpoint file: `Ok(None)` when it is not a whole, checked
/// checkpoint of this version. One pass over the file in chunks: the CRC of everything, the
/// largest key any pending entry names; only the metadata part is kept.
fn read_checked(file: File) -> io::Result<Option<Checkpoint>> {
    let len = file.metadata()?.len();
    if len > CHECKPOINT_BYTES_MAX {
        return Err(io::Error::other(format!(
            "{len} bytes, more than {CHECKPOINT_BYTES_MAX}"
        )));
    }
    if len < HEAD_BYTES + FOOT_BYTES + 12 {
        return Ok(None);
    }
    let mut foot = [0u8; FOOT_BYTES as usize];
    file.read_exact_at(&mut foot, len - FOOT_BYTES)?;
    let (count, stored_crc) = foot.split_at(8);
    let pending_count = u64::from_le_bytes(count.try_into().map_err(io::Error::other)?);
    let stored_crc = u32::from_le_bytes(stored_crc.try_into().map_err(io::Error::other)?);
    let meta_at = match pending_count
        .checked_mul(ENTRY_BYTES)
        .and_then(|b| b.checked_add(HEAD_BYTES))
    {
        Some(at) if at <= len - FOOT_BYTES => at,
        _ => return Ok(None),
    };
    let meta_len = len - 4 - meta_at;
    if meta_len > META_BYTES_MAX {
        return Ok(None);
    }

    let mut head = [0u8; HEAD_BYTES as usize];
    file.read_exact_at(&mut head, 0)?;
    if &head[..4] != MAGIC || head[4..8] != VERSION.to_le_bytes() {
        return Ok(None);
    }
    let cut = u64::from_le_bytes(head[8..].try_into().map_err(io::Error::other)?);
    let mut crc = crc32c::crc32c(&head);
    let mut chunk = vec![0u8; ENTRIES_PER_CHUNK * ENTRY_BYTES as usize];
    let mut key_max: Option<u32> = None;
    let mut left = pending_count;
    let mut at = HEAD_BYTES;
    while left > 0 {
        let n = left.min(ENTRIES_PER_CHUNK as u64) as usize;
        let bytes = &mut chunk[..n * ENTRY_BYTES as usize];
        file.read_exact_at(bytes, at)?;
        crc = crc32c::crc32c_append(crc, bytes);
        for raw in bytes.chunks_exact(ENTRY_BYTES as usize) {
            let key = Entry::decode(raw).key;
            key_max = Some(key_max.map_or(key, |m| m.max(key)));
        }
        left -= n as u64;
        at += bytes.len() as u64;
    }
    drop(chunk);
    // The metadata part and the pending count (the CRC covers both).
    let mut meta = vec![0u8; (meta_len) as usize];
    file.read_exact_at(&mut meta, meta_at)?;
    crc = crc32c::crc32c_append(crc, &meta);
    if crc != stored_crc {
        return Ok(None);
    }
    let Some((segments, keys, intents)) = decode_meta(&meta[..meta.len() - 8]) else {
        return Ok(None);
    };
    if key_max.is_some_and(|k| k as usize >= keys.len()) {
        return Ok(None);
    }
    Ok(Some(Checkpoint {
        cut,
        segments,
        keys,
        intents,
        pending_count,
        file,
    }))
}

/// Reads the checkpoint in `dir` and checks it against the segments there (`numbers`,
/// ascending): `None` when there is none or it does not fit the log (then it is removed, so
/// it cannot be mistaken later for the state of positions the log reuses).
pub fn load(dir: &Path, numbers: &[u64]) -> Option<Checkpoint> {
    let path = dir.join(CHECKPOINT_FILE);
    let read = match File::open(&path) {
        Ok(file) => read_checked(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => Err(e),
    };
    let why = match read {
        Ok(None) => "unreadable (torn, corrupt or of another version)".to_string(),
        Ok(Some(ckpt)) => match fits(dir, numbers, &ckpt) {
            Ok(()) => return Some(ckpt),
            Err(why) => why,
        },
        Err(e) => format!("read failed: {e}"),
    };
    tracing::warn!(path = %path.display(), why, "delay log checkpoint not used; replaying the whole log");
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "delay log checkpoint not removed");
    }
    None
}

/// The checkpoint describes a prefix of this log: the cut's segment (or a later one, when
/// the cut's was deleted) is there and reaches the cut, and every earlier segment there has
/// the length it had.
fn fits(dir: &Path, numbers: &[u64], ckpt: &Checkpoint) -> Result<(), String> {
    let cut_segment = segment_of(ckpt.cut);
    if numbers.last().is_none_or(|&n| n < cut_segment) {
        return Err("its cut is past the log's last segment".into());
    }
    let file_len = |number: u64| {
        std::fs::metadata(segment_path(dir, number))
            .map(|m| m.len())
            .map_err(|e| format!("segment {number}: {e}"))
    };
    for &number in numbers {
        if number > cut_segment {
            break;
        }
        let len = file_len(number)?;
        if number == cut_segment {
            if len < offset_of(ckpt.cut) {
                return Err(format!("segment {number} ends before its cut"));
            }
        } else if ckpt.segment_len(number) != Some(len) {
            return Err(format!(
                "segment {number} changed length since it was taken"
            ));
        }
    }
    Ok(())
}

/// Takes a checkpoint of the log in `dir` at `cut` (a frame boundary the log is synced
/// through) from the previous one and the frames between the two cuts, and writes it in
/// place of the previous one. Returns the pending records it holds. Reads and writes files
/// only (run it off the shard's thread); the log may be written past `cut` meanwhile, and
/// segments may be deleted (then this fails and the next one is taken later). Memory: the
/// keys, the intents, the replay's bitmaps and a chunk of entries, never the entries whole.
pub fn take(dir: &Path, cut: u64) -> io::Result<u64> {
    let numbers: Vec<u64> = log::segment_numbers(dir)?
        .into_iter()
        .filter(|&n| n <= segment_of(cut))
        .collect();
    if numbers.last() != Some(&segment_of(cut)) {
        return Err(io::Error::other("the cut's segment is not there"));
    }
    let base = load(dir, &numbers).filter(|b| b.cut <= cut);
    let mut out = CheckpointWriter::create(dir, cut)?;
    let mut keys: Vec<(String, i32)> = Vec::new();
    let mut key_of: HashMap<(String, i32), u32> = HashMap::new();
    let mut last: Option<u32> = None;
    let replayed = log::replay_from(
        dir,
        &numbers,
        base.as_ref(),
        Some(cut),
        |frame, due_ms, topic, partition| {
            // Runs of one partition are the rule: look the key up only when it changes.
            let key = match last {
                Some(k) if keys[k as usize].1 == partition && keys[k as usize].0 == topic => k,
                _ => {
                    let k = *key_of
                        .entry((topic.to_string(), partition))
                        .or_insert_with(|| {
                            keys.push((topic.to_string(), partition));
                            (keys.len() - 1) as u32
                        });
                    last = Some(k);
                    k
                }
            };
            out.push(Entry {
                position: frame.position,
                len: frame.len,
                key,
                due_ms,
            });
        },
    )?;
    let segments: Vec<(u64, u64)> = replayed
        .segments
        .iter()
        .map(|s| (s.number, s.len))
        .collect();
    out.finish(&segments, &keys, &replayed.unresolved)
}

#[cfg(test)]
mod tests;
