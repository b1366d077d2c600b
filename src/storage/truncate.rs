//! A follower's log truncation (Kafka's `UnifiedLog.truncateTo` after OffsetForLeaderEpoch,
//! KIP-101/279): the divergent tail a replica holds past what its new leader has is cut
//! before it fetches again. Done as close, cut, reopen: the state file is marked unclean
//! (with the recovery point at the cut segment) before any byte is dropped, so a crash at
//! any step leaves a log the ordinary recovery finishes — the cut segment re-validated and
//! its indexes rebuilt, producer state rebuilt from the newest snapshot not past the end
//! (later ones are removed by recovery), the leader-epoch cache cut at the new end.
//! Must not: run on a partition that serves producers (only followers truncate).

use std::rc::Rc;

use super::error::StorageError;
use super::log::PartitionLog;
use super::recovery::remove_segment_files;
use super::segment::Segment;

/// Bytes read per chunk while looking for the cut position.
const TRUNCATE_SCAN_CHUNK_BYTES: usize = 256 * 1024;

impl PartitionLog {
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Drops every batch at or past `offset` and returns the reopened log (this one is
    /// closed and must not be used again). An `offset` at or past the log end changes
    /// nothing and returns this log.
    pub async fn truncate_to(
        self: &Rc<Self>,
        offset: i64,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        if offset >= self.offsets.next_offset.get() {
            return Ok(self.clone());
        }
        self.close().await?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        let keep_from = segments
            .iter()
            .rposition(|s| s.base_offset <= offset)
            .unwrap_or(0);
        let cut = &segments[keep_from];
        self.offsets
            .recovery_point
            .set(self.offsets.recovery_point.get().min(cut.base_offset));
        self.offsets
            .written_end_offset
            .set(self.offsets.written_end_offset.get().min(offset));
        self.persist_state(false).await?;
        // Newest first: a crash in between leaves a gap-free prefix.
        for s in segments[keep_from + 1..].iter().rev() {
            remove_segment_files(s).await?;
        }
        if cut.files.log_created() {
            let mut position = None;
            let scan = cut
                .scan(
                    0,
                    cut.size_bytes.get(),
                    false,
                    TRUNCATE_SCAN_CHUNK_BYTES,
                    |h, at| {
                        if h.last_offset() >= offset {
                            position = Some(at);
                            return Ok(false);
                        }
                        Ok(true)
                    },
                )
                .await?;
            let position = position.unwrap_or(scan.valid_end);
            cut.truncate_to(position).await?;
            cut.sync_log().await?;
        }
        {
            let mut epochs = self.epochs.borrow_mut();
            epochs.truncate_from_end(offset);
        }
        self.persist_epochs().await?;
        tracing::info!(log = %self.name, offset, "log truncated to its leader's");
        let log = Rc::new_cyclic(|weak| {
            PartitionLog::new_in(
                weak.clone(),
                self.dir.clone(),
                self.name.clone(),
                self.config.borrow().clone(),
            )
        });
        log.recover().await?;
        Ok(log)
    }
}
