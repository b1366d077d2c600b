//! Share groups outlive their coordinator (issue 17, decision 0028): 3 nodes, an RF=3
//! topic whose partition's leader does not coordinate the share group, so one SIGKILL
//! takes the group's coordinator and nothing else. Two members join; one acquires the 20
//! records at the leader and accepts 0-9, holding 10-19. The coordinator is SIGKILLed.
//! What Kafka gives (its coordinator replays the ShareGroup* records of
//! `__consumer_offsets`): the new coordinator lists and describes the group, Stable, with
//! the same group epoch and both members at their member epochs; each member's next
//! heartbeat there is accepted with its epoch (no fencing, no rejoin); the holder accepts
//! 10-19 at the leader over its share session and gets the next records, each delivered
//! once. Then DeleteGroups (both members left) removes the stored group too: the killed
//! node comes back, the second coordinator is killed, and the third knows no such group;
//! a new member there starts the group at epoch 1. Before, the new coordinator knew no
//! such group (ListGroups empty, GROUP_ID_NOT_FOUND, UNKNOWN_MEMBER_ID to the heartbeats).

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ApiVersionsRequest, DeleteGroupsRequest, DeleteGroupsResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, find_coordinator};
use support::share::{acquired, sb};
use support::share_member::{ShareMember, cluster_with_group_led_elsewhere};
use support::wire::{RawConn, call_once, encode_batch, plain_record, produce_request};

const RECORDS: i64 = 20;
const ACCEPT: i8 = 1;
/// Waits on a loaded 2-core box: not speed assertions.
const WAIT: Duration = Duration::from_secs(60);
const CLIENT: &str = "share-groups-test";

fn produce(at: &str, topic: &str, first: i64) {
    let batch: Vec<_> = (first..first + RECORDS)
        .map(|i| plain_record(i, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let produced = RawConn::connect(at).unwrap_or_else(|e| panic!("{e}")).call(
        &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

/// A ShareGroupHeartbeat of `member` at `epoch` (-1: leave), subscriptions unchanged.
fn heartbeat(at: &str, group: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch);
    call_once(at, CLIENT, &request, 1)
}

fn describe(at: &str, group: &str) -> DescribedGroup {
    let request = ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]);
    let r: ShareGroupDescribeResponse = call_once(at, CLIENT, &request, 1);
    r.groups.into_iter().next().expect("one group described")
}

/// The member ids and epochs of a described group, sorted.
fn member_epochs(group: &DescribedGroup) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = group
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_epoch))
        .collect();
    out.sort();
    out
}

/// Share groups ListGroups shows at `at`: (id, state).
fn listed_share_groups(at: &str) -> Vec<(String, String)> {
    let request = ListGroupsRequest::default().with_types_filter(vec![sb("share")]);
    let r: ListGroupsResponse = call_once(at, CLIENT, &request, 5);
    assert_eq!(r.error_code, 0, "{r:?}");
    r.groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect()
}

/// The metadata format level whose records carry share groups (decision 0028).
const SHARE_GROUP_LEVEL: i16 = 4;

/// Waits until every node reports `sluice.metadata.version` finalized at the level that
/// stores share groups: a new cluster bootstraps to it once all its nodes registered, and
/// a group changed below it lives in its coordinator's memory only.
fn wait_for_share_group_records(cluster: &LocalCluster) {
    support::wait_until(WAIT, Duration::from_millis(100), || {
        let finalized: Vec<Option<i16>> = cluster
            .running_ids()
            .iter()
            .map(|id| {
                let mut conn = RawConn::connect(&cluster.node(*id).bootstrap()).ok()?;
                let r = conn.try_call(&ApiVersionsRequest::default(), 3).ok()?;
                r.finalized_features
                    .iter()
                    .find(|f| f.name.as_str() == "sluice.metadata.version")
                    .map(|f| f.max_version_level)
            })
            .collect();
        if finalized
            .iter()
            .all(|l| l.is_some_and(|l| l >= SHARE_GROUP_LEVEL))
        {
            Ok(())
        } else {
            Err(format!("finalized levels {finalized:?}"))
        }
    });
}

/// Kills `coordinator` and waits until every running node names the same other running
/// broker as `group`'s coordinator.
fn kill_coordinator(cluster: &mut LocalCluster, coordinator: i32, group: &str) -> i32 {
    cluster.node_mut(coordinator).kill();
    let mut successor = None;
    support::wait_until(WAIT, Duration::from_millis(100), || {
        let running = cluster.running_ids();
        let views: Vec<Option<i32>> = running
            .iter()
            .map(|id| find_coordinator(cluster.node(*id), group).ok())
            .collect();
        match views.first().copied().flatten() {
            Some(c)
                if c != coordinator
                    && running.contains(&c)
                    && views.iter().all(|v| *v == Some(c)) =>
            {
                successor = Some(c);
                Ok(())
            }
            _ => Err(format!("no settled coordinator for {group}: {views:?}")),
        }
    });
    successor.expect("a new coordinator")
}

