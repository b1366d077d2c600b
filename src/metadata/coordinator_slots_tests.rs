//! Unit tests of the sticky coordinator slots (`coordinator_slots.rs`).

use super::*;
use crate::metadata::replicated::RegisteredBroker;

fn cluster(ids: &[i32]) -> ClusterState {
    let mut state = ClusterState::default();
    for &id in ids {
        state.brokers.insert(
            id,
            RegisteredBroker {
                id,
                host: "h".into(),
                port: 9000 + id,
                fenced: false,
                epoch: 0,
                endpoints: Vec::new(),
                format_levels: Default::default(),
                incarnation: None,
            },
        );
        state.place_slots_after_registration(true);
    }
    state
}

fn counts(state: &ClusterState) -> Vec<usize> {
    state.slot_counts().into_iter().map(|(_, n)| n).collect()
}

#[test]
fn keys_map_to_slots_by_kafkas_hash() {
    // Java: "g".hashCode() = 103; "my-group".hashCode() = -1_906_497_762 (Utils.abs
    // takes the absolute value); "" → 0.
    assert_eq!(coordinator_slot("g"), 103 % 50);
    assert_eq!(coordinator_slot("my-group"), 1_906_497_762 % 50);
    assert_eq!(coordinator_slot(""), 0);
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
    assert_eq!(coordinator_slot("polygenelubricants"), 0);
    // Non-ASCII: Java hashes UTF-16 code units ("é" is 0xE9).
    assert_eq!(coordinator_slot("é"), 0xE9 % 50);
}

#[test]
fn new_brokers_share_the_slots_evenly() {
    let state = cluster(&[1, 2, 3]);
    assert_eq!(state.coordinator_slots.len(), COORDINATOR_SLOTS);
    let mut c = counts(&state);
    c.sort();
    assert_eq!(c, vec![16, 17, 17]);
    assert!(!state.coordinator_slots_skewed());
}

#[test]
fn a_fenced_brokers_slots_move_and_stay_when_it_returns() {
    let mut state = cluster(&[1, 2, 3]);
    let before = state.coordinator_slots.clone();
    let key = (0..)
        .map(|i| format!("group-{i}"))
        .find(|k| state.coordinator(k) == Some(2))
        .unwrap();
    let slot = coordinator_slot(&key);
    state.brokers.get_mut(&2).unwrap().fenced = true;
    let moved = state.adopt_orphan_slots();
    assert_eq!(moved, before.iter().filter(|s| s.broker == 2).count());
    let next = state.coordinator(&key).unwrap();
    assert_ne!(next, 2);
    assert_eq!(state.coordinator_slots[slot].epoch, before[slot].epoch + 1);
    // Slots of live brokers did not move.
    for (old, new) in before.iter().zip(&state.coordinator_slots) {
        if old.broker != 2 {
            assert_eq!(old, new);
        }
    }
    // The survivors share the moved slots evenly.
    assert_eq!(counts(&state).iter().sum::<usize>(), COORDINATOR_SLOTS);
    // It returns (unfence or re-registration of a known id): nothing moves back.
    state.brokers.get_mut(&2).unwrap().fenced = false;
    state.place_slots_after_registration(false);
    assert_eq!(state.coordinator(&key), Some(next));
    assert!(state.coordinator_slots_skewed(), "broker 2 holds none now");
    // The rebalance gives it its share, moving as few slots as that takes.
    let moved = state.rebalance_slots();
    let mut c = counts(&state);
    c.sort();
    assert_eq!(c, vec![16, 17, 17]);
    assert!((16..=17).contains(&moved), "moved {moved}");
    assert!(!state.coordinator_slots_skewed());
    assert_eq!(state.rebalance_slots(), 0, "a balanced table stays");
}

#[test]
fn slots_without_a_live_broker_are_taken_by_the_first_to_return() {
    let mut state = cluster(&[1, 2]);
    for id in [1, 2] {
        state.brokers.get_mut(&id).unwrap().fenced = true;
        state.adopt_orphan_slots();
    }
    assert_eq!(state.coordinator("g"), None);
    state.brokers.get_mut(&1).unwrap().fenced = false;
    state.adopt_orphan_slots();
    assert_eq!(counts(&state), vec![COORDINATOR_SLOTS]);
    assert_eq!(state.coordinator("g"), Some(1));
}

#[test]
fn a_state_without_slots_keeps_the_hash_placement() {
    let mut state = cluster(&[1, 2, 3]);
    state.coordinator_slots.clear();
    assert!(state.coordinator("g").is_some());
    state.brokers.get_mut(&1).unwrap().fenced = true;
    assert_ne!(state.coordinator("g"), Some(1));
}
