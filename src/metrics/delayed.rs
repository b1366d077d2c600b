//! Delayed delivery's numbers on one shard (issue 18): records pending in the delay log,
//! records delivered and dropped, and how late deliveries were. Recorded by the shard's
//! delay service, merged across shards by the renderer.

use super::histogram::LatencyHistogram;

#[derive(Clone, Debug, Default)]
pub struct DelayedDelivery {
    /// Records waiting in the shard's delay log (a gauge).
    pub pending: u64,
    /// Records appended to their partition since start.
    pub delivered: u64,
    /// Records dropped because their topic or partition was deleted while they waited.
    pub dropped: u64,
    /// Time from each record's due time to its append, in nanoseconds.
    pub lateness: LatencyHistogram,
}
