//! Unit tests of the replicated transaction state records (`txn_state.rs`): the encoding
//! and its bound, the coordinator fencing on apply, and snapshot images.

use super::*;
use crate::metadata::replicated::tests::writer_with_brokers;
use crate::metadata::replicated::{Applied, MetadataRecord, Proposal};
use crate::metadata::replicated_image::ShardImages;
use crate::txn::TxnState;
use crate::txn::state::TxnGroupOffset;

fn state(id: &str) -> TxnMetadata {
    let offset = TxnGroupOffset {
        offset: 42,
        leader_epoch: 3,
        metadata: "quoted \"meta\"\n".into(),
    };
    TxnMetadata::new(id.into(), 1_000, 60_000, 5)
        .with_added(&[("orders".into(), 0), ("orders".into(), 3)], Some("g"), 6)
        .unwrap()
        .with_offsets("g", vec![("in".into(), 2, offset)], 7)
        .unwrap()
}

fn record(meta: &TxnMetadata, coordinator: i32) -> MetadataRecord {
    MetadataRecord::TxnState {
        transactional_id: meta.transactional_id.clone(),
        coordinator,
        base_version: 0,
        metadata: encode(meta).unwrap(),
    }
}

#[test]
fn a_state_round_trips_through_a_proposal_and_anything_else_is_refused() {
    let meta = state("tx-a");
    let proposal = Proposal {
        origin: 1,
        sequence: 7,
        record: record(&meta, 2),
    };
    let decoded = Proposal::decode(&proposal.encode()).unwrap();
    assert_eq!(decoded.record, proposal.record);
    let MetadataRecord::TxnState { metadata, .. } = decoded.record else {
        panic!("decoded as another record");
    };
    assert_eq!(decode(&metadata), Some(meta.clone()));

    // Not base64, a flipped bit (checksum), a cut frame, two frames: all refused.
    assert_eq!(decode("not base64!"), None);
    let frame = crate::txn::log::encode_state(&meta);
    let mut flipped = frame.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(decode(&BASE64.encode(&flipped)), None);
    assert_eq!(decode(&BASE64.encode(&frame[..frame.len() - 3])), None);
    let twice = [frame.clone(), frame].concat();
    assert_eq!(decode(&BASE64.encode(twice)), None);
}

#[test]
fn a_state_past_the_bound_is_not_encoded_and_the_largest_one_fits_a_record() {
    let mut huge = TxnMetadata::new("tx-huge".into(), 1, 60_000, 5);
    let topic = "t".repeat(249);
    let partitions = crate::txn::state::MAX_PARTITIONS_PER_TRANSACTION as i32;
    huge.partitions = (0..partitions).map(|p| (topic.clone(), p)).collect();
    assert!(crate::txn::log::encode_state(&huge).len() > MAX_REPLICATED_TXN_STATE_BYTES);
    assert_eq!(encode(&huge), None);

    // The largest state accepted, with the longest id, still fits a metadata record.
    let id = "\u{1}".repeat(MAX_TRANSACTIONAL_ID_BYTES);
    let mut largest = TxnMetadata::new(id.clone(), 1, 60_000, 5);
    while crate::txn::log::encode_state(&largest).len() + 260 <= MAX_REPLICATED_TXN_STATE_BYTES {
        let p = largest.partitions.len() as i32;
        largest.partitions.insert((topic.clone(), p));
    }
    let proposal = Proposal {
        origin: 1,
        sequence: u64::MAX,
        record: MetadataRecord::TxnState {
            transactional_id: id,
            coordinator: i32::MAX,
            base_version: u64::MAX,
            metadata: encode(&largest).unwrap(),
        },
    };
    assert!(proposal.encode().len() <= crate::metadata::replicated::MAX_RECORD_BYTES);
    assert!(Proposal::decode(&proposal.encode()).is_ok());
}

#[test]
fn txn_states_are_applied_only_from_the_ids_coordinator() {
    let (_dir, a) = writer_with_brokers(&[1, 2, 3]);
    let meta = state("tx-a");
    let cluster = a.snapshot().cluster.clone().unwrap();
    let coordinator = cluster.coordinator("tx-a").unwrap();
    let other = coordinator % 3 + 1;
    let stale = a.apply_record(10, &record(&meta, other)).unwrap_err();
    assert_eq!(stale.kafka_error_code(), 16, "NOT_COORDINATOR");
    match a.apply_record(11, &record(&meta, coordinator)).unwrap() {
        Applied::TxnState {
            metadata,
            base_version,
        } => assert_eq!((metadata, base_version), (meta.clone(), 0)),
        applied => panic!("applied as {applied:?}"),
    }
    // Fenced: a live broker takes the id's slot over; the old one's writes are refused
    // the same way on every node.
    a.apply_record(12, &MetadataRecord::FenceBroker { id: coordinator })
        .unwrap();
    let next = a.snapshot().cluster.clone().unwrap().coordinator("tx-a");
    assert!(next.is_some_and(|n| n != coordinator));
    assert!(a.apply_record(13, &record(&meta, coordinator)).is_err());
    let mut aborting = meta.clone();
    aborting.state = TxnState::PrepareAbort;
    assert!(
        a.apply_record(14, &record(&aborting, next.unwrap()))
            .is_ok()
    );
    // A record whose state is another id's is refused as invalid.
    let mut mislabelled = record(&state("tx-b"), next.unwrap());
    if let MetadataRecord::TxnState {
        transactional_id, ..
    } = &mut mislabelled
    {
        *transactional_id = "tx-a".into();
    }
    let invalid = a.apply_record(15, &mislabelled).unwrap_err();
    assert_eq!(invalid.kafka_error_code(), 42, "INVALID_REQUEST");
}

#[test]
fn images_carry_the_txn_states() {
    let (_dir_a, a) = writer_with_brokers(&[1]);
    let states: TxnStatesImage = vec![
        (11, encode(&state("tx-a")).unwrap()),
        (12, encode(&state("tx-b")).unwrap()),
    ];
    let image = a.encode_image(ShardImages {
        txn_states: states.clone(),
        ..ShardImages::default()
    });
    let (_dir_b, b) = writer_with_brokers(&[]);
    let installed = b.install_image(&image).unwrap();
    assert_eq!(installed.txn_states, states);
    assert_eq!(decode(&installed.txn_states[1].1), Some(state("tx-b")));
    // An image written before the states were replicated has none.
    let mut old: serde_json::Value = serde_json::from_slice(&image).unwrap();
    old.as_object_mut().unwrap().remove("txn_states");
    let old = serde_json::to_vec(&old).unwrap();
    assert!(b.install_image(&old).unwrap().txn_states.is_empty());
}
