//! Consumer group series: completed rebalances by group and consumer lag by group and
//! partition.
//!
//! Must not: compute lag (the group coordinator records it on its shard).

use super::text::Out;
use crate::metrics::ShardSnapshot;
use std::collections::BTreeMap;

/// Rebalances summed over shards; lag as the last shard reporting it says.
pub(super) fn write_groups(out: &mut Out, snapshots: &[ShardSnapshot]) {
    let mut rebalances: BTreeMap<&str, u64> = BTreeMap::new();
    let mut lag: BTreeMap<(&str, &str, i32), i64> = BTreeMap::new();
    for s in snapshots {
        for (g, n) in &s.group_rebalances {
            *rebalances.entry(g).or_default() += n;
        }
        for (g, t, p, l) in &s.consumer_lag {
            lag.insert((g, t, *p), *l);
        }
    }
    out.family(
        "sluice_group_rebalances_total",
        "counter",
        "Completed rebalances, by consumer group.",
    );
    for (g, n) in &rebalances {
        out.sample("sluice_group_rebalances_total", &[("group", g)], *n as f64);
    }
    out.family(
        "sluice_consumer_lag",
        "gauge",
        "Log end offset minus committed offset, by group and partition.",
    );
    for ((g, t, p), l) in &lag {
        out.sample(
            "sluice_consumer_lag",
            &[("group", g), ("topic", t), ("partition", &p.to_string())],
            *l as f64,
        );
    }
}
