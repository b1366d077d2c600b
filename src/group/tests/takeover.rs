//! Cluster mode's classic group takeover (decision 0024): a Stable group's membership, as
//! its coordinator stored it, loads on the broker that takes its slot over, whose members
//! then keep their generation; a broker that does not coordinate answers NOT_COORDINATOR.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::*;
use crate::group::offset_log::LogRecord;
use crate::metadata::group_membership::GroupMembership;
use crate::metadata::group_offsets::OffsetChange;

/// A replicator whose slot epoch the test sets; it keeps what it was asked to store.
#[derive(Default)]
pub(super) struct FakeSlot {
    pub(super) epoch: Cell<Option<i32>>,
    pub(super) stored: RefCell<Vec<(String, i32, GroupMembership)>>,
    /// Transactional changes proposed, in order (the test applies them as the log would).
    pub(super) proposed: RefCell<Vec<(String, Vec<OffsetChange>)>>,
    /// The error code every membership write fails with (e.g. no quorum), if any.
    fail: Cell<Option<i16>>,
    /// The metadata log index the node has applied.
    pub(super) applied_index: Cell<u64>,
    /// When set, the next membership write commits only once this resolves.
    hold: RefCell<Option<oneshot::Receiver<()>>>,
    /// The finalized format level; unset: this binary's newest.
    pub(super) level: Cell<Option<i16>>,
}

impl OffsetsReplicator for FakeSlot {
    fn coordinates(&self, _group_id: &str) -> bool {
        self.epoch.get().is_some()
    }

    fn coordinates_slot(&self, _slot: usize) -> bool {
        self.epoch.get().is_some()
    }

    fn coordinator_epoch(&self, _group_id: &str) -> Option<i32> {
        self.epoch.get()
    }

    fn applied_index(&self) -> u64 {
        self.applied_index.get()
    }

    fn format_level(&self) -> i16 {
        self.level
            .get()
            .unwrap_or(crate::metadata::format_level::CURRENT_LEVEL)
    }

    fn store_membership(
        &self,
        group_id: String,
        epoch: i32,
        membership: GroupMembership,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        self.stored.borrow_mut().push((group_id, epoch, membership));
        let fail = self.fail.get();
        let hold = self.hold.borrow_mut().take();
        Box::pin(async move {
            if let Some(hold) = hold {
                let _ = hold.await;
            }
            match fail {
                Some(code) => Err(WriteError {
                    code,
                    message: "no quorum".into(),
                }),
                None => Ok(()),
            }
        })
    }

    fn replicate(
        &self,
        _group_id: String,
        _records: Vec<LogRecord>,
        _origin: WriteOrigin,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        Box::pin(async { Ok(()) })
    }

    fn replicate_changes(
        &self,
        group_id: String,
        changes: Vec<OffsetChange>,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        self.proposed.borrow_mut().push((group_id, changes));
        Box::pin(async { Ok(()) })
    }
}

pub(super) fn clustered(epoch: Option<i32>) -> (Harness, Rc<FakeSlot>) {
    let h = Harness::new(3_000);
    let slot = Rc::new(FakeSlot::default());
    slot.epoch.set(epoch);
    h.c.replicate_through(slot.clone());
    (h, slot)
}

#[test]
fn the_next_coordinator_loads_the_stable_group_and_its_members_keep_their_generation() {
    run(async {
        let (old, old_slot) = clustered(Some(1));
        let (ids, generation) = stable_group(&old, "g", 2);
        let stored = old_slot.stored.borrow().clone();
        assert_eq!(stored.len(), 1, "stored once, at the leader's SyncGroup");
        let (group, epoch, membership) = stored[0].clone();
        assert_eq!((group.as_str(), epoch), ("g", 1));
        assert_eq!(membership.generation, generation);
        assert_eq!(membership.members.len(), 2);
        // The next tick stores nothing new: the generation is unchanged.
        old.c.tick(old.at(6_100));
        assert_eq!(old_slot.stored.borrow().len(), 1);

        // The slot moves: the old broker answers NOT_COORDINATOR ...
        old_slot.epoch.set(None);
        let not_coordinator = ResponseError::NotCoordinator.code();
        assert_eq!(
            old.heartbeat("g", &ids[0], None, generation, 6_200),
            not_coordinator
        );
        // ... and the broker that took the slot over (which applied the record) serves the
        // members in their generation, with the assignments the leader gave them.
        let (new, _) = clustered(Some(2));
        new.c.apply_membership("g", membership.clone());
        for id in &ids {
            assert_eq!(new.heartbeat("g", id, None, generation, 50_000), 0, "{id}");
        }
        assert_eq!(
            new.c.group_state("g"),
            Some((GroupState::Stable, generation))
        );
        let synced = ready(new.sync("g", &ids[1], generation, &[], 50_000));
        assert_eq!(
            (synced.error_code, &synced.assignment[..]),
            (0, &b"part-1"[..])
        );
        // Sessions started at the takeover: a member silent past its session from then
        // is removed (the group rebalances), so none lives forever.
        new.c.tick(new.at(50_000 + SESSION_MS as u64 + 1));
        assert_ne!(
            new.c.group_state("g").map(|s| s.0),
            Some(GroupState::Stable)
        );

        // Without a stored membership the next coordinator does not know the members.
        let (bare, _) = clustered(Some(3));
        assert_eq!(
            bare.heartbeat("g", &ids[0], None, generation, 50_000),
            ResponseError::UnknownMemberId.code()
        );
    });
}

