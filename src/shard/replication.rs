//! The follower side of replication on the shards (issue 17, decision 0012): every shard
//! runs the replica fetchers (`cluster::replica_fetcher`) of the follower partitions it
//! owns, one per other broker, on its own loop, and appends their answers where they
//! arrive, as the leader wrote them; each partition's new log end offset is the fetcher's
//! next fetch offset. Also opens, at start-up and after metadata changes, the partitions
//! this node follows (kept in `Shard::followers`, never served to clients: they answer
//! NOT_LEADER_OR_FOLLOWER as a missing partition does).
//! And the leaders' side of the ISR: every `replica.lag.time.max.ms / 2` each shard looks
//! at the partitions it leads and proposes an AlterPartition through the metadata log when
//! a follower fell behind or caught up again (`isr_loop`); the applied change reaches the
//! partition's `ReplicaSet` (`shard::failover`).
//! Must not: speak the wire protocol (the fetchers do) or decide who leads (metadata does).

use super::{PartitionSlot, Shard};
use crate::cluster::replica_fetcher::{
    self, AnswerSource, Appender, ReplicaEnd, ReplicaItem, ReplicaPosition,
};
use crate::metadata::replicated::MetadataRecord;
use crate::partition::Partition;
use crate::partition::replicas::LeaderPosition;
use std::rc::Rc;

/// Starts this shard's replica fetchers, one per other voter (every broker is a voter in
/// combined mode, so these are every leader this node may follow). They run until the
/// cluster handle's replication stop is set or the shard stops.
pub(super) async fn start_fetchers(shard: Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    let voters = match shard.config.quorum_voters() {
        Ok(Some(voters)) => voters,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "no replica fetchers: the quorum voters do not parse");
            return;
        }
    };
    let security = match shard.config.inter_broker_security() {
        Ok(security) => std::sync::Arc::new(security),
        Err(e) => {
            // Checked at start-up (`BrokerConfig::validate`): not reached with a loaded config.
            tracing::error!(error = %e, "no replica fetchers: the inter-broker settings do not resolve");
            return;
        }
    };
    let node = shard.config.node_id;
    for leader in voters.iter().map(|v| v.id).filter(|&id| id != node) {
        let appender = ShardAppender {
            shard: shard.clone(),
        };
        let fetcher = replica_fetcher::run(
            node,
            leader,
            security.clone(),
            shard.metadata.clone(),
            appender,
            cluster.replication_stop.clone(),
        );
        compio::runtime::spawn(fetcher).detach();
    }
}

/// The shard a fetcher runs on: it fetches the partitions this shard owns and appends
/// them here, without crossing to another shard.
struct ShardAppender {
    shard: Rc<Shard>,
}

impl Appender for ShardAppender {
    fn owns(&self, topic: &str, partition: i32) -> bool {
        self.shard.owner_of_partition(topic, partition) == self.shard.id
    }

    /// Each item on its own, at once: the appends of several partitions overlap their
    /// writes.
    async fn apply(&self, mut items: Vec<ReplicaItem>) -> Vec<ReplicaPosition> {
        // Counted before the append takes the buffers; paid after (the next fetch waits).
        let throttled = super::replica_throttle::throttled_bytes(&self.shard, &items);
        // One partition (a busy partition's steady state): no join machinery.
        let positions = if items.len() == 1
            && let Some(item) = items.pop()
        {
            vec![apply_item(&self.shard, item).await]
        } else {
            let calls = items.into_iter().map(|item| apply_item(&self.shard, item));
            futures_util::future::join_all(calls).await
        };
        if throttled > 0 {
            super::replica_throttle::pause(&self.shard, throttled).await;
        }
        positions
    }

    fn stopping(&self) -> bool {
        self.shard.shutting_down.get()
    }
}

