//! Consumer-group metrics a shard publishes for the groups it coordinates: completed
//! rebalances (from the coordinator's per-group totals) and consumer lag (log end minus
//! committed offset, the log end asked of each partition's owning shard); and, for the
//! partitions it owns, share groups' lag (high watermark minus the share-partition start
//! offset: records not yet acknowledged or archived), on the same series.
//!
//! Runs from the maintenance loop, at most every `GROUP_METRICS_INTERVAL`, never on a
//! request path. Must not: change group or partition state.

use super::{Lookup, Shard};
use crate::metrics::share::{MAX_SHARE_SERIES_PER_SHARD, SharePartitionSeries, ShareSeries};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often rebalance counts and consumer lag are refreshed.
pub const GROUP_METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// What the previous refresh saw, to turn cumulative counts into increments.
#[derive(Default)]
pub struct GroupMetricsState {
    last_run: Option<Instant>,
    rebalances_seen: HashMap<String, u64>,
    groups_with_series: HashSet<String>,
}

impl GroupMetricsState {
    /// Refreshes the metrics when the interval has passed since the last refresh.
    pub async fn maybe_refresh(&mut self, shard: &Rc<Shard>, now: Instant) {
        if self
            .last_run
            .is_some_and(|t| now.duration_since(t) < GROUP_METRICS_INTERVAL)
        {
            return;
        }
        self.last_run = Some(now);
        self.refresh(shard).await;
    }

    async fn refresh(&mut self, shard: &Rc<Shard>) {
        let mut present: HashSet<String> = HashSet::new();
        for (group, total) in shard.groups.rebalance_counts() {
            let seen = self.rebalances_seen.get(&group).copied().unwrap_or(0);
            for _ in seen..total {
                shard.metrics.record_rebalance(&group);
            }
            self.rebalances_seen.insert(group.clone(), total);
            present.insert(group);
        }
        // One cross-shard call per owning shard with every partition it must answer for.
        let committed = shard.groups.committed_offsets();
        let mut by_owner: BTreeMap<usize, Vec<(String, i32)>> = BTreeMap::new();
        for (_, topic, partition, _) in &committed {
            let owner = shard.owner_of_partition(topic, *partition);
            by_owner
                .entry(owner)
                .or_default()
                .push((topic.clone(), *partition));
        }
        let mut ends: HashMap<(String, i32), i64> = HashMap::new();
        for (owner, mut wanted) in by_owner {
            wanted.sort();
            wanted.dedup();
            let asked = wanted.clone();
            let answer = shard
                .invoke_on(owner, move |s| async move {
                    asked
                        .iter()
                        .map(|(t, p)| match s.partitions.get(t, *p) {
                            Lookup::Online(online) => Some(online.high_watermark()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                })
                .await;
            if let Ok(found) = answer {
                for (key, end) in wanted.into_iter().zip(found) {
                    if let Some(end) = end {
                        ends.insert(key, end);
                    }
                }
            }
        }
        for (group, topic, partition, offset) in committed {
            if let Some(end) = ends.get(&(topic.clone(), partition)) {
                shard
                    .metrics
                    .set_consumer_lag(&group, &topic, partition, (end - offset).max(0));
            }
            present.insert(group);
        }
        for (group, topic, partition, lag) in share_lags(shard) {
            shard
                .metrics
                .set_consumer_lag(&group, &topic, partition, lag);
            present.insert(group);
        }
        // Deleted or expired groups: their series go away.
        for gone in self.groups_with_series.difference(&present) {
            shard.metrics.remove_group(gone);
            self.rebalances_seen.remove(gone);
        }
        self.groups_with_series = present;
    }
}

/// The share-group series this shard reports, read live: every share group's state on the
/// partitions it owns and the members of the share groups it coordinates.
pub fn share_series(shard: &Shard) -> ShareSeries {
    let mut series = ShareSeries {
        members: shard
            .groups
            .share_group_members()
            .into_iter()
            .map(|(g, n)| (g, n as u64))
            .collect(),
        ..ShareSeries::default()
    };
    // In place: a partition no share group reads costs no copy of its name.
    shard.partitions.for_each_online(|topic, partition, p| {
        let counts = p.share_counts_in_memory();
        if counts.is_empty() {
            return;
        }
        let high_watermark = p.high_watermark();
        for (group, c) in counts {
            if series.partitions.len() >= MAX_SHARE_SERIES_PER_SHARD {
                series.dropped += 1;
                continue;
            }
            series.partitions.push(SharePartitionSeries {
                fetches_waiting: p.share_fetches_waiting(&group) as u64,
                group,
                topic: topic.to_string(),
                partition,
                available: c.available,
                acquired: c.acquired,
                acknowledged: c.acknowledged,
                archived: c.archived,
                archiving: c.archiving,
                delivery_count_max: c.delivery_count_max,
                lag: (high_watermark - c.start_offset).max(0),
            });
        }
    });
    series
}

/// (group, topic, partition, lag) of every share group on the partitions this shard owns.
fn share_lags(shard: &Shard) -> Vec<(String, String, i32, i64)> {
    let mut out = Vec::new();
    shard.partitions.for_each_online(|topic, partition, p| {
        let counts = p.share_counts_in_memory();
        if counts.is_empty() {
            return;
        }
        let high_watermark = p.high_watermark();
        for (group, c) in counts {
            out.push((
                group,
                topic.to_string(),
                partition,
                (high_watermark - c.start_offset).max(0),
            ));
        }
    });
    out
}
