//! The delay log's format and replay: per shard, `<data_dir>/delay/shard-<id>/` holds
//! segments `<number:010>.dlog`, rolled at `SEGMENT_BYTES`. Frames (little endian):
//! `payload_len u32 | crc32c(payload) u32 | payload`, payload `kind u8 | ...`:
//!
//! - `PENDING`: `due_ms i64 | timestamp_ms i64 | partition i32 | topic (u16 len + bytes) |
//!   tail` (the record's key, value and headers, verbatim; to the end of the payload);
//! - `INTENT`: `partition i32 | topic (u16 len + bytes) | base_sequence i32 | count u32 |
//!   count × (position u64, frame_len u32)` — a delivery about to be appended;
//! - `DONE`: `intent position u64` — that delivery's append completed.
//!
//! A position is `segment << OFFSET_BITS | byte offset of the frame`. Replay stops a
//! segment at the first short, oversized or CRC-failing frame (a torn tail) and truncates
//! the file there. Decision 0009 says why this is enough for exactly-once delivery.
//!
//! Owns: the bytes and the replay. Must not: decide when to write, sync or deliver.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Sub-directory of the data dir holding every shard's delay log.
pub const DELAY_DIR_NAME: &str = "delay";
/// A segment rolls once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Bits of a position that hold the byte offset inside the segment (1 TiB).
pub const OFFSET_BITS: u32 = 40;
pub const FRAME_HEADER_BYTES: usize = 8;
/// Largest payload a frame may carry (a record is at most a batch, `max.message.bytes`,
/// which is an i32; a delivery intent at most `INTENT_RECORDS_MAX` references). Anything
/// larger on replay is corruption.
pub const FRAME_PAYLOAD_MAX: usize = 64 * 1024 * 1024;
/// Records one intent (one delivery batch) may reference.
pub const INTENT_RECORDS_MAX: usize = 4096;
const SEGMENT_SUFFIX: &str = "dlog";

const KIND_PENDING: u8 = 1;
const KIND_INTENT: u8 = 2;
const KIND_DONE: u8 = 3;

/// Where one frame lives: what the wheel keeps per pending record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FrameRef {
    pub position: u64,
    /// Whole frame, header included.
    pub len: u32,
}

pub fn position(segment: u64, offset: u64) -> u64 {
    (segment << OFFSET_BITS) | offset
}

pub fn segment_of(position: u64) -> u64 {
    position >> OFFSET_BITS
}

pub fn offset_of(position: u64) -> u64 {
    position & ((1 << OFFSET_BITS) - 1)
}

/// `<data_dir>/delay/shard-<id>`.
pub fn shard_dir(data_dir: &Path, shard: usize) -> PathBuf {
    data_dir.join(DELAY_DIR_NAME).join(format!("shard-{shard}"))
}

pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:010}.{SEGMENT_SUFFIX}"))
}

/// A record waiting in the log, borrowed from a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending<'a> {
    pub due_ms: i64,
    pub timestamp_ms: i64,
    pub topic: &'a str,
    pub partition: i32,
    pub tail: &'a [u8],
}

/// A delivery about to be appended to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub topic: String,
    pub partition: i32,
    pub base_sequence: i32,
    pub records: Vec<FrameRef>,
}

fn begin_frame(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    buf.push(kind);
    start
}