/// A KIP-848 heartbeat of `member` at `epoch` owning `owned` partitions of topic "t".
pub(super) fn beat(
    h: &Harness,
    member: &str,
    epoch: i32,
    owned: &[i32],
    at_ms: u64,
) -> kafka_protocol::messages::ConsumerGroupHeartbeatResponse {
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names((epoch == 0).then(|| vec![TopicName(sb("t"))]))
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic_id(uuid::Uuid::from_u128(7))
                .with_partitions(owned.to_vec()),
        ]));
    let topics =
        std::collections::HashMap::from([("t".to_string(), (uuid::Uuid::from_u128(7), 4))]);
    let client = ClientInfo::default();
    let timeouts = consumer::DEFAULT_TIMEOUTS;
    let now = h.at(at_ms);
    let answer =
        h.c.consumer_heartbeat(&request, &client, &topics, timeouts, now);
    futures_util::FutureExt::now_or_never(answer).expect("the fake slot commits at once")
}

/// The partitions an answer assigns, if it carries an assignment.
fn assigned(r: &kafka_protocol::messages::ConsumerGroupHeartbeatResponse) -> Option<Vec<i32>> {
    r.assignment.as_ref().map(|a| {
        let mut ps: Vec<i32> = a
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        ps.sort();
        ps
    })
}

#[test]
fn the_next_coordinator_loads_a_consumer_protocol_group_and_its_members_keep_their_epochs() {
    let (old, old_slot) = clustered(Some(1));
    // Two members join and reconcile to an even split of four partitions.
    let mut members = [("m1", 0, Vec::new()), ("m2", 0, Vec::new())];
    for round in 0..6u64 {
        for (id, epoch, owned) in members.iter_mut() {
            let r = beat(&old, id, *epoch, owned, 1_000 + round * 100);
            assert_eq!(r.error_code, 0, "{id}: {:?}", r.error_message);
            *epoch = r.member_epoch;
            if let Some(ps) = assigned(&r) {
                *owned = ps;
            }
        }
    }
    assert_eq!(members[0].2.len() + members[1].2.len(), 4, "{members:?}");
    assert!(members.iter().all(|m| m.2.len() == 2), "{members:?}");
    let stored = old_slot.stored.borrow().clone();
    let (group, epoch, membership) = stored.last().cloned().expect("stored");
    assert_eq!((group.as_str(), epoch), ("g", 1));
    let consumer = membership.consumer.clone().expect("the KIP-848 part");
    assert_eq!(consumer.members.len(), 2);
    // A steady heartbeat changes nothing: nothing more is stored.
    let writes = stored.len();
    beat(&old, "m1", members[0].1, &members[0].2, 2_000);
    assert_eq!(old_slot.stored.borrow().len(), writes);

    // The slot moves: the old broker answers NOT_COORDINATOR ...
    old_slot.epoch.set(None);
    let r = beat(&old, "m1", members[0].1, &members[0].2, 2_100);
    assert_eq!(r.error_code, ResponseError::NotCoordinator.code());
    // ... and the broker that took it over (which applied the record) keeps every member
    // at its epoch and assignment: no new assignment is sent, no epoch is fenced.
    let (new, new_slot) = clustered(Some(2));
    new.c.apply_membership("g", membership.clone());
    for (id, epoch, owned) in &members {
        let r = beat(&new, id, *epoch, owned, 60_000);
        assert_eq!(r.error_code, 0, "{id}: {:?}", r.error_message);
        assert_eq!(r.member_epoch, *epoch, "{id} keeps its epoch");
        assert_eq!(assigned(&r), None, "{id}: no new assignment");
    }
    assert!(new_slot.stored.borrow().is_empty(), "nothing changed");
    let described = new
        .c
        .consumer_group_describe("g", &Default::default(), new.at(60_000));
    assert_eq!(described.group_epoch, consumer.group_epoch);
    assert_eq!(described.members.len(), 2);

    // Without a stored membership the next coordinator does not know the members.
    let (bare, _) = clustered(Some(3));
    let r = beat(&bare, "m1", members[0].1, &members[0].2, 60_000);
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
}

