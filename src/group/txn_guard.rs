//! Verification guards for a transaction's offsets in cluster mode (decision 0022, "offsets
//! of a transaction"): the group side of Kafka's `VerificationGuard` (KIP-890 part 1).
//!
//! A TxnOffsetCommit is verified at the transaction's coordinator and only then proposed
//! here, two steps with a network call between them. Without a guard, a transaction that
//! times out in between is aborted, its marker finds nothing pending at the group and ends
//! nothing, and the late proposal leaves offsets of an aborted transaction pending, to be
//! committed by the producer's next transaction: input records skipped. Kafka orders both
//! in the offsets partition's log and checks a guard taken before the verification; here
//! the guard is taken on the group's shard before the verification, the marker removes
//! it (after waiting for proposals already under way, so their `TxnEnd` comes after them
//! in the log), and a proposal whose guard is gone is refused with INVALID_TXN_STATE.
//!
//! Owns: the shard's guards, in memory (a coordinator that dies takes its in-flight
//! proposals with it: they are refused at apply once the slot moved). Must not: decide a
//! transaction's outcome or touch the groups' offsets.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Guards one shard keeps: one per (group, producer) between a verification and the
/// transaction's marker. Past it, guards unused for `TXN_OFFSET_GUARD_STALE_AFTER` are
/// dropped, and if none is, the commit is refused (COORDINATOR_NOT_AVAILABLE, retriable).
pub const MAX_TXN_OFFSET_GUARDS_PER_SHARD: usize = 100_000;
/// Kafka's largest `transaction.max.timeout.ms` (15 min): a guard older than any open
/// transaction can be belongs to one whose marker went to another broker.
pub const TXN_OFFSET_GUARD_STALE_AFTER: Duration = Duration::from_secs(15 * 60);
/// How long a transaction's end waits for the group's offsets already being proposed
/// before it answers an error (its coordinator retries the marker).
pub const TXN_END_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

struct Guard {
    token: u64,
    /// Proposals of this guard not yet answered.
    proposing: u32,
    touched: Instant,
}

/// A proposal under way: `leave`s its guard when dropped, so a proposal whose request
/// went away (its future dropped mid-await) cannot leave the count up and every later
/// marker of its producer waiting `TXN_END_DRAIN_TIMEOUT` and failing.
pub(super) struct Proposing<'a> {
    guards: &'a RefCell<TxnGuards>,
    group: &'a str,
    producer_id: i64,
    token: u64,
}

impl<'a> Proposing<'a> {
    /// `enter` as a scope: None when the guard is gone.
    pub fn enter(
        guards: &'a RefCell<TxnGuards>,
        group: &'a str,
        producer_id: i64,
        token: u64,
    ) -> Option<Self> {
        // Not `then_some`: it would build (and drop, leaving) a guard that never entered.
        let entered = guards.borrow_mut().enter(group, producer_id, token);
        entered.then(|| Self {
            guards,
            group,
            producer_id,
            token,
        })
    }
}

impl Drop for Proposing<'_> {
    fn drop(&mut self) {
        self.guards
            .borrow_mut()
            .leave(self.group, self.producer_id, self.token);
    }
}

#[derive(Default)]
pub(super) struct TxnGuards {
    next_token: u64,
    guards: HashMap<(String, i64), Guard>,
}

impl TxnGuards {
    /// The guard a verification of `producer_id`'s offsets for `group` starts from: the
    /// existing one (the same transaction's earlier commit) or a new one. None when the
    /// table is full of guards in use.
    pub fn begin(&mut self, group: &str, producer_id: i64, now: Instant) -> Option<u64> {
        let key = (group.to_string(), producer_id);
        if let Some(g) = self.guards.get_mut(&key) {
            g.touched = now;
            return Some(g.token);
        }
        if self.guards.len() >= MAX_TXN_OFFSET_GUARDS_PER_SHARD {
            self.guards.retain(|_, g| {
                g.proposing > 0 || now.duration_since(g.touched) < TXN_OFFSET_GUARD_STALE_AFTER
            });
            if self.guards.len() >= MAX_TXN_OFFSET_GUARDS_PER_SHARD {
                return None;
            }
        }
        self.next_token += 1;
        let token = self.next_token;
        self.guards.insert(
            key,
            Guard {
                token,
                proposing: 0,
                touched: now,
            },
        );
        Some(token)
    }

