//! Share-group series (KIP-932) as plain data, read live when `/metrics` is collected: per
//! share group and partition, from the share-partition state on the partition's owning
//! shard (records available and acquired, the highest delivery count in flight, fetches
//! waiting their turn, lag), and per share group its members, from the group's shard.
//!
//! Must not: be recorded on a request path (the collector reads the state it describes).

/// One share group's state on one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharePartitionSeries {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// In-flight records a fetch may acquire now (released, or past their lock).
    pub available: u64,
    /// Records acquired by a member and not yet settled (the in-flight locks).
    pub acquired: u64,
    /// In-flight records settled as accepted, archived (rejected, or past the delivery
    /// count limit), and waiting for their dead-letter append (KIP-1191), inside the window
    /// the start offset has not yet passed.
    pub acknowledged: u64,
    pub archived: u64,
    pub archiving: u64,
    /// Highest delivery count among in-flight records (0: none in flight).
    pub delivery_count_max: u16,
    /// ShareFetches of the group waiting their turn here.
    pub fetches_waiting: u64,
    /// High watermark minus the share-partition start offset: records not yet settled.
    pub lag: i64,
}

/// Share-group series one shard reports; beyond it the rest are counted as dropped
/// (`sluice_metrics_series_dropped_total`), like the other labelled series.
pub const MAX_SHARE_SERIES_PER_SHARD: usize = 10_000;

/// What one shard reports.
#[derive(Clone, Debug, Default)]
pub struct ShareSeries {
    pub partitions: Vec<SharePartitionSeries>,
    /// (group, members) of the share groups this shard coordinates.
    pub members: Vec<(String, u64)>,
    /// Series left out past [`MAX_SHARE_SERIES_PER_SHARD`].
    pub dropped: u64,
}
