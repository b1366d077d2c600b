//! Unit tests of the replicated share-partition state records (`share_state.rs`): the
//! leader-epoch fencing on apply, malformed states, and snapshot images.

use super::*;
use crate::metadata::MetadataWriter;
use crate::metadata::format_level::{CURRENT_LEVEL, FEATURE, LEGACY_LEVEL, LevelRange};
use crate::metadata::replicated::tests::writer_with_brokers;
use crate::metadata::replicated::{Applied, MetadataRecord, Proposal};
use crate::metadata::replicated_image::ShardImages;
use crate::metadata::share_state_reset::{ResetScope, ShareStateResetRecord};
use crate::partition::share::SharePartitionState;

fn writer_with_topic(ids: &[i32]) -> (tempfile::TempDir, MetadataWriter) {
    let (dir, writer) = writer_with_brokers(ids);
    // A reset is a level-3 record (decision 0027): every broker reads the newest format
    // and the cluster is finalized there, as a new cluster bootstraps itself.
    for (index, id) in (5..).zip(ids) {
        let register = MetadataRecord::RegisterBroker {
            id: *id,
            host: "127.0.0.1".into(),
            port: 9000 + id,
            endpoints: Vec::new(),
            format_levels: LevelRange {
                min: LEGACY_LEVEL,
                max: CURRENT_LEVEL,
            },
            incarnation: None,
            previous_epoch: None,
            previous_incarnation: None,
        };
        writer.apply_record(index, &register).unwrap();
    }
    let finalize = MetadataRecord::FinalizeFeature {
        name: FEATURE.into(),
        level: CURRENT_LEVEL,
    };
    writer.apply_record(9, &finalize).unwrap();
    let create = MetadataRecord::CreateTopic {
        name: "orders".into(),
        id: uuid::Uuid::new_v4(),
        replicas: vec![ids.to_vec()],
        overrides: Default::default(),
    };
    writer.apply_record(10, &create).unwrap();
    (dir, writer)
}

fn frame(group: &str, start_offset: i64) -> Vec<u8> {
    let state = SharePartitionState::new(start_offset, 100);
    let mut buf = Vec::new();
    durable::encode(&mut buf, group, Some(&state));
    buf
}

fn record(group: &str, leader: i32, leader_epoch: i32, state: String) -> MetadataRecord {
    MetadataRecord::ShareState(ShareStateRecord {
        topic: "orders".into(),
        partition: 0,
        group: group.into(),
        leader,
        leader_epoch,
        state_epoch: 0,
        state,
    })
}

#[test]
fn the_leaders_state_applies_and_round_trips_through_a_proposal() {
    let (_dir, w) = writer_with_topic(&[1, 2, 3]);
    let proposal = Proposal {
        origin: 1,
        sequence: 3,
        record: record("g", 1, 0, encode(&frame("g", 42))),
    };
    let decoded = Proposal::decode(&proposal.encode()).unwrap();
    assert_eq!(decoded.record, proposal.record);
    let Applied::ShareState(change) = w.apply_record(11, &decoded.record).unwrap() else {
        panic!("applied as another record");
    };
    assert_eq!((change.topic.as_str(), change.partition), ("orders", 0));
    let (group, saved) = durable::decode_frame(&change.frame).unwrap();
    assert_eq!(group, "g");
    assert_eq!(saved.unwrap().start_offset, 42);
}

#[test]
fn a_deposed_leaders_write_is_fenced_by_its_leader_epoch() {
    let (_dir, w) = writer_with_topic(&[1, 2, 3]);
    w.apply_record(11, &MetadataRecord::FenceBroker { id: 1 })
        .unwrap();
    let snapshot = w.snapshot();
    let cluster = snapshot.cluster.as_deref().unwrap();
    let (leader, epoch) = (
        cluster.leader("orders", 0),
        cluster.leader_epoch("orders", 0),
    );
    assert_eq!((leader, epoch), (Some(2), 1), "broker 2 leads in epoch 1");
    let stale = w
        .apply_record(12, &record("g", 1, 0, encode(&frame("g", 5))))
        .unwrap_err();
    assert_eq!(stale.kafka_error_code(), 74, "FENCED_LEADER_EPOCH");
    let not_leader = w
        .apply_record(13, &record("g", 1, 1, encode(&frame("g", 5))))
        .unwrap_err();
    assert_eq!(not_leader.kafka_error_code(), 6, "NOT_LEADER_OR_FOLLOWER");
    assert!(
        w.apply_record(14, &record("g", 2, 1, encode(&frame("g", 5))))
            .is_ok()
    );
}