/// Appends one partition's fetched batches on its owning shard (or truncates it to its
/// leader's log first); returns its log end and newest epoch.
async fn apply_item(shard: &Rc<Shard>, item: ReplicaItem) -> ReplicaPosition {
    let super::Lookup::Online(mut partition) = shard.followers.get(&item.topic, item.partition)
    else {
        return None;
    };
    if let Some(source) = item.source
        && !answer_is_current(shard, &item, &source, partition.log_end_offset())
    {
        return None;
    }
    if let Some((leader_epoch, leader_end)) = item.truncate {
        let (truncated, complete) = truncate(
            shard,
            &item.topic,
            item.partition,
            partition,
            leader_epoch,
            leader_end,
        )
        .await;
        partition = truncated?;
        if !complete {
            // KIP-279: the fetcher forgets the partition and checks it again, with the
            // newest epoch the cut log has now, before it fetches.
            return None;
        }
    }
    if let Some(leader_start) = item.reset_to {
        partition = reset(shard, &item.topic, item.partition, partition, leader_start).await?;
    }
    let appended = match item.records {
        Some(batches) => partition
            .append_replicated(batches, item.high_watermark, super::now_ms())
            .await
            .map(|_| ()),
        None => {
            partition.note_leader_high_watermark(item.high_watermark);
            Ok(())
        }
    };
    let followed = match appended {
        Ok(()) if item.log_start_offset > partition.log_start_offset() => {
            partition
                .follow_leader_log_start(item.log_start_offset)
                .await
        }
        other => other,
    };
    match followed {
        Ok(()) => Some(end_of(&partition)),
        Err(e) => {
            tracing::warn!(
                topic = %item.topic,
                partition = item.partition,
                error = %e,
                "replicated batches or the leader's log start not applied"
            );
            if matches!(e, crate::storage::StorageError::Offline { .. }) {
                return None;
            }
            Some(end_of(&partition))
        }
    }
}

/// Whether a leader's answer may still change this follower (`AnswerSource`): the
/// partition's leader and leader epoch are still the ones it was asked under, and records
/// start where the log ends now. A stale one is dropped, and logged: it was in flight while
/// leadership moved or another fetcher changed the log.
fn answer_is_current(
    shard: &Shard,
    item: &ReplicaItem,
    source: &AnswerSource,
    log_end: i64,
) -> bool {
    let snapshot = shard.metadata.load();
    let now = snapshot.cluster.as_deref().map(|c| {
        let leader = c.leader(&item.topic, item.partition);
        (leader, c.leader_epoch(&item.topic, item.partition))
    });
    let same_leader = now == Some((Some(source.leader), source.leader_epoch));
    let same_end = source.fetch_offset.is_none_or(|asked| asked == log_end);
    if !(same_leader && same_end) {
        tracing::info!(
            topic = %item.topic,
            partition = item.partition,
            from_leader = source.leader,
            asked_in_epoch = source.leader_epoch,
            asked_from = ?source.fetch_offset,
            now = ?now,
            log_end,
            "a stale answer from a leader dropped; the partition is checked again"
        );
    }
    same_leader && same_end
}

fn end_of(partition: &crate::partition::Partition) -> ReplicaEnd {
    ReplicaEnd {
        log_end_offset: partition.log_end_offset(),
        log_start_offset: partition.log_start_offset(),
        latest_epoch: partition.latest_cached_epoch(),
    }
}

