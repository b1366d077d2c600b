//! A broker that loses a coordinator slot but stays up lets go of the groups it held
//! (issue 17, decisions 0024 and 0028), as Kafka's coordinator unloads the groups of a
//! `__consumer_offsets` partition it resigns. 3 nodes with fast fencing; a classic group
//! rebalances at its coordinator, a second member's JoinGroup parked there waiting for the
//! first to rejoin (up to its 30 s rebalance timeout). The coordinator is stopped (SIGSTOP)
//! until the others have fenced it and moved its slots, then continued: it answers the
//! parked JoinGroup NOT_COORDINATOR within seconds, and DescribeGroups and
//! ConsumerGroupDescribe there answer NOT_COORDINATOR, while the new coordinator shows
//! the group as last stored. On main the parked JoinGroup was answered at the rebalance
//! timeout with a new generation (success) by a broker that no longer coordinated the
//! group, and the stale broker described both groups with their members. A broker restarted
//! while the others are down names no coordinator until it caught up (not its stale one).

mod support;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DescribeGroupsRequest, GroupId,
    JoinGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, find_coordinator};
use support::wire::RawConn;

const WAIT: Duration = Duration::from_secs(60);
/// Kafka's NOT_COORDINATOR.
const NOT_COORDINATOR: i16 = 16;
/// Kafka's MEMBER_ID_REQUIRED.
const MEMBER_ID_REQUIRED: i16 = 79;
/// The members' rebalance timeout: on main the parked JoinGroup waited this long.
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// How soon after it runs again the old coordinator must answer the parked JoinGroup:
/// it has to apply the fencing records and tick (100 ms); far below the rebalance timeout,
/// generous for a loaded 2-core box.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
const FAST_FENCING: &str = "broker_session_timeout_ms = 1500\nbroker_heartbeat_interval_ms = 300\ngroup_initial_rebalance_delay_ms = 0\n";

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

fn join(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_session_timeout_ms(45_000)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"m")),
        ])
}

/// The member id a JoinGroup v5 without one is handed (MEMBER_ID_REQUIRED).
fn member_id_for(conn: &mut RawConn, group: &str) -> String {
    let first = conn.call(&join(group, ""), 5);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    first.member_id.to_string()
}

/// A classic member joins `group` alone and syncs generation 1 as its leader.
fn stable_member(conn: &mut RawConn, group: &str) -> String {
    let member_id = member_id_for(conn, group);
    let joined = conn.call(&join(group, &member_id), 5);
    assert_eq!(joined.error_code, 0, "JoinGroup");
    let sync = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(StrBytes::from_string(member_id.clone()))
        .with_generation_id(joined.generation_id)
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_assignment(Bytes::from_static(b"a")),
        ]);
    assert_eq!(conn.call(&sync, 3).error_code, 0, "SyncGroup");
    member_id
}

/// A KIP-848 member joins `group` subscribed to `topic`.
fn consumer_member(conn: &mut RawConn, group: &str, topic: &str) {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_string(
            topic.to_string(),
        ))]))
        .with_topic_partitions(Some(Vec::new()));
    let joined = conn.call(&request, 0);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
}

/// A KIP-848 group name with the classic group's coordinator.
fn consumer_group_of(cluster: &LocalCluster, coordinator: i32) -> String {
    (0..500)
        .map(|i| format!("resign-consumer-{i}"))
        .find(|g| find_coordinator(cluster.node(1), g).ok() == Some(coordinator))
        .expect("a group name of that coordinator")
}

/// DescribeGroups (v5) of `group` at `node`: (error code, state, member ids).
fn describe(cluster: &LocalCluster, node: i32, group: &str) -> (i16, String, Vec<String>) {
    let mut conn = RawConn::connect(&cluster.node(node).bootstrap()).expect("connect");
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let described = conn.call(&request, 5);
    let g = &described.groups[0];
    let members = g.members.iter().map(|m| m.member_id.to_string()).collect();
    (g.error_code, g.group_state.to_string(), members)
}

