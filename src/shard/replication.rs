//! The follower side of replication on the shards (issue 17, stage 2, decision 0012): the
//! replica fetchers' answers (`cluster::replica_fetcher`) are appended to the follower
//! partitions on their owning shards, as the leader wrote them, and each partition's new
//! log end offset goes back to the fetcher as its next fetch offset. Also opens, at start-up
//! and after metadata changes, the partitions this node follows (kept in `Shard::followers`,
//! never served to clients: they answer NOT_LEADER_OR_FOLLOWER as a missing partition does).
//! Must not: talk to other brokers (the fetchers do) or decide who leads (metadata does).

use super::Shard;
use crate::cluster::replica_fetcher::{ReplicaItem, ReplicaPosition, ReplicaWork};
use bytes::BytesMut;
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
