//! The partition layer: one `Partition` per partition, on the shard that owns it, between
//! the handlers and the log (Redpanda's `cluster::partition` over `storage::log`, Kafka's
//! `Partition` over `UnifiedLog`).
//!
//! Owns: the partition's `PartitionLog` and its metrics handle; Kafka's offsets under the
//! names Kafka gives them (log start, log end, high watermark, last stable offset); the
//! durability decision of an append (the topic's `sluice.durability` against the producer's
//! acks, made here and nowhere else). The log below only knows what it has written and
//! synced. This is where replication (high watermark = min over the ISR), transactions (the
//! LSO) and share-partition state attach.
//!
//! Must not: know about requests, sockets, shards or the wire (it never imports `server/` or
//! `shard/`); hold a `RefCell` borrow across an `.await`; allocate on the append or read path
//! beyond what the log does — except to recompress for a topic whose `compression.type` is
//! not `producer` (Kafka's recompression on append; `producer` stays zero-copy).

use std::future::Future;
use std::rc::Rc;

use bytes::BytesMut;

use crate::config::{Durability, LogConfig};
use crate::metrics::PartitionMetrics;
use crate::storage::cleaner::{CleanStats, CleaningNeed, IoThrottle};
use crate::storage::control::build_marker_batch;
use crate::storage::recompress::{MAX_DECOMPRESSED_BATCH_BYTES, recompress_batches, target_codec};
use crate::storage::{
    AbortedTxn, AppendOutcome, FileRegion, PartitionLog, ProducerStateInfo, StorageError,
};

mod failover;
pub mod replicas;
pub mod share;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

/// Kafka's `acks=all`: the producer asks for the append to be as safe as the topic allows.
pub const ACKS_ALL: i16 = -1;
/// DeleteRecords' offset meaning "up to the high watermark".
pub const DELETE_RECORDS_TO_HIGH_WATERMARK: i64 = -1;

/// How an acks=all wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// Every in-sync replica has the append.
    Done,
    /// The ISR shrank below `min.insync.replicas` (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    NotEnoughReplicas,
    /// This node no longer leads the partition (NOT_LEADER_OR_FOLLOWER).
    NotLeader,
}

/// One fetch read in Kafka's terms: the file regions to send and the offsets the answer
/// carries, all taken at the moment of the read.
#[derive(Debug)]
pub struct FetchSlice {
    pub regions: Vec<FileRegion>,
    /// Bytes in `regions`.
    pub bytes: usize,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// One past the last offset the returned batches span (`fetch_offset` when empty).
    pub next_offset: i64,
    /// read_committed only: the aborted transactions the returned range overlaps, so the
    /// client can skip their records (empty for read_uncommitted).
    pub aborted_transactions: Vec<AbortedTxn>,
}

/// Kafka's fetch isolation levels (`isolation_level` in Fetch and ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    /// Never past the last stable offset; answers carry the aborted transactions.
    ReadCommitted,
}

impl Isolation {
    /// From the wire's `isolation_level` (1 = READ_COMMITTED, anything else uncommitted).
    pub fn from_wire(level: i8) -> Isolation {
        if level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
}

/// A partition this shard owns and serves. Lives in an `Rc` in the shard's partition table;
/// every handler and the shard's background work go through it, never to the log.
pub struct Partition {
    log: Rc<PartitionLog>,
    metrics: Rc<PartitionMetrics>,
    /// Share groups' record states on this partition (KIP-932).
    shares: share::SharePartitions,
    /// Cluster mode, a partition this node leads with other replicas: their progress and the
    /// high watermark they give (issue 17). `None` on a single node and for one replica:
    /// there the high watermark is the written end, as before.
    replicas: Option<replicas::ReplicaSet>,
    /// A follower: the high watermark its leader's last fetch answer carried (a follower
    /// made leader starts its own from it, as Kafka's does).
    follower_high_watermark: std::cell::Cell<i64>,
}

impl Partition {
    /// Wraps a log the shard has opened (and recovered), with the metrics handle its traffic
    /// is recorded through (taken once: no map lookup per request).
    pub fn new(log: Rc<PartitionLog>, metrics: Rc<PartitionMetrics>) -> Partition {
        Partition {
            log,
            metrics,
            shares: share::SharePartitions::default(),
            replicas: None,
            follower_high_watermark: std::cell::Cell::new(-1),
        }
    }

