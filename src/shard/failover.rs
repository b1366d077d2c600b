//! Leader failover on the brokers (issue 17 stage 3, decision 0012 "Failover"): when the
//! metadata log changes a partition's leader, leader epoch or ISR, each of its replicas
//! takes its new role on the partition's owning shard. The new leader moves the partition
//! from `followers` to `partitions` (the same log, now served), stamps the new epoch and
//! starts its high watermark where its leader last said it was; a deposed leader moves it
//! back, failing its pending acks=all waits; the leader takes the new ISR. Followers need
//! nothing here: their fetchers follow the metadata to the new leader and truncate first.
//! Must not: decide leadership (the metadata log does) or talk to other brokers.

use super::{Lookup, PartitionSlot, Shard};
use std::rc::Rc;

/// Applies the role changes an applied record made (runs on shard 0, acts on the owners):
/// on the partitions this node replicates now, or did `before` the record (a replica a
/// reassignment removed must drop its copy).
pub(super) async fn apply_partition_changes(
    shard: &Rc<Shard>,
    changes: &[(String, i32)],
    before: Option<&crate::metadata::MetadataSnapshot>,
) {
    let node = shard.config.node_id;
    let snapshot = shard.metadata.load_full();
    let Some(cluster) = snapshot.cluster.as_deref() else {
        return;
    };
    let replicated = |cluster: &crate::metadata::replicated::ClusterState, topic: &str, p: i32| {
        cluster.replicas(topic, p).contains(&node)
    };
    let was_replicated = |topic: &str, p: i32| {
        before
            .and_then(|b| b.cluster.as_deref())
            .is_some_and(|c| replicated(c, topic, p))
    };
    let calls = changes
        .iter()
        .filter(|(topic, p)| replicated(cluster, topic, *p) || was_replicated(topic, *p))
        .map(|(topic, p)| {
            let (topic, p) = (topic.clone(), *p);
            let owner = shard.owner_of_partition(&topic, p);
            shard.invoke_on(
                owner,
                move |s| async move { take_role(&s, &topic, p).await },
            )
        });
    for result in futures_util::future::join_all(calls).await {
        if let Err(e) = result {
            tracing::warn!(error = %e, "partition role change not handed to its shard");
        }
    }
}

/// On the owning shard: makes this node's copy of the partition what metadata says.
pub(super) async fn take_role(s: &Rc<Shard>, topic: &str, partition: i32) {
    let snapshot = s.metadata.load_full();
    let (Some(cluster), Some(meta)) = (snapshot.cluster.as_deref(), snapshot.topic(topic)) else {
        return;
    };
    let node = s.config.node_id;
    if !cluster.replicas(topic, partition).contains(&node) {
        drop_replica(s, topic, partition).await;
        return;
    }
    if cluster.leader(topic, partition) != Some(node) {
        if let Lookup::Online(led) = s.partitions.get(topic, partition) {
            s.partitions.remove(topic, partition);
            let follower = Rc::new(led.demoted());
            s.followers
                .insert(topic, partition, PartitionSlot::Online(follower));
            tracing::info!(topic, partition, "no longer the leader: following");
        } else if !s.followers.contains(topic, partition) {
            s.partitions.remove(topic, partition);
            if let Err(e) = super::open::open_partition(s, topic, partition, &meta.config).await {
                tracing::warn!(topic, partition, error = %e, "follower copy not opened");
            }
        }
        return;
    }
    let epoch = cluster.leader_epoch(topic, partition);
    let isr = cluster.isr(topic, partition);
    if let Lookup::Online(mut led) = s.partitions.get(topic, partition) {
        let followers: Vec<i32> = cluster
            .replicas(topic, partition)
            .iter()
            .copied()
            .filter(|&r| r != node)
            .collect();
        match led.replicas() {
            Some(set) => {
                // A reassignment may have added or removed followers.
                set.set_followers(&followers, super::now_ms());
                let in_sync: Vec<i32> = isr.iter().copied().filter(|&r| r != node).collect();
                set.set_in_sync(&in_sync, cluster.partition_epoch(topic, partition));
            }
            None if !followers.is_empty() => {
                // A one-replica partition being given replicas: from now on its high
                // watermark waits for them (it starts where the written end is).
                let start = led.high_watermark();
                if let Some(set) = super::open::replica_set_for(s, topic, partition, start) {
                    let next = Rc::new(led.leading_successor(set));
                    s.partitions
                        .insert(topic, partition, PartitionSlot::Online(next.clone()));
                    led = next;
                    tracing::info!(topic, partition, ?followers, "leader has followers now");
                }
            }
            None => {}
        }
        if led.leader_epoch() < epoch
            && let Err(e) = led.become_leader(epoch).await
        {
            tracing::error!(topic, partition, error = %e, "leader epoch not recorded");
        }
        return;
    }
    let Lookup::Online(follower) = s.followers.get(topic, partition) else {
        // Not held yet (or offline as a follower): open it as the leader it now is.
        s.followers.remove(topic, partition);
        if let Err(e) = super::open::open_partition(s, topic, partition, &meta.config).await {
            tracing::error!(topic, partition, error = %e, "new leader's partition offline");
        }
        return;
    };
    s.followers.remove(topic, partition);
    // Kafka's new leader keeps the high watermark it had as a follower; it moves on only
    // once every in-sync follower has fetched (their log ends start unknown).
    let start = follower
        .follower_high_watermark()
        .clamp(follower.log_start_offset(), follower.log_end_offset());
    let replicas = super::open::replica_set_for(s, topic, partition, start);
    let led = Rc::new(follower.successor(replicas));
    // Its share states are the ones the metadata log holds (decision 0025): every state
    // the deposed leader made durable was applied here before this leadership was.
    super::share_state::lead(s, topic, partition, &led);
    if let Err(e) = led.become_leader(epoch).await {
        tracing::error!(topic, partition, error = %e, "new leader's epoch not recorded: offline");
        super::open::take_offline(s, topic, partition, e.to_string()).await;
        return;
    }
    s.partitions
        .insert(topic, partition, PartitionSlot::Online(led));
    tracing::info!(
        topic,
        partition,
        epoch,
        high_watermark = start,
        "now the leader"
    );
}

/// This node holds a copy of a partition metadata no longer assigns to it (a reassignment
/// removed it): it stops serving and fetching it (its fetcher no longer finds it) and
/// deletes its files, as Kafka's `StopReplica` with `deletePartition`. A leader being
/// removed has handed over by now (the same record elected another), so its pending
/// acks=all waits fail with NOT_LEADER_OR_FOLLOWER.
async fn drop_replica(s: &Rc<Shard>, topic: &str, partition: i32) {
    let mut held = Vec::new();
    for table in [&s.partitions, &s.followers] {
        if let Some(PartitionSlot::Online(p)) = table.remove(topic, partition) {
            held.push(p);
        }
    }
    for p in held {
        p.depose();
        if let Err(e) = p.delete().await {
            tracing::error!(topic, partition, error = %e, "removed replica's files not deleted");
        } else {
            tracing::info!(
                topic,
                partition,
                "replica removed by a reassignment: deleted"
            );
        }
    }
}
