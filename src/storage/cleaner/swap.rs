//! Replacing segments with their cleaned version, crash-safely (Kafka's protocol). A pass
//! writes `<base>.log.cleaned` (+ `.index.cleaned`, `.timeindex.cleaned`) and syncs them;
//! renames the three to `.swap` and syncs the directory (from here the new data wins); deletes
//! the other segments the swap replaces; renames the indexes and then the log to their final
//! names (the log last, so a final `.log` always comes with its own indexes) and syncs the
//! directory. `finish_interrupted_swaps` runs at every open before segments are loaded:
//! `.cleaned` leftovers are deleted (the old segments are intact), a `.log.swap` is completed
//! (old segments it covers deleted, renames done). A SIGKILL at any point therefore leaves
//! either the old segments or the new one, never a half-written file under a served name.
//! Readers holding an old segment keep its file open: it is unlinked or renamed over, never
//! changed in place.

use std::path::{Path, PathBuf};

use super::super::batch::{BatchHeader, RECORD_BATCH_HEADER_BYTES};
use super::super::error::StorageError;
use super::super::recovery::remove_segment_files;
use super::super::segment::{INDEX_SUFFIX, LOG_SUFFIX, Segment, TIME_INDEX_SUFFIX, file_name};
use super::super::state::{read_exact_at, sync_dir};

pub const CLEANED_SUFFIX: &str = ".cleaned";
pub const SWAP_SUFFIX: &str = ".swap";
const SEGMENT_FILE_SUFFIXES: [&str; 3] = [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX];

fn path_of(dir: &Path, base_offset: i64, suffix: &str, extra: &str) -> PathBuf {
    dir.join(file_name(base_offset, suffix) + extra)
}

async fn rename(from: &Path, to: &Path) -> Result<(), StorageError> {
    compio::fs::rename(from, to)
        .await
        .map_err(|e| StorageError::io(to, e))
}

async fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match compio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Deletes a pass's `.cleaned` files (an abandoned pass).
pub async fn discard_cleaned(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in SEGMENT_FILE_SUFFIXES {
        remove_if_present(&path_of(dir, base_offset, suffix, CLEANED_SUFFIX)).await?;
    }
    Ok(())
}

/// Deletes `.swap` files that were never installed (the swap was given up before it began
/// to replace anything).
pub async fn discard_swap(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in SEGMENT_FILE_SUFFIXES {
        remove_if_present(&path_of(dir, base_offset, suffix, SWAP_SUFFIX)).await?;
    }
    sync_dir(dir).await
}

/// `.cleaned` → `.swap` for the three files, made durable. The cleaned files must be synced.
pub async fn promote_to_swap(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in SEGMENT_FILE_SUFFIXES {
        rename(
            &path_of(dir, base_offset, suffix, CLEANED_SUFFIX),
            &path_of(dir, base_offset, suffix, SWAP_SUFFIX),
        )
        .await?;
    }
    sync_dir(dir).await
}

/// Completes a swap: deletes the replaced segments other than the one named like the swap,
/// then renames the swap files over the final names, the log last, and syncs the directory.
pub async fn install_swap(
    dir: &Path,
    base_offset: i64,
    replaced: &[&Segment],
) -> Result<(), StorageError> {
    for old in replaced.iter().filter(|s| s.base_offset != base_offset) {
        remove_segment_files(old).await?;
    }
    sync_dir(dir).await?;
    install_renames(dir, base_offset).await
}

async fn install_renames(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in SEGMENT_FILE_SUFFIXES {
        let swap = path_of(dir, base_offset, suffix, SWAP_SUFFIX);
        let target = path_of(dir, base_offset, suffix, "");
        if compio::fs::metadata(&swap).await.is_ok() {
            rename(&swap, &target).await?;
        } else if suffix != LOG_SUFFIX {
            // Renamed before the crash; the log (renamed last) is still to do.
            continue;
        }
    }
    sync_dir(dir).await
}

/// Files of the form `<offset:020>.<suffix><extra>`, their offsets sorted.
fn list_with_extra(dir: &Path, suffix: &str, extra: &str) -> Result<Vec<i64>, StorageError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name
            .strip_suffix(extra)
            .and_then(|s| s.strip_suffix(suffix))
            .and_then(|s| s.strip_suffix('.'))
        else {
            continue;
        };
        if stem.len() == 20
            && let Ok(offset) = stem.parse::<i64>()
        {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// At open, before segments are loaded: deletes `.cleaned` leftovers and completes every
/// `.log.swap` (deleting the old segments inside its offset range, then installing it).
/// Index `.swap` files without their log are leftovers of a swap given up: deleted.
pub async fn finish_interrupted_swaps(dir: &Path) -> Result<(), StorageError> {
    for suffix in SEGMENT_FILE_SUFFIXES {
        for base in list_with_extra(dir, suffix, CLEANED_SUFFIX)? {
            tracing::warn!(dir = %dir.display(), base, "removing a cleaner pass interrupted before its swap");
            remove_if_present(&path_of(dir, base, suffix, CLEANED_SUFFIX)).await?;
        }
    }
    let swaps = list_with_extra(dir, LOG_SUFFIX, SWAP_SUFFIX)?;
    for &base in &swaps {
        let end = swap_end_offset(dir, base).await?;
        tracing::warn!(dir = %dir.display(), base, end, "completing a segment swap interrupted by a crash");
        for old in list_with_extra(dir, LOG_SUFFIX, "")? {
            if old > base && old < end {
                for suffix in SEGMENT_FILE_SUFFIXES {
                    remove_if_present(&path_of(dir, old, suffix, "")).await?;
                }
            }
        }
        sync_dir(dir).await?;
        install_renames(dir, base).await?;
    }
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        for base in list_with_extra(dir, suffix, SWAP_SUFFIX)? {
            if !swaps.contains(&base) {
                remove_if_present(&path_of(dir, base, suffix, SWAP_SUFFIX)).await?;
            }
        }
    }
    Ok(())
}

/// One past the last offset in a swap log file (it was synced whole before being named
/// `.swap`, so its batches are complete): a walk of its batch headers.
async fn swap_end_offset(dir: &Path, base: i64) -> Result<i64, StorageError> {
    let path = path_of(dir, base, LOG_SUFFIX, SWAP_SUFFIX);
    let file = compio::fs::File::open(&path)
        .await
        .map_err(|e| StorageError::io(&path, e))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| StorageError::io(&path, e))?
        .len();
    let mut end = base;
    let mut position = 0u64;
    while position + RECORD_BATCH_HEADER_BYTES as u64 <= size {
        let raw = read_exact_at(&file, &path, position, RECORD_BATCH_HEADER_BYTES).await?;
        let header = BatchHeader::parse_stored_at(&raw, position as usize)
            .map_err(|e| StorageError::corrupt(&path, position, e.to_string()))?;
        end = header.last_offset() + 1;
        position += header.size_bytes() as u64;
    }
    if position != size {
        return Err(StorageError::corrupt(
            &path,
            position,
            "swap file ends inside a batch",
        ));
    }
    Ok(end)
}