    /// The partition as a leader with followers (`ReplicaSet`): its high watermark becomes
    /// the minimum log end over the in-sync replicas.
    pub fn with_replicas(mut self, replicas: replicas::ReplicaSet) -> Partition {
        self.replicas = Some(replicas);
        self
    }

    /// The leader's replica set, when it has followers.
    pub fn replicas(&self) -> Option<&replicas::ReplicaSet> {
        self.replicas.as_ref()
    }

    /// The first offset still in the log (DeleteRecords and retention move it up).
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// One past the last offset assigned to an append (dispatched, maybe not yet written).
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Kafka's high watermark: one past the last offset consumers may read. On one node with
    /// replication factor 1 every written offset is fully replicated, so the high watermark
    /// is the end of what the log has written to the file. With followers it is the minimum
    /// log end offset over the in-sync replicas (`ReplicaSet`).
    pub fn high_watermark(&self) -> i64 {
        let written = self.log.written_end_offset();
        match &self.replicas {
            None => written,
            Some(set) => set.high_watermark(written),
        }
    }

    /// Kafka's last stable offset: one past the last offset a `read_committed` consumer may
    /// read: the first offset of the oldest open transaction, else the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        match self.log.first_unstable_offset() {
            Some(first) => first.min(high_watermark),
            None => high_watermark,
        }
    }

    /// Writes a transaction's COMMIT (`commit`) or ABORT marker for the producer, as the
    /// transaction coordinator asks, synced when the topic's durability would sync an
    /// acks=all append. Returns the marker's offset.
    pub async fn write_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        let durability = self.log.with_config(|c| c.durability);
        let marker = build_marker_batch(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        );
        let outcome = self
            .log
            .append_staged(
                BytesMut::from(&marker[..]),
                must_sync(durability, ACKS_ALL),
                now_ms,
                || {},
            )
            .await?;
        Ok(outcome.base_offset)
    }

    /// Appends batches validated at the boundary (`record_count` records from that check),
    /// in the log's two stages: `on_dispatched` runs once they have their offsets and their
    /// place in the write queue; the future completes when they are *produced* (written, and
    /// synced first when `must_sync` says so). A retried duplicate answers with the original
    /// offsets and is not counted as traffic again. A topic whose `compression.type` is not
    /// `producer` has its batches recompressed here first, on the owning shard.
    pub async fn append(
        &self,
        records: BytesMut,
        record_count: u64,
        acks: i16,
        now_ms: i64,
        on_dispatched: impl FnOnce(),
    ) -> Result<AppendOutcome, StorageError> {
        let (compression, level, durability) = self.log.with_config(|c| {
            let level = c.compression_level(c.compression_type);
            (c.compression_type, level, c.durability)
        });
        let records = match target_codec(compression) {
            None => records,
            Some(codec) => {
                recompress_batches(&records, codec, level, MAX_DECOMPRESSED_BATCH_BYTES)?
                    .unwrap_or(records)
            }
        };
        let bytes = records.len() as u64;
        let durable = must_sync(durability, acks);
        // With followers in the ISR the acknowledgement waits for their fetches, which read
        // only what is written: the write is part of the replication round (decision 0012).
        let replicated = self
            .replicas
            .as_ref()
            .is_some_and(|set| set.in_sync_count() > 1);
        let outcome = self
            .log
            .append_staged_as(records, durable, replicated, now_ms, on_dispatched)
            .await?;
        if !outcome.duplicate {
            self.metrics.record_in(bytes, record_count);
        }
        Ok(outcome)
    }

    /// A follower's append: batches fetched from the leader, stored as the leader stored
    /// them (offsets and leader epochs kept, CRC checked once). Returns the new log end
    /// offset, the follower's next fetch offset.
    pub async fn append_replicated(
        &self,
        batches: BytesMut,
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        let end = self.log.append_replicated(batches, now_ms).await?;
        self.note_leader_high_watermark(leader_high_watermark);
        Ok(end)
    }

    /// A follower heard its leader's high watermark (a fetch answer, with records or
    /// without: an idle follower's stays current too). Kept below this log's end (Kafka's
    /// follower HW = min(leader HW, own log end)) and never moved back here (a truncation
    /// lowers it). A follower made leader starts from it; the checkpoint writes it.
    pub fn note_leader_high_watermark(&self, leader_high_watermark: i64) {
        self.follower_high_watermark.set(
            leader_high_watermark
                .min(self.log.log_end_offset())
                .max(self.follower_high_watermark.get()),
        );
    }

    /// Whether an append with these acks is synced before its answer under the topic's
    /// durability (the delay log follows the same rule for the records it takes instead).
    pub fn syncs_appends_with(&self, acks: i16) -> bool {
        must_sync(self.log.with_config(|c| c.durability), acks)
    }

    /// Fetch: file regions from `fetch_offset`, at most `max_bytes` (the first batch always
    /// whole), never past the high watermark, with the offsets the answer carries. The
    /// bytes handed out are counted as this partition's outgoing traffic.
    pub async fn read(
        &self,
        fetch_offset: i64,
        max_bytes: u32,
        isolation: Isolation,
    ) -> Result<FetchSlice, StorageError> {
        // Taken in the same poll as the log's own look at its written end (nothing awaits
        // in between), so the offsets describe the data returned.
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let slice = match isolation {
            Isolation::ReadUncommitted if self.replicas.is_none() => {
                self.log.read(fetch_offset, max_bytes).await?
            }
            Isolation::ReadUncommitted => {
                self.log
                    .read_until(fetch_offset, max_bytes, high_watermark)
                    .await?
            }
            Isolation::ReadCommitted => {
                self.log
                    .read_until(fetch_offset, max_bytes, last_stable_offset)
                    .await?
            }
        };
        let bytes: usize = slice.regions.iter().map(|r| r.len as usize).sum();
        let aborted_transactions = match isolation {
            Isolation::ReadCommitted if bytes > 0 => {
                // At or past the end of the returned batches (the first may start before
                // `fetch_offset`): a wider range only lists aborts the client ignores.
                let upper = fetch_offset + slice.record_count.max(1) as i64;
                self.log.aborted_transactions(fetch_offset, upper)
            }
            _ => Vec::new(),
        };
        // Records are counted from the batch headers' last offset, not decoded.
        self.metrics.record_out(bytes as u64, slice.record_count);
        Ok(FetchSlice {
            regions: slice.regions,
            bytes,
            high_watermark,
            last_stable_offset,
            log_start_offset: slice.log_start_offset,
            next_offset: slice.next_offset,
            aborted_transactions,
        })
    }

    /// Completes when the high watermark may have advanced (Fetch's long poll reads again
    /// then). On one replica the writer's notification that an append was written *is* the
    /// high watermark's advance; it also fires when the writer goes idle or the log fails,
    /// which costs a waiter one more read. With followers the high watermark also moves on
    /// their fetches (`ReplicaSet::record_fetch`). Owns its state, so it can be raced
    /// against a timer.
    pub fn wait_for_high_watermark(&self) -> impl Future<Output = ()> + 'static {
        use futures_util::future::{Either, FutureExt};
        let appended = self.log.wait_for_append();
        match &self.replicas {
            None => Either::Left(appended),
            Some(set) => Either::Right(
                futures_util::future::select(Box::pin(appended), Box::pin(set.wait_moved()))
                    .map(|_| ()),
            ),
        }
    }

    /// Where a fetch's long poll watches for progress: the high watermark for consumers,
    /// the written end for a follower (it copies up to the log end).
    pub fn fetch_progress(&self, follower: bool) -> i64 {
        if follower {
            self.log.written_end_offset()
        } else {
            self.high_watermark()
        }
    }

    /// A follower's fetch (Kafka's replica fetch): records `replica`'s log end (its fetch
    /// offset), which may move the high watermark, and its log start (-1: not reported),
    /// which may complete a DeleteRecords, then reads up to the log end, not the high
    /// watermark. `None` when `replica` is not one of this partition's followers.
    pub async fn read_for_follower(
        &self,
        replica: i32,
        fetch_offset: i64,
        replica_log_start: i64,
        max_bytes: u32,
        now_ms: i64,
    ) -> Option<Result<FetchSlice, StorageError>> {
        let set = self.replicas.as_ref()?;
        let written = self.log.written_end_offset();
        if !set.record_fetch(replica, fetch_offset, replica_log_start, written, now_ms) {
            return None;
        }
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        Some(match self.log.read(fetch_offset, max_bytes).await {
            Ok(slice) => Ok(FetchSlice {
                bytes: slice.regions.iter().map(|r| r.len as usize).sum(),
                regions: slice.regions,
                high_watermark,
                last_stable_offset,
                log_start_offset: slice.log_start_offset,
                next_offset: slice.next_offset,
                aborted_transactions: Vec::new(),
            }),
            Err(e) => Err(e),
        })
    }

    /// acks=all's check before an append (Kafka's `min.insync.replicas`): `false` when the
    /// in-sync replicas are fewer (NOT_ENOUGH_REPLICAS). Always true for one replica.
    pub fn has_enough_replicas(&self) -> bool {
        self.replicas
            .as_ref()
            .is_none_or(|set| set.in_sync_count() >= set.min_insync_replicas())
    }

    /// acks=all's wait after an append (Kafka's delayed produce): completes when the high
    /// watermark reaches `end_offset` (every in-sync replica has the append), woken by the
    /// followers' fetches and ISR changes, never by polling. Immediate for one replica;
    /// `false` when the ISR shrank below `min.insync.replicas` while it waited
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub async fn wait_replicated(&self, end_offset: i64) -> Replication {
        let Some(set) = &self.replicas else {
            return Replication::Done;
        };
        loop {
            // With a follower in the ISR only its fetch (or an ISR change, or a deposal)
            // moves the high watermark: the leader's own appends cannot, so waiting for them
            // too would wake every acks=all waiter once per append for nothing. With the
            // leader alone in the ISR its written end is the high watermark.
            let moved = if set.in_sync_count() > 1 {
                futures_util::future::Either::Left(set.wait_moved())
            } else {
                futures_util::future::Either::Right(self.wait_for_high_watermark())
            };
            // A deposed leader never acknowledges: a newer epoch's leader may have
            // truncated the append away (checked before the high watermark).
            if set.deposed() {
                return Replication::NotLeader;
            }
            if self.high_watermark() >= end_offset {
                return Replication::Done;
            }
            if !self.has_enough_replicas() {
                return Replication::NotEnoughReplicas;
            }
            moved.await;
        }
    }

    /// ListOffsets by time: the first (offset, timestamp) at or after `timestamp_ms` below
    /// the high watermark.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        self.log.offset_for_timestamp(timestamp_ms).await
    }

    /// ListOffsets MAX_TIMESTAMP: (max timestamp, its offset) below the high watermark, or
    /// (-1, -1) when no batch carries a timestamp.
    pub async fn max_timestamp(&self) -> Result<(i64, i64), StorageError> {
        self.log.max_timestamp().await
    }

    /// DeleteRecords: advances the log start offset to `before_offset`
    /// (`DELETE_RECORDS_TO_HIGH_WATERMARK`: to the high watermark) and returns the new log
    /// start. Past the high watermark is out of range: only what consumers may read can be
    /// deleted.
    pub async fn delete_records(&self, before_offset: i64) -> Result<i64, StorageError> {
        let high_watermark = self.high_watermark();
        let target = if before_offset == DELETE_RECORDS_TO_HIGH_WATERMARK {
            high_watermark
        } else {
            before_offset
        };
        if target < 0 || target > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset: before_offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: high_watermark,
            });
        }
        let log_start = self.log.delete_records(target).await?;
        self.log.trim_aborted_transactions();
        Ok(log_start)
    }

    /// Kafka's low watermark: the smallest log start over this log and the followers on
    /// live brokers (`alive`). One replica: this log's start.
    pub fn low_watermark(&self, alive: impl Fn(i32) -> bool) -> i64 {
        match &self.replicas {
            None => self.log_start_offset(),
            Some(set) => set.low_watermark(self.log_start_offset(), alive),
        }
    }

    /// The idempotent producers this partition knows (DescribeProducers).
    pub fn producer_states(&self) -> Vec<ProducerStateInfo> {
        self.log.producer_states()
    }

    /// Bytes the partition's segments take on disk (DescribeLogDirs).
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// A topic config change (AlterConfigs): later appends, rolls and retention follow it.
    pub fn update_config(&self, config: LogConfig) {
        self.log.update_config(config);
    }

    /// Whether the last open found a clean-shutdown mark (and skipped the recovery scan).
    pub fn opened_clean(&self) -> bool {
        self.log.opened_clean()
    }

    /// The background flush (`flush.messages`, `flush.ms`), when due.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), StorageError> {
        self.log.flush_if_due(now_ms).await
    }

    /// What a `syncfs` about to start makes durable of this partition's log (decision
    /// 0020). No I/O.
    pub fn filesystem_sync_mark(
        &self,
        now_ms: i64,
    ) -> crate::storage::filesystem_sync::FilesystemSyncMark {
        self.log.filesystem_sync_mark(now_ms)
    }

    /// Before the `syncfs`: the index entries a recovery-point persist needs, written so
    /// the syncfs covers them (`PartitionLog::write_indexes_before_sync`).
    pub async fn write_indexes_before_sync(
        &self,
        mark: &mut crate::storage::filesystem_sync::FilesystemSyncMark,
    ) {
        self.log.write_indexes_before_sync(mark).await
    }

    /// The background flush after a `syncfs` made the log durable up to `mark`.
    pub async fn flush_after_filesystem_sync(
        &self,
        now_ms: i64,
        mark: crate::storage::filesystem_sync::FilesystemSyncMark,
    ) -> Result<(), StorageError> {
        self.log.flush_after_filesystem_sync(now_ms, mark).await
    }

    /// Retention by time and size, and time-based rolling. Returns segments deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let deleted = self.log.enforce_retention(now_ms).await?;
        if deleted > 0 {
            self.log.trim_aborted_transactions();
        }
        Ok(deleted)
    }

    /// Copies the storage gauges (segments, size, log start and end) into the metrics.
    pub fn publish_storage_metrics(&self) {
        self.metrics.set_storage(
            self.log.segment_count() as u64,
            self.log.size_bytes(),
            self.log.log_start_offset(),
            self.log.log_end_offset(),
        );
        self.metrics
            .set_last_stable_offset(self.last_stable_offset());
    }

    /// How much the log needs compacting (`None`: not a compacted topic, or nothing sealed).
    pub fn cleaning_need(&self, now_ms: i64) -> Option<CleaningNeed> {
        self.log.cleaning_need(now_ms)
    }

    /// One log cleaner pass if one is due.
    pub async fn clean(
        &self,
        now_ms: i64,
        throttle: &mut IoThrottle,
    ) -> Result<Option<CleanStats>, StorageError> {
        self.log.clean(now_ms, throttle).await
    }

    /// Shutdown: flushes and marks the log clean so the next open skips the recovery scan.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.log.close().await
    }

    /// DeleteTopics: stops the log and removes its files.
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.log.delete().await
    }
}

/// The durability decision: `Always` syncs every append before its answer, `None` never
/// does (the background flush syncs), `AcksAll` syncs the appends whose producer asked
/// for acks=all. With replication, acks=all will also wait for the in-sync replicas.
fn must_sync(durability: Durability, acks: i16) -> bool {
    match durability {
        Durability::AcksAll => acks == ACKS_ALL,
        Durability::Always => true,
        Durability::None => false,
    }
}
