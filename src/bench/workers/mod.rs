//! The benchmark's producer and consumer threads. Each producer owns one connection to each
//! partition leader it writes and keeps up to `max_in_flight` Produce requests outstanding on
//! it (pipelining: the producer writes, a reader thread per connection reads the answers);
//! each consumer owns one connection per leader and fetches its partitions. Both publish
//! progress through shared atomic counters and keep their own latency recorder, merged when
//! they finish.
//!
//! Files by role: `producer` (the producer loop and its batches), `pacing` (fixed-rate
//! batching), `pipeline` (the pipelined connection and its answer reader), `consumer`
//! (the fetch loop), `raw` (InitProducerId on a bare socket), `txn` (a transactional
//! producer's coordinator calls). This file owns what they
//! share: the counters and the worker result.
//!
//! Must not: print; the caller reports.

mod consumer;
mod pacing;
mod pipeline;
mod producer;
mod raw;
mod txn;

pub use consumer::{ConsumerPlan, run_consumer};
pub use producer::{ProducerPlan, TEMPLATES_PER_PARTITION, run_producer};
pub use raw::init_producer_id;

use super::stats::Recorder;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Largest response accepted on a raw connection (Produce answers, InitProducerId,
/// ApiVersions).
const RAW_RESPONSE_BYTES_MAX: usize = 1024 * 1024;

/// Progress counters shared by all workers, sampled once per interval for the timeline.
#[derive(Default)]
pub struct Counters {
    pub produced_records: AtomicU64,
    pub produced_payload_bytes: AtomicU64,
    pub produced_batch_bytes: AtomicU64,
    pub consumed_records: AtomicU64,
    pub consumed_payload_bytes: AtomicU64,
    pub consumed_batch_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Nanoseconds from the start to the latest fetch that returned records.
    pub last_consumed_ns: AtomicU64,
    /// Set when every producer has finished (e2e consumers then drain and stop).
    pub producers_done: AtomicBool,
    /// Set to stop everybody early (a fatal error).
    pub abort: AtomicBool,
    /// `--slow-log`: batch sends and slow records, noted as they happen.
    pub slow_log: Option<super::slow_log::SlowLog>,
}

/// What a worker reports when it stops.
pub struct WorkerResult {
    pub recorder: Recorder,
    pub error: Option<String>,
}

/// Adds one acknowledged (or, with acks=0, written) batch to the produced totals.
fn count_produced(counters: &Counters, records: usize, payload: usize, batch: usize) {
    counters
        .produced_records
        .fetch_add(records as u64, Ordering::Relaxed);
    counters
        .produced_payload_bytes
        .fetch_add(payload as u64, Ordering::Relaxed);
    counters
        .produced_batch_bytes
        .fetch_add(batch as u64, Ordering::Relaxed);
}