#[test]
fn snapshots_that_commit_in_the_other_order_leave_the_successor_the_newer_one() {
    // Two members reconcile: every epoch or assignment change is a whole-group snapshot.
    let (old, old_slot) = clustered(Some(1));
    let mut members = [("m1", 0, Vec::new()), ("m2", 0, Vec::new())];
    for round in 0..6u64 {
        for (id, epoch, owned) in members.iter_mut() {
            let r = beat(&old, id, *epoch, owned, 1_000 + round * 100);
            assert_eq!(r.error_code, 0, "{id}: {:?}", r.error_message);
            *epoch = r.member_epoch;
            if let Some(ps) = assigned(&r) {
                *owned = ps;
            }
        }
    }
    let mut snapshots: Vec<_> = old_slot
        .stored
        .borrow()
        .iter()
        .map(|s| s.2.clone())
        .collect();
    assert!(snapshots.len() >= 2, "{} snapshots", snapshots.len());
    let newer = snapshots.len() - 1;
    assert_ne!(
        snapshots[newer - 1].consumer,
        snapshots[newer].consumer,
        "the last two differ"
    );
    // The last two were proposed together and commit in the other order.
    snapshots.swap(newer - 1, newer);
    let (new, _) = clustered(Some(2));
    for s in snapshots {
        new.c.apply_membership("g", s);
    }
    // The successor loads the newer snapshot: every member keeps the epoch and the
    // assignment it was last told (with the older one, one would be fenced or be sent an
    // assignment again).
    for (id, epoch, owned) in &members {
        let r = beat(&new, id, *epoch, owned, 60_000);
        assert_eq!(r.error_code, 0, "{id}: {:?}", r.error_message);
        assert_eq!(r.member_epoch, *epoch, "{id} keeps its epoch");
        assert_eq!(assigned(&r), None, "{id}: no new assignment");
    }
}

#[test]
fn a_group_taken_over_shows_in_list_and_describe_before_its_first_request() {
    run(async {
        let (old, old_slot) = clustered(Some(1));
        let (ids, generation) = stable_group(&old, "g", 2);
        let (_, _, membership) = old_slot.stored.borrow().last().cloned().expect("stored");
        let (new, new_slot) = clustered(Some(2));
        new.c.apply_membership("g", membership);
        // Not this broker's slot: nothing is listed.
        new_slot.epoch.set(None);
        new.c.tick(new.at(50_000));
        assert!(
            new.c
                .list_groups(&ListGroupsRequest::default(), new.at(50_000))
                .is_empty()
        );
        // The slot moves here: listed and described at once, no member having asked.
        new_slot.epoch.set(Some(2));
        let listed = new
            .c
            .list_groups(&ListGroupsRequest::default(), new.at(50_100));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].group_state.as_str(), "Stable");
        let described = new.c.describe_group("g", 5, new.at(50_100));
        assert_eq!(described.group_state.as_str(), "Stable");
        let mut members: Vec<String> = described
            .members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect();
        members.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(members, expected);
        assert_eq!(
            new.c.group_state("g"),
            Some((GroupState::Stable, generation))
        );
    });
}

#[test]
fn the_tick_loads_a_group_whose_slot_moved_here() {
    let (old, old_slot) = clustered(Some(1));
    beat(&old, "m1", 0, &[], 1_000);
    let (_, _, membership) = old_slot.stored.borrow().last().cloned().expect("stored");
    let (new, _) = clustered(Some(2));
    new.c.apply_membership("g", membership);
    assert_eq!(
        new.c.group_state("g"),
        None,
        "nothing loaded before the tick"
    );
    new.c.tick(new.at(2_000));
    let described = new
        .c
        .consumer_group_describe("g", &Default::default(), new.at(2_000));
    assert_eq!(described.error_code, 0);
    assert_eq!(described.members.len(), 1);
}

/// Two members join group "g" and the rebalance completes: (leader, follower, generation).
fn two_members_joined(h: &Harness) -> (String, String, i32) {
    let (a, pa) = h.join_new("g", 0);
    let (b, pb) = h.join_new("g", 0);
    let (mut ra, mut rb) = (waiting(pa), waiting(pb));
    h.c.tick(h.at(3_000));
    h.c.tick(h.at(6_000));
    let joined = answered(&mut ra).expect("join complete");
    answered(&mut rb).expect("join complete");
    let (leader, follower) = if joined.leader.as_str() == a {
        (a, b)
    } else {
        (b, a)
    };
    (leader, follower, joined.generation_id)
}

