//! The steps of one append, which `PartitionLog::append_staged` (`log.rs`) runs in order:
//! check the payload's structure and size, check idempotent producers' sequences (dedup),
//! stamp the broker-owned fields in place and index the batches, record the producers'
//! new state, and answer a duplicate with the original offsets. All of it works on the
//! bytes as received: nothing here copies or re-encodes a batch. Must not write files or
//! take locks (the writer and `append_staged` do).

use super::batch::{
    BatchError, BatchHeader, apply_log_append_time, patch_base_offset, patch_leader_epoch,
};
use super::control::{CONTROL_TYPE_ABORT, control_record_type};
use super::error::StorageError;
use super::log::{AppendOutcome, PartitionLog};
use super::producer_state::{
    BatchMetadata, NO_OPEN_TRANSACTION, ProducerEntry, SequenceCheck, check_sequence,
};
use super::segment::Segment;
use crate::config::TimestampType;

/// The leader epoch written into every stored batch (single-replica broker: always 0).
pub const LEADER_EPOCH: i32 = 0;

/// What an append needs from the topic config, read in one borrow.
#[derive(Debug, Clone, Copy)]
pub(super) struct AppendSettings {
    pub(super) max_bytes: u32,
    pub(super) timestamp_type: TimestampType,
    /// Whether to wait for the sync. Decided by the caller (`partition::Partition::append`
    /// from the topic's `durability` and the producer's acks); the log only carries it out.
    pub(super) durable: bool,
    pub(super) index_interval: u32,
    /// Stamped on every batch (the partition's current leader epoch).
    pub(super) leader_epoch: i32,
}

impl AppendSettings {
    /// The `log_append_time_ms` an answer carries: `time_ms` for LogAppendTime topics, -1
    /// for CreateTime.
    pub(super) fn log_append_time_ms(&self, time_ms: i64) -> i64 {
        match self.timestamp_type {
            TimestampType::LogAppendTime => time_ms,
            TimestampType::CreateTime => -1,
        }
    }
}

/// Totals over a payload's batches, from its structure check.
#[derive(Debug, Clone, Copy)]
pub(super) struct PayloadShape {
    pub(super) record_count: i64,
    /// Offsets the batches take (each batch's last offset delta + 1).
    pub(super) offset_span: i64,
}

/// Producer state an append changes, staged by the check and recorded at dispatch.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) entries: Vec<ProducerEntry>,
    /// ABORT markers in the payload: (producer id, transaction's first offset, marker offset).
    pub(super) aborts: Vec<(i64, i64, i64)>,
}

impl Staged {
    /// Records one batch (`batch`: its bytes, `h.base_offset` its offset in the log) on its
    /// producer's entry `e`, noting an ABORT marker of the producer's open transaction; the
    /// leader's append and a follower's replicated append stage batches alike.
    pub(super) fn stage_batch(&mut self, mut e: ProducerEntry, h: &BatchHeader, batch: &[u8]) {
        let open = e.current_txn_first_offset;
        if h.is_control()
            && open != NO_OPEN_TRANSACTION
            && control_record_type(batch) == Some(CONTROL_TYPE_ABORT)
        {
            self.aborts.push((h.producer_id, open, h.base_offset));
        }
        e.record(h, h.base_offset);
        match self
            .entries
            .iter_mut()
            .find(|s| s.producer_id == h.producer_id)
        {
            Some(s) => *s = e,
            None => self.entries.push(e),
        }
    }
}

/// What the producer-sequence check decided for a whole payload.
pub(super) enum ProducerCheck {
    /// New batches: the producers' updated entries, recorded once the append is dispatched.
    Append(Staged),
    /// A retry of a batch already in the log.
    Duplicate(BatchMetadata),
}

/// Structure and size limits of a payload, checked before anything else so that no later
/// step can fail on a malformed one.
pub(super) fn check_payload(batches: &[u8], max_bytes: u32) -> Result<PayloadShape, StorageError> {
    if batches.is_empty() {
        return Err(BatchError::Empty.into());
    }
    let mut shape = PayloadShape {
        record_count: 0,
        offset_span: 0,
    };
    let mut pos = 0usize;
    while pos < batches.len() {
        let h = BatchHeader::parse_at(&batches[pos..], pos)?;
        let size = h.size_bytes();
        if size > batches.len() - pos {
            return Err(BatchError::Truncated {
                position: pos,
                needed: size,
                available: batches.len() - pos,
            }
            .into());
        }
        if size > max_bytes as usize {
            return Err(StorageError::MessageTooLarge {
                size_bytes: size,
                max_bytes,
            });
        }
        shape.record_count += h.record_count as i64;
        shape.offset_span += h.last_offset_delta as i64 + 1;
        pos += size;
    }
    Ok(shape)
}

