//! Unit tests of the share states a shard holds (`share_state.rs`): the state-epoch fencing
//! of a leader's write that was encoded before its group was reset
//! (`share_state_reset.rs`), and the bound on remembered epochs.

use super::*;
use crate::metadata::share_state_reset::{ResetScope, ShareStateReset};
use crate::partition::share::SharePartitionState;

fn change(group: &str, state_epoch: i64, start_offset: i64) -> ShareStateChange {
    let state = SharePartitionState::new(start_offset, 100);
    let mut frame = Vec::new();
    durable::encode(&mut frame, group, Some(&state));
    ShareStateChange {
        topic: "orders".into(),
        partition: 0,
        group: group.into(),
        leader_epoch: 0,
        state_epoch,
        frame,
    }
}

fn start_offsets(store: &ShareStateStore) -> Vec<(String, i64)> {
    store
        .of("orders", 0)
        .into_iter()
        .map(|(group, frame)| {
            let saved = durable::decode_frame(&frame).and_then(|(_, s)| s);
            (group, saved.map_or(-1, |s| s.start_offset))
        })
        .collect()
}

#[test]
fn a_leaders_write_from_before_a_reset_is_fenced_by_the_state_epoch() {
    let store = ShareStateStore::default();
    store.apply(change("g", 0, 5)).unwrap();
    store.apply(change("h", 0, 3)).unwrap();
    // DeleteGroups of g applied at index 40: its state goes, its epoch stays.
    let reset = ShareStateReset {
        group: "g".into(),
        scope: ResetScope::Group,
        state_epoch: 40,
    };
    store.raise_state_epoch(reset.group.clone(), reset.state_epoch);
    store.drop_group(&reset);
    assert_eq!(start_offsets(&store), vec![("h".to_string(), 3)]);
    // An acknowledgement encoded before the reset lands after it: refused, and the old
    // state does not come back.
    let (error, _) = store.apply(change("g", 0, 9)).unwrap_err();
    assert_eq!(error, ResponseError::FencedStateEpoch);
    assert_eq!(start_offsets(&store), vec![("h".to_string(), 3)]);
    // Another group's writes are not fenced; the leader's next write of g carries the
    // new epoch and applies.
    store.apply(change("h", 0, 4)).unwrap();
    store.apply(change("g", 40, 0)).unwrap();
    assert_eq!(
        start_offsets(&store),
        vec![("g".to_string(), 0), ("h".to_string(), 4)]
    );
    // An epoch never goes down (an image or a reset replayed out of order).
    store.raise_state_epoch("g".into(), 12);
    assert_eq!(store.state_epoch("g"), 40);
}

#[test]
fn a_topic_reset_drops_only_that_topics_states() {
    let store = ShareStateStore::default();
    store.apply(change("g", 0, 5)).unwrap();
    let mut elsewhere = change("g", 0, 6);
    elsewhere.topic = "payments".into();
    store.apply(elsewhere).unwrap();
    let reset = ShareStateReset {
        group: "g".into(),
        scope: ResetScope::Topic {
            topic: "orders".into(),
        },
        state_epoch: 7,
    };
    store.drop_group(&reset);
    assert!(store.of("orders", 0).is_empty());
    assert_eq!(store.of("payments", 0).len(), 1);
    assert_eq!(store.count.get(), 1);
}

#[test]
fn remembered_state_epochs_are_bounded_and_the_oldest_goes_first() {
    let store = ShareStateStore::default();
    for i in 0..MAX_STATE_EPOCH_GROUPS_PER_SHARD {
        store.raise_state_epoch(format!("g{i}"), 100 + i as i64);
    }
    store.raise_state_epoch("newest".into(), 1_000_000);
    let epochs = store.state_epochs.borrow();
    assert_eq!(epochs.len(), MAX_STATE_EPOCH_GROUPS_PER_SHARD);
    assert!(
        !epochs.contains_key("g0"),
        "the smallest epoch was forgotten"
    );
    assert!(epochs.contains_key("g1") && epochs.contains_key("newest"));
}

#[test]
fn an_installed_image_replaces_the_state_epochs() {
    let store = ShareStateStore::default();
    store.raise_state_epoch("old".into(), 3);
    store.replace(vec![change("g", 50, 1)], vec![("g".into(), 50)]);
    assert_eq!(store.state_epoch("old"), 0);
    assert_eq!(store.state_epoch("g"), 50);
    let (error, _) = store.apply(change("g", 49, 2)).unwrap_err();
    assert_eq!(error, ResponseError::FencedStateEpoch);
}
