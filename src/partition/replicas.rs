//! A leader partition's replica set (issue 17, stage 2, decision 0012): each follower's log
//! end offset as its fetches report it, the in-sync replicas, and the high watermark they
//! give — the minimum log end offset over the ISR, never moving back. Consumers read below
//! it; an acks=all append completes when it passes the append (`Partition::wait_replicated`).
//! Lives on the partition's shard like the rest of the partition: `Cell`s, no locks.
//! While an ISR change this leader proposed is undecided, the high watermark counts the
//! followers it would add (Kafka's "maximal ISR", KIP-497): a follower admitted with the
//! log end it had when proposed must still hold every record acknowledged meanwhile, or
//! electing it (a reassignment's completion, a failover) loses them.
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
    /// The log start its fetches report (Fetch v5+): DeleteRecords waits for it. -1 until
    /// it first reports one (Kafka's unknown offset, which holds the low watermark down).
    log_start_offset: i64,
    /// Last time (ms) it held everything the leader had (`replica.lag.time.max.ms`).
    caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch: a fetch from at least that
    /// offset shows it was caught up then, even under a steady stream of appends (Kafka's
    /// `lastFetchLeaderLogEndOffset` rule).
    previous_fetch_leader_end: i64,
    previous_fetch_ms: i64,
    /// `caught_up_ms` comes from its fetches (not from when the leader started counting).
    caught_up_by_fetch: bool,
    /// Out of the ISR but caught up by its fetches within the lag bound, and eligible: the
    /// high watermark waits for it (Kafka's `shouldWaitForReplicaToJoinIsr`). Kept, not
    /// derived when read: the high watermark is read without a clock, so this is settled
    /// at each of its fetches and at each ISR round (`wanted_isr`). Without it,
    /// under a steady stream of appends the high watermark runs at the leader's end, a
    /// follower a round behind never reaches it, and never rejoins the ISR.
    waited_for: bool,
    /// Not fenced nor shutting down, as of the last ISR round (`wanted_isr`).
    eligible: bool,
}

impl FollowerProgress {
    fn new(id: i32, now_ms: i64) -> FollowerProgress {
        FollowerProgress {
            id,
            log_end_offset: -1,
            log_start_offset: -1,
            caught_up_ms: now_ms,
            previous_fetch_leader_end: i64::MAX,
            previous_fetch_ms: now_ms,
            caught_up_by_fetch: false,
            waited_for: false,
            eligible: true,
        }
    }

    /// Whether the high watermark waits for it while it is out of the ISR, at `now_ms`.
    fn joining(&self, now_ms: i64, lag_max_ms: i64) -> bool {
        self.caught_up_by_fetch && now_ms - self.caught_up_ms <= lag_max_ms
    }
}

/// Where the leader stands when it decides its ISR.
#[derive(Debug, Clone, Copy)]
pub struct LeaderPosition {
    /// Its broker id (the ISR lists it first).
    pub id: i32,
    /// Its log end.
    pub log_end: i64,
    /// Where its leader epoch started (`Partition::leader_epoch_start_offset`).
    pub epoch_start: i64,
}

/// An ISR change this leader proposed to the metadata log, not yet known to be decided.
#[derive(Debug, Clone)]
struct ProposedIsr {
    /// The partition epoch it was proposed at: it is decided once the set holds a newer one
    /// (its own or another change applied), or refused at that epoch.
    partition_epoch: i32,
    /// The proposed ISR, the leader first.
    isr: Vec<i32>,
}

/// The replicas of a partition this node leads, other than itself.
pub struct ReplicaSet {
    followers: RefCell<Vec<FollowerProgress>>,
    /// Followers in the ISR (the leader always is), as the metadata log last applied it.
    in_sync: RefCell<Vec<i32>>,
    /// The partition epoch of that ISR.
    isr_epoch: Cell<i32>,
    /// The change in flight, if any: its followers count toward the high watermark.
    proposed: RefCell<Option<ProposedIsr>>,
    /// Kafka's `min.insync.replicas`, the leader included.
    min_insync_replicas: Cell<usize>,
    high_watermark: Cell<i64>,
    /// Fires when the high watermark moves (long polls and acks=all waits listen).
    moved: Rc<Event>,
    /// Fires when a follower's log start moves, the replicas change or the leader is
    /// deposed (DeleteRecords waits listen: Kafka's DelayedDeleteRecords).
    starts_moved: Rc<Event>,
    /// A newer leader epoch took the partition from this node: no wait may complete.
    deposed: Cell<bool>,
    /// `replica.lag.time.max.ms`: how long a follower counts as caught up after its fetch
    /// last showed it so.
    lag_max_ms: i64,
}