/// Patches each batch's base offset (from `base_offset`), leader epoch and, for
/// LogAppendTime topics, its timestamps, in place; indexes each in `segment` as if written
/// at `position`. Returns one past the last offset.
pub(super) fn stamp_batches(
    segment: &Segment,
    batches: &mut [u8],
    position: u64,
    base_offset: i64,
    now_ms: i64,
    settings: AppendSettings,
) -> Result<i64, StorageError> {
    let mut pos = 0usize;
    let mut next = base_offset;
    while pos < batches.len() {
        let size = {
            let h = BatchHeader::parse_at(&batches[pos..], pos)?;
            h.size_bytes()
        };
        let batch = &mut batches[pos..pos + size];
        patch_base_offset(batch, next);
        patch_leader_epoch(batch, settings.leader_epoch);
        if settings.timestamp_type == TimestampType::LogAppendTime {
            apply_log_append_time(batch, now_ms);
        }
        let h = BatchHeader::parse_at(batch, pos)?;
        segment.record_batch(&h, position + pos as u64, settings.index_interval);
        next = h.last_offset() + 1;
        pos += size;
    }
    Ok(next)
}

impl PartitionLog {
    pub(super) fn append_settings(&self, durable: bool) -> AppendSettings {
        let c = self.config.borrow();
        AppendSettings {
            max_bytes: c.max_message_bytes,
            timestamp_type: c.message_timestamp_type,
            durable,
            index_interval: c.index_interval_bytes,
            leader_epoch: self.leader_epoch.get(),
        }
    }

    /// Sequence checks of every producer batch in the payload as if it started at
    /// `base_offset`, against the producers' state plus the batches before it in the same
    /// payload. Changes nothing: the staged entries are recorded by `record_producers`.
    pub(super) fn check_producers(
        &self,
        batches: &[u8],
        base_offset: i64,
    ) -> Result<ProducerCheck, StorageError> {
        let producers = self.producers.borrow();
        let mut staged = Staged::default();
        let mut pos = 0usize;
        let mut next = base_offset;
        while pos < batches.len() {
            let mut h = BatchHeader::parse_at(&batches[pos..], pos)?;
            h.base_offset = next;
            if h.has_producer_id() {
                let current = staged
                    .entries
                    .iter()
                    .find(|e| e.producer_id == h.producer_id)
                    .or_else(|| producers.get(h.producer_id))
                    .copied();
                match check_sequence(current.as_ref(), &h)? {
                    SequenceCheck::Duplicate(m) => return Ok(ProducerCheck::Duplicate(m)),
                    SequenceCheck::Append => {
                        let e = current
                            .unwrap_or_else(|| ProducerEntry::new(h.producer_id, h.producer_epoch));
                        staged.stage_batch(e, &h, &batches[pos..pos + h.size_bytes()]);
                    }
                }
            }
            next = h.last_offset() + 1;
            pos += h.size_bytes();
        }
        Ok(ProducerCheck::Append(staged))
    }

    /// Makes the entries `check_producers` staged the producers' state.
    pub(super) fn record_producers(&self, staged: Staged) {
        let mut producers = self.producers.borrow_mut();
        for e in staged.entries {
            producers.insert(e);
        }
        for (producer_id, first_offset, marker_offset) in staged.aborts {
            producers.record_abort(producer_id, first_offset, marker_offset);
        }
    }

    /// Answers a retried batch with its original offsets once they are written (and synced,
    /// if this retry asks for durability).
    pub(super) async fn finish_duplicate(
        &self,
        epoch: u64,
        original: BatchMetadata,
        settings: AppendSettings,
    ) -> Result<AppendOutcome, StorageError> {
        let end_offset = original.last_offset + 1;
        if settings.durable && self.writer.durable_requested.get() < end_offset {
            self.writer.durable_requested.set(end_offset);
            self.ensure_writer();
        }
        self.wait_written(end_offset, settings.durable, epoch)
            .await?;
        Ok(AppendOutcome {
            base_offset: original.base_offset,
            last_offset: original.last_offset,
            log_append_time_ms: settings.log_append_time_ms(original.max_timestamp),
            log_start_offset: self.offsets.log_start_offset.get(),
            duplicate: true,
        })
    }
}