#[test]
fn sync_group_answers_only_once_its_generation_is_stored_and_an_error_if_it_cannot_be() {
    run(async {
        let (h, slot) = clustered(Some(1));
        slot.fail.set(Some(ResponseError::RequestTimedOut.code()));
        let (leader, follower, generation) = two_members_joined(&h);
        let mut follower_sync = waiting(h.sync("g", &follower, generation, &[], 6_000));
        let split = [(leader.as_str(), &b"l"[..]), (follower.as_str(), &b"f"[..])];
        // The record is refused (a timed-out proposal): neither member is told success,
        // both get COORDINATOR_NOT_AVAILABLE (Kafka's mapping of REQUEST_TIMED_OUT), and
        // the generation is abandoned.
        let lead = ready(h.sync("g", &leader, generation, &split, 6_100));
        let unavailable = ResponseError::CoordinatorNotAvailable.code();
        assert_eq!(lead.error_code, unavailable);
        let followed = answered(&mut follower_sync).expect("answered");
        assert_eq!(followed.error_code, unavailable);
        assert_eq!(slot.stored.borrow().len(), 1, "one write was tried");
        assert_eq!(
            h.c.group_state("g").map(|s| s.0),
            Some(GroupState::PreparingRebalance)
        );
        assert_eq!(
            h.heartbeat("g", &leader, None, generation, 6_200),
            ResponseError::RebalanceInProgress.code()
        );
    });
}

/// Kafka keeps a classic group CompletingRebalance until the GroupMetadata record of the
/// generation the leader's SyncGroup completed is appended (GroupMetadataManager's
/// SyncGroup), so a request arriving meanwhile is answered as in that state: Heartbeat
/// fine, OffsetCommit REBALANCE_IN_PROGRESS, JoinGroup of an unchanged member the current
/// generation, DescribeGroups CompletingRebalance without assignments.
#[test]
fn while_a_generations_record_commits_the_group_is_completing_its_rebalance() {
    let (h, slot) = clustered(Some(1));
    let (commit, held) = oneshot::channel();
    *slot.hold.borrow_mut() = Some(held);
    let (leader, follower, generation) = two_members_joined(&h);
    let sync = |member: &str, assignments: &[(&str, &[u8])]| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, x)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(m))
                            .with_assignment(Bytes::copy_from_slice(x))
                    })
                    .collect(),
            )
    };
    let split = [(leader.as_str(), &b"l"[..]), (follower.as_str(), &b"f"[..])];
    let waker = futures_util::task::noop_waker_ref();
    let mut cx = std::task::Context::from_waker(waker);
    let mut leader_sync = Box::pin(h.c.sync(sync(&leader, &split), 5, h.at(6_100)));
    assert!(leader_sync.as_mut().poll(&mut cx).is_pending(), "held");
    let mut follower_sync = Box::pin(h.c.sync(sync(&follower, &[]), 5, h.at(6_100)));
    assert!(follower_sync.as_mut().poll(&mut cx).is_pending(), "held");

    // The record is proposed, not committed.
    assert_eq!(slot.stored.borrow().len(), 1);
    assert_eq!(
        h.c.group_state("g"),
        Some((GroupState::CompletingRebalance, generation))
    );
    assert_eq!(h.heartbeat("g", &follower, None, generation, 6_200), 0);
    assert_eq!(
        h.commit("g", &follower, generation, &[("t", 0, 5)], 6_200),
        vec![ResponseError::RebalanceInProgress.code()],
        "no commit in a generation not stored yet"
    );
    let described = h.c.describe_group("g", 5, h.at(6_200));
    assert_eq!(described.group_state.as_str(), "CompletingRebalance");
    assert!(
        described
            .members
            .iter()
            .all(|m| m.member_assignment.is_empty()),
        "no assignment shown before it is stored"
    );
    let rejoined = ready(h.join_v("g", &follower, None, b"topics:t", 30_000, 9, 6_200));
    assert_eq!(
        (rejoined.error_code, rejoined.generation_id),
        (0, generation),
        "an unchanged member's JoinGroup gets the current generation, no rebalance"
    );

    // It commits: Stable, both answered with their assignments, commits accepted.
    commit.send(()).expect("the write waits");
    let std::task::Poll::Ready(led) = leader_sync.as_mut().poll(&mut cx) else {
        panic!("the leader's SyncGroup is answered once the record committed");
    };
    let std::task::Poll::Ready(followed) = follower_sync.as_mut().poll(&mut cx) else {
        panic!("the follower's SyncGroup is answered once the record committed");
    };
    assert_eq!((led.error_code, &led.assignment[..]), (0, &b"l"[..]));
    assert_eq!(
        (followed.error_code, &followed.assignment[..]),
        (0, &b"f"[..])
    );
    assert_eq!(h.c.group_state("g"), Some((GroupState::Stable, generation)));
    assert_eq!(
        h.commit("g", &follower, generation, &[("t", 0, 5)], 6_300),
        vec![0]
    );
}
