//! Opening partitions on their owning shard: at start-up (every partition metadata gives
//! this shard) and when a topic or partitions are created. A partition that cannot be opened
//! is kept offline with its reason (never served: KAFKA_STORAGE_ERROR), and reported to the
//! metadata writer on shard 0 so Metadata shows it without a leader (issue 19, point 2).
//! Must not decide placement or touch another shard's table.

use super::{PartitionSlot, Shard};
use crate::partition::Partition;
use crate::storage::PartitionLog;
use std::rc::Rc;

/// Partitions a shard opens at once at start-up: a clean open still waits on the state
/// file's fsyncs, so one at a time made a restart with thousands of partitions slow; each
/// open holds a few descriptors while it runs.
pub const MAX_CONCURRENT_OPENS: usize = 32;

/// Opens (and recovers) every partition this shard owns according to metadata, then tells
/// shard 0 which could not be opened (before the shard reports ready, so the first
/// Metadata answer already shows them).
pub async fn open_owned_partitions(shard: &Rc<Shard>) {
    use futures_util::StreamExt;
    let snapshot = shard.metadata.load_full();
    let node_id = shard.config.node_id;
    let owned = snapshot.topics.values().flat_map(|topic| {
        (0..topic.partitions)
            .filter(|&p| shard.owner_of_partition(&topic.name, p) == shard.id)
            .filter(|&p| snapshot.is_led_by(node_id, &topic.name, p))
            .map(move |p| (topic, p))
    });
    let offline: Vec<(String, i32, Option<String>)> = futures_util::stream::iter(owned)
        .map(|(topic, partition)| async move {
            open_partition(shard, &topic.name, partition, &topic.config)
                .await
                .err()
                .map(|reason| (topic.name.clone(), partition, Some(reason)))
        })
        .buffer_unordered(MAX_CONCURRENT_OPENS)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    let offline_count = offline.len();
    report_offline(shard, offline).await;
    let (mut clean, mut recovered) = (0usize, 0usize);
    for (_, _, p) in shard.partitions.all_online() {
        if p.opened_clean() {
            clean += 1;
        } else {
            recovered += 1;
        }
    }
    // Operators (and the lifecycle test) read this line to see whether recovery ran.
    tracing::info!(
        shard = shard.id,
        clean_shutdown = clean,
        recovered,
        offline = offline_count,
        "partitions opened (clean_shutdown = recovery scan skipped)"
    );
}

/// Hands offline (or online again) partitions to the metadata writer on shard 0.
pub async fn report_offline(shard: &Rc<Shard>, changes: Vec<(String, i32, Option<String>)>) {
    if changes.is_empty() {
        return;
    }
    let reported = shard
        .invoke_on(0, move |s| async move {
            if let Some(writer) = s.metadata_writer.as_deref() {
                writer.set_offline(changes);
            }
        })
        .await;
    if let Err(e) = reported {
        tracing::warn!(shard = shard.id, error = %e, "offline partitions not reported to metadata");
    }
}

/// A partition whose log went offline while it was served (a failed write or sync): its
/// slot becomes offline (produce and fetch are refused at the door, `/metrics` and
/// `/v1/status` count it) and Metadata is told, as for one that failed to open.
pub async fn take_offline(shard: &Rc<Shard>, topic: &str, partition: i32, reason: String) {
    shard
        .partitions
        .insert(topic, partition, PartitionSlot::Offline(reason.clone()));
    report_offline(shard, vec![(topic.to_string(), partition, Some(reason))]).await;
}

/// Opens one partition on its owning shard. A partition that fails to open (recovery
/// refused it, the directory cannot be created, no descriptor left) is kept offline with
/// the reason, never served; the reason is returned.
pub async fn open_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    config: &crate::config::LogConfig,
) -> Result<(), String> {
    if let super::Lookup::Offline(why) = shard.partitions.get(topic, partition) {
        return Err(why);
    }
    if shard.partitions.contains(topic, partition) {
        return Ok(());
    }
    let opened = PartitionLog::open(&shard.config.data_dir, topic, partition, config.clone()).await;
    install(shard, topic, partition, opened)
}

/// Creates a new partition on its owning shard (CreateTopics, CreatePartitions): its
/// directory only, no file and no fsync (`PartitionLog::create`); else as `open_partition`.
pub async fn create_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    config: &crate::config::LogConfig,
) -> Result<(), String> {
    if let super::Lookup::Offline(why) = shard.partitions.get(topic, partition) {
        return Err(why);
    }
    if shard.partitions.contains(topic, partition) {
        return Ok(());
    }
    let created =
        PartitionLog::create(&shard.config.data_dir, topic, partition, config.clone()).await;
    install(shard, topic, partition, created)
}

/// Puts an opened (or failed) partition log in the shard's table.
fn install(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    opened: Result<Rc<PartitionLog>, crate::storage::StorageError>,
) -> Result<(), String> {
    let (slot, result) = match opened {
        Ok(log) => {
            let metrics = shard.metrics.clone();
            log.observe_syncs(Rc::new(move |ns| metrics.record_fsync(ns)));
            let metrics = shard.metrics.partition(topic, partition);
            let online = Rc::new(Partition::new(log, metrics));
            (PartitionSlot::Online(online), Ok(()))
        }
        Err(e) => {
            tracing::error!(topic, partition, error = %e, "partition offline");
            let reason = e.to_string();
            (PartitionSlot::Offline(reason.clone()), Err(reason))
        }
    };
    shard.partitions.insert(topic, partition, slot);
    result
}