impl ReplicaSet {
    /// `followers`: the other replicas; `in_sync`: those of them in the ISR the metadata
    /// log holds at `isr_epoch` (its partition epoch); `high_watermark`: where it starts.
    /// Lag is counted from `now_ms`, up to `lag_max_ms` (`replica.lag.time.max.ms`).
    pub fn new(
        followers: &[i32],
        in_sync: &[i32],
        isr_epoch: i32,
        min_insync_replicas: usize,
        high_watermark: i64,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> ReplicaSet {
        ReplicaSet {
            followers: RefCell::new(
                followers
                    .iter()
                    .map(|&id| FollowerProgress::new(id, now_ms))
                    .collect(),
            ),
            in_sync: RefCell::new(
                in_sync
                    .iter()
                    .copied()
                    .filter(|id| followers.contains(id))
                    .collect(),
            ),
            isr_epoch: Cell::new(isr_epoch),
            proposed: RefCell::new(None),
            min_insync_replicas: Cell::new(min_insync_replicas.max(1)),
            high_watermark: Cell::new(high_watermark),
            moved: Rc::new(Event::default()),
            starts_moved: Rc::new(Event::default()),
            deposed: Cell::new(false),
            lag_max_ms,
        }
    }

    /// This node lost the leadership: waiting acks=all appends fail (NOT_LEADER_OR_FOLLOWER)
    /// and the high watermark stops.
    pub fn depose(&self) {
        self.deposed.set(true);
        self.moved.notify();
        self.starts_moved.notify();
    }

    pub fn deposed(&self) -> bool {
        self.deposed.get()
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
    /// smallest log end over the ISR, the followers a proposed change would add and those
    /// about to join (caught up, out of the ISR), never below what it was.
    pub fn high_watermark(&self, leader_end: i64) -> i64 {
        if self.deposed.get() {
            return self.high_watermark.get();
        }
        let in_sync = self.in_sync.borrow();
        let proposed = self.proposed.borrow();
        let counts = |f: &FollowerProgress| {
            f.waited_for
                || in_sync.contains(&f.id)
                || proposed.as_ref().is_some_and(|p| p.isr.contains(&f.id))
        };
        let lowest = self
            .followers
            .borrow()
            .iter()
            .filter(|f| counts(f))
            .map(|f| f.log_end_offset)
            .fold(leader_end, i64::min);
        let high_watermark = lowest.max(self.high_watermark.get());
        self.high_watermark.set(high_watermark);
        high_watermark
    }

    /// A follower fetched from `fetch_offset` (so holds everything below it) at `now_ms`,
    /// with its own log starting at `log_start_offset` (-1: not reported, before Fetch v5)
    /// and the leader's log written up to `leader_end`. Wakes the waiters when the high
    /// watermark or the follower's log start moved. Returns false for a broker that is not
    /// a follower of this partition.
    pub fn record_fetch(
        &self,
        id: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        {
            let mut followers = self.followers.borrow_mut();
            let Some(f) = followers.iter_mut().find(|f| f.id == id) else {
                return false;
            };
            if f.log_start_offset != log_start_offset {
                f.log_start_offset = log_start_offset;
                self.starts_moved.notify();
            }
            f.log_end_offset = fetch_offset.min(leader_end);
            if fetch_offset >= leader_end {
                f.caught_up_ms = now_ms;
                f.caught_up_by_fetch = true;
            } else if fetch_offset >= f.previous_fetch_leader_end {
                f.caught_up_ms = f.caught_up_ms.max(f.previous_fetch_ms);
                f.caught_up_by_fetch = true;
            }
            f.previous_fetch_leader_end = leader_end;
            f.previous_fetch_ms = now_ms;
            // Eligibility is re-checked by `wanted_isr` every ISR round; between rounds a
            // fetching follower counts as eligible (a fenced broker does not fetch for long).
            f.waited_for = f.eligible && f.joining(now_ms, self.lag_max_ms);
        }
        let before = self.high_watermark.get();
        if self.high_watermark(leader_end) != before {
            self.moved.notify();
        }
        true
    }

    /// The partition's replicas changed (a reassignment, KIP-455): followers no longer
    /// assigned leave it (and the ISR); new ones start with no progress, out of the ISR
    /// until they catch up (`wanted_isr`); the others keep theirs.
    pub fn set_followers(&self, followers: &[i32], now_ms: i64) {
        {
            let mut current = self.followers.borrow_mut();
            current.retain(|f| followers.contains(&f.id));
            for &id in followers {
                if !current.iter().any(|f| f.id == id) {
                    current.push(FollowerProgress::new(id, now_ms));
                }
            }
        }
        self.in_sync
            .borrow_mut()
            .retain(|id| followers.contains(id));
        if let Some(proposed) = self.proposed.borrow_mut().as_mut() {
            proposed.isr.retain(|id| followers.contains(id));
        }
        self.moved.notify();
        self.starts_moved.notify();
    }

    /// The followers in the ISR at partition epoch `isr_epoch` (the metadata log applied a
    /// change): a proposal made at an older epoch is decided now. Wakes the waiters, since
    /// the high watermark or the acks=all answer may change with it.
    pub fn set_in_sync(&self, followers_in_sync: &[i32], isr_epoch: i32) {
        *self.in_sync.borrow_mut() = followers_in_sync.to_vec();
        self.isr_epoch.set(self.isr_epoch.get().max(isr_epoch));
        let mut proposed = self.proposed.borrow_mut();
        if proposed
            .as_ref()
            .is_some_and(|p| p.partition_epoch < self.isr_epoch.get())
        {
            *proposed = None;
        }
        self.moved.notify();
    }

    /// The partition epoch of the ISR this set holds.
    pub fn isr_epoch(&self) -> i32 {
        self.isr_epoch.get()
    }

    /// The ISR change to propose now at partition epoch `partition_epoch`, the leader
    /// first, recorded as in flight: the one still undecided if there is one (a proposal
    /// whose answer was lost is proposed again, never replaced, as Kafka keeps one
    /// AlterPartition in flight per partition), else `wanted_isr`'s. `None`: nothing to
    /// propose, or this set has not applied `partition_epoch` yet (it would propose from
    /// an older ISR).
    pub fn isr_to_propose(
        &self,
        leader: LeaderPosition,
        partition_epoch: i32,
        now_ms: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        if partition_epoch != self.isr_epoch.get() {
            return None;
        }
        if let Some(p) = self.proposed.borrow().as_ref() {
            return Some(p.isr.clone());
        }
        let isr = self.wanted_isr(leader, now_ms, eligible)?;
        *self.proposed.borrow_mut() = Some(ProposedIsr {
            partition_epoch,
            isr: isr.clone(),
        });
        Some(isr)
    }

    /// The metadata log refused the change proposed at `partition_epoch` while still at
    /// that epoch: it was not applied, and never will be; the ISR as applied is the
    /// whole truth again. (A refusal because the epoch moved on proves nothing about an
    /// earlier copy of the proposal: that one waits for the newer epoch to be applied.)
    pub fn proposal_refused(&self, partition_epoch: i32) {
        let mut proposed = self.proposed.borrow_mut();
        if proposed
            .as_ref()
            .is_some_and(|p| p.partition_epoch == partition_epoch)
        {
            *proposed = None;
            self.moved.notify();
        }
    }

    /// The ISR the leader should propose (Kafka's `maybeShrinkIsr` / `maybeExpandIsr`), the
    /// leader first, or `None` when it is right as it is: an in-sync follower not caught up
    /// for `lag_max_ms` leaves; one out of it comes back when it has been caught up within
    /// `lag_max_ms`, reached the high watermark and the start of the leader's epoch (Kafka's
    /// `isFollowerInSync`: a new leader's high watermark may lag what the previous leader
    /// acknowledged, and a follower short of the records before this epoch must not be
    /// electable), and is `eligible` (not fenced, not shutting down: KIP-841).
    pub fn wanted_isr(
        &self,
        leader: LeaderPosition,
        now_ms: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        let lag_max_ms = self.lag_max_ms;
        for f in self.followers.borrow_mut().iter_mut() {
            f.eligible = eligible(f.id);
            f.waited_for = f.eligible && f.joining(now_ms, lag_max_ms);
        }
        let before = self.high_watermark.get();
        let high_watermark = self.high_watermark(leader.log_end);
        if high_watermark != before {
            // A follower no longer waited for (fallen behind, or fenced) held it back.
            self.moved.notify();
        }
        let in_sync = self.in_sync.borrow();
        let mut wanted = vec![leader.id];
        for f in self.followers.borrow().iter() {
            let recent = now_ms - f.caught_up_ms <= lag_max_ms;
            let keep = if in_sync.contains(&f.id) {
                recent
            } else {
                recent
                    && f.log_end_offset >= high_watermark
                    && f.log_end_offset >= leader.epoch_start
                    && f.eligible
            };
            if keep {
                wanted.push(f.id);
            }
        }
        let unchanged =
            wanted.len() == in_sync.len() + 1 && wanted[1..].iter().all(|id| in_sync.contains(id));
        (!unchanged).then_some(wanted)
    }

    /// Completes at the next move of the high watermark (owns its state: may be raced).
    pub fn wait_moved(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.moved.listen()
    }

    /// Kafka's low watermark (`lowWatermarkIfLeader`): the smallest log start over the
    /// leader's own (`leader_start`) and its followers' on live brokers (`alive`), a
    /// follower that never reported one counting as -1. DeleteRecords is done when it
    /// reaches the requested offset: the deleted records are gone from every live copy,
    /// so no replica elected later serves them again.
    pub fn low_watermark(&self, leader_start: i64, alive: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .borrow()
            .iter()
            .filter(|f| alive(f.id))
            .map(|f| f.log_start_offset)
            .fold(leader_start, i64::min)
    }

    /// Completes at the next move of a follower's log start, a change of the replicas or
    /// the leader's deposal (owns its state: may be raced).
    pub fn wait_starts_moved(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.starts_moved.listen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leader 1 with its log written up to `log_end`, leading since the log start.
    fn at(log_end: i64) -> LeaderPosition {
        LeaderPosition {
            id: 1,
            log_end,
            epoch_start: 0,
        }
    }

    fn any(_: i32) -> bool {
        true
    }

    #[test]
    fn the_high_watermark_is_the_lowest_log_end_in_sync_and_never_moves_back() {
        let set = ReplicaSet::new(&[2, 3], &[2, 3], 0, 2, 0, 0, 1_000);
        assert_eq!(set.high_watermark(10), 0);
        assert!(set.record_fetch(2, 6, 0, 10, 1));
        assert_eq!(set.high_watermark(10), 0, "follower 3 has nothing yet");
        assert!(set.record_fetch(3, 4, 0, 10, 1));
        assert_eq!(set.high_watermark(10), 4);
        assert!(set.record_fetch(3, 10, 0, 10, 2));
        assert_eq!(set.high_watermark(10), 6);
        // A fetch from an older offset (a follower that truncated) never lowers it.
        assert!(set.record_fetch(2, 3, 0, 10, 3));
        assert_eq!(set.high_watermark(10), 6);
        assert!(!set.record_fetch(9, 10, 0, 10, 3), "not a replica");
        assert_eq!(set.in_sync_count(), 3);
    }

    #[test]
    fn a_follower_lagging_too_long_leaves_the_isr_and_comes_back_once_caught_up() {
        let set = ReplicaSet::new(&[2, 3], &[2, 3], 0, 2, 0, 0, 1_000);
        set.record_fetch(2, 10, 0, 10, 100);
        set.record_fetch(3, 10, 0, 10, 100);
        assert_eq!(set.wanted_isr(at(10), 200, any), None);
        // Under steady appends follower 2 never reaches the moving end but keeps up with
        // where it was at its previous fetch: still caught up. Follower 3 stopped.
        set.record_fetch(2, 15, 0, 20, 600);
        set.record_fetch(2, 20, 0, 30, 1_100);
        set.record_fetch(2, 30, 0, 40, 1_600);
        assert_eq!(set.wanted_isr(at(40), 1_700, any), Some(vec![1, 2]));
        set.set_in_sync(&[2], 1);
        assert_eq!(set.in_sync_count(), 2);
        assert_eq!(set.high_watermark(40), 30, "the ISR without 3 moves it");
        // 3 comes back, reaches the high watermark: it rejoins.
        set.record_fetch(3, 40, 0, 40, 1_800);
        assert_eq!(set.wanted_isr(at(40), 1_800, any), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_replica_added_by_a_reassignment_joins_the_isr_only_once_caught_up() {
        let set = ReplicaSet::new(&[2], &[2], 0, 1, 10, 0, 1_000);
        set.record_fetch(2, 10, 0, 10, 100);
        set.set_followers(&[2, 3], 100);
        assert!(set.has_follower(3));
        assert_eq!(
            set.wanted_isr(at(10), 150, any),
            None,
            "3 has fetched nothing"
        );
        assert_eq!(set.high_watermark(10), 10, "3 is out of the ISR: no effect");
        set.record_fetch(3, 4, 0, 10, 200);
        assert_eq!(set.wanted_isr(at(10), 200, any), None, "3 is behind");
        set.record_fetch(3, 10, 0, 10, 300);
        assert_eq!(set.wanted_isr(at(10), 300, any), Some(vec![1, 2, 3]));
        set.set_in_sync(&[2, 3], 1);
        set.set_followers(&[3], 400);
        assert!(!set.has_follower(2));
        assert_eq!(set.in_sync_count(), 2, "2 left the ISR with the replicas");
    }
    /// The CI failure of 2026-12-06 (a reassignment lost an acknowledged record): follower
    /// 2 was proposed into the ISR at the high watermark it had reached; a record appended
    /// before the change applied was acknowledged without it; the change applied, 2 was
    /// elected with one record less. While a change is in flight its followers hold the
    /// high watermark; and a follower caught up by its fetches is waited for while it is
    /// about to join (Kafka's `shouldWaitForReplicaToJoinIsr`).
    #[test]
    fn a_follower_proposed_into_the_isr_holds_the_high_watermark_until_decided() {
        let set = ReplicaSet::new(&[2, 3], &[3], 5, 1, 249, 0, 1_000);
        set.record_fetch(3, 249, 0, 260, 100);
        // 2 is out of the ISR, at the high watermark, never caught up by its fetches.
        set.record_fetch(2, 249, 0, 260, 100);
        assert_eq!(set.high_watermark(260), 249);
        assert_eq!(
            set.isr_to_propose(at(260), 4, 100, any),
            None,
            "the set has not applied epoch 4 yet"
        );
        assert_eq!(
            set.isr_to_propose(at(260), 5, 100, any),
            Some(vec![1, 2, 3])
        );
        set.record_fetch(3, 260, 0, 260, 200);
        assert_eq!(set.high_watermark(260), 249, "2 is proposed: it counts");
        assert_eq!(
            set.isr_to_propose(at(260), 5, 200, any),
            Some(vec![1, 2, 3]),
            "an undecided change is proposed again, not replaced"
        );
        set.record_fetch(2, 255, 0, 260, 300);
        assert_eq!(set.high_watermark(260), 255);

        // Refused while the epoch stands: the applied ISR is the whole truth again.
        set.proposal_refused(4);
        assert_eq!(
            set.high_watermark(260),
            255,
            "a refusal at another epoch: still held"
        );
        set.proposal_refused(5);
        assert_eq!(set.high_watermark(260), 260, "3 alone in sync again");

        // Caught up by its fetches (it reached where the leader was at its previous one),
        // 2 is waited for while it is about to join, and no longer once it fell behind.
        set.record_fetch(2, 260, 0, 270, 400);
        set.record_fetch(3, 270, 0, 270, 400);
        assert_eq!(set.high_watermark(270), 260, "about to join: waited for");
        assert_eq!(
            set.isr_to_propose(at(270), 5, 1_400, any),
            None,
            "2 is behind"
        );
        assert_eq!(set.high_watermark(270), 270, "behind past the lag bound");

        // Applied (a newer epoch): the ISR holds it from then on, nothing in flight.
        set.record_fetch(2, 270, 0, 270, 1_500);
        set.record_fetch(3, 270, 0, 270, 1_500);
        assert_eq!(
            set.isr_to_propose(at(270), 5, 1_500, any),
            Some(vec![1, 2, 3])
        );
        set.set_in_sync(&[2, 3], 6);
        assert_eq!(set.isr_epoch(), 6);
        assert_eq!(set.isr_to_propose(at(270), 6, 1_600, any), None);
        assert_eq!(set.high_watermark(280), 270);
    }

    /// Under a steady stream of appends a follower out of the ISR is always a round behind
    /// the leader's end; were the high watermark the leader's end, it would never reach it
    /// and never rejoin. Waited for once caught up, it does.
    #[test]
    fn a_caught_up_follower_rejoins_under_a_steady_stream_of_appends() {
        let set = ReplicaSet::new(&[2], &[], 0, 1, 0, 0, 1_000);
        let mut leader_end = 0;
        for round in 1..=20 {
            let fetched = leader_end;
            leader_end += 10;
            set.record_fetch(2, fetched, 0, leader_end, round * 10);
        }
        assert_eq!(set.high_watermark(leader_end), leader_end - 10);
        assert_eq!(
            set.isr_to_propose(at(leader_end), 0, 210, any),
            Some(vec![1, 2])
        );
    }

    /// After a failover the new leader's high watermark (what it knew as a follower) may
    /// lag what the old leader acknowledged: a follower that reached it but not the start
    /// of the new epoch lacks acknowledged records and must not become electable.
    #[test]
    fn a_follower_rejoins_only_past_the_leaders_epoch_start_and_when_eligible() {
        let set = ReplicaSet::new(&[2, 3], &[3], 7, 1, 90, 0, 1_000);
        let leader = LeaderPosition {
            id: 1,
            log_end: 100,
            epoch_start: 100,
        };
        set.record_fetch(3, 100, 0, 100, 10);
        set.record_fetch(2, 92, 0, 100, 10);
        assert_eq!(set.high_watermark(100), 100);
        let fresh = ReplicaSet::new(&[2, 3], &[3], 7, 1, 90, 0, 1_000);
        fresh.record_fetch(2, 92, 0, 100, 10);
        assert_eq!(
            fresh.wanted_isr(leader, 20, any),
            None,
            "2 is past the high watermark it knows (90) but short of the epoch start"
        );
        fresh.record_fetch(2, 100, 0, 100, 30);
        assert_eq!(fresh.wanted_isr(leader, 40, any), Some(vec![1, 2, 3]));
        assert_eq!(
            fresh.wanted_isr(leader, 40, |id| id != 2),
            None,
            "fenced or shutting down: not added"
        );
        set.record_fetch(2, 100, 0, 100, 30);
        assert_eq!(
            set.wanted_isr(leader, 40, |id| id != 3),
            Some(vec![1, 2, 3]),
            "eligibility only gates joining; the controller removes fenced members"
        );
    }

    #[test]
    fn the_low_watermark_is_the_lowest_log_start_over_live_replicas() {
        let set = ReplicaSet::new(&[2, 3], &[2, 3], 0, 2, 0, 0, 1_000);
        assert_eq!(
            set.low_watermark(5, |_| true),
            -1,
            "no follower has reported yet"
        );
        set.record_fetch(2, 10, 5, 10, 1);
        set.record_fetch(3, 10, 0, 10, 1);
        assert_eq!(
            set.low_watermark(5, |_| true),
            0,
            "3 still holds offsets 0..5"
        );
        assert_eq!(
            set.low_watermark(5, |id| id != 3),
            5,
            "a dead broker does not count"
        );
        let moved = set.wait_starts_moved();
        set.record_fetch(3, 10, 5, 10, 2);
        futures_util::FutureExt::now_or_never(moved).expect("a moved log start wakes waiters");
        assert_eq!(set.low_watermark(5, |_| true), 5);
        assert_eq!(
            set.low_watermark(3, |_| true),
            3,
            "never above the leader's own start"
        );
        let unchanged = set.wait_starts_moved();
        set.record_fetch(3, 11, 5, 11, 3);
        assert!(
            futures_util::FutureExt::now_or_never(unchanged).is_none(),
            "the same log start again wakes nobody"
        );
    }
}
