//! Rolling and sealing segments: when the active segment is full or old enough a new one
//! starts at the log end (`roll`), and the rolled one is *sealed* off the write path by one
//! task, in roll order: fdatasync, indexes persisted, the new segment's directory entry and
//! the producer snapshot synced, and its end persisted as the recovery point. Must not
//! write batches or answer appends (`writer.rs` does, and waits for seals where durability
//! needs them).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use super::error::StorageError;
use super::log::PartitionLog;
use super::notify::Event;
use super::offset_index::OFFSET_INDEX_ENTRY_BYTES;
use super::segment::{MAX_SEGMENT_POSITION_BYTES, Segment};
use super::time_index::TIME_INDEX_ENTRY_BYTES;
use super::writer::WriteItem;

/// Rolled segments waiting to be sealed (synced) off the write path, or being sealed. One
/// task seals them one at a time, in roll order (each persists its segment's end as the
/// recovery point). Past this the writer waits: the disk is behind, and a tiny
/// `segment.bytes` must not pile up work.
pub const MAX_SEALS_IN_FLIGHT: usize = 4;

/// Producer state as of a roll, to be written as `<offset>.snapshot`.
pub(super) struct ProducerSnapshot {
    pub(super) offset: i64,
    pub(super) bytes: Vec<u8>,
}

/// The seal task's work list.
#[derive(Default)]
pub(super) struct SealerState {
    /// Rolled segments queued for or being sealed (see `start_seal`), in roll order.
    pub(super) in_flight: Cell<usize>,
    pub(super) queue: RefCell<VecDeque<(Rc<Segment>, ProducerSnapshot)>>,
    /// Notified each time a seal finishes.
    pub(super) finished: Rc<Event>,
}

impl PartitionLog {
    /// Whether appending `payload_bytes` ending at `last_offset` must go to a new segment:
    /// size, age, index room or relative-offset range of the active one would be exceeded.
    pub(super) fn needs_roll(
        &self,
        seg: &Segment,
        payload_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if seg.is_empty() {
            return false;
        }
        let cfg = self.config.borrow();
        let size = seg.size_bytes.get();
        size + payload_bytes > cfg.segment_bytes
            || size + payload_bytes > MAX_SEGMENT_POSITION_BYTES
            || (seg.first_append_ms.get() >= 0
                && now_ms - seg.first_append_ms.get() >= cfg.segment_ms)
            || (seg.offset_index.borrow().len() + 1) * OFFSET_INDEX_ENTRY_BYTES
                > cfg.segment_index_bytes as usize
            || (seg.time_index.borrow().len() + 2) * TIME_INDEX_ENTRY_BYTES
                > cfg.segment_index_bytes as usize
            || last_offset - seg.base_offset > i32::MAX as i64
    }

    /// Starts a new active segment at the log end offset. Caller holds the dispatch lock.
    pub(super) async fn roll(&self) -> Result<(), StorageError> {
        let old = self.active_segment();
        let base = self.offsets.next_offset.get();
        assert_eq!(
            old.next_offset.get(),
            base,
            "active segment ends at the log end"
        );
        let seg = Segment::create(&self.dir, base).await?;
        old.seal_time_index();
        self.segments.borrow_mut().push_back(seg);
        // Bounds producer-state replay after a crash to the active segment. Taken now, written
        // by the seal; it may describe batches still queued, and recovery ignores snapshots
        // past the recovered end.
        let producer_snapshot = ProducerSnapshot {
            offset: base,
            bytes: self.producers.borrow().encode_snapshot(),
        };
        self.writer.queue.borrow_mut().push_back(WriteItem::Seal {
            segment: old,
            producer_snapshot,
        });
        self.ensure_writer();
        Ok(())
    }

    /// Finishes a roll in a task of its own, so appends to the new segment go on meanwhile.
    /// The rolled segment's fdatasync (a full segment's dirty pages, about a second here)
    /// and the directory and snapshot fsyncs wait behind the disk's writeback queue; done
    /// in line they stalled every acks=1 append for 0.5–1.4 s per roll with 256 KiB
    /// batches. Durable acknowledgements still wait for it (`wait_seals` in the group
    /// commit), and one task seals the queued segments one at a time, in roll order.
    ///
    /// The seal ends by persisting the rolled segment's end as the recovery point. A durable
    /// acknowledgement in a later segment waits for that, so after a crash a torn batch at
    /// or past the recovery point means every later segment holds only unsynced appends,
    /// which recovery may then drop (`recovery.rs`).
    pub(super) async fn start_seal(
        &self,
        segment: Rc<Segment>,
        producer_snapshot: ProducerSnapshot,
    ) -> Result<(), StorageError> {
        self.wait_seals(MAX_SEALS_IN_FLIGHT - 1).await;
        let Some(me) = self.self_ref.upgrade() else {
            // The log is being dropped: nothing runs after us, seal in line.
            return self.seal(&segment, producer_snapshot).await;
        };
        self.sealer
            .queue
            .borrow_mut()
            .push_back((segment, producer_snapshot));
        self.sealer.in_flight.set(self.sealer.in_flight.get() + 1);
        if self.sealer.in_flight.get() > 1 {
            // The running sealer takes it in turn.
            return Ok(());
        }
        compio::runtime::spawn(async move { me.run_sealer().await }).detach();
        Ok(())
    }

    /// The seal task: seals queued segments one at a time until the queue is empty.
    async fn run_sealer(self: Rc<Self>) {
        loop {
            let next = self.sealer.queue.borrow_mut().pop_front();
            let Some((segment, producer_snapshot)) = next else {
                break;
            };
            if let Err(e) = self.seal(&segment, producer_snapshot).await {
                self.go_offline(&e);
            }
            self.sealer.in_flight.set(self.sealer.in_flight.get() - 1);
            self.sealer.finished.notify();
            // `wait_writer_idle` counts seals as writer work.
            self.writer.written_advanced.notify();
        }
    }

    async fn seal(
        &self,
        segment: &Segment,
        producer_snapshot: ProducerSnapshot,
    ) -> Result<(), StorageError> {
        self.sync_if_dirty(segment).await?;
        segment.persist_indexes().await?;
        // Synced here, in the background, so the index files can close now: a sealed
        // segment writes no more entries, and shutdown need not reopen them to sync.
        segment.sync_indexes().await?;
        segment.files.close_indexes();
        // The new segment's directory entry.
        super::state::sync_dir(&self.dir).await?;
        super::recovery::write_producer_snapshot(
            &self.dir,
            producer_snapshot.offset,
            producer_snapshot.bytes,
        )
        .await?;
        let end = segment.next_offset.get();
        if end > self.offsets.recovery_point.get() {
            self.offsets.recovery_point.set(end);
            self.persist_state(false).await?;
        }
        Ok(())
    }

    /// Waits until at most `at_most` rolled segments are still being synced.
    pub(super) async fn wait_seals(&self, at_most: usize) {
        loop {
            let listen = self.sealer.finished.listen();
            if self.sealer.in_flight.get() <= at_most {
                return;
            }
            listen.await;
        }
    }
}
