//! What one ShareFetch may still take, shared by the partitions of its session while they
//! acquire in parallel on their owning shards: records (a hard limit: the request's
//! `max_records`, never exceeded however the partitions interleave) and bytes (a soft one, as
//! Kafka's `max_bytes`: a read never starts once it is spent, and the first batch is always
//! whole).
//!
//! Owns: the two counters. Must not: block (plain atomics; shards never wait on each other).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug)]
pub struct ShareFetchBudget {
    records_left: AtomicUsize,
    bytes_left: AtomicU64,
}

impl ShareFetchBudget {
    pub fn new(max_records: usize, max_bytes: u64) -> ShareFetchBudget {
        ShareFetchBudget {
            records_left: AtomicUsize::new(max_records),
            bytes_left: AtomicU64::new(max_bytes),
        }
    }

    pub fn records_left(&self) -> usize {
        self.records_left.load(Ordering::Acquire)
    }

    pub fn bytes_left(&self) -> u64 {
        self.bytes_left.load(Ordering::Acquire)
    }

    /// Claims every record still left (zero if none): the caller acquires at most that many
    /// and gives the unused part back at once (`give_back_records`).
    pub fn take_records(&self) -> usize {
        self.records_left.swap(0, Ordering::AcqRel)
    }

    pub fn give_back_records(&self, records: usize) {
        if records > 0 {
            self.records_left.fetch_add(records, Ordering::AcqRel);
        }
    }

    /// Counts bytes a read returned against the soft byte limit.
    pub fn spend_bytes(&self, bytes: u64) {
        let _ = self
            .bytes_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                Some(left.saturating_sub(bytes))
            });
    }
}
