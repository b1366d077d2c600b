//! A leader partition's replica set (issue 17, stage 2, decision 0012): each follower's log
//! end offset as its fetches report it, the in-sync replicas, and the high watermark they
//! give — the minimum log end offset over the ISR, never moving back. Consumers read below
//! it; an acks=all append completes when it passes the append (`Partition::wait_replicated`).
//! Lives on the partition's shard like the rest of the partition: `Cell`s, no locks.
//! Must not: decide ISR membership changes on its own (the metadata log does) or know about
//! requests.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::storage::notify::Event;

/// One follower's progress, from its fetches (Kafka's `Replica` state on the leader).
#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    id: i32,
    /// Its fetch offset: everything below is in its log. -1 until it first fetches.
    log_end_offset: i64,
    /// Last time (ms) its fetch reached the leader's log end (`replica.lag.time.max.ms`).
    caught_up_ms: i64,
}

/// The replicas of a partition this node leads, other than itself.
pub struct ReplicaSet {
    followers: RefCell<Vec<FollowerProgress>>,
    /// Followers in the ISR (the leader always is).
    in_sync: RefCell<Vec<i32>>,
    /// Kafka's `min.insync.replicas`, the leader included.
    min_insync_replicas: Cell<usize>,
    high_watermark: Cell<i64>,
    /// Fires when the high watermark moves (long polls and acks=all waits listen).
    moved: Rc<Event>,
}

impl ReplicaSet {
    /// `followers`: the other replicas, all in sync at the start (stage 2: the ISR is the
    /// replica set until shrink and expand land). `high_watermark`: where it starts.
    pub fn new(followers: &[i32], min_insync_replicas: usize, high_watermark: i64) -> ReplicaSet {
        ReplicaSet {
            followers: RefCell::new(
                followers
                    .iter()
                    .map(|&id| FollowerProgress {
                        id,
                        log_end_offset: -1,
                        caught_up_ms: -1,
                    })
                    .collect(),
            ),
            in_sync: RefCell::new(followers.to_vec()),
            min_insync_replicas: Cell::new(min_insync_replicas.max(1)),
            high_watermark: Cell::new(high_watermark),
            moved: Rc::new(Event::default()),
        }
    }

    /// The ISR's size, the leader included.
    pub fn in_sync_count(&self) -> usize {
        self.in_sync.borrow().len() + 1
    }

    pub fn min_insync_replicas(&self) -> usize {
        self.min_insync_replicas.get()
    }

    pub fn set_min_insync_replicas(&self, count: usize) {
        self.min_insync_replicas.set(count.max(1));
    }

    /// Whether `id` is one of this partition's followers.
    pub fn has_follower(&self, id: i32) -> bool {
        self.followers.borrow().iter().any(|f| f.id == id)
    }

    /// The high watermark with the leader's own log written up to `leader_end`: the
    /// smallest log end over the ISR, never below what it was.
    pub fn high_watermark(&self, leader_end: i64) -> i64 {
        let in_sync = self.in_sync.borrow();
        let lowest = self
            .followers
            .borrow()
            .iter()
            .filter(|f| in_sync.contains(&f.id))
            .map(|f| f.log_end_offset)
            .fold(leader_end, i64::min);
        let high_watermark = lowest.max(self.high_watermark.get());
        self.high_watermark.set(high_watermark);
        high_watermark
    }

    /// A follower fetched from `fetch_offset` (so holds everything below it) at `now_ms`,
    /// with the leader's log written up to `leader_end`. Wakes the waiters when the high
    /// watermark moved. Returns false for a broker that is not a follower of this partition.
    pub fn record_fetch(&self, id: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) -> bool {
        {
            let mut followers = self.followers.borrow_mut();
            let Some(f) = followers.iter_mut().find(|f| f.id == id) else {
                return false;
            };
            f.log_end_offset = fetch_offset.min(leader_end);
            if fetch_offset >= leader_end {
                f.caught_up_ms = now_ms;
            }
        }
        let before = self.high_watermark.get();
        if self.high_watermark(leader_end) != before {
            self.moved.notify();
        }
        true
    }

    /// Completes at the next move of the high watermark (owns its state: may be raced).
    pub fn wait_moved(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.moved.listen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_lowest_log_end_in_sync_and_never_moves_back() {
        let set = ReplicaSet::new(&[2, 3], 2, 0);
        assert_eq!(set.high_watermark(10), 0);
        assert!(set.record_fetch(2, 6, 10, 1));
        assert_eq!(set.high_watermark(10), 0, "follower 3 has nothing yet");
        assert!(set.record_fetch(3, 4, 10, 1));
        assert_eq!(set.high_watermark(10), 4);
        assert!(set.record_fetch(3, 10, 10, 2));
        assert_eq!(set.high_watermark(10), 6);
        // A fetch from an older offset (a follower that truncated) never lowers it.
        assert!(set.record_fetch(2, 3, 10, 3));
        assert_eq!(set.high_watermark(10), 6);
        assert!(!set.record_fetch(9, 10, 10, 3), "not a replica");
        assert_eq!(set.in_sync_count(), 3);
    }
}
