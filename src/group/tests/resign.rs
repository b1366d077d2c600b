//! Cluster mode: a broker whose coordinator slot moves away while it stays up lets go of
//! the groups it held (issue 17, decisions 0024 and 0028), as Kafka's coordinator unloads
//! the groups of a partition it resigns: parked requests are answered NOT_COORDINATOR at
//! the next tick, no timer of the group fires or stores anything afterwards, and when the
//! slot comes back the stored state loads as before.

use super::share_takeover::share_beat;
use super::takeover::{beat, clustered};
use super::*;
use crate::group::share::sessions::SessionUpdate;

/// The node applies what its coordinator proposed (the fake slot only records it).
fn apply_stored(h: &Harness, slot: &takeover::FakeSlot) {
    for (group, _, membership) in slot.stored.borrow().iter() {
        h.c.apply_membership(group, membership.clone());
    }
}

#[test]
fn a_parked_join_is_answered_not_coordinator_when_the_slot_moves_away() {
    run(async {
        let (h, slot) = clustered(Some(1));
        let (ids, generation) = stable_group(&h, "g", 1);
        let writes = slot.stored.borrow().len();
        // A second member joins: the group rebalances and its JoinGroup waits for the first
        // member to rejoin, up to the rebalance timeout (30 s).
        let (_, parked) = h.join_new("g", 7_000);
        let mut parked = waiting(parked);
        assert_eq!(
            h.c.group_state("g").map(|s| s.0),
            Some(GroupState::PreparingRebalance)
        );

        slot.epoch.set(None);
        h.c.tick(h.at(7_100));
        let answer = answered(&mut parked).expect("answered at the tick, not at the timeout");
        assert_eq!(answer.error_code, ResponseError::NotCoordinator.code());
        assert_eq!(h.c.group_state("g"), None, "the group is let go of");
        // Past the rebalance timeout and every session: nothing comes back, nothing is
        // stored by this broker for a slot it does not hold.
        h.c.tick(h.at(60_000));
        assert_eq!(h.c.group_state("g"), None);
        assert_eq!(slot.stored.borrow().len(), writes);

        // The slot comes back under a new epoch: the stored generation loads as before.
        apply_stored(&h, &slot);
        slot.epoch.set(Some(3));
        h.c.tick(h.at(61_000));
        assert_eq!(h.c.group_state("g"), Some((GroupState::Stable, generation)));
        assert_eq!(h.heartbeat("g", &ids[0], None, generation, 61_100), 0);
    });
}

#[test]
fn a_parked_sync_is_answered_not_coordinator_when_the_slot_moves_away() {
    run(async {
        let (h, slot) = clustered(Some(1));
        let (first, p1) = h.join_new("g", 0);
        let (second, p2) = h.join_new("g", 0);
        let (mut r1, mut r2) = (waiting(p1), waiting(p2));
        h.c.tick(h.at(3_000));
        h.c.tick(h.at(6_000));
        let joined = answered(&mut r1).expect("join complete");
        assert!(answered(&mut r2).is_some(), "join complete");
        let follower = if joined.leader.as_str() == first {
            second
        } else {
            first
        };
        // The follower's SyncGroup waits for the leader's assignment.
        let mut parked = waiting(h.sync("g", &follower, joined.generation_id, &[], 6_100));

        slot.epoch.set(None);
        h.c.tick(h.at(6_200));
        let answer = answered(&mut parked).expect("answered at the tick");
        assert_eq!(answer.error_code, ResponseError::NotCoordinator.code());
        assert_eq!(h.c.group_state("g"), None);
    });
}

#[test]
fn a_consumer_protocol_group_is_let_go_of_and_its_offsets_stay() {
    run(async {
        let (h, slot) = clustered(Some(1));
        let joined = beat(&h, "m1", 0, &[], 1_000);
        assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
        let topics = Default::default();
        let described = h.c.consumer_group_describe("g", &topics, h.at(1_100));
        assert_eq!((described.error_code, described.members.len()), (0, 1));
        // A committed offset, as every node applies it (the fake replicator applies nothing).
        let entry = crate::group::OffsetEntry {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: 0,
        };
        let commit = crate::group::offset_log::LogRecord::Commit {
            topic: "t".into(),
            partition: 0,
            entry,
        };
        h.c.apply_replicated("g", &[commit]);

        slot.epoch.set(None);
        h.c.tick(h.at(1_300));
        let described = h.c.consumer_group_describe("g", &topics, h.at(1_400));
        assert_eq!(
            described.error_code,
            ResponseError::NotCoordinator.code(),
            "{described:?}"
        );
        // What is left here is the offsets: no member, no epoch, nothing to time out.
        let listed = h.c.list_groups(&Default::default(), h.at(1_500));
        assert!(listed.is_empty(), "{listed:?}");
        slot.epoch.set(Some(3));
        let described = h.c.consumer_group_describe("g", &topics, h.at(1_600));
        assert_eq!(
            (described.group_epoch, described.members.len()),
            (0, 0),
            "the stale epochs went with the members: {described:?}"
        );
        let offsets: Vec<i64> = h.committed("g").iter().map(|c| c.2).collect();
        assert_eq!(offsets, vec![5], "committed offsets are every node's");
    });
}

#[test]
fn a_share_group_is_let_go_of_and_its_members_keep_their_sessions_here() {
    run(async {
        let (h, slot) = clustered(Some(1));
        assert_eq!(share_beat(&h, "m1", 0, 0).error_code, 0);
        let partitions = [(uuid::Uuid::from_u128(7), 0)];
        let update = |epoch: i32, any_member: bool, at_ms: u64| SessionUpdate {
            member_id: "m1",
            epoch,
            add: if epoch == 0 { &partitions } else { &[] },
            forget: &[],
            may_open: true,
            any_member,
            connection: 1,
            now: h.at(at_ms),
        };
        assert!(h.c.share_session_update("s", update(0, false, 10)).is_ok());
        assert_eq!(h.c.share_group_members(), vec![("s".to_string(), 1)]);

        slot.epoch.set(None);
        h.c.tick(h.at(100));
        assert!(
            h.c.share_group_members().is_empty(),
            "the group is let go of"
        );
        // This broker still leads the partition: the member's session goes on here.
        assert_eq!(
            h.c.share_session_update("s", update(1, true, 200)),
            Ok(partitions.to_vec())
        );
        h.c.tick(h.at(60_000));
        assert!(h.c.share_group_members().is_empty());

        // The slot comes back: the stored group loads as before.
        apply_stored(&h, &slot);
        slot.epoch.set(Some(3));
        h.c.tick(h.at(61_000));
        assert_eq!(h.c.share_group_members(), vec![("s".to_string(), 1)]);
    });
}