#[test]
fn a_share_group_outlives_its_coordinator_and_delete_groups_removes_it_everywhere() {
    let topic = "outlive";
    let (mut cluster, leader, coordinator, group) =
        cluster_with_group_led_elsewhere(topic, "outlive");
    let at_leader = cluster.node(leader).bootstrap();
    let at_coordinator = cluster.node(coordinator).bootstrap();
    wait_for_share_group_records(&cluster);
    produce(&at_leader, topic, 0);

    let mut a = ShareMember::join(&at_coordinator, &group, "member-a", topic);
    let _b = ShareMember::join(&at_coordinator, &group, "member-b", topic);
    assert_eq!(
        a.fetch_until_acquired(&at_leader),
        vec![(0, RECORDS - 1, 1)]
    );
    let accepted = a
        .acknowledge(&at_leader, &[(0, 9, ACCEPT)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted.error_code, 0, "{accepted:?}");
    // Every member at the group's epoch (a heartbeat brings each up to date).
    for member in ["member-a", "member-b"] {
        let epoch = describe(&at_coordinator, &group)
            .members
            .iter()
            .find(|m| m.member_id.as_str() == member)
            .map_or(0, |m| m.member_epoch);
        assert_eq!(
            heartbeat(&at_coordinator, &group, member, epoch).error_code,
            0
        );
    }
    let before = describe(&at_coordinator, &group);
    assert_eq!(before.error_code, 0, "{before:?}");
    assert_eq!(member_epochs(&before).len(), 2, "{before:?}");

    let successor = kill_coordinator(&mut cluster, coordinator, &group);
    let at_successor = cluster.node(successor).bootstrap();
    assert_eq!(
        listed_share_groups(&at_successor),
        vec![(group.clone(), "Stable".to_string())],
        "ListGroups at the new coordinator {successor} (was {coordinator}, leader {leader}); \
         described there afterwards: {:?}\n{}",
        describe(&at_successor, &group),
        cluster.diagnostics()
    );
    let after = describe(&at_successor, &group);
    assert_eq!(
        after.error_code, 0,
        "ShareGroupDescribe at {successor}: {after:?}"
    );
    assert_eq!(
        (
            after.group_epoch,
            after.assignment_epoch,
            member_epochs(&after)
        ),
        (
            before.group_epoch,
            before.assignment_epoch,
            member_epochs(&before)
        ),
        "the group epoch, assignment epoch and members' epochs carry over"
    );
    for (member, epoch) in member_epochs(&before) {
        let r = heartbeat(&at_successor, &group, &member, epoch);
        assert_eq!(
            (r.error_code, r.member_epoch),
            (0, epoch),
            "{member} heartbeats on at {successor} with its epoch: {r:?}"
        );
    }

    // Consumption goes on at the leader: the held records accepted over the same share
    // session, then only new records, each once.
    let done = a
        .acknowledge(&at_leader, &[(10, RECORDS - 1, ACCEPT)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.error_code, 0, "{done:?}");
    assert_eq!(done.responses[0].partitions[0].error_code, 0, "{done:?}");
    produce(&at_leader, topic, RECORDS);
    assert_eq!(
        a.fetch_until_acquired(&at_leader),
        vec![(RECORDS, 2 * RECORDS - 1, 1)],
        "only the new records, delivered once"
    );
    let last = a
        .fetch(&at_leader, &[(RECORDS, 2 * RECORDS - 1, ACCEPT)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acquired(&last), vec![], "nothing delivered twice");

    deleted_group_stays_deleted(&mut cluster, coordinator, successor, &group, topic);
}

/// Both members leave; DeleteGroups at `successor`; the killed `coordinator` comes back
/// and `successor` is killed: the third coordinator does not know the group, and a new
/// member starts it at epoch 1.
fn deleted_group_stays_deleted(
    cluster: &mut LocalCluster,
    coordinator: i32,
    successor: i32,
    group: &str,
    topic: &str,
) {
    let at_successor = cluster.node(successor).bootstrap();
    for member in ["member-a", "member-b"] {
        assert_eq!(heartbeat(&at_successor, group, member, -1).error_code, 0);
    }
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]);
    let deleted: DeleteGroupsResponse = call_once(&at_successor, CLIENT, &request, 2);
    assert_eq!(deleted.results[0].error_code, 0, "{deleted:?}");
    assert_eq!(listed_share_groups(&at_successor), vec![]);

    cluster.node_mut(coordinator).spawn();
    cluster.wait_until_formed(3);
    let third = kill_coordinator(cluster, successor, group);
    let at_third = cluster.node(third).bootstrap();
    // The third coordinator has taken its slots over once it answers for them; give its
    // tick a moment to load what it stored, then it must still know no such group.
    let deadline = Instant::now() + WAIT;
    let described = loop {
        let d = describe(&at_third, group);
        if d.error_code != ResponseError::NotCoordinator.code() || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        described.error_code,
        ResponseError::GroupIdNotFound.code(),
        "the deleted group at {third}: {described:?}"
    );
    assert_eq!(listed_share_groups(&at_third), vec![]);
    let joined = ShareMember::join(&at_third, group, "member-c", topic);
    drop(joined);
    let fresh = describe(&at_third, group);
    assert_eq!(
        (fresh.error_code, fresh.group_epoch),
        (0, 1),
        "a new group of the same name starts at epoch 1: {fresh:?}"
    );
}
