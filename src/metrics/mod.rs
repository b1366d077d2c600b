//! Per-shard metrics: recorded on the shard's own thread, merged only when read.
//!
//! Owns: [`ShardMetrics`] (one per shard thread, `!Sync`, plain `Cell`s and `RefCell`s — no
//! atomics or locks on the hot path), the plain-data [`ShardSnapshot`] a shard hands to the
//! admin thread, and the Prometheus rendering of merged snapshots ([`render_prometheus`]).
//! Must not: block, do I/O, or be touched from another thread; all cross-thread traffic is a
//! `snapshot()` sent over the shard's message channel. Names and buckets: `docs/metrics.md`.

mod api_names;
pub mod cleaner;
pub mod delayed;
mod histogram;
mod loop_sampler;
mod prometheus;
pub mod share;
pub mod stage_trace;

pub use api_names::{API_NAMES, UNKNOWN_API_NAME, api_name};
pub use histogram::{
    EXPORTED_QUANTILES, HISTOGRAM_HIGHEST_NS, HISTOGRAM_LOWEST_NS, HISTOGRAM_SIGNIFICANT_DIGITS,
    LATENCY_BUCKETS_SECONDS, LatencyHistogram,
};
pub use loop_sampler::LoopSampler;
pub use prometheus::{BrokerInfo, PROMETHEUS_CONTENT_TYPE, render_prometheus};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// API keys at or above this share one `unknown` slot (Kafka uses < 100 today).
pub const MAX_TRACKED_API_KEYS: usize = 128;
/// Loop time a busy-ratio window covers before it is published, in nanoseconds.
pub const BUSY_RATIO_WINDOW_NS: u64 = 1_000_000_000;
/// Distinct (api, error code) pairs, consumer-lag series and group rebalance series kept per
/// shard; past this new series are dropped (and counted) rather than growing without bound.
pub const MAX_LABELLED_SERIES_PER_SHARD: usize = 100_000;

/// Request latency of one API, split into the three stages a request goes through.
#[derive(Clone, Debug, Default)]
pub struct ApiLatency {
    /// From the frame being decoded to its handler starting (queueing + cross-shard hop).
    pub queue: LatencyHistogram,
    /// The handler's own work (including waiting on the owning shard).
    pub processing: LatencyHistogram,
    /// From the frame being decoded to its response being written.
    pub total: LatencyHistogram,
}

impl ApiLatency {
    fn add(&mut self, other: &ApiLatency) {
        self.queue.add(&other.queue);
        self.processing.add(&other.processing);
        self.total.add(&other.total);
    }
}

/// Traffic and storage state of one partition, recorded by the shard that owns it through an
/// `Rc` handle taken once when it opens the partition (no map lookup per request).
#[derive(Debug, Default)]
pub struct PartitionMetrics {
    enabled: bool,
    bytes_in: Cell<u64>,
    records_in: Cell<u64>,
    bytes_out: Cell<u64>,
    records_out: Cell<u64>,
    segments: Cell<u64>,
    size_bytes: Cell<u64>,
    log_start_offset: Cell<i64>,
    log_end_offset: Cell<i64>,
    last_stable_offset: Cell<i64>,
}

impl PartitionMetrics {
    /// One appended batch: its size as written to the log and its record count.
    #[inline]
    pub fn record_in(&self, bytes: u64, records: u64) {
        if !self.enabled {
            return;
        }
        self.bytes_in.set(self.bytes_in.get().wrapping_add(bytes));
        self.records_in
            .set(self.records_in.get().wrapping_add(records));
    }

    /// Batches handed to a fetch response: bytes sent and records they hold.
    #[inline]
    pub fn record_out(&self, bytes: u64, records: u64) {
        if !self.enabled {
            return;
        }
        self.bytes_out.set(self.bytes_out.get().wrapping_add(bytes));
        self.records_out
            .set(self.records_out.get().wrapping_add(records));
    }

    /// Storage gauges; call after an append that rolls a segment, after retention, after
    /// recovery (not necessarily on every append: `log_end` may lag by a timer tick).
    pub fn set_storage(&self, segments: u64, size_bytes: u64, log_start: i64, log_end: i64) {
        self.segments.set(segments);
        self.size_bytes.set(size_bytes);
        self.log_start_offset.set(log_start);
        self.log_end_offset.set(log_end);
    }

    /// The last stable offset (transactions): its distance to the log end is how much a
    /// read_committed consumer cannot read yet.
    pub fn set_last_stable_offset(&self, last_stable_offset: i64) {
        self.last_stable_offset.set(last_stable_offset);
    }

