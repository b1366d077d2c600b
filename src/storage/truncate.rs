//! A follower's log truncation (Kafka's `UnifiedLog.truncateTo` after OffsetForLeaderEpoch,
//! KIP-101/279): the divergent tail a replica holds past what its new leader has is cut
//! before it fetches again. Done as close, cut, reopen: the state file is marked unclean
//! (with the recovery point at the cut segment) before any byte is dropped, so a crash at
//! any step leaves a log the ordinary recovery finishes — the cut segment re-validated and
//! its indexes rebuilt, producer state rebuilt from the newest snapshot not past the end
//! (later ones are removed by recovery), the leader-epoch cache cut at the new end.
//! Also the reset of a follower that fell behind its leader's log start (`reset_to`).
//! Must not: run on a partition that serves producers (only followers truncate).

use std::rc::Rc;

use super::error::StorageError;
use super::log::PartitionLog;
use super::producer_state::SNAPSHOT_SUFFIX;
use super::recovery::remove_segment_files;
use super::segment::Segment;
use super::state::sync_dir;

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
        self.reopen().await
    }

    /// A follower whose next fetch offset lies below its leader's log start (retention or
    /// DeleteRecords removed what it would fetch; Kafka's `truncateFullyAndStartAt`): every
    /// segment, producer snapshot and cached epoch goes, and the log starts over, empty, at
    /// `offset`. Returns the reopened log (this one is closed and must not be used again).
    ///
    /// Crash-safe by order: segments are removed newest first (a crash leaves a shorter,
    /// gap-free log, whose next fetch is out of range again and resets again), the
    /// directory is synced, and only then does the state file name the new start; the
    /// reopen creates the first segment there.
    pub async fn reset_to(self: &Rc<Self>, offset: i64) -> Result<Rc<PartitionLog>, StorageError> {
        assert!(offset >= 0, "a log starts at a non-negative offset");
        self.close().await?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        self.persist_state(false).await?;
        for s in segments.iter().rev() {
            remove_segment_files(s).await?;
        }
        remove_producer_snapshots(&self.dir).await?;
        self.epochs.borrow_mut().truncate_from_end(i64::MIN);
        self.persist_epochs().await?;
        sync_dir(&self.dir).await?;
        for offsets in [
            &self.offsets.log_start_offset,
            &self.offsets.recovery_point,
            &self.offsets.written_end_offset,
            &self.offsets.next_offset,
        ] {
            offsets.set(offset);
        }
        self.persist_state(false).await?;
        tracing::info!(log = %self.name, offset, "log emptied to start at its leader's log start");
        self.reopen().await
    }

    /// A fresh log object over this (closed) log's directory, through recovery.
    async fn reopen(&self) -> Result<Rc<PartitionLog>, StorageError> {
        let log = Rc::new_cyclic(|weak| {
            PartitionLog::new_in(
                weak.clone(),
                self.dir.clone(),
                self.name.clone(),
                self.config.borrow().clone(),
            )
        });
        log.recover().await?;
        // The shard's hooks follow the log to its new object.
        *log.writer.sync_observer.borrow_mut() = self.writer.sync_observer.borrow().clone();
        if let Some(watch) = self.flush_watch() {
            log.watch_flushes(watch);
        }
        Ok(log)
    }
}

/// Deletes every producer-state snapshot in `dir` (a log that starts over has no producers).
async fn remove_producer_snapshots(dir: &std::path::Path) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| StorageError::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == SNAPSHOT_SUFFIX) {
            match compio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
    }
    Ok(())
}