fn end_frame(buf: &mut [u8], start: usize) {
    let payload = &buf[start + FRAME_HEADER_BYTES..];
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_topic(buf: &mut Vec<u8>, topic: &str) {
    // Topic names are at most 249 bytes (validated at creation).
    let bytes = &topic.as_bytes()[..topic.len().min(usize::from(u16::MAX))];
    buf.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Appends a `PENDING` frame; returns its length.
pub fn encode_pending(buf: &mut Vec<u8>, record: &Pending<'_>) -> u32 {
    let start = begin_frame(buf, KIND_PENDING);
    buf.extend_from_slice(&record.due_ms.to_le_bytes());
    buf.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    buf.extend_from_slice(&record.partition.to_le_bytes());
    put_topic(buf, record.topic);
    buf.extend_from_slice(record.tail);
    end_frame(buf, start);
    (buf.len() - start) as u32
}

/// Appends an `INTENT` frame; returns its length.
pub fn encode_intent(buf: &mut Vec<u8>, intent: &Intent) -> u32 {
    let start = begin_frame(buf, KIND_INTENT);
    buf.extend_from_slice(&intent.partition.to_le_bytes());
    put_topic(buf, &intent.topic);
    buf.extend_from_slice(&intent.base_sequence.to_le_bytes());
    buf.extend_from_slice(&(intent.records.len() as u32).to_le_bytes());
    for r in &intent.records {
        buf.extend_from_slice(&r.position.to_le_bytes());
        buf.extend_from_slice(&r.len.to_le_bytes());
    }
    end_frame(buf, start);
    (buf.len() - start) as u32
}

/// Appends a `DONE` frame; returns its length.
pub fn encode_done(buf: &mut Vec<u8>, intent_position: u64) -> u32 {
    let start = begin_frame(buf, KIND_DONE);
    buf.extend_from_slice(&intent_position.to_le_bytes());
    end_frame(buf, start);
    (buf.len() - start) as u32
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Pending(Pending<'a>),
    Intent(Intent),
    Done { intent_position: u64 },
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn topic(&mut self) -> Option<&'a str> {
        let len = u16::from_le_bytes(self.array()?);
        std::str::from_utf8(self.take(usize::from(len))?).ok()
    }
}

/// Decodes a frame's payload (after its header and CRC check).
pub fn decode_payload(payload: &[u8]) -> Option<Frame<'_>> {
    let (&kind, rest) = payload.split_first()?;
    let mut c = Cursor { buf: rest, at: 0 };
    match kind {
        KIND_PENDING => {
            let due_ms = c.i64()?;
            let timestamp_ms = c.i64()?;
            let partition = c.i32()?;
            let topic = c.topic()?;
            Some(Frame::Pending(Pending {
                due_ms,
                timestamp_ms,
                topic,
                partition,
                tail: &rest[c.at..],
            }))
        }
        KIND_INTENT => {
            let partition = c.i32()?;
            let topic = c.topic()?.to_string();
            let base_sequence = c.i32()?;
            let count = c.u32()? as usize;
            if count > INTENT_RECORDS_MAX {
                return None;
            }
            let mut records = Vec::with_capacity(count);
            for _ in 0..count {
                let position = c.u64()?;
                let len = c.u32()?;
                records.push(FrameRef { position, len });
            }
            Some(Frame::Intent(Intent {
                topic,
                partition,
                base_sequence,
                records,
            }))
        }
        KIND_DONE => Some(Frame::Done {
            intent_position: c.u64()?,
        }),
        _ => None,
    }
}

/// Checks one whole frame read back by position (header, length, CRC) and decodes it.
pub fn decode_frame(frame: &[u8]) -> Option<Frame<'_>> {
    let header = frame.get(..FRAME_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let payload = frame.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES.checked_add(len)?)?;
    if len > FRAME_PAYLOAD_MAX || crc32c::crc32c(payload) != crc {
        return None;
    }
    decode_payload(payload)
}

