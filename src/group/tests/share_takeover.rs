//! Cluster mode's share-group takeover (decision 0028): a share group's state, as its
//! coordinator stored it, loads on the broker that takes its slot over, whose members then
//! keep their member epochs; a deleted group leaves a tombstone; below format level 4
//! nothing is stored.

use futures_util::FutureExt;
use kafka_protocol::messages::ShareGroupHeartbeatResponse;

use super::takeover::clustered;
use super::*;
use crate::group::share::{ShareHeartbeat, ShareTimeouts};

pub(super) fn share_beat(
    h: &Harness,
    member: &str,
    epoch: i32,
    at_ms: u64,
) -> ShareGroupHeartbeatResponse {
    let topics =
        std::collections::HashMap::from([("t".to_string(), (uuid::Uuid::from_u128(7), 2))]);
    let subscribed = (epoch == 0).then(|| vec!["t".to_string()]);
    let request = ShareHeartbeat {
        member_id: member,
        member_epoch: epoch,
        rack_id: None,
        subscribed_topic_names: subscribed,
        client_id: "c",
        client_host: "",
    };
    let answer =
        h.c.share_heartbeat("s", request, &topics, ShareTimeouts::default(), h.at(at_ms));
    answer
        .now_or_never()
        .expect("the fake slot commits at once")
}

#[test]
fn the_next_coordinator_loads_the_share_group_and_its_members_keep_their_epochs() {
    run(async {
        let (old, old_slot) = clustered(Some(1));
        assert_eq!(share_beat(&old, "m1", 0, 0).member_epoch, 1);
        assert_eq!(share_beat(&old, "m2", 0, 10).member_epoch, 2);
        let m1_epoch = share_beat(&old, "m1", 1, 20).member_epoch;
        assert_eq!(m1_epoch, 2, "m1 brought up to the group's epoch");
        let stored = old_slot.stored.borrow().clone();
        assert_eq!(
            stored.len(),
            3,
            "one record per change, none for a steady heartbeat"
        );
        let last = stored.last().cloned().expect("stored");
        let share = last.2.share.clone().expect("a share group's record");
        assert_eq!((share.group_epoch, share.members.len()), (2, 2));
        // A steady heartbeat and a tick store nothing new.
        share_beat(&old, "m1", 2, 30);
        old.c.tick(old.at(40));
        assert_eq!(old_slot.stored.borrow().len(), 3);

        // The slot moves: the old broker answers NOT_COORDINATOR ...
        old_slot.epoch.set(None);
        let refused = share_beat(&old, "m1", 2, 50);
        assert_eq!(refused.error_code, ResponseError::NotCoordinator.code());
        // ... and the one that applied the records serves the members at their epochs.
        let (new, _) = clustered(Some(2));
        for (group, _, membership) in stored {
            new.c.apply_membership(&group, membership);
        }
        let topics = std::collections::HashMap::new();
        let described = new.c.share_group_describe("s", &topics, new.at(60));
        assert_eq!(
            (
                described.error_code,
                described.group_epoch,
                described.members.len()
            ),
            (0, 2, 2)
        );
        for member in ["m1", "m2"] {
            let r = share_beat(&new, member, 2, 70);
            assert_eq!((r.error_code, r.member_epoch), (0, 2), "{member}: {r:?}");
            assert!(r.assignment.is_none(), "nothing new to assign: {r:?}");
        }

        // Without the records the next coordinator does not know the members.
        let (bare, _) = clustered(Some(3));
        let r = share_beat(&bare, "m1", 2, 70);
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    });
}

#[test]
fn a_deleted_share_group_leaves_a_tombstone_and_starts_again_at_epoch_one() {
    run(async {
        let (old, old_slot) = clustered(Some(1));
        share_beat(&old, "m1", 0, 0);
        assert_eq!(share_beat(&old, "m1", -1, 10).error_code, 0);
        assert_eq!(old.c.delete_group("s", old.at(20)).await, 0);
        let stored = old_slot.stored.borrow().clone();
        let tombstone = &stored.last().expect("the tombstone").2;
        assert!(
            tombstone.is_empty() && tombstone.version.is_set(),
            "{tombstone:?}"
        );

        let (new, _) = clustered(Some(2));
        for (group, _, membership) in stored {
            new.c.apply_membership(&group, membership);
        }
        let topics = std::collections::HashMap::new();
        let described = new.c.share_group_describe("s", &topics, new.at(30));
        assert_eq!(described.error_code, ResponseError::GroupIdNotFound.code());
        assert_eq!(share_beat(&new, "m2", 0, 40).member_epoch, 1);
    });
}

#[test]
fn below_format_level_four_share_groups_are_not_stored() {
    run(async {
        let (old, old_slot) = clustered(Some(1));
        old_slot.level.set(Some(3));
        assert_eq!(share_beat(&old, "m1", 0, 0).error_code, 0);
        old.c.tick(old.at(10));
        assert!(old_slot.stored.borrow().is_empty());
        // Once the cluster is finalized at 4, the tick stores the group.
        old_slot.level.set(None);
        old.c.tick(old.at(20));
        let stored = old_slot.stored.borrow();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].2.share.is_some());
    });
}
