//! Auto leader rebalance (Kafka's `auto.leader.rebalance.enable`, issue 17): after a broker
//! restarts, the partitions it led stay with the brokers that took over, so leadership (and
//! with it produce and fetch load) piles up on the brokers that stayed up. Every
//! `leader_imbalance_check_interval_seconds` the node leading the metadata quorum (Kafka's
//! active controller does this) proposes a preferred-replica election (`ElectLeader`) for
//! each partition whose preferred replica is live and in sync but does not lead. Each
//! record is checked again at apply, against the state of that moment, on every node.
//! The same check evens out the coordinator slots (decision 0024): a slot stays with the
//! broker that took it over when its broker was fenced, so a returned broker coordinates
//! nothing until a `RebalanceCoordinators` record gives it its share. Proposed only when
//! the skew was seen on two consecutive checks, so a broker restarting (fenced, unfenced)
//! does not pull coordinators back and forth while it flaps.
//! Must not: decide an election or a slot's broker itself (the metadata log's apply does).

use super::Shard;
use crate::metadata::replicated::MetadataRecord;
use std::rc::Rc;

/// Most preferred elections one check proposes (Kafka's controller also bounds a round);
/// the rest wait for the next check.
pub const MAX_PREFERRED_ELECTIONS_PER_CHECK: usize = 1_000;

/// Runs on shard 0 in cluster mode until shutdown, when the config enables it.
pub(super) async fn rebalance_loop(shard: Rc<Shard>) {
    if !shard.config.auto_leader_rebalance_enable {
        return;
    }
    let every =
        std::time::Duration::from_secs(shard.config.leader_imbalance_check_interval_seconds);
    let slots_skewed_before = std::cell::Cell::new(false);
    shard
        .every_until_shutdown(every, || async {
            rebalance_once(&shard).await;
            rebalance_coordinators(&shard, &slots_skewed_before).await;
        })
        .await;
}

/// One check: on the quorum leader, a preferred election for each imbalanced partition.
async fn rebalance_once(shard: &Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    if cluster.leader() != Some(shard.config.node_id) || shard.replaying_metadata() {
        return;
    }
    let snapshot = shard.metadata.load_full();
    let Some(state) = snapshot.cluster.as_deref() else {
        return;
    };
    let imbalanced = state.imbalanced_leaders(MAX_PREFERRED_ELECTIONS_PER_CHECK);
    if imbalanced.is_empty() {
        return;
    }
    let mut moved = 0usize;
    for (topic, partition) in &imbalanced {
        let record = MetadataRecord::ElectLeader {
            topic: topic.clone(),
            partition: *partition,
            unclean: false,
        };
        match cluster.propose(record).await {
            Ok(_) => moved += 1,
            // The state moved on since the scan (the replica fell out of sync, another
            // election ran): the next check looks again.
            Err((_, message)) => {
                tracing::debug!(%topic, partition, %message, "preferred election not applied")
            }
        }
    }
    tracing::info!(
        candidates = imbalanced.len(),
        moved,
        "auto leader rebalance: leadership moved back to preferred replicas"
    );
}

/// One check of the coordinator slots on the quorum leader: a `RebalanceCoordinators` when
/// they were skewed at this check and the one before (`skewed_before`).
async fn rebalance_coordinators(shard: &Rc<Shard>, skewed_before: &std::cell::Cell<bool>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    if cluster.leader() != Some(shard.config.node_id) || shard.replaying_metadata() {
        skewed_before.set(false);
        return;
    }
    let snapshot = shard.metadata.load_full();
    let skewed = snapshot
        .cluster
        .as_deref()
        .is_some_and(|s| s.coordinator_slots_skewed());
    if !(skewed && skewed_before.replace(skewed)) {
        skewed_before.set(skewed);
        return;
    }
    skewed_before.set(false);
    match cluster.propose(MetadataRecord::RebalanceCoordinators).await {
        Ok(_) => tracing::info!("coordinator slots evened out over the live brokers"),
        Err((_, message)) => tracing::debug!(%message, "coordinator rebalance not applied"),
    }
}
