//! A follower's append (issue 17, stage 2): record batches fetched from the partition's
//! leader go into the log exactly as the leader stored them — base offsets, leader epochs,
//! producer fields and timestamps untouched — after one CRC check each (Kafka's
//! `appendAsFollower`). Producer state is rebuilt from them without sequence checks (the
//! leader already decided), so a follower that becomes leader dedups retried batches.
//! Must not: assign offsets or patch any byte of a batch.

use bytes::BytesMut;

use super::append::Staged;
use super::batch::{BatchHeader, RECORD_BATCH_HEADER_BYTES, verify_crc};
use super::error::StorageError;
use super::log::PartitionLog;
use super::producer_state::ProducerEntry;

/// Which part of a fetched payload is new to this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FetchedRange {
    /// Bytes at the front already in the log (a re-fetch after a lost answer).
    pub(super) skip_bytes: usize,
    /// Bytes of whole, new batches after them (a trailing partial batch is left out: the
    /// next fetch asks for it again).
    pub(super) keep_bytes: usize,
    /// One past the last offset of the kept batches.
    pub(super) end_offset: i64,
    pub(super) record_count: i64,
}

/// Finds the new whole batches of a fetched payload for a log ending at `log_end_offset`,
/// checking each kept batch's CRC (once: the log trusts it afterwards). Offsets must only
/// grow (a compacted leader log has gaps between batches, never overlaps).
pub(super) fn fetched_range(
    batches: &[u8],
    log_end_offset: i64,
) -> Result<FetchedRange, StorageError> {
    let mut range = FetchedRange {
        skip_bytes: 0,
        keep_bytes: 0,
        end_offset: log_end_offset,
        record_count: 0,
    };
    let mut pos = 0usize;
    while batches.len() - pos >= RECORD_BATCH_HEADER_BYTES {
        let h = BatchHeader::parse_stored_at(&batches[pos..], pos)?;
        let size = h.size_bytes();
        if size > batches.len() - pos {
            break;
        }
        if h.last_offset() < log_end_offset && range.keep_bytes == 0 {
            range.skip_bytes = pos + size;
        } else if h.base_offset < range.end_offset {
            // Part of this batch is already in the log: the leader's log diverges from ours
            // (truncation by leader epoch must run first), never appended over.
            return Err(StorageError::Diverged {
                base_offset: h.base_offset,
                log_end_offset: range.end_offset,
            });
        } else {
            verify_crc(&batches[pos..pos + size], &h, pos)?;
            range.keep_bytes = pos + size - range.skip_bytes;
            range.end_offset = h.last_offset() + 1;
            range.record_count += h.record_count as i64;
        }
        pos += size;
    }
    Ok(range)
}

impl PartitionLog {
    /// Appends batches fetched from the leader at this log's end, as they are. Returns the
    /// log end offset once they are written (not synced: a follower's durability is the
    /// replica set's, and its background flush follows `flush.messages` / `flush.ms`).
    pub async fn append_replicated(
        &self,
        mut batches: BytesMut,
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        self.check_online()?;
        self.check_writes_allowed(now_ms)?;
        let guard = self.dispatch_lock.lock().await;
        self.check_online()?;
        let range = fetched_range(&batches, self.offsets.next_offset.get())?;
        if range.keep_bytes > 0 {
            // As `append_staged`: a crash after this write must run recovery.
            self.mark_unclean().await?;
        }
        if range.keep_bytes == 0 {
            return Ok(self.offsets.next_offset.get());
        }
        let mut batches = batches.split_off(range.skip_bytes);
        batches.truncate(range.keep_bytes);
        let active = self.active_segment();
        if self.needs_roll(&active, batches.len() as u64, range.end_offset - 1, now_ms) {
            self.roll().await?;
        }
        // From here to the enqueue there is no await: offsets, producer state and the queue
        // change together, as in `append_staged`.
        let epoch = self.writer.epoch.get();
        let segment = self.active_segment();
        let position = segment.size_bytes.get();
        let index_interval = self.config.borrow().index_interval_bytes;
        let staged = self.stage_replicated_producers(&batches)?;
        let mut pos = 0usize;
        let mut epochs_changed = false;
        while pos < batches.len() {
            let h = BatchHeader::parse_stored_at(&batches[pos..], pos)?;
            segment.record_batch(&h, position + pos as u64, index_interval);
            // The leader's epochs, as its batches carry them (KIP-101): rare, one per
            // leader change.
            if h.partition_leader_epoch > self.leader_epoch.get() {
                self.leader_epoch.set(h.partition_leader_epoch);
            }
            epochs_changed |= self
                .epochs
                .borrow_mut()
                .assign(h.partition_leader_epoch, h.base_offset);
            pos += h.size_bytes();
        }
        if segment.first_append_ms.get() < 0 {
            segment.first_append_ms.set(now_ms);
        }
        self.record_producers(staged);
        self.offsets.next_offset.set(range.end_offset);
        self.flush
            .unflushed_records
            .set(self.flush.unflushed_records.get() + range.record_count);
        self.enqueue_write(segment, position, batches, range.end_offset, false, true);
        drop(guard);
        self.ensure_writer();
        if epochs_changed {
            self.persist_epochs().await?;
        }
        self.wait_written(range.end_offset, false, epoch).await?;
        Ok(range.end_offset)
    }

    /// The producers' new state after the leader's batches, recorded as the leader recorded
    /// it (Kafka's replication-origin appends skip the sequence checks).
    fn stage_replicated_producers(&self, batches: &[u8]) -> Result<Staged, StorageError> {
        let producers = self.producers.borrow();
        let mut staged = Staged::default();
        let mut pos = 0usize;
        while pos < batches.len() {
            let h = BatchHeader::parse_stored_at(&batches[pos..], pos)?;
            let size = h.size_bytes();
            if h.has_producer_id() {
                let e = staged
                    .entries
                    .iter()
                    .find(|e| e.producer_id == h.producer_id)
                    .or_else(|| producers.get(h.producer_id))
                    .copied()
                    .unwrap_or_else(|| ProducerEntry::new(h.producer_id, h.producer_epoch));
                staged.stage_batch(e, &h, &batches[pos..pos + size]);
            }
            pos += size;
        }
        Ok(staged)
    }
}