/// KIP-101/279 on the follower: the leader says its log holds epoch `leader_epoch` up to
/// `leader_end`. Anything of ours past the point where both logs agree is a divergent tail
/// (appended by a deposed leader, never acknowledged at acks=all) and is truncated before
/// the next fetch (`truncation_target`). Returns the (reopened) follower, and whether the
/// check is complete: false when another round must follow (KIP-279).
async fn truncate(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    follower: Rc<Partition>,
    leader_epoch: i32,
    leader_end: i64,
) -> (Option<Rc<Partition>>, bool) {
    if leader_epoch < 0 || leader_end < 0 {
        // The leader knows none of our epochs: nothing to compare; fetch from our end.
        return (Some(follower), true);
    }
    let ours = follower.end_offset_for_epoch(leader_epoch);
    let log_end = follower.log_end_offset();
    let (target, complete) = truncation_target(ours, log_end, (leader_epoch, leader_end));
    if target >= log_end {
        // Nothing to cut, so a new round would ask the same again: fetch from our end.
        return (Some(follower), true);
    }
    tracing::info!(
        topic,
        partition,
        from = follower.log_end_offset(),
        to = target,
        leader_epoch,
        check_again = !complete,
        "truncating a divergent tail"
    );
    let outcome = follower.truncate_to(target).await;
    (replace_follower(shard, topic, partition, outcome), complete)
}

/// Kafka's `getOffsetTruncationState`: where a follower whose log ends at `log_end` cuts it,
/// given `ours` = (its newest epoch at or below the leader's answered epoch, where that
/// epoch ends in its log; -1 end: none) and the leader's answer (epoch, end offset) for the
/// follower's newest epoch; and whether the check is complete. The same epoch on both
/// sides: the logs agree up to where the shorter one ends it, complete. An epoch the
/// follower never had: both logs agree at most up to where the follower's older epoch and
/// the leader's answered one end, and maybe less (the older epoch may have diverged inside
/// too), so the follower asks again with the newest epoch of its cut log (KIP-279's
/// repeated rounds). No epoch of ours at or below it: the leader's end, complete.
fn truncation_target(ours: (i32, i64), log_end: i64, leader: (i32, i64)) -> (i64, bool) {
    let ((our_epoch, our_end), (leader_epoch, leader_end)) = (ours, leader);
    if our_end < 0 {
        return (leader_end.min(log_end), true);
    }
    let target = our_end.min(leader_end).min(log_end);
    (target, our_epoch == leader_epoch)
}

/// A follower whose log end is below its leader's log start (the leader's retention or
/// DeleteRecords passed it while it was away) has nothing the leader can extend: its log is
/// emptied and restarted at the leader's log start. Returns the (reopened) follower.
async fn reset(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    follower: Rc<Partition>,
    leader_start: i64,
) -> Option<Rc<Partition>> {
    if leader_start <= follower.log_end_offset() {
        // Answered for an older fetch offset: our log already reaches the leader's start.
        return Some(follower);
    }
    tracing::info!(
        topic,
        partition,
        log_end = follower.log_end_offset(),
        leader_start,
        "behind the leader's log start: restarting the follower's log there"
    );
    let outcome = follower.reset_to(leader_start).await;
    replace_follower(shard, topic, partition, outcome)
}

/// Puts the follower object over a reopened log in the shard's table (or marks the copy
/// offline when reopening failed).
fn replace_follower(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    outcome: Result<Partition, crate::storage::StorageError>,
) -> Option<Rc<Partition>> {
    match outcome {
        Ok(next) => {
            let next = Rc::new(next);
            shard
                .followers
                .insert(topic, partition, PartitionSlot::Online(next.clone()));
            Some(next)
        }
        Err(e) => {
            tracing::error!(topic, partition, error = %e, "the follower copy is offline: its log could not be reopened");
            shard
                .followers
                .insert(topic, partition, PartitionSlot::Offline(e.to_string()));
            None
        }
    }
}

/// Proposes the ISR changes this node's led partitions need, on every shard, every half
/// `replica.lag.time.max.ms` (Kafka's ISR check interval), until shutdown (shard 0).
pub(super) async fn isr_loop(shard: Rc<Shard>) {
    let lag_max_ms = shard.config.replica_lag_time_max_ms;
    let every = std::time::Duration::from_millis((lag_max_ms / 2).max(1));
    shard
        .every_until_shutdown(every, || async {
            shard.invoke_on_all(propose_isr_changes).await;
        })
        .await;
}