/// Calls `f(offset, frame_len, frame)` for each valid frame of a segment's bytes; returns
/// the length of the valid prefix.
pub fn walk_frames(bytes: &[u8], f: impl FnMut(u64, u32, Frame<'_>)) -> usize {
    walk(bytes, true, f)
}

/// `check_crc` false: only for bytes `walk_frames` has just accepted (the same memory),
/// whose CRCs need not be computed again.
fn walk(bytes: &[u8], check_crc: bool, mut f: impl FnMut(u64, u32, Frame<'_>)) -> usize {
    let mut at = 0usize;
    while bytes.len() - at >= FRAME_HEADER_BYTES {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let total = FRAME_HEADER_BYTES + len as usize;
        if len as usize > FRAME_PAYLOAD_MAX || bytes.len() - at < total {
            break;
        }
        let frame = if check_crc {
            decode_frame(&bytes[at..at + total])
        } else {
            decode_payload(&bytes[at + FRAME_HEADER_BYTES..at + total])
        };
        let Some(frame) = frame else {
            break;
        };
        f(at as u64, total as u32, frame);
        at += total;
    }
    at
}

/// One segment as replay found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentState {
    pub number: u64,
    /// Bytes of valid frames (the file is truncated to this).
    pub len: u64,
    /// Frames still needed: `PENDING` not delivered and `INTENT` not done.
    pub live: u64,
}

/// What replay recovered: the segments, the intents to append again (in log order), and,
/// through the callback, every pending record not covered by an intent.
#[derive(Debug, Default)]
pub struct Replayed {
    pub segments: Vec<SegmentState>,
    pub unresolved: Vec<(FrameRef, Intent)>,
    /// The checkpoint's cut when replay started from one (`None`: the whole log was read).
    pub checkpoint_cut: Option<u64>,
    /// Bytes of log frames read (after the checkpoint's cut, when there was one).
    pub tail_bytes: u64,
}

/// Segment numbers present in `dir`, ascending.
pub(super) fn segment_numbers(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(numbers),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_SUFFIX}"))
            && let Ok(n) = stem.parse::<u64>()
        {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The smallest frame there is (a `DONE`: header, kind, position): two frames of one segment
/// are at least this far apart, so `offset / MIN_FRAME_BYTES` tells frames apart.
pub const MIN_FRAME_BYTES: u64 = (FRAME_HEADER_BYTES + 1 + 8) as u64;
/// Largest byte offset a frame can start at: a segment rolls at `SEGMENT_BYTES`, and one
/// frame written into it may cross that by at most a whole frame.
const OFFSET_MAX: u64 = SEGMENT_BYTES + FRAME_HEADER_BYTES as u64 + FRAME_PAYLOAD_MAX as u64;

/// A set of frame positions for replay: per segment of the log, one bit per
/// `MIN_FRAME_BYTES` (at most ~1.4 MiB per segment, allocated up to the highest position
/// marked). Replay marks up to every record of the log; a `HashSet<u64>` of them cost 16+
/// bytes and a SipHash per record (perf/RESULTS.md, delayed delivery, session 12).
struct PositionSet {
    /// The log's segment numbers, ascending: `words[i]` holds segment `numbers[i]`.
    numbers: Vec<u64>,
    words: Vec<Vec<u64>>,
}

impl PositionSet {
    /// A set over segments `numbers` (ascending, as `segment_numbers` lists them).
    fn new(numbers: &[u64]) -> PositionSet {
        PositionSet {
            numbers: numbers.to_vec(),
            words: numbers.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Where a position's bit is; `None` for a position no frame of the log can have (a
    /// segment that is not there, an offset past any segment's end).
    fn bit(&self, position: u64) -> Option<(usize, usize, u64)> {
        let segment = self.numbers.binary_search(&segment_of(position)).ok()?;
        let offset = offset_of(position);
        if offset > OFFSET_MAX {
            return None;
        }
        let bit = offset / MIN_FRAME_BYTES;
        Some((segment, (bit / 64) as usize, 1u64 << (bit % 64)))
    }

    fn insert(&mut self, position: u64) {
        let Some((segment, word, mask)) = self.bit(position) else {
            return;
        };
        let words = &mut self.words[segment];
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        words[word] |= mask;
    }

    fn contains(&self, position: u64) -> bool {
        self.bit(position).is_some_and(|(segment, word, mask)| {
            self.words[segment].get(word).is_some_and(|w| w & mask != 0)
        })
    }
}

/// Reads bytes `from..to` (`to`: the end of the file when `None`) of a segment into `buf`
/// (reused across segments, so a restart does not fault in a fresh 64 MiB buffer per read).
fn read_segment(path: &Path, from: u64, to: Option<u64>, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    buf.clear();
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    match to {
        Some(to) => {
            file.take(to.saturating_sub(from)).read_to_end(buf)?;
        }
        None => {
            file.read_to_end(buf)?;
        }
    }
    Ok(())
}

/// Replays the log in `dir`: hands every still-pending record to `pending(frame, due_ms,
/// topic, partition)` and returns the segments and the unresolved intents, truncating torn
/// tails. Starts from the shard's pending-index checkpoint (`checkpoint`) when one is there
/// and fits the log, so only the frames written after its cut are read (a restart then reads
/// ~24 bytes per pending record instead of every frame of the log); without one, or with one
/// that does not fit (removed), the whole log is read.
/// Memory beyond the caller's index: the checkpoint's keys and intents (its pending records
/// are read from the file a chunk at a time), a bit per `MIN_FRAME_BYTES` of each
/// retained segment for the delivered records and those in unfinished intents, and two
/// segments' bytes, for the length of the call.
pub fn replay(dir: &Path, pending: impl FnMut(FrameRef, i64, &str, i32)) -> io::Result<Replayed> {
    let numbers = segment_numbers(dir)?;
    let base = super::checkpoint::load(dir, &numbers);
    replay_from(dir, &numbers, base.as_ref(), None, pending)
}

/// The replay: `base` is the log's state before its cut (from a checkpoint), `numbers` the
/// segments present. `end`: replay only the frames before this position and change nothing
/// on disk (for a checkpoint of a running log; a frame before `end` that does not check is
/// an error, since everything before the cut was written and synced).
///
/// Two passes over the frames after the base's cut (all of them without a base): the first
/// finds the intents and what was delivered, the second hands on the pending records (the
/// base's first: they are older than every frame read).
pub(super) fn replay_from(
    dir: &Path,
    numbers: &[u64],
    base: Option<&super::checkpoint::Checkpoint>,
    end: Option<u64>,
    mut pending: impl FnMut(FrameRef, i64, &str, i32),
) -> io::Result<Replayed> {
    // Frames at or after `from` are read; a segment before it is the base's. With a base
    // whose cut segment is gone (deleted as a prefix: nothing in it was needed), reading
    // starts at the next segment there is.
    let from = base.map_or(0, |b| b.cut);
    let index_of = |at: u64| numbers.binary_search(&segment_of(at)).ok();
    let mut delivered = PositionSet::new(numbers);
    let mut intents: HashMap<u64, (u32, Intent)> = HashMap::new();
    if let Some(base) = base {
        for (at, intent) in &base.intents {
            // An intent of a deleted segment was done (a segment goes only with nothing live).
            if index_of(at.position).is_some() {
                intents.insert(at.position, (at.len, intent.clone()));
            }
        }
    }
    let tail_of = |number: u64| -> Option<u64> {
        use std::cmp::Ordering;
        match number.cmp(&segment_of(from)) {
            Ordering::Less => None,
            Ordering::Equal => Some(offset_of(from)),
            Ordering::Greater => Some(0),
        }
    };
    let mut lens = Vec::with_capacity(numbers.len());
    let mut bytes = Vec::new();
    let mut newest_read = None;
    let mut tail_bytes = 0u64;
    for &number in numbers {
        let Some(skip) = tail_of(number) else {
            lens.push(base.and_then(|b| b.segment_len(number)).unwrap_or(0));
            continue;
        };
        let path = segment_path(dir, number);
        let to = end.filter(|e| segment_of(*e) == number).map(offset_of);
        read_segment(&path, skip, to, &mut bytes)?;
        newest_read = Some(number);
        tail_bytes += bytes.len() as u64;
        let valid = walk_frames(&bytes, |offset, len, frame| match frame {
            Frame::Intent(intent) => {
                intents.insert(position(number, skip + offset), (len, intent));
            }
            Frame::Done { intent_position } => {
                if let Some((_, intent)) = intents.remove(&intent_position) {
                    for r in &intent.records {
                        delivered.insert(r.position);
                    }
                }
            }
            Frame::Pending(_) => {}
        });
        if valid < bytes.len() || to.is_some_and(|to| skip + (valid as u64) < to) {
            if end.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "delay log {}: a frame before the checkpoint's cut does not check",
                        path.display()
                    ),
                ));
            }
            tracing::warn!(
                path = %path.display(),
                valid = skip + valid as u64,
                len = skip + bytes.len() as u64,
                "delay log: torn or corrupt tail truncated"
            );
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(skip + valid as u64)?;
        }
        lens.push(skip + valid as u64);
    }
    let mut in_intent = PositionSet::new(numbers);
    for (_, intent) in intents.values() {
        for r in &intent.records {
            in_intent.insert(r.position);
        }
    }
    let mut live = vec![0u64; numbers.len()];
    if let Some(base) = base {
        base.for_each_pending(|e| {
            // A record of a deleted segment was delivered.
            let Some(segment) = index_of(e.position) else {
                return;
            };
            if delivered.contains(e.position) {
                return;
            }
            live[segment] += 1;
            if !in_intent.contains(e.position)
                && let Some((topic, partition)) = base.keys.get(e.key as usize)
            {
                let frame = FrameRef {
                    position: e.position,
                    len: e.len,
                };
                pending(frame, e.due_ms, topic, *partition);
            }
        })?;
        // The records of the base's intents that are still unresolved are still needed
        // (their frames are before the cut, so the second pass below does not count them).
        for (&at, (_, intent)) in &intents {
            if at < from {
                for r in &intent.records {
                    if let Some(segment) = index_of(r.position) {
                        live[segment] += 1;
                    }
                }
            }
        }
    }
    // The first pass left the newest segment's bytes in `bytes` (usually the tail is one
    // segment): the second pass reads only the older ones again, and does not check again
    // the CRCs of bytes the first pass accepted.
    let mut older = Vec::new();
    for (i, &number) in numbers.iter().enumerate() {
        let Some(skip) = tail_of(number) else {
            continue;
        };
        let reused = Some(number) == newest_read;
        if !reused {
            read_segment(&segment_path(dir, number), skip, Some(lens[i]), &mut older)?;
        }
        let read = if reused { &bytes } else { &older };
        let valid = &read[..(lens[i].saturating_sub(skip) as usize).min(read.len())];
        walk(valid, !reused, |offset, len, frame| {
            let at = position(number, skip + offset);
            if let Frame::Pending(p) = frame
                && !delivered.contains(at)
            {
                live[i] += 1;
                if !in_intent.contains(at) {
                    pending(
                        FrameRef { position: at, len },
                        p.due_ms,
                        p.topic,
                        p.partition,
                    );
                }
            }
        });
    }
    let mut unresolved: Vec<(FrameRef, Intent)> = intents
        .into_iter()
        .map(|(at, (len, intent))| (FrameRef { position: at, len }, intent))
        .collect();
    unresolved.sort_by_key(|(r, _)| r.position);
    for (r, _) in &unresolved {
        if let Some(segment) = index_of(r.position) {
            live[segment] += 1;
        }
    }
    let segments = numbers
        .iter()
        .zip(lens)
        .zip(live)
        .map(|((&number, len), live)| SegmentState { number, len, live })
        .collect();
    Ok(Replayed {
        segments,
        unresolved,
        checkpoint_cut: base.map(|b| b.cut),
        tail_bytes,
    })
}

#[cfg(test)]
mod tests;
