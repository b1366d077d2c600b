//! The follower replication throttle on the shards (decision 0019): which of a
//! fetch answer's partitions count against `follower.replication.throttled.rate` and the
//! pause that follows (`cluster::throttle` holds the broker-wide budget). A partition counts
//! when its topic's `follower.replication.throttled.replicas` names it on this broker and
//! this broker is out of its ISR (Kafka's `shouldFollowerThrottle`).
//! Must not: append or fetch (the replica fetchers and `replication` do).

use super::Shard;
use crate::cluster::replica_fetcher::ReplicaItem;
use crate::cluster::throttle::names_replica;
use std::rc::Rc;
use std::time::Instant;

/// Kafka's topic config naming the follower replicas to throttle.
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Bytes of `items` that count against the follower throttle (0 when none is set: one
/// check, so an unthrottled broker's fetch path pays nothing more).
pub(super) fn throttled_bytes(shard: &Shard, items: &[ReplicaItem]) -> u64 {
    let Some(cluster) = shard.cluster.as_deref() else {
        return 0;
    };
    if !cluster.follower_throttle.enabled() {
        return 0;
    }
    let snapshot = shard.metadata.load();
    let node = shard.config.node_id;
    let mut bytes = 0u64;
    for item in items {
        let Some(records) = &item.records else {
            continue;
        };
        let named = snapshot
            .topic(&item.topic)
            .and_then(|t| t.overrides.get(FOLLOWER_THROTTLED_REPLICAS))
            .is_some_and(|v| names_replica(v, item.partition, node));
        let in_sync = snapshot
            .cluster
            .as_deref()
            .is_some_and(|c| c.isr(&item.topic, item.partition).contains(&node));
        if named && !in_sync {
            bytes = bytes.saturating_add(records.len() as u64);
        }
    }
    bytes
}

/// Charges `bytes` to the broker's budget and pauses this fetcher for what is owed.
pub(super) async fn pause(shard: &Rc<Shard>, bytes: u64) {
    let Some(cluster) = shard.cluster.as_deref() else {
        return;
    };
    let wait = cluster.follower_throttle.charge(bytes, Instant::now());
    if !wait.is_zero() {
        shard.timer.sleep(wait).await;
    }
}
