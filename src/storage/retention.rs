//! Deleting whole segments: retention by time (`retention.ms`, on each segment's newest
//! timestamp) and size (`retention.bytes`), time-based rolling (`segment.ms`) and
//! DeleteRecords (advancing the log start offset). Never deletes the active segment or a
//! segment with data not yet written; never deletes part of a segment.

use std::rc::Rc;

use super::error::StorageError;
use super::log::{DELETE_RECORDS_TO_WRITTEN_END, PartitionLog};
use super::recovery::remove_segment_files;
use super::segment::Segment;
use crate::config::CleanupPolicy;

impl PartitionLog {
    /// Applies retention.ms / retention.bytes (whole segments, oldest first, never the active
    /// one) and rolls the active segment when older than segment.ms. Returns segments deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        self.check_online()?;
        let (retention_ms, retention_bytes, segment_ms) = {
            let c = self.config.borrow();
            // `compact` alone keeps old data (the cleaner bounds it); `delete` and
            // `compact,delete` delete by time and size.
            let deletes = matches!(
                c.cleanup_policy,
                CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
            );
            if deletes {
                (c.retention_ms, c.retention_bytes, c.segment_ms)
            } else {
                (-1, -1, c.segment_ms)
            }
        };
        {
            let guard = self.dispatch_lock.lock().await;
            self.check_online()?;
            let active = self.active_segment();
            if !active.is_empty()
                && active.first_append_ms.get() >= 0
                && now_ms - active.first_append_ms.get() >= segment_ms
            {
                self.roll().await?;
            }
            drop(guard);
        }
        let written_end = self.offsets.written_end_offset.get();
        let doomed: Vec<Rc<Segment>> = {
            let segs = self.segments.borrow();
            let mut total: i64 = segs.iter().map(|s| s.size_bytes.get() as i64).sum();
            let mut doomed = Vec::new();
            for s in segs.iter().take(segs.len().saturating_sub(1)) {
                if s.next_offset.get() > written_end {
                    break;
                }
                let size = s.size_bytes.get() as i64;
                let expired_by_time = retention_ms >= 0
                    && s.max_timestamp.get() >= 0
                    && s.max_timestamp.get() < now_ms - retention_ms;
                let over_size = retention_bytes >= 0 && total - size >= retention_bytes;
                if !(expired_by_time || over_size) {
                    break;
                }
                total -= size;
                doomed.push(Rc::clone(s));
            }
            doomed
        };
        self.drop_segments(&doomed).await?;
        Ok(doomed.len())
    }

    /// DeleteRecords: advances the log start offset to `before_offset` (-1: the written
    /// end), deletes whole segments below it and persists the new start.
    pub async fn delete_records(&self, before_offset: i64) -> Result<i64, StorageError> {
        self.check_online()?;
        let written_end = self.offsets.written_end_offset.get();
        let target = if before_offset == DELETE_RECORDS_TO_WRITTEN_END {
            written_end
        } else {
            before_offset
        };
        if target < 0 || target > written_end {
            return Err(StorageError::OffsetOutOfRange {
                offset: before_offset,
                log_start_offset: self.offsets.log_start_offset.get(),
                log_end_offset: written_end,
            });
        }
        if target <= self.offsets.log_start_offset.get() {
            return Ok(self.offsets.log_start_offset.get());
        }
        self.offsets.log_start_offset.set(target);
        let doomed: Vec<Rc<Segment>> = {
            let segs = self.segments.borrow();
            segs.iter()
                .take(segs.len().saturating_sub(1))
                .filter(|s| s.next_offset.get() <= target)
                .cloned()
                .collect()
        };
        self.drop_segments(&doomed).await?;
        self.persist_state(false).await?;
        Ok(target)
    }

    /// Removes a prefix of segments from the log and the disk, advancing the log start.
    pub(super) async fn drop_segments(&self, doomed: &[Rc<Segment>]) -> Result<(), StorageError> {
        if doomed.is_empty() {
            return Ok(());
        }
        // Never while the cleaner swaps segments in (it checks they are still there first).
        let _swap = self.cleaner.swap_lock.lock().await;
        {
            let mut segs = self.segments.borrow_mut();
            for d in doomed {
                let front = segs.front().expect("never deletes the active segment");
                assert!(Rc::ptr_eq(front, d), "only a prefix of segments is deleted");
                assert!(segs.len() > 1, "never deletes the active segment");
                segs.pop_front();
            }
            let new_start = segs.front().map(|s| s.base_offset).unwrap_or(0);
            if new_start > self.offsets.log_start_offset.get() {
                self.offsets.log_start_offset.set(new_start);
            }
        }
        // Persist the new start first: a crash between the two leaves extra files, never a
        // state file pointing below the first segment.
        self.persist_state(false).await?;
        for d in doomed {
            tracing::info!(file = %d.log_path.display(), "deleting segment");
            d.files.retire();
            remove_segment_files(d).await?;
        }
        super::state::sync_dir(&self.dir).await
    }
}
