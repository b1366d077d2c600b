//! High-watermark checkpoints on the shards (Kafka's `replication-offset-checkpoint`;
//! issue 17, decision 0012 "High-watermark checkpoints"). Cluster mode only: on a single
//! node the high watermark is the written end and needs no file. Each shard writes the high
//! watermarks of the partitions it owns (led: its own; followed: the last one its leader
//! sent) every `replica_high_watermark_checkpoint_interval_ms` when they changed, and once
//! more at a clean shutdown; at start-up the files are read once (`storage::hw_checkpoint`)
//! and each partition opened takes its entry (`Shard::take_checkpointed_high_watermark`).
//! Must not: write from two tasks of one shard at once (the file's temp name is fixed):
//! the loop ends before the shutdown write starts.

use super::Shard;
use crate::storage::hw_checkpoint::{self, CheckpointEntries, HighWatermarks};
use std::cell::RefCell;
use std::rc::Rc;

/// The entries of `all` (every file, read at start-up) for the partitions shard `id` of
/// `count` owns.
pub(super) fn owned_by(all: &HighWatermarks, id: usize, count: usize) -> HighWatermarks {
    all.iter()
        .filter(|((topic, partition), _)| {
            super::placement::shard_for_partition(topic, *partition, count) == id
        })
        .map(|(key, offset)| (key.clone(), *offset))
        .collect()
}

impl Shard {
    /// The checkpointed high watermark of a partition being opened, taken once: a
    /// partition opened again later (a topic deleted and created again) starts fresh.
    pub(super) fn take_checkpointed_high_watermark(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<i64> {
        self.checkpointed_high_watermarks
            .borrow_mut()
            .remove(&(topic.to_string(), partition))
    }

    /// A deleted topic's entries not taken yet are dropped: a topic created again under
    /// its name must not take them.
    pub(super) fn forget_checkpointed_topic(&self, topic: &str) {
        self.checkpointed_high_watermarks
            .borrow_mut()
            .retain(|(t, _), _| t != topic);
    }
}

/// What this shard's checkpoint holds now, sorted: every led partition's high watermark,
/// every followed one's last high watermark from its leader (none heard yet: left out).
fn gather(shard: &Shard) -> CheckpointEntries {
    let mut entries: CheckpointEntries = shard
        .partitions
        .all_online()
        .into_iter()
        .filter(|(_, _, p)| !p.is_closed())
        .map(|(topic, partition, p)| (topic, partition, p.high_watermark()))
        .collect();
    entries.extend(
        shard
            .followers
            .all_online()
            .into_iter()
            .filter(|(_, _, p)| !p.is_closed() && p.follower_high_watermark() >= 0)
            .map(|(topic, partition, p)| (topic, partition, p.follower_high_watermark())),
    );
    entries.sort();
    entries
}

/// Writes the checkpoint unless it would say what the last one said (`last`): an idle
/// broker does not fsync a file every few seconds. A failed write is logged and tried
/// again at the next tick; the old file stays whole.
async fn write_if_changed(shard: &Shard, last: &RefCell<Option<CheckpointEntries>>) {
    let entries = gather(shard);
    if last.borrow().as_ref() == Some(&entries) {
        return;
    }
    match hw_checkpoint::write(&shard.config.data_dir, shard.id, &entries).await {
        Ok(()) => *last.borrow_mut() = Some(entries),
        Err(e) => {
            tracing::warn!(shard = shard.id, error = %e, "high-watermark checkpoint not written")
        }
    }
}

/// The shard's checkpoint loop, until shutdown begins (cluster mode; returns at once on a
/// single node).
pub(super) async fn run(shard: Rc<Shard>) {
    if shard.cluster.is_none() {
        return;
    }
    let every = std::time::Duration::from_millis(
        shard.config.replica_high_watermark_checkpoint_interval_ms,
    );
    let last = RefCell::new(None);
    shard
        .every_until_shutdown(every, || write_if_changed(&shard, &last))
        .await;
}

/// The last checkpoint, at a clean shutdown before the logs close (after `run` ended).
/// A controlled shutdown has deposed this node's leaderships by now; each kept its high
/// watermark as a follower (`Partition::demoted`), so nothing is lost by it.
pub(super) async fn write_at_shutdown(shard: &Shard) {
    if shard.cluster.is_none() {
        return;
    }
    write_if_changed(shard, &RefCell::new(None)).await;
}
