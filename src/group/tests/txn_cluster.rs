//! Cluster mode's transactional offsets (decision 0022): a TxnOffsetCommit at the group's
//! coordinator proposes its offsets as pending, every node applies them, and the
//! transaction's end at the group's slot commits exactly them (or drops them); a repeated
//! end proposes nothing. The fake replicator records proposals; the test applies them to
//! two coordinators, as the metadata log's apply loop would on two nodes.

use super::takeover::{FakeSlot, clustered};
use super::*;
use crate::metadata::coordinator_slots::coordinator_slot;
use crate::metadata::group_offsets::OffsetChange;

const PRODUCER: i64 = 7;

fn committer(producer_id: i64) -> TxnCommitter {
    TxnCommitter {
        producer_id,
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
    }
}

fn offset(partition: i32, offset: i64) -> TxnOffset {
    TxnOffset {
        topic: "in".to_string(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    }
}

/// Applies every proposal `slot` recorded to each coordinator, then forgets them.
fn apply_proposals(slot: &FakeSlot, nodes: &[&Harness]) -> Vec<(String, Vec<OffsetChange>)> {
    let proposed: Vec<_> = slot.proposed.borrow_mut().drain(..).collect();
    for (group, changes) in &proposed {
        for node in nodes {
            node.c.apply_replicated_txn(group, changes);
        }
    }
    proposed
}

/// TxnOffsetCommit's two steps at the coordinator of "g": the guard taken before the
/// verification (which the handler does at the transaction's coordinator), then the
/// proposal.
async fn commit_txn(h: &Harness, producer_id: i64, offsets: Vec<TxnOffset>) -> Vec<i16> {
    let guard =
        h.c.begin_txn_offsets("g", producer_id, h.at(0))
            .expect("a guard");
    h.c.replicate_txn_offsets("g", &committer(producer_id), guard, offsets, h.at(0))
        .await
}

fn offsets_of(h: &Harness, group: &str) -> Vec<(i32, i64)> {
    h.committed(group)
        .into_iter()
        .map(|(_, p, o, _)| (p, o))
        .collect()
}

#[test]
fn a_commit_makes_exactly_the_pending_offsets_committed_on_every_node_and_once() {
    run(async {
        let (coordinator, slot) = clustered(Some(1));
        let (other, _) = clustered(Some(1));
        let codes = commit_txn(&coordinator, PRODUCER, vec![offset(0, 10), offset(1, 4)]).await;
        assert_eq!(codes, vec![0, 0]);
        assert_eq!(apply_proposals(&slot, &[&coordinator, &other]).len(), 1);
        for node in [&coordinator, &other] {
            assert!(
                offsets_of(node, "g").is_empty(),
                "pending offsets are not committed yet"
            );
            assert!(
                node.c.has_pending_txn_offset("g", "in", 0),
                "every node holds them"
            );
        }
        coordinator
            .c
            .end_txn_in_slot(coordinator_slot("g"), PRODUCER, true)
            .await
            .expect("ended");
        let ended = apply_proposals(&slot, &[&coordinator, &other]);
        assert_eq!(
            ended,
            vec![(
                "g".to_string(),
                vec![OffsetChange::TxnEnd {
                    producer_id: PRODUCER,
                    commit: true
                }]
            )]
        );
        for node in [&coordinator, &other] {
            assert_eq!(offsets_of(node, "g"), vec![(0, 10), (1, 4)]);
            assert!(!node.c.has_pending_txn_offset("g", "in", 0));
        }
        // A retried marker finds nothing pending: nothing is proposed.
        coordinator
            .c
            .end_txn_in_slot(coordinator_slot("g"), PRODUCER, true)
            .await
            .expect("ended again");
        assert!(slot.proposed.borrow().is_empty());
    });
}

#[test]
fn an_abort_drops_the_pending_offsets_and_keeps_the_committed_ones() {
    run(async {
        let (h, slot) = clustered(Some(1));
        commit_txn(&h, PRODUCER, vec![offset(0, 10)]).await;
        apply_proposals(&slot, &[&h]);
        h.c.end_txn_in_slot(coordinator_slot("g"), PRODUCER, true)
            .await
            .expect("commit");
        apply_proposals(&slot, &[&h]);
        commit_txn(&h, PRODUCER, vec![offset(0, 20)]).await;
        // Another producer's offsets in the same group are not touched by this end.
        commit_txn(&h, PRODUCER + 1, vec![offset(1, 3)]).await;
        apply_proposals(&slot, &[&h]);
        h.c.end_txn_in_slot(coordinator_slot("g"), PRODUCER, false)
            .await
            .expect("abort");
        apply_proposals(&slot, &[&h]);
        assert_eq!(offsets_of(&h, "g"), vec![(0, 10)]);
        assert!(!h.c.has_pending_txn_offset("g", "in", 0));
        assert!(h.c.has_pending_txn_offset("g", "in", 1));
    });
}

#[test]
fn a_broker_that_does_not_coordinate_the_slot_neither_takes_offsets_nor_ends_them() {
    run(async {
        let (h, slot) = clustered(None);
        let codes = commit_txn(&h, PRODUCER, vec![offset(0, 10)]).await;
        assert_eq!(codes, vec![ResponseError::NotCoordinator.code()]);
        assert!(slot.proposed.borrow().is_empty());
        // Even with nothing pending in its own view it must not say "ended": its view may be
        // behind the coordinator's.
        assert_eq!(
            h.c.end_txn_in_slot(coordinator_slot("g"), PRODUCER, true)
                .await,
            Err(ResponseError::NotCoordinator.code())
        );
    });
}

#[test]
fn pending_offsets_are_bounded_per_producer() {
    run(async {
        let (h, slot) = clustered(Some(1));
        let many: Vec<TxnOffset> = (0..=i32::try_from(MAX_PENDING_TXN_OFFSETS_PER_PRODUCER)
            .unwrap_or(i32::MAX))
            .map(|p| offset(p, 1))
            .collect();
        let codes = commit_txn(&h, PRODUCER, many).await;
        let refused = codes
            .iter()
            .filter(|c| **c == ResponseError::InvalidRequest.code())
            .count();
        assert_eq!(
            refused, 1,
            "the offset past MAX_PENDING_TXN_OFFSETS_PER_PRODUCER"
        );
        let proposed: usize = slot.proposed.borrow().iter().map(|(_, c)| c.len()).sum();
        assert_eq!(proposed, MAX_PENDING_TXN_OFFSETS_PER_PRODUCER);
    });
}

#[test]
fn a_snapshot_image_carries_the_pending_offsets() {
    run(async {
        let (h, slot) = clustered(Some(1));
        commit_txn(&h, PRODUCER, vec![offset(0, 10)]).await;
        apply_proposals(&slot, &[&h]);
        let image = h.c.replicated_pending();
        let (restored, restored_slot) = clustered(Some(1));
        // A pending offset the image does not hold is gone after the install.
        restored.c.apply_replicated_txn(
            "stale",
            &[OffsetChange::TxnPending {
                producer_id: 1,
                topic: "in".to_string(),
                partition: 9,
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_ms: 0,
            }],
        );
        restored.c.install_pending(image.into_iter().collect());
        assert!(restored.c.has_pending_txn_offset("g", "in", 0));
        assert!(!restored.c.has_pending_txn_offset("stale", "in", 9));
        restored
            .c
            .end_txn_in_slot(coordinator_slot("g"), PRODUCER, true)
            .await
            .expect("ended");
        apply_proposals(&restored_slot, &[&restored]);
        assert_eq!(offsets_of(&restored, "g"), vec![(0, 10)]);
    });
}

#[test]
fn offsets_verified_before_the_marker_are_refused_after_it() {
    // The transaction timed out and was aborted between the verification and the
    // proposal: its marker found nothing pending. The late proposal must not leave
    // offsets of an aborted transaction pending for the producer's next one to commit.
    run(async {
        let (h, slot) = clustered(Some(1));
        let guard =
            h.c.begin_txn_offsets("g", PRODUCER, h.at(0))
                .expect("a guard");
        h.c.end_txn_in_slot(coordinator_slot("g"), PRODUCER, false)
            .await
            .expect("the abort's marker");
        let codes =
            h.c.replicate_txn_offsets(
                "g",
                &committer(PRODUCER),
                guard,
                vec![offset(0, 10)],
                h.at(0),
            )
            .await;
        assert_eq!(codes, vec![ResponseError::InvalidTxnState.code()]);
        assert!(slot.proposed.borrow().is_empty(), "nothing proposed");
        // The producer's next transaction commits only its own offsets.
        assert_eq!(commit_txn(&h, PRODUCER, vec![offset(1, 5)]).await, vec![0]);
        apply_proposals(&slot, &[&h]);
        h.c.end_txn_in_slot(coordinator_slot("g"), PRODUCER, true)
            .await
            .expect("the commit's marker");
        apply_proposals(&slot, &[&h]);
        assert_eq!(offsets_of(&h, "g"), vec![(1, 5)]);
    });
}
