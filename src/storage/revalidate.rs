//! Re-validation of one segment after an unclean shutdown (`recovery.rs` decides which
//! segments and what a bad batch means): every batch of it, or in the segment holding the
//! recovery point only the batches from the last indexed one below the recovery point on.
//! The bookkeeping and indexes of the re-validated range are rebuilt; a torn tail is
//! truncated. Must not decide which segments are trusted or remove segments.

use std::rc::Rc;

use super::batch::RECORD_BATCH_HEADER_BYTES;
use super::error::StorageError;
use super::segment::{RECOVERY_SCAN_CHUNK_BYTES, Segment};

/// What the re-validation of one segment may assume.
#[derive(Clone, Copy)]
pub(super) struct RevalidationBounds {
    pub recovery_point: i64,
    /// The state file was readable: its recovery point covers every sealed segment.
    pub state_trusted: bool,
    /// The segment holds the recovery point: the part of it below the recovery point was
    /// synced and need not be re-read (see `resume_below_recovery_point`).
    pub from_recovery_point: bool,
}

/// Re-validates the batches of `seg` (length, magic, CRC, gap-free offsets), rebuilding its
/// bookkeeping and indexes: all of them, or, in the segment holding the recovery point,
/// those from the last indexed batch below it. A bad batch is a torn tail, truncated here,
/// unless it sits before the recovery point or (state file unreadable) a later segment
/// holds data: that is corruption and fails the open. Returns whether the segment was
/// truncated.
pub(super) async fn revalidate(
    seg: &Segment,
    later: &[Rc<Segment>],
    bounds: RevalidationBounds,
    interval: u32,
) -> Result<bool, StorageError> {
    let recovery_point = bounds.recovery_point;
    let file_size = seg.size_bytes.get();
    let start = if bounds.from_recovery_point {
        resume_below_recovery_point(seg, recovery_point, file_size).await?
    } else {
        0
    };
    if start == 0 {
        seg.reset_bookkeeping();
    }
    let scan = seg
        .scan(
            start,
            file_size,
            true,
            RECOVERY_SCAN_CHUNK_BYTES,
            |h, pos| {
                batch_follows(seg, h.base_offset)?;
                seg.record_batch(h, pos, interval);
                Ok(true)
            },
        )
        .await?;
    let mut truncated = false;
    if let Some((position, reason)) = scan.invalid {
        let first_bad_offset = seg.next_offset.get();
        let later_segments_with_data = later.iter().filter(|s| s.size_bytes.get() > 0).count();
        // Without a readable state file nothing says which segments were sealed:
        // only the last one with data may have a torn tail.
        if first_bad_offset < recovery_point
            || (!bounds.state_trusted && later_segments_with_data > 0)
        {
            return Err(StorageError::corrupt(&seg.log_path, position, reason));
        }
        tracing::warn!(
            file = %seg.log_path.display(),
            position,
            %reason,
            later_segments_with_data,
            "truncating torn tail (unsynced appends after it are dropped)"
        );
        seg.truncate_to(position).await?;
        seg.sync_log().await?;
        truncated = true;
    }
    seg.visible_bytes.set(seg.size_bytes.get());
    // Every batch kept was CRC-checked by the scan above, unless the scan skipped a synced
    // prefix: then the whole segment is checked before its first read is served
    // (`Segment::verify_before_serving`), as a sealed segment's is.
    let verified = if start == 0 { seg.size_bytes.get() } else { 0 };
    seg.crc_verified_bytes.set(verified);
    // A segment whose files were never created (a partition that took no data) has no
    // indexes to rewrite.
    if seg.files.log_created() {
        seg.rewrite_indexes().await?;
    }
    Ok(truncated)
}

/// Restores the bookkeeping of the part of `seg` below the recovery point from its index
/// files, up to and excluding the last indexed batch that ends below the recovery point, and
/// returns that batch's position: re-validation resumes there instead of at the segment
/// start (an unclean restart re-reads at most what was appended since the recovery point
/// was last persisted, plus one index interval). Returns 0, with nothing restored, when
/// there is nothing to skip or the index files cannot be trusted for it (missing,
/// inconsistent, or the entry does not point at a batch ending where it says).
///
/// Everything below the recovery point was fdatasynced before the recovery point was
/// persisted, and the index entries pointing into it were written and synced before that
/// too (`flush_inner`; a seal syncs a rolled segment's): Kafka likewise trusts data below
/// its recovery point. Those bytes are
/// not CRC-checked here; the first read of the segment checks them, so damage there fails
/// the read, never the open, and is never served.
async fn resume_below_recovery_point(
    seg: &Segment,
    recovery_point: i64,
    file_size: u64,
) -> Result<u64, StorageError> {
    // The last offset below the recovery point, relative to the segment base.
    let last_below = recovery_point - 1 - seg.base_offset;
    if last_below < 0 || last_below > u32::MAX as i64 || file_size == 0 {
        return Ok(0);
    }
    if !seg.files.log_created() || !seg.load_indexes().await? {
        return Ok(0);
    }
    let (entry_rel, position) = seg.offset_index.borrow().lookup(last_below as u32);
    if position == 0 {
        return Ok(0);
    }
    let expected_last = seg.base_offset + entry_rel as i64;
    let mut resumed_base = None;
    let check = seg
        .scan(
            position as u64,
            file_size,
            false,
            RECORD_BATCH_HEADER_BYTES,
            |h, _| {
                if h.last_offset() == expected_last && h.base_offset >= seg.base_offset {
                    resumed_base = Some(h.base_offset);
                }
                Ok(false)
            },
        )
        .await?;
    let mut offset_index = seg.offset_index.borrow().clone();
    let mut time_index = seg.time_index.borrow().clone();
    // Entries up to the resumed batch: the time index's last one then holds the max
    // timestamp of every batch before it (timestamps strictly grow across entries).
    offset_index.truncate_to_position(position + 1);
    time_index.truncate_to_offset(entry_rel + 1);
    let (Some(resumed_base), None, Some((max_timestamp, rel_of_max))) =
        (resumed_base, check.invalid, time_index.last())
    else {
        tracing::warn!(
            file = %seg.index_path.display(),
            "offset index does not lead to the recovery point; re-validating the whole segment"
        );
        return Ok(0);
    };
    seg.reset_bookkeeping();
    *seg.offset_index.borrow_mut() = offset_index;
    *seg.time_index.borrow_mut() = time_index;
    seg.max_timestamp.set(max_timestamp);
    seg.offset_of_max_timestamp
        .set(seg.base_offset + rel_of_max as i64);
    seg.next_offset.set(resumed_base);
    seg.size_bytes.set(position as u64);
    Ok(position as u64)
}

/// A scanned batch must start past the segment's batches so far: compaction may leave gaps
/// between batches, never overlaps (one rule for the bounded and the whole-segment scans).
pub(super) fn batch_follows(seg: &Segment, base_offset: i64) -> Result<(), String> {
    if base_offset < seg.next_offset.get() {
        return Err(format!(
            "batch offset {base_offset} does not follow {}",
            seg.next_offset.get()
        ));
    }
    Ok(())
}