    fn snapshot(&self, topic: &str, partition: i32) -> PartitionSnapshot {
        PartitionSnapshot {
            topic: topic.to_string(),
            partition,
            bytes_in: self.bytes_in.get(),
            records_in: self.records_in.get(),
            bytes_out: self.bytes_out.get(),
            records_out: self.records_out.get(),
            segments: self.segments.get(),
            size_bytes: self.size_bytes.get(),
            log_start_offset: self.log_start_offset.get(),
            log_end_offset: self.log_end_offset.get(),
            last_stable_offset: self.last_stable_offset.get(),
        }
    }
}

/// Plain-data copy of one partition's metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
    pub segments: u64,
    pub size_bytes: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub last_stable_offset: i64,
}

/// A shard's storage health as plain data: its open-file budget (`storage::open_files`) and
/// the partitions it holds offline. Filled in by the shard when it answers a collection.
#[derive(Clone, Debug, Default)]
pub struct StorageHealth {
    pub open_files: u64,
    pub open_file_limit: u64,
    pub open_file_evictions: u64,
    pub open_file_reopens: u64,
    /// (topic, partition, why it is offline).
    pub offline_partitions: Vec<(String, i32, String)>,
}

/// Everything one shard recorded, as plain data: `Send + Clone`, built on the shard thread by
/// [`ShardMetrics::snapshot`] and merged on the admin thread.
#[derive(Clone, Debug, Default)]
pub struct ShardSnapshot {
    pub shard_id: usize,
    /// Latency by API key (only APIs that were seen).
    pub api_latency: Vec<(i16, ApiLatency)>,
    /// Error responses by (API key, Kafka error code).
    pub errors: Vec<((i16, i16), u64)>,
    pub connections: i64,
    pub connections_accepted: u64,
    /// Connections this shard took over from another (they serve its partitions).
    pub connections_moved_in: u64,
    /// Fetched file regions sent from the shard thread (all pages cached) and with io_uring splice.
    pub fetch_sends_cached: u64,
    pub fetch_sends_splice: u64,
    pub requests_in_flight: i64,
    /// Socket receives the connection readers made for request bytes (over TLS: reads of
    /// plaintext); against the request count, how many requests one receive carries.
    pub request_receives: u64,
    pub append: LatencyHistogram,
    pub fsync: LatencyHistogram,
    pub syncfs: LatencyHistogram,
    pub fetch_wait: LatencyHistogram,
    pub partitions: Vec<PartitionSnapshot>,
    pub group_rebalances: Vec<(String, u64)>,
    /// (group, topic, partition, lag).
    pub consumer_lag: Vec<(String, String, i32, i64)>,
    pub busy_ns_total: u64,
    pub idle_ns_total: u64,
    /// Busy share of the last complete window of [`BUSY_RATIO_WINDOW_NS`]; `None` before one.
    pub busy_ratio: Option<f64>,
    pub ring_depth: u64,
    /// Transactions open on the ids this shard coordinates.
    pub open_transactions: u64,
    /// Labelled series refused because a shard hit [`MAX_LABELLED_SERIES_PER_SHARD`].
    pub series_dropped: u64,
    pub cleaner: cleaner::CleanerCounters,
    pub storage: StorageHealth,
    pub delayed: delayed::DelayedDelivery,
    /// Share groups' state, read live by the shard when it answers a collection.
    pub share: share::ShareSeries,
}

/// One shard's metrics. Lives in an `Rc` on the shard thread; every method takes `&self`.
pub struct ShardMetrics {
    shard_id: usize,
    enabled: bool,
    /// Indexed by API key; allocated the first time a key is seen.
    api_latency: RefCell<Vec<Option<Box<ApiLatency>>>>,
    errors: RefCell<HashMap<(i16, i16), u64>>,
    connections: Cell<i64>,
    connections_accepted: Cell<u64>,
    connections_moved_in: Cell<u64>,
    fetch_sends_cached: Cell<u64>,
    fetch_sends_splice: Cell<u64>,
    in_flight: Cell<i64>,
    request_receives: Cell<u64>,
    append: RefCell<LatencyHistogram>,
    fsync: RefCell<LatencyHistogram>,
    syncfs: RefCell<LatencyHistogram>,
    fetch_wait: RefCell<LatencyHistogram>,
    partitions: RefCell<HashMap<(String, i32), Rc<PartitionMetrics>>>,
    group_rebalances: RefCell<HashMap<String, u64>>,
    consumer_lag: RefCell<HashMap<(String, String, i32), i64>>,
    busy_ns_total: Cell<u64>,
    idle_ns_total: Cell<u64>,
    window_busy_ns: Cell<u64>,
    window_idle_ns: Cell<u64>,
    busy_ratio: Cell<Option<f64>>,
    ring_depth: Cell<u64>,
    open_transactions: Cell<u64>,
    series_dropped: Cell<u64>,
    cleaner: Cell<cleaner::CleanerCounters>,
    delayed: RefCell<delayed::DelayedDelivery>,
}

