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
//! File (little endian): `MAGIC | VERSION u32 | cut u64 | segments u32 × (number u64, len
//! u64) | keys u32 × (partition i32, topic u16 len + bytes) | pending u64 × (position u64,
//! frame_len u32, key u32, due_ms i64) | intents u32 × (position u64, intent frame) |
//! crc32c u32` (the CRC of everything before it).
//!
//! Owns: the file's bytes, taking a checkpoint, loading and validating one. Must not: decide
//! when to take one (the shard's delay service does, off the delivery path).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::log::{
    self, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX, Frame, FrameRef, Intent, offset_of, segment_of,
    segment_path,
};

/// File name of a shard's checkpoint, beside its segments.
pub const CHECKPOINT_FILE: &str = "pending.ckpt";
const TEMP_FILE: &str = "pending.ckpt.tmp";
const MAGIC: &[u8; 4] = b"SDCK";
const VERSION: u32 = 1;
/// Largest checkpoint read back: the wheel's limit (64 Mi records per shard) at 24 bytes
/// each, with room for keys and intents. Anything larger is not ours.
pub const CHECKPOINT_BYTES_MAX: u64 = 2 << 30;

/// One pending record as the checkpoint keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub position: u64,
    pub len: u32,
    /// Index into `Checkpoint::keys`.
    pub key: u32,
    pub due_ms: i64,
}

/// The log's state before `cut`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub cut: u64,
    /// `(number, length)` of each segment up to the cut's (that one's length is the cut's
    /// offset).
    pub segments: Vec<(u64, u64)>,
    /// The partitions the pending records go to.
    pub keys: Vec<(String, i32)>,
    /// Pending records not in an intent, in log order.
    pub pending: Vec<Entry>,
    /// Intents written and not done, in log order.
    pub intents: Vec<(FrameRef, Intent)>,
}

impl Checkpoint {
    /// The length a segment before the cut's had when the checkpoint was taken.
    pub fn segment_len(&self, number: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(n, _)| *n == number)
            .map(|&(_, len)| len)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + self.pending.len() * 24);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&self.cut.to_le_bytes());
        buf.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for (number, len) in &self.segments {
            buf.extend_from_slice(&number.to_le_bytes());
            buf.extend_from_slice(&len.to_le_bytes());
        }
        buf.extend_from_slice(&(self.keys.len() as u32).to_le_bytes());
        for (topic, partition) in &self.keys {
            buf.extend_from_slice(&partition.to_le_bytes());
            // Topic names are at most 249 bytes (validated at creation).
            let bytes = &topic.as_bytes()[..topic.len().min(usize::from(u16::MAX))];
            buf.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            buf.extend_from_slice(bytes);
        }
        buf.extend_from_slice(&(self.pending.len() as u64).to_le_bytes());
        for e in &self.pending {
            buf.extend_from_slice(&e.position.to_le_bytes());
            buf.extend_from_slice(&e.len.to_le_bytes());
            buf.extend_from_slice(&e.key.to_le_bytes());
            buf.extend_from_slice(&e.due_ms.to_le_bytes());
        }
        buf.extend_from_slice(&(self.intents.len() as u32).to_le_bytes());
        for (at, intent) in &self.intents {
            buf.extend_from_slice(&at.position.to_le_bytes());
            log::encode_intent(&mut buf, intent);
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }

    /// `None` for anything that is not a whole, checked checkpoint.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut c = Reader { buf: body, at: 0 };
        if c.take(4)? != MAGIC || c.u32()? != VERSION {
            return None;
        }
        let cut = c.u64()?;
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
        let n = c.u64()?;
        let n = c.count(n, 24)?;
        let mut pending = Vec::with_capacity(n);
        for _ in 0..n {
            let e = Entry {
                position: c.u64()?,
                len: c.u32()?,
                key: c.u32()?,
                due_ms: c.i64()?,
            };
            if e.key as usize >= keys.len() {
                return None;
            }
            pending.push(e);
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
        (c.at == body.len()).then_some(Checkpoint {
            cut,
            segments,
            keys,
            pending,
            intents,
        })
    }
}

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
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// `n` items of at least `min_bytes` each fit in what is left.
    fn count(&self, n: u64, min_bytes: u64) -> Option<usize> {
        let left = (self.buf.len() - self.at) as u64;
        (n.checked_mul(min_bytes)? <= left).then_some(n as usize)
    }
}

/// Reads the checkpoint in `dir` and checks it against the segments there (`numbers`,
/// ascending): `None` when there is none or it does not fit the log (then it is removed, so
/// it cannot be mistaken later for the state of positions the log reuses).
pub fn load(dir: &Path, numbers: &[u64]) -> Option<Checkpoint> {
    let path = dir.join(CHECKPOINT_FILE);
    let why = match read_checked(&path) {
        Ok(None) => return None,
        Ok(Some(bytes)) => match Checkpoint::decode(&bytes) {
            None => "unreadable (torn or corrupt)".to_string(),
            Some(ckpt) => match fits(dir, numbers, &ckpt) {
                Ok(()) => return Some(ckpt),
                Err(why) => why,
            },
        },
        Err(e) => format!("read failed: {e}"),
    };
    tracing::warn!(path = %path.display(), why, "delay log checkpoint not used; replaying the whole log");
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "delay log checkpoint not removed");
    }
    None
}

fn read_checked(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > CHECKPOINT_BYTES_MAX {
        return Err(io::Error::other(format!(
            "{len} bytes, more than {CHECKPOINT_BYTES_MAX}"
        )));
    }
    std::fs::read(path).map(Some)
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
/// segments may be deleted (then this fails and the next one is taken later).
pub fn take(dir: &Path, cut: u64) -> io::Result<usize> {
    let numbers: Vec<u64> = log::segment_numbers(dir)?
        .into_iter()
        .filter(|&n| n <= segment_of(cut))
        .collect();
    if numbers.last() != Some(&segment_of(cut)) {
        return Err(io::Error::other("the cut's segment is not there"));
    }
    let base = load(dir, &numbers).filter(|b| b.cut <= cut);
    let mut keys: Vec<(String, i32)> = Vec::new();
    let mut key_of: HashMap<(String, i32), u32> = HashMap::new();
    let mut last: Option<u32> = None;
    let mut pending = Vec::new();
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
            pending.push(Entry {
                position: frame.position,
                len: frame.len,
                key,
                due_ms,
            });
        },
    )?;
    let ckpt = Checkpoint {
        cut,
        segments: replayed
            .segments
            .iter()
            .map(|s| (s.number, s.len))
            .collect(),
        keys,
        pending,
        intents: replayed.unresolved,
    };
    write(dir, &ckpt)?;
    Ok(ckpt.pending.len())
}

/// Writes `ckpt` whole beside the log and renames it into place (synced first, so the name
/// never points at a torn file; the directory is not synced: losing the rename in a crash
/// leaves the previous checkpoint, which is still valid).
pub fn write(dir: &Path, ckpt: &Checkpoint) -> io::Result<()> {
    use std::io::Write;
    let temp = dir.join(TEMP_FILE);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&ckpt.encode())?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&temp, dir.join(CHECKPOINT_FILE))
}

#[cfg(test)]
mod tests;
