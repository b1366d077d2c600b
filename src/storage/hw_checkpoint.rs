//! Kafka's `replication-offset-checkpoint`: the high watermark of every partition a broker
//! holds, so a restarted leader (or a follower promoted after a restart) serves what was
//! committed at once instead of waiting for its followers' first fetches (issue 17,
//! decision 0012 "High-watermark checkpoints"). Kafka's text format: a version line `0`, a
//! count line, then `topic partition offset` lines. One file per shard under
//! `<data_dir>/replication-offset-checkpoint/shard-<id>` (each shard owns its partitions and
//! writes its own), replaced atomically (temp file, fsync, rename, directory fsync).
//! Must not: decide which high watermark a partition takes (the shard does: the smaller of
//! this and its log end) or fail a broker's start: a damaged file is a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::StorageError;
use super::state::write_file_atomically;

/// The directory under the data directory that holds the shards' files.
pub const HW_CHECKPOINT_DIR: &str = "replication-offset-checkpoint";
/// Kafka's only version of the format.
const HW_CHECKPOINT_VERSION: &str = "0";
/// Largest file read back: a line is at most a 249-byte topic name and two numbers, so
/// this holds over 200,000 partitions per shard; a larger file is treated as damaged
/// rather than read whole into memory.
pub const HW_CHECKPOINT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Entries a file may declare (the count line), checked before anything is allocated.
pub const HW_CHECKPOINT_ENTRIES_MAX: usize = 1_000_000;

/// Checkpointed high watermarks by (topic, partition).
pub type HighWatermarks = HashMap<(String, i32), i64>;
/// A checkpoint's entries as written: (topic, partition, high watermark).
pub type CheckpointEntries = Vec<(String, i32, i64)>;

/// The file name of shard `id`'s checkpoint.
pub fn shard_file_name(id: usize) -> String {
    format!("shard-{id}")
}

/// The checkpoint's text: entries in the order given.
pub fn encode(entries: &[(String, i32, i64)]) -> Vec<u8> {
    let mut out = format!("{HW_CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        out.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    out.into_bytes()
}

/// Parses a checkpoint, strictly as Kafka's `CheckpointFile` reader does: the version must
/// be 0, the count must match the lines, every line three fields with a partition and an
/// offset of at least 0. Any deviation is an error naming it (the file is then ignored).
pub fn decode(bytes: &[u8]) -> Result<HighWatermarks, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let mut lines = text.lines();
    match lines.next() {
        Some(HW_CHECKPOINT_VERSION) => {}
        other => return Err(format!("unknown version line {other:?}")),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no entry count line")?;
    if count > HW_CHECKPOINT_ENTRIES_MAX {
        return Err(format!(
            "{count} entries declared, more than {HW_CHECKPOINT_ENTRIES_MAX}"
        ));
    }
    let mut entries = HighWatermarks::with_capacity(count);
    for (i, line) in lines.by_ref().take(count).enumerate() {
        let mut fields = line.split(' ');
        let parsed = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(topic), Some(partition), Some(offset), None) if !topic.is_empty() => {
                match (partition.parse::<i32>(), offset.parse::<i64>()) {
                    (Ok(p), Ok(o)) if p >= 0 && o >= 0 => Some((topic.to_string(), p, o)),
                    _ => None,
                }
            }
            _ => None,
        };
        let (topic, partition, offset) =
            parsed.ok_or_else(|| format!("malformed entry {} {line:?}", i + 1))?;
        entries.insert((topic, partition), offset);
    }
    if entries.len() != count || lines.next().is_some() {
        return Err(format!(
            "{count} entries declared, {} distinct ones found (or lines left over)",
            entries.len()
        ));
    }
    Ok(entries)
}

/// Replaces shard `shard_id`'s checkpoint with `entries` (crash-safe: the old or the new
/// file survives a crash, never a mix). Creates the directory (durably) the first time.
pub async fn write(
    data_dir: &Path,
    shard_id: usize,
    entries: &[(String, i32, i64)],
) -> Result<(), StorageError> {
    let dir = data_dir.join(HW_CHECKPOINT_DIR);
    if !dir.is_dir() {
        super::state::create_dir_durably(&dir).map_err(|e| StorageError::io(&dir, e))?;
    }
    write_file_atomically(&dir, &shard_file_name(shard_id), encode(entries)).await
}

