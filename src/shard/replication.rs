//! The follower side of replication on the shards (issue 17, stage 2, decision 0012): the
//! replica fetchers' answers (`cluster::replica_fetcher`) are appended to the follower
//! partitions on their owning shards, as the leader wrote them, and each partition's new
//! log end offset goes back to the fetcher as its next fetch offset. Also opens, at start-up
//! and after metadata changes, the partitions this node follows (kept in `Shard::followers`,
//! never served to clients: they answer NOT_LEADER_OR_FOLLOWER as a missing partition does).
//! And the leaders' side of the ISR: every `replica.lag.time.max.ms / 2` each shard looks
//! at the partitions it leads and proposes an AlterPartition through the metadata log when
//! a follower fell behind or caught up again (`isr_loop`); the applied change reaches the
//! partition's `ReplicaSet` (`apply_isr`).
//! Must not: talk to other brokers (the fetchers do) or decide who leads (metadata does).

use super::{Lookup, Shard};
use crate::cluster::replica_fetcher::{ReplicaItem, ReplicaPosition, ReplicaWork};
use crate::metadata::replicated::MetadataRecord;
use bytes::BytesMut;
use futures_util::FutureExt;
use std::rc::Rc;

/// Takes fetch answers until every fetcher is gone (runs on shard 0); each answer is
/// applied by a task of its own, so one slow leader's partitions never hold up another's.
pub(super) async fn replica_service(shard: Rc<Shard>, work: flume::Receiver<ReplicaWork>) {
    while let Ok(work) = work.recv_async().await {
        let shard = shard.clone();
        compio::runtime::spawn(async move {
            let positions = apply_work(&shard, work.items).await;
            let _ = work.reply.send(positions);
        })
        .detach();
    }
}

async fn apply_work(shard: &Rc<Shard>, items: Vec<ReplicaItem>) -> Vec<ReplicaPosition> {
    let calls = items.into_iter().map(|item| {
        let owner = shard.owner_of_partition(&item.topic, item.partition);
        async move {
            shard
                .invoke_on(owner, move |s| async move { apply_item(&s, item).await })
                .await
                .unwrap_or(None)
        }
    });
    futures_util::future::join_all(calls).await
}

/// Appends one partition's fetched batches on its owning shard; returns its log end.
async fn apply_item(shard: &Rc<Shard>, item: ReplicaItem) -> ReplicaPosition {
    let super::Lookup::Online(partition) = shard.followers.get(&item.topic, item.partition) else {
        return None;
    };
    let Some(records) = item.records else {
        return Some(partition.log_end_offset());
    };
    // The answer's bytes are shared with the rest of the decoded response: the log takes
    // its own buffer (a follower copies once, as Kafka's does).
    let batches = BytesMut::from(&records[..]);
    match partition
        .append_replicated(batches, item.high_watermark, super::now_ms())
        .await
    {
        Ok(log_end_offset) => Some(log_end_offset),
        Err(e) => {
            tracing::warn!(
                topic = %item.topic,
                partition = item.partition,
                error = %e,
                "replicated batches not appended"
            );
            if matches!(e, crate::storage::StorageError::Offline { .. }) {
                return None;
            }
            Some(partition.log_end_offset())
        }
    }
}

/// Proposes the ISR changes this node's led partitions need, on every shard, every half
/// `replica.lag.time.max.ms` (Kafka's ISR check interval), until shutdown (shard 0).
pub(super) async fn isr_loop(shard: Rc<Shard>) {
    let lag_max_ms = shard.config.replica_lag_time_max_ms;
    let every = std::time::Duration::from_millis((lag_max_ms / 2).max(1));
    let mut stop = shard.shutdown_signal().fuse();
    while !shard.shutting_down.get() {
        let mut tick = shard.timer.sleep(every).fuse();
        futures_util::select! {
            _ = stop => return,
            _ = tick => {},
        }
        shard.invoke_on_all(propose_isr_changes).await;
    }
}

/// On one shard: an AlterPartition for each led partition whose ISR should change. A change
/// already proposed but not yet applied is proposed again with the same epoch and refused
/// at apply (stale epoch): harmless.
async fn propose_isr_changes(shard: Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    let lag_max_ms = i64::try_from(shard.config.replica_lag_time_max_ms).unwrap_or(i64::MAX);
    let now = super::now_ms();
    let node = shard.config.node_id;
    let snapshot = shard.metadata.load_full();
    let Some(state) = snapshot.cluster.as_deref() else {
        return;
    };
    for (topic, partition, p) in shard.partitions.all_online() {
        let Some(set) = p.replicas() else {
            continue;
        };
        let Some(isr) = set.wanted_isr(node, p.log_end_offset(), now, lag_max_ms) else {
            continue;
        };
        let record = MetadataRecord::AlterPartition {
            partition_epoch: state.partition_epoch(&topic, partition),
            topic: topic.clone(),
            partition,
            isr: isr.clone(),
        };
        match cluster.propose(record).await {
            Ok(_) => tracing::info!(%topic, partition, ?isr, "ISR changed"),
            Err((_, message)) => {
                tracing::debug!(%topic, partition, %message, "ISR change not applied")
            }
        }
    }
}

/// An applied AlterPartition: the leader's replica set takes the new ISR (runs on shard 0,
/// acts on the owner).
pub(super) async fn apply_isr(shard: &Rc<Shard>, topic: &str, partition: i32, isr: &[i32]) {
    let owner = shard.owner_of_partition(topic, partition);
    let topic = topic.to_string();
    let followers: Vec<i32> = isr.iter().skip(1).copied().collect();
    let applied = shard
        .invoke_on(owner, move |s| async move {
            if let Lookup::Online(p) = s.partitions.get(&topic, partition)
                && let Some(set) = p.replicas()
            {
                set.set_in_sync(&followers);
            }
        })
        .await;
    if let Err(e) = applied {
        tracing::warn!(error = %e, "ISR change not handed to the partition's shard");
    }
}