/// On one shard: an AlterPartition for each led partition whose ISR should change. One
/// change per partition is in flight at a time (`ReplicaSet::isr_to_propose`); one whose
/// answer was lost (a timeout, a controller change) is proposed again, and refused at
/// apply (stale epoch) if its first copy was applied after all: harmless.
async fn propose_isr_changes(shard: Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    // Before this start's registration applies, what this node leads may be an earlier
    // start's leaderships, which that registration ends: they change nothing (`Shard::led`).
    if !cluster
        .registered_since_start
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return;
    }
    let node = shard.config.node_id;
    for (topic, partition, p) in shard.partitions.all_online() {
        let Some(set) = p.replicas() else {
            continue;
        };
        // Read per partition: a proposal before this one may have waited for the controller
        // (up to its timeout), and a clock read before it would understate every lag after.
        let now = super::now_ms();
        let snapshot = shard.metadata.load_full();
        let Some(state) = snapshot.cluster.as_deref() else {
            return;
        };
        let partition_epoch = state.partition_epoch(&topic, partition);
        let leader = LeaderPosition {
            id: node,
            log_end: p.log_end_offset(),
            epoch_start: p.leader_epoch_start_offset(),
        };
        let eligible = |id| state.is_live(id);
        let Some(isr) = set.isr_to_propose(leader, partition_epoch, now, eligible) else {
            continue;
        };
        let record = MetadataRecord::AlterPartition {
            partition_epoch,
            topic: topic.clone(),
            partition,
            isr: isr.clone(),
        };
        match cluster.propose(record).await {
            Ok(_) => tracing::info!(%topic, partition, ?isr, "ISR changed"),
            Err((code, message)) => {
                // Decided and refused while the epoch stands: it will never apply. A
                // timeout or a lost controller leaves it undecided (in flight).
                let undecided = code == kafka_protocol::ResponseError::RequestTimedOut.code()
                    || code == kafka_protocol::ResponseError::NotController.code();
                let epoch_now = shard
                    .metadata
                    .load()
                    .cluster
                    .as_deref()
                    .map(|state| state.partition_epoch(&topic, partition));
                if !undecided && epoch_now == Some(partition_epoch) {
                    set.proposal_refused(partition_epoch);
                }
                tracing::debug!(%topic, partition, code, %message, "ISR change not applied")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncation_target;

    #[test]
    fn the_same_epoch_on_both_sides_completes_the_check() {
        // Ours: epoch 3 from 100 to the end at 150; the leader's epoch 3 ends at 120.
        assert_eq!(truncation_target((3, 150), 150, (3, 120)), (120, true));
        // The leader's epoch 3 goes on past ours: nothing to cut.
        assert_eq!(truncation_target((3, 150), 150, (3, 200)), (150, true));
    }

    #[test]
    fn an_epoch_the_follower_never_had_asks_again_after_the_cut() {
        // KIP-279's case. Follower: epoch 1 over 0..100, epoch 3 over 100..150. Leader:
        // epoch 1 over 0..50, epoch 2 over 50..70, epoch 4 from 70. Asked for epoch 3,
        // the leader answers epoch 2 ending at 70; the follower's newest epoch at or below
        // 2 is 1, ending at 100 in its log.
        let first = truncation_target((1, 100), 150, (2, 70));
        assert_eq!(first, (70, false), "cut to 70 and ask again");
        // Asked again for epoch 1 (its newest now), the leader answers epoch 1 ending at
        // 50: the follower's 50..70 were its own epoch 1, never the leader's.
        assert_eq!(truncation_target((1, 70), 70, (1, 50)), (50, true));
    }

    #[test]
    fn no_epoch_of_ours_at_or_below_the_answer_takes_the_leaders_end() {
        assert_eq!(truncation_target((-1, -1), 150, (2, 70)), (70, true));
        assert_eq!(truncation_target((-1, -1), 40, (2, 70)), (40, true));
    }
}