/// Reads every shard's checkpoint at start-up (blocking: before the shards run). The
/// shard count may have changed since they were written, so all files are merged, the
/// larger offset winning (a high watermark only grows); files of shards that no longer
/// exist (`shard_count` and up) are removed afterwards, since nobody would replace them.
/// A file that cannot be read or parsed is logged and skipped: its partitions start as
/// they would without a checkpoint (the log start; the followers' fetches move it).
pub fn load_all(data_dir: &Path, shard_count: usize) -> HighWatermarks {
    let dir = data_dir.join(HW_CHECKPOINT_DIR);
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return HighWatermarks::new();
    };
    let mut merged = HighWatermarks::new();
    for entry in listing.flatten() {
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue; // a temp file of an interrupted write, or a stranger
        };
        let path = entry.path();
        match read_one(&path) {
            Ok(entries) => {
                for (key, offset) in entries {
                    let kept = merged.entry(key).or_insert(offset);
                    *kept = (*kept).max(offset);
                }
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "high-watermark checkpoint ignored: its partitions start from the log start"
            ),
        }
        if id >= shard_count
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "stale high-watermark checkpoint not removed");
        }
    }
    merged
}

fn read_one(path: &PathBuf) -> Result<HighWatermarks, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > HW_CHECKPOINT_FILE_BYTES_MAX {
        return Err(format!(
            "{size} bytes, more than {HW_CHECKPOINT_FILE_BYTES_MAX}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<(String, i32, i64)> {
        vec![
            ("orders".to_string(), 0, 20),
            ("orders".to_string(), 7, 0),
            ("a.b-c_d".to_string(), 3, 9_007_199_254_740_993),
        ]
    }

    #[test]
    fn the_format_is_kafkas_and_round_trips() {
        let bytes = encode(&entries());
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "0\n3\norders 0 20\norders 7 0\na.b-c_d 3 9007199254740993\n"
        );
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[&("orders".to_string(), 0)], 20);
        assert_eq!(decoded[&("a.b-c_d".to_string(), 3)], 9_007_199_254_740_993);
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn damaged_files_are_refused_never_half_read() {
        let damaged: [&[u8]; 11] = [
            b"",
            b"1\n1\norders 0 20\n",             // unknown version
            b"0\n",                             // no count
            b"0\nmany\n",                       // count not a number
            b"0\n2\norders 0 20\n",             // fewer entries than declared
            b"0\n1\norders 0 20\norders 1 5\n", // more
            b"0\n1\norders 0\n",                // a field missing
            b"0\n1\norders 0 20 extra\n",       // a field too many
            b"0\n1\norders -1 20\n",            // negative partition
            b"0\n1\norders 0 x\n",              // offset not a number
            b"0\n99999999999\norders 0 20\n",   // count past the limit
        ];
        for bytes in damaged {
            assert!(
                decode(bytes).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(decode(&[0xff, 0xfe, 0x00]).is_err(), "binary garbage");
    }

    #[test]
    fn load_merges_every_shards_file_and_skips_a_garbage_one() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join(HW_CHECKPOINT_DIR);
        std::fs::create_dir_all(&ckpt).unwrap();
        std::fs::write(ckpt.join("shard-0"), encode(&entries())).unwrap();
        std::fs::write(ckpt.join("shard-1"), b"\x00garbage\xff").unwrap();
        // Written by an earlier run with more shards: merged, the larger offset wins, and
        // the file is removed (no shard of this run replaces it).
        std::fs::write(
            ckpt.join("shard-5"),
            encode(&[("orders".into(), 0, 25), ("orders".into(), 7, 0)]),
        )
        .unwrap();
        std::fs::write(ckpt.join("shard-0.tmp"), b"half a write").unwrap();
        let loaded = load_all(dir.path(), 2);
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded[&("orders".to_string(), 0)], 25);
        assert!(!ckpt.join("shard-5").exists());
        assert!(ckpt.join("shard-1").exists(), "only stale shards' files go");
        assert!(load_all(&dir.path().join("none"), 2).is_empty());
    }

    #[test]
    fn a_written_checkpoint_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            write(dir.path(), 1, &entries()).await.unwrap();
            write(dir.path(), 1, &[("orders".into(), 0, 30)])
                .await
                .unwrap();
        });
        let loaded = load_all(dir.path(), 2);
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[&("orders".to_string(), 0)], 30);
        let names: Vec<_> = std::fs::read_dir(dir.path().join(HW_CHECKPOINT_DIR))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("shard-1")],
            "no temp file left"
        );
    }
}
