//! The checksummed record frame every small durable log of the broker uses (group offsets,
//! transaction state, share-partition state): `payload_len u32 | crc32c(payload) u32 |
//! payload`, little endian. Replay stops at the first short, oversized or CRC-failing frame
//! — a torn tail after a crash — and reports the valid prefix's length so the caller can
//! truncate there. Also the file steps those logs share: append-and-fdatasync and a
//! crash-safe whole-file replacement (temp file, fsync, rename, directory fsync).
//!
//! Owns: the frame layout and those file steps. Must not: know any payload's format.

use std::io;
use std::path::Path;

pub const FRAME_HEADER_BYTES: usize = 8;

/// Reserves a frame header in `buf`; write the payload after it, then call `end_frame`
/// with the returned position.
pub fn begin_frame(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    start
}

/// Fills in the header of the frame begun at `start` (length and CRC of what follows it).
pub fn end_frame(buf: &mut [u8], start: usize) {
    let payload_len = (buf.len() - start - FRAME_HEADER_BYTES) as u32;
    let crc = crc32c::crc32c(&buf[start + FRAME_HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes frames from the start of `bytes` with `decode` (None: corrupt payload) until the
/// first bad one; returns the records and the length of the valid prefix.
pub fn decode_frames<T>(
    bytes: &[u8],
    max_payload_bytes: u32,
    mut decode: impl FnMut(&[u8]) -> Option<T>,
) -> (Vec<T>, usize) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= FRAME_HEADER_BYTES {
        let header = &bytes[pos..pos + FRAME_HEADER_BYTES];
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > max_payload_bytes {
            break;
        }
        let start = pos + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len as usize) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Some(decoded) = decode(payload) else {
            break;
        };
        records.push(decoded);
        pos = start + len as usize;
    }
    (records, pos)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Opens (creating) a log for appending at a known position. A log that may be new
/// (`may_be_new`: nothing durable in it yet) also gets its directory entry fsync'ed, or a
/// crash could lose the whole file although its data was synced.
pub async fn open_for_append(path: &Path, may_be_new: bool) -> io::Result<compio::fs::File> {
    let file = compio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .open(path)
        .await?;
    if may_be_new && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(file)
}

/// Writes `bytes` at `position` and fdatasyncs: the acknowledgement point of a write.
/// When `truncate_first` is set (a previous write failed part-way) the file is cut back
/// to `position` first.
pub async fn append_durably(
    file: &compio::fs::File,
    position: u64,
    bytes: Vec<u8>,
    truncate_first: bool,
) -> io::Result<()> {
    if truncate_first {
        file.set_len(position).await?;
    }
    let mut writer = file;
    let compio::BufResult(result, _) =
        compio::io::AsyncWriteAtExt::write_all_at(&mut writer, bytes, position).await;
    result?;
    file.sync_data().await
}

/// Replaces the log at `path` with `snapshot`: write a temp file, fsync, rename, fsync the
/// directory. A crash at any point leaves either the old or the new log whole.
pub async fn replace_with_snapshot(path: &Path, snapshot: Vec<u8>) -> io::Result<compio::fs::File> {
    let tmp = path.with_extension("log.tmp");
    let file = compio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .await?;
    let mut writer = &file;
    let compio::BufResult(result, _) =
        compio::io::AsyncWriteAtExt::write_all_at(&mut writer, snapshot, 0).await;
    result?;
    file.sync_all().await?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_torn_or_corrupt_tail_is_cut() {
        let mut buf = Vec::new();
        for payload in [&b"one"[..], b"two", b""] {
            let start = begin_frame(&mut buf);
            buf.extend_from_slice(payload);
            end_frame(&mut buf, start);
        }
        let whole = buf.len();
        let (records, valid) = decode_frames(&buf, 16, |p| Some(p.to_vec()));
        assert_eq!(records, vec![b"one".to_vec(), b"two".to_vec(), Vec::new()]);
        assert_eq!(valid, whole);
        // Torn: the last frame's header only half there.
        let (records, valid) = decode_frames(&buf[..whole - 4], 16, |p| Some(p.to_vec()));
        assert_eq!((records.len(), valid), (2, FRAME_HEADER_BYTES * 2 + 6));
        // A flipped payload byte fails the CRC; an oversized length is refused.
        let mut corrupt = buf.clone();
        corrupt[FRAME_HEADER_BYTES + 11 + 1] ^= 0xff;
        assert_eq!(
            decode_frames(&corrupt, 16, |p| Some(p.to_vec())).1,
            FRAME_HEADER_BYTES + 3
        );
        assert_eq!(decode_frames(&buf, 2, |p| Some(p.to_vec())).1, 0);
    }
}
