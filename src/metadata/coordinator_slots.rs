//! Sticky coordinators (issue 17, decision 0024): which broker coordinates a group or a
//! transactional id. As Kafka pins a coordinator to the leader of a `__consumer_offsets`
//! (or `__transaction_state`) partition, a key maps to one of `COORDINATOR_SLOTS` slots by
//! Kafka's own hash (`Utils.abs(key.hashCode()) % 50`), and the replicated cluster state
//! records each slot's broker and an epoch bumped on every move (Kafka's coordinator
//! epoch: the partition's leader epoch). Every change here runs at apply time from the
//! applied state, so every node places every slot alike.
//!
//! A slot moves only when its broker is fenced (to the live broker holding fewest slots),
//! never back when that broker returns: the group's members and the producers would pay a
//! second move. A broker id registering for the first time takes its share at once
//! (cluster formation); a returned broker gets its share back only through
//! `RebalanceCoordinators`, which the quorum leader proposes after seeing the skew on two
//! consecutive checks (`shard::leader_balance`).
//! Must not: talk to the quorum or to the shards.

use super::replicated::ClusterState;
use serde::{Deserialize, Serialize};

/// Slots keys are placed in: Kafka's `offsets.topic.num.partitions` and
/// `transaction.state.log.num.partitions` defaults.
pub const COORDINATOR_SLOTS: usize = 50;

/// The topic name a transaction's marker for a group's offsets names, with the group's
/// slot as the partition: Kafka's markers go to the group's `__consumer_offsets`
/// partition, and a slot is that partition's place here (decision 0022). No such topic
/// exists; only AddPartitionsToTxn's verification and WriteTxnMarkers read it.
pub const GROUP_SLOT_TOPIC: &str = "__consumer_offsets";

/// A slot's broker until a live broker takes it.
pub const NO_BROKER: i32 = -1;

/// One slot: its broker and how many times it moved (`epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorSlot {
    pub broker: i32,
    pub epoch: i32,
}

/// Kafka's placement of a group or transactional id: Java's `String.hashCode` (over UTF-16
/// code units, wrapping), `Utils.abs` (`Integer.MIN_VALUE` → 0), modulo the slot count.
pub fn coordinator_slot(key: &str) -> usize {
    let mut hash: i32 = 0;
    for unit in key.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    usize::try_from(abs).unwrap_or(0) % COORDINATOR_SLOTS
}

impl ClusterState {
    /// The broker that coordinates `key` (a group or transactional id): its slot's broker
    /// while that one is live, else none (no live broker was left to take it). Before the
    /// slot table exists (a state written by an older build, no broker yet) the old rule
    /// stands: a hash over the registered brokers, skipping fenced ones.
    pub fn coordinator(&self, key: &str) -> Option<i32> {
        if self.coordinator_slots.is_empty() {
            return self.hashed_coordinator(key);
        }
        let slot = self.coordinator_slots.get(coordinator_slot(key))?;
        self.is_live(slot.broker).then_some(slot.broker)
    }

    /// The coordinator of `key` with its slot's epoch (0 before the slot table exists).
    pub fn coordinator_with_epoch(&self, key: &str) -> Option<(i32, i32)> {
        let broker = self.coordinator(key)?;
        let epoch = self
            .coordinator_slots
            .get(coordinator_slot(key))
            .map_or(0, |s| s.epoch);
        Some((broker, epoch))
    }

    /// Whether `broker` coordinates every key of `slot`: the slot's live broker. Before
    /// the slot table exists keys of one slot may have different (hashed) coordinators:
    /// true, and each key's own coordinator is checked.
    pub fn coordinates_slot(&self, broker: i32, slot: usize) -> bool {
        if self.coordinator_slots.is_empty() {
            return true;
        }
        self.coordinator_slots
            .get(slot)
            .is_some_and(|s| s.broker == broker && self.is_live(broker))
    }

    fn hashed_coordinator(&self, key: &str) -> Option<i32> {
        let all: Vec<i32> = self.brokers.keys().copied().collect();
        if all.is_empty() {
            return None;
        }
        let start = crate::shard::placement::fnv1a32(key.as_bytes()) as usize % all.len();
        (0..all.len())
            .map(|i| all[(start + i) % all.len()])
            .find(|&b| self.is_live(b))
    }

    /// Slots per live broker, in id order (a broker with none is listed with 0).
    pub fn slot_counts(&self) -> Vec<(i32, usize)> {
        self.live_brokers()
            .into_iter()
            .map(|b| {
                let n = self
                    .coordinator_slots
                    .iter()
                    .filter(|s| s.broker == b)
                    .count();
                (b, n)
            })
            .collect()
    }

