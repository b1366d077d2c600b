//! Share-group families (KIP-932): members by group; records available and acquired, the
//! highest delivery count in flight, fetches waiting their turn and lag, by group and
//! partition. Each partition's series comes from its one owning shard.

use super::super::ShardSnapshot;
use super::super::share::SharePartitionSeries;
use super::text::Out;

/// A per-partition gauge family: name, help and the value it reads.
type Gauge = (&'static str, &'static str, fn(&SharePartitionSeries) -> f64);

pub(super) fn write_share(out: &mut Out, snapshots: &[ShardSnapshot]) {
    out.family(
        "sluice_share_group_members",
        "gauge",
        "Members of a share group.",
    );
    for s in snapshots {
        for (group, members) in &s.share.members {
            out.sample(
                "sluice_share_group_members",
                &[("group", group)],
                *members as f64,
            );
        }
    }
    let series = || snapshots.iter().flat_map(|s| s.share.partitions.iter());
    out.family(
        "sluice_share_records",
        "gauge",
        "In-flight records of a share group on a partition, by state (available, acquired, acknowledged, archiving: waiting for the dead-letter topic, archived).",
    );
    for p in series() {
        let partition = p.partition.to_string();
        let states = [
            ("available", p.available),
            ("acquired", p.acquired),
            ("acknowledged", p.acknowledged),
            ("archiving", p.archiving),
            ("archived", p.archived),
        ];
        for (state, count) in states {
            out.sample(
                "sluice_share_records",
                &[
                    ("group", &p.group),
                    ("topic", &p.topic),
                    ("partition", &partition),
                    ("state", state),
                ],
                count as f64,
            );
        }
    }
    let gauges: [Gauge; 3] = [
        (
            "sluice_share_delivery_count_max",
            "Highest delivery count among a share group's in-flight records on a partition.",
            |p| f64::from(p.delivery_count_max),
        ),
        (
            "sluice_share_fetches_waiting",
            "ShareFetches of a share group waiting their turn on a partition.",
            |p| p.fetches_waiting as f64,
        ),
        (
            "sluice_share_lag",
            "High watermark minus a share group's start offset on a partition: records not yet acknowledged or archived.",
            |p| p.lag as f64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        for p in series() {
            out.sample(
                name,
                &[
                    ("group", &p.group),
                    ("topic", &p.topic),
                    ("partition", &p.partition.to_string()),
                ],
                value(p),
            );
        }
    }
}