#[test]
fn a_malformed_state_or_one_of_another_group_is_refused() {
    let (_dir, w) = writer_with_topic(&[1]);
    let mut torn = frame("g", 1);
    torn.pop();
    for state in [
        "not base64!".to_string(),
        encode(&torn),
        encode(&frame("other", 1)),
        encode(&[frame("g", 1), frame("g", 2)].concat()),
    ] {
        let refused = w.apply_record(11, &record("g", 1, 0, state)).unwrap_err();
        assert_eq!(refused.kafka_error_code(), 42, "INVALID_REQUEST");
    }
    let unknown = MetadataRecord::ShareState(ShareStateRecord {
        topic: "nope".into(),
        partition: 0,
        group: "g".into(),
        leader: 1,
        leader_epoch: 0,
        state_epoch: 0,
        state: encode(&frame("g", 1)),
    });
    assert_eq!(
        w.apply_record(12, &unknown).unwrap_err().kafka_error_code(),
        3
    );
}

#[test]
fn images_carry_the_share_states() {
    let (_dir_a, a) = writer_with_topic(&[1]);
    let states: ShareStatesImage = vec![ShareStateEntry {
        topic: "orders".into(),
        partition: 0,
        group: "g".into(),
        leader_epoch: 0,
        state: encode(&frame("g", 7)),
    }];
    let image = a.encode_image(ShardImages {
        share_states: states.clone(),
        ..ShardImages::default()
    });
    let (_dir_b, b) = writer_with_topic(&[2]);
    assert_eq!(b.install_image(&image).unwrap().share_states, states);
    let mut old: serde_json::Value = serde_json::from_slice(&image).unwrap();
    old.as_object_mut().unwrap().remove("share_states");
    let old = serde_json::to_vec(&old).unwrap();
    assert!(b.install_image(&old).unwrap().share_states.is_empty());
}

fn reset(group: &str, coordinator: i32, scope: ResetScope) -> MetadataRecord {
    MetadataRecord::ShareStateReset(ShareStateResetRecord {
        group: group.into(),
        coordinator,
        scope,
    })
}

#[test]
fn a_reset_by_the_coordinator_gets_its_log_index_as_the_state_epoch() {
    let (_dir, w) = writer_with_topic(&[1]);
    let scope = ResetScope::Partition {
        topic: "orders".into(),
        partition: 0,
        start_offset: 4,
    };
    let proposal = Proposal {
        origin: 1,
        sequence: 1,
        record: reset("g", 1, scope.clone()),
    };
    let decoded = Proposal::decode(&proposal.encode()).unwrap();
    let Applied::ShareStateReset(applied) = w.apply_record(17, &decoded.record).unwrap() else {
        panic!("applied as another record");
    };
    assert_eq!(applied.state_epoch, 17);
    assert_eq!(applied.scope, scope);
    assert!(applied.covers("orders", 0) && !applied.covers("orders", 1));
}

#[test]
fn a_reset_from_another_broker_or_of_an_unknown_partition_is_refused() {
    let (_dir, w) = writer_with_topic(&[1, 2]);
    let coordinator = w
        .snapshot()
        .cluster
        .as_deref()
        .unwrap()
        .coordinator("g")
        .unwrap();
    let other = if coordinator == 1 { 2 } else { 1 };
    let refused = w.apply_record(11, &reset("g", other, ResetScope::Group));
    assert_eq!(
        refused.unwrap_err().kafka_error_code(),
        16,
        "NOT_COORDINATOR"
    );
    let unknown = ResetScope::Partition {
        topic: "orders".into(),
        partition: 3,
        start_offset: 0,
    };
    let refused = w.apply_record(12, &reset("g", coordinator, unknown));
    assert_eq!(refused.unwrap_err().kafka_error_code(), 3);
    let negative = ResetScope::Partition {
        topic: "orders".into(),
        partition: 0,
        start_offset: -1,
    };
    let refused = w.apply_record(13, &reset("g", coordinator, negative));
    assert_eq!(refused.unwrap_err().kafka_error_code(), 42);
    let gone = ResetScope::Topic {
        topic: "nope".into(),
    };
    let refused = w.apply_record(14, &reset("g", coordinator, gone));
    assert_eq!(refused.unwrap_err().kafka_error_code(), 3);
}

#[test]
fn images_carry_the_state_epochs() {
    let (_dir_a, a) = writer_with_topic(&[1]);
    let epochs = vec![("g".to_string(), 40)];
    let image = a.encode_image(ShardImages {
        share_state_epochs: epochs.clone(),
        ..ShardImages::default()
    });
    let (_dir_b, b) = writer_with_topic(&[2]);
    assert_eq!(b.install_image(&image).unwrap().share_state_epochs, epochs);
    let mut old: serde_json::Value = serde_json::from_slice(&image).unwrap();
    old.as_object_mut().unwrap().remove("share_state_epochs");
    let old = serde_json::to_vec(&old).unwrap();
    assert!(b.install_image(&old).unwrap().share_state_epochs.is_empty());
}