impl ShardMetrics {
    /// `enabled = false` turns every `record_*` into an early return (for overhead runs);
    /// gauges that describe state (connections, storage) are still kept.
    pub fn new(shard_id: usize, enabled: bool) -> Self {
        ShardMetrics {
            shard_id,
            enabled,
            api_latency: RefCell::new(Vec::new()),
            errors: RefCell::new(HashMap::new()),
            connections: Cell::new(0),
            connections_accepted: Cell::new(0),
            connections_moved_in: Cell::new(0),
            fetch_sends_cached: Cell::new(0),
            fetch_sends_splice: Cell::new(0),
            in_flight: Cell::new(0),
            request_receives: Cell::new(0),
            append: RefCell::new(LatencyHistogram::new()),
            fsync: RefCell::new(LatencyHistogram::new()),
            syncfs: RefCell::new(LatencyHistogram::new()),
            fetch_wait: RefCell::new(LatencyHistogram::new()),
            partitions: RefCell::new(HashMap::new()),
            group_rebalances: RefCell::new(HashMap::new()),
            consumer_lag: RefCell::new(HashMap::new()),
            busy_ns_total: Cell::new(0),
            idle_ns_total: Cell::new(0),
            window_busy_ns: Cell::new(0),
            window_idle_ns: Cell::new(0),
            busy_ratio: Cell::new(None),
            ring_depth: Cell::new(0),
            open_transactions: Cell::new(0),
            series_dropped: Cell::new(0),
            cleaner: Cell::new(cleaner::CleanerCounters::default()),
            delayed: RefCell::new(delayed::DelayedDelivery::default()),
        }
    }