    /// Whether the live brokers' slot counts differ by more than one (what a
    /// `RebalanceCoordinators` would even out), or a slot has no live broker.
    pub fn coordinator_slots_skewed(&self) -> bool {
        let counts = self.slot_counts();
        let (Some(min), Some(max)) = (
            counts.iter().map(|c| c.1).min(),
            counts.iter().map(|c| c.1).max(),
        ) else {
            return false;
        };
        max - min > 1
            || self
                .coordinator_slots
                .iter()
                .any(|s| !self.is_live(s.broker))
    }

    /// After a broker registered: the first broker ever creates the table; a broker id
    /// never seen before takes its share at once (`rebalance_slots`); a returning one
    /// takes nothing but the slots no live broker held (`adopt_orphan_slots`).
    pub(super) fn place_slots_after_registration(&mut self, new_id: bool) {
        if self.coordinator_slots.is_empty() {
            self.coordinator_slots = vec![
                CoordinatorSlot {
                    broker: NO_BROKER,
                    epoch: 0,
                };
                COORDINATOR_SLOTS
            ];
            self.rebalance_slots();
        } else if new_id {
            self.rebalance_slots();
        } else {
            self.adopt_orphan_slots();
        }
    }

    /// Every slot whose broker is not live moves to the live broker with the fewest slots
    /// (the lowest id on a tie), its epoch bumped: fencing's move. Returns how many moved.
    pub(super) fn adopt_orphan_slots(&mut self) -> usize {
        let mut counts = self.slot_counts();
        if counts.is_empty() {
            return 0;
        }
        let mut moved = 0;
        for index in 0..self.coordinator_slots.len() {
            let owner = self.coordinator_slots[index].broker;
            if self.is_live(owner) {
                continue;
            }
            let Some(target) = counts.iter_mut().min_by_key(|(b, n)| (*n, *b)) else {
                break;
            };
            target.1 += 1;
            let slot = &mut self.coordinator_slots[index];
            slot.broker = target.0;
            slot.epoch = slot.epoch.saturating_add(1);
            moved += 1;
        }
        moved
    }

    /// Evens the slots out over the live brokers with the fewest moves: each keeps up to
    /// its share (the brokers holding most get the larger shares), the rest (highest slot
    /// numbers first) and the slots of brokers not live go, in slot order, to the brokers
    /// under their share, in id order. Returns how many moved.
    pub fn rebalance_slots(&mut self) -> usize {
        let mut counts = self.slot_counts();
        let live = counts.len();
        if live == 0 {
            return 0;
        }
        let base = self.coordinator_slots.len() / live;
        let extra = self.coordinator_slots.len() % live;
        // The larger shares go to the brokers that already hold most (fewest moves).
        let mut by_size: Vec<(i32, usize)> = counts.clone();
        by_size.sort_by_key(|(b, n)| (std::cmp::Reverse(*n), *b));
        let mut targets: std::collections::BTreeMap<i32, usize> = by_size
            .iter()
            .enumerate()
            .map(|(i, (b, _))| (*b, base + usize::from(i < extra)))
            .collect();
        let mut movable = Vec::new();
        for (broker, held) in &mut counts {
            let target = targets.get(broker).copied().unwrap_or(0);
            let mut excess = held.saturating_sub(target);
            for index in (0..self.coordinator_slots.len()).rev() {
                if excess == 0 {
                    break;
                }
                if self.coordinator_slots[index].broker == *broker {
                    movable.push(index);
                    excess -= 1;
                }
            }
        }
        for (index, slot) in self.coordinator_slots.iter().enumerate() {
            if !self.is_live(slot.broker) {
                movable.push(index);
            }
        }
        movable.sort_unstable();
        // What each broker keeps, then what it still lacks.
        for (broker, held) in &counts {
            if let Some(t) = targets.get_mut(broker) {
                *t = t.saturating_sub((*held).min(*t));
            }
        }
        let mut moved = 0;
        for index in movable {
            let Some((&broker, lack)) = targets.iter_mut().find(|(_, lack)| **lack > 0) else {
                break;
            };
            *lack -= 1;
            let slot = &mut self.coordinator_slots[index];
            if slot.broker != broker {
                slot.broker = broker;
                slot.epoch = slot.epoch.saturating_add(1);
                moved += 1;
            }
        }
        moved
    }
}

#[cfg(test)]
#[path = "coordinator_slots_tests.rs"]
mod tests;
