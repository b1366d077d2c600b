//! Opening partitions on their owning shard: at start-up (every partition metadata gives
//! this shard) and when a topic or partitions are created. A partition that cannot be opened
//! is kept offline with its reason (never served: KAFKA_STORAGE_ERROR), and reported to the
//! metadata writer on shard 0 so Metadata shows it without a leader (issue 19, point 2).
//! In cluster mode the partitions this node follows are opened too, into the shard's
//! `followers` table (issue 17, stage 2): their logs take the leader's batches from the
//! replica fetchers and serve no client.
//! Must not decide placement or touch another shard's table.

use super::{PartitionSlot, Shard};
use crate::partition::Partition;
use crate::partition::replicas::ReplicaSet;
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
            .filter(|&p| {
                snapshot.is_led_by(node_id, &topic.name, p)
                    || snapshot.is_followed_by(node_id, &topic.name, p)
            })
            .map(move |p| (topic, p))
    });
    let offline: Vec<(String, i32, Option<String>)> = futures_util::stream::iter(owned)
        .map(|(topic, partition)| async move {
            // Only a leader's failure takes the partition offline for clients.
            let led = shard
                .metadata
                .load()
                .is_led_by(shard.config.node_id, &topic.name, partition);
            open_partition(shard, &topic.name, partition, &topic.config)
                .await
                .err()
                .filter(|_| led)
                .map(|reason| (topic.name.clone(), partition, Some(reason)))
        })
        .buffer_unordered(MAX_CONCURRENT_OPENS)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    let offline_count = offline.len();
    report_offline(shard, offline).await;
    let (mut clean, mut recovered) = (0usize, 0usize);
    let mut opened = shard.partitions.all_online();
    opened.extend(shard.followers.all_online());
    for (_, _, p) in opened {
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
/// the reason, never served; the reason is returned. A partition metadata says this node
/// follows goes to the `followers` table, any other to `partitions`.
pub async fn open_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    config: &crate::config::LogConfig,
) -> Result<(), String> {
    place(shard, topic, partition, config, false).await
}

/// The table a partition of this node lives in: `followers` for one metadata says this node
/// follows, `partitions` for any other.
fn table_for<'a>(shard: &'a Shard, topic: &str, partition: i32) -> &'a super::PartitionTable {
    let follower = shard
        .metadata
        .load()
        .is_followed_by(shard.config.node_id, topic, partition);
    if follower {
        &shard.followers
    } else {
        &shard.partitions
    }
}

/// Creates a new partition on its owning shard (CreateTopics, CreatePartitions): its
/// directory only, no file and no fsync (`PartitionLog::create`); else as `open_partition`.
pub async fn create_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    config: &crate::config::LogConfig,
) -> Result<(), String> {
    place(shard, topic, partition, config, true).await
}

/// Opens (`new`: creates) a partition into its table unless the table already has it,
/// online or offline.
async fn place(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    config: &crate::config::LogConfig,
    new: bool,
) -> Result<(), String> {
    let table = table_for(shard, topic, partition);
    if let super::Lookup::Offline(why) = table.get(topic, partition) {
        return Err(why);
    }
    if table.contains(topic, partition) {
        return Ok(());
    }
    let dir = &shard.config.data_dir;
    let log = if new {
        PartitionLog::create(dir, topic, partition, config.clone()).await
    } else {
        PartitionLog::open(dir, topic, partition, config.clone()).await
    };
    // A leader stamps its appends with the partition's leader epoch (cluster mode).
    let epoch = shard
        .metadata
        .load()
        .cluster
        .as_deref()
        .filter(|c| c.leader(topic, partition) == Some(shard.config.node_id))
        .map(|c| c.leader_epoch(topic, partition));
    let log = match (log, epoch) {
        (Ok(log), Some(epoch)) => log.become_leader(epoch).await.map(|()| log),
        (log, _) => log,
    };
    install(shard, table, (topic, partition), log, epoch.is_some())
}

/// Puts an opened (or failed) partition log in its table; a cluster-mode leader (`leads`)
/// keeps its share states in the metadata log (decision 0025).
fn install(
    shard: &Rc<Shard>,
    table: &super::PartitionTable,
    (topic, partition): (&str, i32),
    opened: Result<Rc<PartitionLog>, crate::storage::StorageError>,
    leads: bool,
) -> Result<(), String> {
    let (slot, result) = match opened {
        Ok(log) => {
            let metrics = shard.metrics.clone();
            log.observe_syncs(Rc::new(move |ns| metrics.record_fsync(ns)));
            let watch = super::background_flush::watch(&shard.flush_candidates, topic, partition);
            log.watch_flushes(watch);
            let metrics = shard.metrics.partition(topic, partition);
            let p = Partition::new(log, metrics);
            // A checkpoint's high watermark (a restart in cluster mode): a leader's
            // starts there, a follower's too (it starts from it if made leader).
            let checkpointed = shard.take_checkpointed_high_watermark(topic, partition);
            let start =
                checkpointed.map_or(p.log_start_offset(), |hw| p.restored_high_watermark(hw));
            if let Some(hw) = checkpointed
                && std::ptr::eq(table, &shard.followers)
            {
                p.restore_follower_high_watermark(hw);
            }
            let online = match replica_set_for(shard, topic, partition, start) {
                Some(set) => Rc::new(p.with_replicas(set)),
                None => Rc::new(p),
            };
            if leads {
                super::share_state::lead(shard, topic, partition, &online);
            }
            (PartitionSlot::Online(online), Ok(()))
        }
        Err(e) => {
            tracing::error!(topic, partition, error = %e, "partition offline");
            let reason = e.to_string();
            (PartitionSlot::Offline(reason.clone()), Err(reason))
        }
    };
    table.insert(topic, partition, slot);
    result
}

/// A partition this node leads with other replicas gets their replica set (cluster mode):
/// its high watermark then waits for them. The ISR is the metadata log's; the high
/// watermark starts at `high_watermark` (at an open, the checkpointed one up to the log end,
/// else the log start, as Kafka's; a follower made leader keeps the one its leader last
/// sent): the in-sync followers' fetches move it. `None` for a single node, one replica, or a follower.
pub(super) fn replica_set_for(
    shard: &Shard,
    topic: &str,
    partition: i32,
    high_watermark: i64,
) -> Option<ReplicaSet> {
    let snapshot = shard.metadata.load();
    let cluster = snapshot.cluster.as_deref()?;
    let node = shard.config.node_id;
    let replicas = cluster.replicas(topic, partition);
    if replicas.len() < 2 || cluster.leader(topic, partition) != Some(node) {
        return None;
    }
    let followers: Vec<i32> = replicas.iter().copied().filter(|&r| r != node).collect();
    let min_insync = snapshot.topic(topic).map_or(1, |t| min_insync_replicas(t));
    let isr = cluster.isr(topic, partition);
    let now = super::now_ms();
    Some(ReplicaSet::new(
        &followers,
        &isr,
        cluster.partition_epoch(topic, partition),
        min_insync,
        high_watermark,
        now,
        i64::try_from(shard.config.replica_lag_time_max_ms).unwrap_or(i64::MAX),
    ))
}

/// The topic's `min.insync.replicas` (an override; else Kafka's default, 1).
pub fn min_insync_replicas(topic: &crate::metadata::TopicMeta) -> usize {
    topic
        .overrides
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
}