    pub fn shard_id(&self) -> usize {
        self.shard_id
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn api_slot(api_key: i16) -> usize {
        usize::try_from(api_key)
            .ok()
            .filter(|&k| k < MAX_TRACKED_API_KEYS - 1)
            .unwrap_or(MAX_TRACKED_API_KEYS - 1)
    }

    /// One answered request: time queued before its handler ran, time in the handler, and
    /// time from decode to the response being written (all nanoseconds).
    #[inline]
    pub fn record_request(
        &self,
        api_key: i16,
        queue_wait_ns: u64,
        processing_ns: u64,
        total_ns: u64,
    ) {
        if !self.enabled {
            return;
        }
        let slot = Self::api_slot(api_key);
        let mut table = self.api_latency.borrow_mut();
        if table.len() <= slot {
            table.resize_with(slot + 1, || None);
        }
        let latency = table[slot].get_or_insert_with(Box::default);
        latency.queue.record(queue_wait_ns);
        latency.processing.record(processing_ns);
        latency.total.record(total_ns);
    }

    /// One error code returned for `api_key` (a partition-level error counts once per partition).
    pub fn record_error(&self, api_key: i16, error_code: i16) {
        if !self.enabled {
            return;
        }
        let mut errors = self.errors.borrow_mut();
        let len = errors.len();
        match errors.get_mut(&(api_key, error_code)) {
            Some(n) => *n += 1,
            None if len < MAX_LABELLED_SERIES_PER_SHARD => {
                errors.insert((api_key, error_code), 1);
            }
            None => self.series_dropped.set(self.series_dropped.get() + 1),
        }
    }

    pub fn connection_opened(&self) {
        self.connections.set(self.connections.get() + 1);
        self.connections_accepted
            .set(self.connections_accepted.get() + 1);
    }

    /// A connection handed over by another shard (counted open here, not accepted).
    pub fn connection_moved_in(&self) {
        self.connections.set(self.connections.get() + 1);
        self.connections_moved_in
            .set(self.connections_moved_in.get() + 1);
    }

    /// One fetched file region sent: `cached` when it was spliced from the shard thread
    /// (every page cached), otherwise by splice on an io-wq worker. Kept even with metrics disabled: it is two
    /// additions per fetch, and tells an operator whether consumers read from memory.
    pub fn fetch_file_sent(&self, cached: bool) {
        let counter = if cached {
            &self.fetch_sends_cached
        } else {
            &self.fetch_sends_splice
        };
        counter.set(counter.get().wrapping_add(1));
    }

    pub fn connection_closed(&self) {
        self.connections.set(self.connections.get() - 1);
    }

    /// +1 when a request is decoded, -1 when its response is written (or dropped).
    pub fn in_flight_add(&self, delta: i64) {
        self.in_flight.set(self.in_flight.get() + delta);
    }

    /// One receive of request bytes by a connection reader.
    pub fn record_request_receive(&self) {
        if self.enabled {
            self.request_receives.set(self.request_receives.get() + 1);
        }
    }

    /// One fdatasync of a segment (a group commit counts once).
    #[inline]
    pub fn record_fsync(&self, ns: u64) {
        if self.enabled {
            self.fsync.borrow_mut().record(ns);
        }
    }

    /// One `syncfs` of the data directory's filesystem by a background flush (decision
    /// 0020): it made a whole tick's due partitions durable.
    #[inline]
    pub fn record_syncfs(&self, ns: u64) {
        if self.enabled {
            self.syncfs.borrow_mut().record(ns);
        }
    }

    /// One batch appended to a partition log (write submitted to completed).
    #[inline]
    pub fn record_append(&self, ns: u64) {
        if self.enabled {
            self.append.borrow_mut().record(ns);
        }
    }

    /// Time a fetch waited for data (`max_wait_ms` / `min_bytes` long-poll).
    #[inline]
    pub fn record_fetch_wait(&self, ns: u64) {
        if self.enabled {
            self.fetch_wait.borrow_mut().record(ns);
        }
    }

    /// The handle a shard records partition traffic through. Call once when the shard opens
    /// the partition and keep the `Rc`; calling again returns the same handle.
    pub fn partition(&self, topic: &str, partition: i32) -> Rc<PartitionMetrics> {
        let mut map = self.partitions.borrow_mut();
        if let Some(existing) = map.get(&(topic.to_string(), partition)) {
            return Rc::clone(existing);
        }
        let handle = Rc::new(PartitionMetrics {
            enabled: self.enabled,
            ..PartitionMetrics::default()
        });
        map.insert((topic.to_string(), partition), Rc::clone(&handle));
        handle
    }

    /// Forget a partition (deleted topic, or moved off this shard): its series disappear.
    pub fn remove_partition(&self, topic: &str, partition: i32) {
        self.partitions
            .borrow_mut()
            .remove(&(topic.to_string(), partition));
    }

    /// One completed rebalance (generation bump) of `group`.
    pub fn record_rebalance(&self, group: &str) {
        if !self.enabled {
            return;
        }
        let mut map = self.group_rebalances.borrow_mut();
        let len = map.len();
        match map.get_mut(group) {
            Some(n) => *n += 1,
            None if len < MAX_LABELLED_SERIES_PER_SHARD => {
                map.insert(group.to_string(), 1);
            }
            None => self.series_dropped.set(self.series_dropped.get() + 1),
        }
    }

    /// Log end offset minus committed offset, as of the group's last commit or lag refresh.
    pub fn set_consumer_lag(&self, group: &str, topic: &str, partition: i32, lag: i64) {
        if !self.enabled {
            return;
        }
        let mut map = self.consumer_lag.borrow_mut();
        let key = (group.to_string(), topic.to_string(), partition);
        let len = map.len();
        match map.get_mut(&key) {
            Some(v) => *v = lag,
            None if len < MAX_LABELLED_SERIES_PER_SHARD => {
                map.insert(key, lag);
            }
            None => self.series_dropped.set(self.series_dropped.get() + 1),
        }
    }

    /// Drop every series of a group (deleted, or its offsets expired).
    pub fn remove_group(&self, group: &str) {
        self.consumer_lag
            .borrow_mut()
            .retain(|(g, _, _), _| g != group);
        self.group_rebalances.borrow_mut().remove(group);
    }

    /// Busy and idle time of the shard's event loop since the last call (e.g. from
    /// [`LoopSampler::sample`] on the shard's periodic timer, or measured per loop iteration).
    /// Feeds the busy/idle counters and the windowed busy ratio.
    #[inline]
    pub fn record_loop(&self, busy_ns: u64, idle_ns: u64) {
        self.busy_ns_total
            .set(self.busy_ns_total.get().wrapping_add(busy_ns));
        self.idle_ns_total
            .set(self.idle_ns_total.get().wrapping_add(idle_ns));
        let busy = self.window_busy_ns.get().saturating_add(busy_ns);
        let idle = self.window_idle_ns.get().saturating_add(idle_ns);
        if busy.saturating_add(idle) >= BUSY_RATIO_WINDOW_NS {
            self.busy_ratio
                .set(Some(busy as f64 / (busy + idle) as f64));
            self.window_busy_ns.set(0);
            self.window_idle_ns.set(0);
        } else {
            self.window_busy_ns.set(busy);
            self.window_idle_ns.set(idle);
        }
    }

    /// Delayed records pending on this shard (the delay service sets it).
    pub fn set_delayed_pending(&self, pending: u64) {
        self.delayed.borrow_mut().pending = pending;
    }

    /// One delivery of `records` records appended `lateness_ns` after their due times.
    pub fn record_delivered(&self, lateness_ns: impl IntoIterator<Item = u64>) {
        let mut d = self.delayed.borrow_mut();
        for late in lateness_ns {
            d.lateness.record(late);
            d.delivered += 1;
        }
    }

    /// Delayed records dropped (their partition was deleted).
    pub fn record_delayed_dropped(&self, records: u64) {
        self.delayed.borrow_mut().dropped += records;
    }

    /// Transactions open on the ids this shard coordinates (the transaction timer sets it).
    pub fn set_open_transactions(&self, open: u64) {
        self.open_transactions.set(open);
    }

    /// One log cleaner pass finished (recorded even with metrics disabled: it is rare).
    pub fn record_clean(
        &self,
        stats: &crate::storage::cleaner::CleanStats,
        took: std::time::Duration,
    ) {
        let mut c = self.cleaner.get();
        c.add_pass(stats, took);
        self.cleaner.set(c);
    }

    pub fn record_clean_failure(&self) {
        let mut c = self.cleaner.get();
        c.failures += 1;
        self.cleaner.set(c);
    }

    pub fn set_cleaner_time_behind_ms(&self, ms: i64) {
        let mut c = self.cleaner.get();
        c.time_behind_ms = ms;
        self.cleaner.set(c);
    }

    /// io_uring submissions in flight on this shard's ring.
    pub fn set_ring_depth(&self, depth: u64) {
        self.ring_depth.set(depth);
    }

    /// Copies everything into plain data for another thread. Never hold across an `.await`.
    pub fn snapshot(&self) -> ShardSnapshot {
        let api_latency = self
            .api_latency
            .borrow()
            .iter()
            .enumerate()
            .filter_map(|(slot, l)| {
                let key = if slot == MAX_TRACKED_API_KEYS - 1 {
                    -1
                } else {
                    slot as i16
                };
                l.as_ref().map(|l| (key, (**l).clone()))
            })
            .collect();
        let mut partitions: Vec<PartitionSnapshot> = self
            .partitions
            .borrow()
            .iter()
            .map(|((t, p), m)| m.snapshot(t, *p))
            .collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        ShardSnapshot {
            shard_id: self.shard_id,
            api_latency,
            errors: self.errors.borrow().iter().map(|(k, v)| (*k, *v)).collect(),
            connections: self.connections.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_moved_in: self.connections_moved_in.get(),
            fetch_sends_cached: self.fetch_sends_cached.get(),
            fetch_sends_splice: self.fetch_sends_splice.get(),
            requests_in_flight: self.in_flight.get(),
            request_receives: self.request_receives.get(),
            append: self.append.borrow().clone(),
            fsync: self.fsync.borrow().clone(),
            syncfs: self.syncfs.borrow().clone(),
            fetch_wait: self.fetch_wait.borrow().clone(),
            partitions,
            group_rebalances: self
                .group_rebalances
                .borrow()
                .iter()
                .map(|(g, n)| (g.clone(), *n))
                .collect(),
            consumer_lag: self
                .consumer_lag
                .borrow()
                .iter()
                .map(|((g, t, p), lag)| (g.clone(), t.clone(), *p, *lag))
                .collect(),
            busy_ns_total: self.busy_ns_total.get(),
            idle_ns_total: self.idle_ns_total.get(),
            busy_ratio: self.busy_ratio.get(),
            ring_depth: self.ring_depth.get(),
            open_transactions: self.open_transactions.get(),
            series_dropped: self.series_dropped.get(),
            cleaner: self.cleaner.get(),
            storage: StorageHealth::default(),
            delayed: self.delayed.borrow().clone(),
            share: share::ShareSeries::default(),
        }
    }
}

/// Merges request latency across shards (used by the renderer; public for `sluice top` tests).
pub fn merge_api_latency(snapshots: &[ShardSnapshot]) -> Vec<(i16, ApiLatency)> {
    let mut merged: Vec<(i16, ApiLatency)> = Vec::new();
    for snap in snapshots {
        for (key, latency) in &snap.api_latency {
            match merged.iter_mut().find(|(k, _)| k == key) {
                Some((_, m)) => m.add(latency),
                None => merged.push((*key, latency.clone())),
            }
        }
    }
    merged.sort_by_key(|(k, _)| *k);
    merged
}

#[cfg(test)]
mod tests;
