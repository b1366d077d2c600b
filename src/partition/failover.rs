//! A partition changing roles on its node (issue 17 stage 3, decision 0012 "Failover"):
//! the same log handed from a follower's object to a leader's (or back), the leader epoch
//! its appends are stamped with, a deposed leader's waits failed, and a follower's
//! truncation to its leader's log (OffsetForLeaderEpoch).
//! Must not: decide who leads (the metadata log does) or know about shards' tables.

use std::rc::Rc;

use super::Partition;
use super::replicas::ReplicaSet;
use crate::storage::StorageError;

impl Partition {
    /// A new object over the same log and metrics: a leader with `replicas`, or a follower
    /// (or a one-replica leader) with none. Share-group state is not carried: a new
    /// leader reads it from the metadata log (`share_replicate_through`, decision 0025).
    pub fn successor(&self, replicas: Option<ReplicaSet>) -> Partition {
        let next = Partition::new(Rc::clone(&self.log), Rc::clone(&self.metrics));
        next.follower_high_watermark
            .set(self.follower_high_watermark.get());
        Partition { replicas, ..next }
    }

    /// A leader's successor that is the same leader with `replicas` (a one-replica
    /// partition given followers): its share state moves over as it is.
    pub fn leading_successor(&self, replicas: ReplicaSet) -> Partition {
        let next = self.successor(Some(replicas));
        Partition {
            shares: self.shares.hand_over(),
            ..next
        }
    }

    /// This node no longer leads: pending acks=all waits fail, the high watermark stops.
    pub fn depose(&self) {
        if let Some(set) = &self.replicas {
            set.depose();
        }
    }

    /// A deposed leader's follower object (deposes this one first). It keeps the high
    /// watermark it had as the leader (Kafka's `makeFollower` keeps the HW): everything
    /// below it is on every in-sync replica, so it stays true, and a checkpoint written
    /// after a controlled shutdown (which deposes every leadership) still has it.
    pub fn demoted(&self) -> Partition {
        self.depose();
        let kept = self
            .high_watermark()
            .max(self.follower_high_watermark.get());
        let next = self.successor(None);
        next.follower_high_watermark.set(kept);
        next
    }

    /// At open: the high watermark a checkpoint holds for this replica, as a follower's
    /// (a leader's starts its `ReplicaSet` from `restored_high_watermark` instead).
    pub fn restore_follower_high_watermark(&self, checkpointed: i64) {
        self.follower_high_watermark
            .set(self.restored_high_watermark(checkpointed));
    }

    /// Kafka's start-up rule for a checkpointed high watermark: never past the log end
    /// (records the checkpoint counted may be lost in an unclean shutdown), never below the
    /// log start.
    pub fn restored_high_watermark(&self, checkpointed: i64) -> i64 {
        checkpointed
            .min(self.log.written_end_offset())
            .max(self.log.log_start_offset())
    }

    /// Leads from now on in `epoch` (stamped on appends, recorded in the epoch cache).
    pub async fn become_leader(&self, epoch: i32) -> Result<(), StorageError> {
        self.log.become_leader(epoch).await
    }

    /// The log was closed (a truncation replaced it; the table holds its successor).
    pub fn is_closed(&self) -> bool {
        self.log.is_closed()
    }

    /// Whether `log` is this partition's log (not one a truncation replaced).
    pub fn serves_log(&self, log: &crate::storage::PartitionLog) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.log), log)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.log.leader_epoch()
    }

    /// Where this leader's epoch started (`PartitionLog::leader_epoch_start_offset`).
    pub fn leader_epoch_start_offset(&self) -> i64 {
        self.log.leader_epoch_start_offset()
    }

    /// The newest epoch this replica's log holds batches of (-1: none recorded).
    pub fn latest_cached_epoch(&self) -> i32 {
        self.log.latest_cached_epoch()
    }

    /// The high watermark the leader last told this follower (-1: never).
    pub fn follower_high_watermark(&self) -> i64 {
        self.follower_high_watermark.get()
    }

    /// OffsetForLeaderEpoch on this log: the largest epoch at most `requested` and where
    /// it ends.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.log.end_offset_for_epoch(requested)
    }

    /// A follower drops its log from `offset` on (its divergent tail); returns the follower
    /// object over the reopened log (this one must not be used again).
    pub async fn truncate_to(&self, offset: i64) -> Result<Partition, StorageError> {
        let log = self.log.truncate_to(offset).await?;
        let next = Partition::new(log, Rc::clone(&self.metrics));
        next.follower_high_watermark
            .set(self.follower_high_watermark.get().min(offset));
        Ok(next)
    }

    /// A follower's log start follows its leader's (retention, DeleteRecords), as Kafka's
    /// follower does on every fetch answer: records the leader deleted must not come back
    /// when this replica leads. Bounded by this log's end (a log behind the leader's start
    /// is `reset_to` instead). Costs nothing unless the leader's start moved past ours.
    pub async fn follow_leader_log_start(&self, leader_start: i64) -> Result<(), StorageError> {
        let target = leader_start.min(self.log_end_offset());
        if target <= self.log_start_offset() {
            return Ok(());
        }
        self.log.delete_records(target).await?;
        self.log.trim_aborted_transactions();
        Ok(())
    }

    /// A follower that fell behind its leader's log start empties its log and starts over
    /// at `offset` (the leader's log start); returns the follower object over the new log
    /// (this one must not be used again).
    pub async fn reset_to(&self, offset: i64) -> Result<Partition, StorageError> {
        let log = self.log.reset_to(offset).await?;
        let next = Partition::new(log, Rc::clone(&self.metrics));
        next.follower_high_watermark
            .set(self.follower_high_watermark.get().max(offset));
        Ok(next)
    }
}
