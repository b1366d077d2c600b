//! Unit tests of the replicated share-partition state records (`share_state.rs`): the
//! leader-epoch fencing on apply, malformed states, and snapshot images.

use super::*;
use crate::metadata::MetadataWriter;
use crate::metadata::replicated::tests::writer_with_brokers;
use crate::metadata::replicated::{Applied, MetadataRecord, Proposal};
use crate::metadata::replicated_image::ShardImages;
use crate::partition::share::SharePartitionState;

fn writer_with_topic(ids: &[i32]) -> (tempfile::TempDir, MetadataWriter) {
    let (dir, writer) = writer_with_brokers(ids);
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