    /// A proposal under `token` starts: false when its guard is gone (the transaction
    /// ended after the verification), so the offsets must not be proposed.
    pub fn enter(&mut self, group: &str, producer_id: i64, token: u64) -> bool {
        match self.guards.get_mut(&(group.to_string(), producer_id)) {
            Some(g) if g.token == token => {
                g.proposing += 1;
                true
            }
            _ => false,
        }
    }

    /// The proposal that `enter`ed under `token` was answered.
    pub fn leave(&mut self, group: &str, producer_id: i64, token: u64) {
        if let Some(g) = self.guards.get_mut(&(group.to_string(), producer_id))
            && g.token == token
        {
            g.proposing = g.proposing.saturating_sub(1);
        }
    }

    /// Whether a proposal of `producer_id`'s offsets to a group `in_slot` is under way.
    pub fn proposing(&self, producer_id: i64, in_slot: impl Fn(&str) -> bool) -> bool {
        self.guards
            .iter()
            .any(|((group, pid), g)| *pid == producer_id && g.proposing > 0 && in_slot(group))
    }

    /// The transaction's marker reached the groups `in_slot`: their guards of
    /// `producer_id` end, so a verification that came before it cannot propose after it.
    pub fn end(&mut self, producer_id: i64, in_slot: impl Fn(&str) -> bool) {
        self.guards
            .retain(|(group, pid), _| *pid != producer_id || !in_slot(group));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.guards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_ended_by_the_marker_refuses_the_proposal_verified_before_it() {
        let mut guards = TxnGuards::default();
        let now = Instant::now();
        let token = guards.begin("g", 7, now).expect("room");
        assert_eq!(
            guards.begin("g", 7, now),
            Some(token),
            "same transaction, same guard"
        );
        guards.end(7, |g| g == "g");
        assert!(
            !guards.enter("g", 7, token),
            "the transaction ended in between"
        );
        let next = guards.begin("g", 7, now).expect("room");
        assert_ne!(next, token, "the next transaction's guard is a new one");
        assert!(guards.enter("g", 7, next));
    }

    #[test]
    fn proposals_under_way_are_seen_until_answered_and_other_slots_are_untouched() {
        let mut guards = TxnGuards::default();
        let now = Instant::now();
        let a = guards.begin("a", 7, now).expect("room");
        let b = guards.begin("b", 7, now).expect("room");
        assert!(guards.enter("a", 7, a));
        assert!(guards.proposing(7, |g| g == "a"));
        assert!(!guards.proposing(7, |g| g == "b"));
        assert!(!guards.proposing(8, |_| true));
        guards.leave("a", 7, a);
        assert!(!guards.proposing(7, |_| true));
        guards.end(7, |g| g == "a");
        assert!(guards.enter("b", 7, b), "another slot's guard stays");
    }

    #[test]
    fn a_proposal_dropped_mid_way_leaves_its_guard() {
        let guards = RefCell::new(TxnGuards::default());
        let token = guards
            .borrow_mut()
            .begin("g", 7, Instant::now())
            .expect("room");
        let proposing = Proposing::enter(&guards, "g", 7, token).expect("entered");
        assert!(guards.borrow().proposing(7, |_| true));
        drop(proposing);
        assert!(
            !guards.borrow().proposing(7, |_| true),
            "the marker need not wait"
        );
    }

    #[test]
    fn a_full_table_drops_only_stale_unused_guards() {
        let mut guards = TxnGuards::default();
        let start = Instant::now();
        for pid in 0..MAX_TXN_OFFSET_GUARDS_PER_SHARD as i64 {
            guards.begin("g", pid, start).expect("room");
        }
        assert!(guards.enter("g", 0, 1), "guard 0 is in use");
        assert_eq!(guards.begin("g", -1, start), None, "full of fresh guards");
        let later = start + TXN_OFFSET_GUARD_STALE_AFTER;
        assert!(guards.begin("g", -1, later).is_some());
        assert_eq!(
            guards.len(),
            2,
            "only the one in use survived, plus the new one"
        );
    }
}