#[test]
fn a_coordinator_that_loses_its_slot_lets_go_of_its_groups() {
    let cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    let topic = "resign";
    cluster.create_replicated_topic(topic, 2, WAIT);
    let group = "resign-classic";
    let coordinator = find_coordinator(cluster.node(1), group).expect("FindCoordinator");
    let consumer_group = consumer_group_of(&cluster, coordinator);
    let bootstrap = cluster.node(coordinator).bootstrap();
    let mut first = RawConn::connect(&bootstrap).expect("connect");
    let first_id = stable_member(&mut first, group);
    consumer_member(&mut first, &consumer_group, topic);
    // A second member: the group rebalances, its JoinGroup waits for the first to rejoin.
    // Read with room past the rebalance timeout, so main's late answer is seen as such.
    let io = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64) + WAIT;
    let mut second = RawConn::connect_with(&bootstrap, "second", io).expect("connect");
    let second_id = member_id_for(&mut second, group);
    let parked = second
        .send(&join(group, &second_id), 5)
        .expect("send JoinGroup");
    support::wait_until(WAIT, Duration::from_millis(50), || {
        match describe(&cluster, coordinator, group) {
            (0, state, _) if state == "PreparingRebalance" => Ok(()),
            seen => Err(format!(
                "the group not rebalancing at {coordinator}: {seen:?}"
            )),
        }
    });

    // Fenced while stopped: the others move its slots (and elect other leaders).
    cluster.node(coordinator).stop_and_wait();
    let others: Vec<i32> = (1..=3).filter(|id| *id != coordinator).collect();
    let deadline = Instant::now() + WAIT;
    let successor = loop {
        let views: Vec<Option<i32>> = others
            .iter()
            .map(|id| find_coordinator(cluster.node(*id), group).ok())
            .collect();
        if let Some(Some(s)) = views.first().copied()
            && s != coordinator
            && views.iter().all(|v| *v == Some(s))
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the slot did not move: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    cluster.node(coordinator).signal("-CONT");
    let resumed = Instant::now();

    let answer = second
        .receive::<JoinGroupRequest>(5, parked)
        .expect("JoinGroup answer");
    let waited = resumed.elapsed();
    eprintln!(
        "coordinator {coordinator} -> {successor}; parked JoinGroup answered {} {waited:?} after SIGCONT",
        answer.error_code
    );
    assert_eq!(
        answer.error_code, NOT_COORDINATOR,
        "the parked JoinGroup at the broker that lost the slot: {answer:?}"
    );
    assert!(waited < ANSWER_WITHIN, "answered {waited:?} after SIGCONT");

    // The old coordinator describes neither group; the new one shows the classic group
    // as last stored (generation 1, its first member), as before this change.
    assert_eq!(describe(&cluster, coordinator, group).0, NOT_COORDINATOR);
    let mut conn = RawConn::connect(&bootstrap).expect("connect");
    let request =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(&consumer_group)]);
    let described = conn.call(&request, 0);
    assert_eq!(
        described.groups[0].error_code, NOT_COORDINATOR,
        "{described:?}"
    );
    let (code, state, members) = describe(&cluster, successor, group);
    assert_eq!((code, state.as_str()), (0, "Stable"));
    assert_eq!(members, vec![first_id]);
}

/// How long the lone restarted node is watched: it must take no connection all along.
const LONE_FOR: Duration = Duration::from_secs(3);
/// What every shard of a start logs once its partitions are open.
const SHARD_READY: &str = "shard ready";

/// A restarted broker holds the state it stopped with until it catches up with the quorum,
/// and the group's slot may have moved meanwhile. Answering from it, it named itself
/// coordinator for a group whose slot had moved away (a client's heartbeats there then
/// answer NOT_COORDINATOR until its session times out, seen in the failover loop's group),
/// and its Metadata could list brokers fenced since or leave out ones registered since.
/// As a Kafka broker opens its listeners only after its first catch-up, it does not listen
/// before. Here the killed coordinator starts again while the other two are down, so it
/// cannot catch up: its shards open their partitions, and its port still refuses
/// connections (it took them, and named itself, before this change).
#[test]
fn a_restarted_broker_takes_no_connection_before_it_caught_up() {
    let mut cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    let group = "restart-stale";
    let coordinator = find_coordinator(cluster.node(1), group).expect("FindCoordinator");
    cluster.node_mut(coordinator).kill();
    let others: Vec<i32> = (1..=3).filter(|id| *id != coordinator).collect();
    support::wait_until(WAIT, Duration::from_millis(100), || {
        let views: Vec<_> = others
            .iter()
            .map(|id| find_coordinator(cluster.node(*id), group))
            .collect();
        match views.first() {
            Some(Ok(s)) if *s != coordinator && views.iter().all(|v| v == &Ok(*s)) => Ok(()),
            _ => Err(format!(
                "the slot did not move from {coordinator}: {views:?}"
            )),
        }
    });
    for id in &others {
        cluster.node_mut(*id).kill();
    }

    let log_start = cluster.node_mut(coordinator).spawn_unwaited();
    cluster
        .node(coordinator)
        .wait_until_logged(log_start, SHARD_READY, WAIT);
    cluster
        .node_mut(coordinator)
        .assert_refuses_connections_for(
            LONE_FOR,
            "the restarted broker, alone, served from the state it stopped with",
        );

    // Once the others are back it catches up, listens, and names what they name.
    cluster.start_nodes(&others);
    cluster.node_mut(coordinator).wait_until_serving(log_start);
    support::wait_until(WAIT, Duration::from_millis(100), || {
        let views: Vec<_> = (1..=3)
            .map(|id| find_coordinator(cluster.node(id), group))
            .collect();
        match views.first() {
            Some(Ok(c)) if views.iter().all(|v| v == &Ok(*c)) => Ok(()),
            _ => Err(format!(
                "the brokers do not name one coordinator: {views:?}"
            )),
        }
    });
}
