//! Sticky coordinators and replicated group membership (issue 17, decision 0024).
//! 3 nodes on 127.0.0.1 with fast fencing, an RF=3 topic of two partitions; two
//! confluent-kafka consumers of one group (`tests/clients/cluster_group_takeover.py`), classic
//! or KIP-848 (`group.protocol=consumer`), consume and commit while a producer writes. The
//! group's coordinator is SIGKILLed: the broker that takes its slot over loads the stored
//! membership, so the members keep their member ids and generation or member epochs (no
//! assignment callback fires, their commits are accepted), the committed offsets are served
//! there, and the killed broker, restarted, does not take the group back. The other brokers
//! answer the group's Heartbeat (ConsumerGroupHeartbeat) with NOT_COORDINATOR.
//! Needs confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`); `SLUICE_SKIP_REAL_CLIENTS=1`
//! skips it loudly.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DescribeGroupsRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, ListGroupsRequest, OffsetCommitRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, find_coordinator};
use support::wire::RawConn;
use support::{clients_dir, real_clients_skipped};

const WAIT: Duration = Duration::from_secs(60);
/// How long the script may take to form the group, and to finish after the kill.
const SCRIPT_WAIT: Duration = Duration::from_secs(150);
const TOPIC: &str = "takeover";
/// Kafka's NOT_COORDINATOR.
const NOT_COORDINATOR: i16 = 16;
/// Kafka's COORDINATOR_NOT_AVAILABLE.
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// Kafka's REBALANCE_IN_PROGRESS.
const REBALANCE_IN_PROGRESS: i16 = 27;
const FAST_FENCING: &str = "broker_session_timeout_ms = 1500\nbroker_heartbeat_interval_ms = 300\ngroup_initial_rebalance_delay_ms = 0\n";

/// The script's next line, or a failure naming `what` after `within`.
fn next_line(
    lines: &mpsc::Receiver<String>,
    within: Duration,
    what: &str,
    seen: &[String],
) -> String {
    lines.recv_timeout(within).unwrap_or_else(|_| {
        panic!(
            "no {what} from the script; its output:\n{}",
            seen.join("\n")
        )
    })
}

/// The client script, killed if the test fails first (else it outlives the cluster, blocked
/// on brokers that are gone, and holds the test's output open).
struct ScriptChild(std::process::Child);

impl Drop for ScriptChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Heartbeat (`protocol` "classic") or ConsumerGroupHeartbeat ("consumer") of an unknown
/// member of `group` at `node`: its error code.
fn heartbeat(cluster: &LocalCluster, node: i32, group: &str, protocol: &str) -> i16 {
    let group_id = GroupId(StrBytes::from_string(group.to_string()));
    let mut conn = match RawConn::connect(&cluster.node(node).bootstrap()) {
        Ok(c) => c,
        Err(_) => return -1,
    };
    if protocol == "consumer" {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group_id)
            .with_member_id(StrBytes::from_static_str("nobody"))
            .with_member_epoch(1);
        return conn.try_call(&request, 0).map_or(-1, |r| r.error_code);
    }
    let request = HeartbeatRequest::default()
        .with_group_id(group_id)
        .with_member_id(StrBytes::from_static_str("nobody"))
        .with_generation_id(1);
    conn.try_call(&request, 4).map_or(-1, |r| r.error_code)
}

#[test]
fn a_classic_group_keeps_its_generation_when_its_coordinator_is_killed() {
    kill_the_coordinator_of_two_members(
        "a_classic_group_keeps_its_generation_when_its_coordinator_is_killed",
        "classic",
    );
}

/// KIP-848 (decision 0024, session 20): the members' epochs, subscriptions and
/// assignments are stored, so the next coordinator accepts their heartbeats as they are.
/// On main the next coordinator answered UNKNOWN_MEMBER_ID: the members lost their
/// partitions and were assigned again (lost/assign callbacks).
#[test]
fn a_consumer_protocol_group_keeps_its_member_epochs_when_its_coordinator_is_killed() {
    kill_the_coordinator_of_two_members(
        "a_consumer_protocol_group_keeps_its_member_epochs_when_its_coordinator_is_killed",
        "consumer",
    );
}

/// Two members of a `protocol` group commit while their coordinator is SIGKILLed; they
/// must carry on at the next coordinator without a rebalance.
fn kill_the_coordinator_of_two_members(test: &str, protocol: &str) {
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let mut cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    cluster.create_replicated_topic(TOPIC, 2, WAIT);
    let group = format!("takeover-{protocol}");
    let group = group.as_str();
    let mut child = ScriptChild(
        Command::new(&python)
            .arg("cluster_group_takeover.py")
            .args(["--bootstrap", &cluster.bootstrap(), "--topic", TOPIC])
            .args(["--group", group, "--partitions", "2", "--after", "15"])
            .args(["--group-protocol", protocol])
            .current_dir(clients_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the client script"),
    );
    let child = &mut child.0;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let ready = loop {
        let line = next_line(&lines, SCRIPT_WAIT, "ready", &seen);
        seen.push(line.clone());
        if let Some(ids) = line.strip_prefix("ready ") {
            break ids.to_string();
        }
    };
    let (coordinator, committed) = cluster.settled_coordinator(group, TOPIC, None, WAIT);
    assert!(committed > 0, "a commit of partition 0 at {coordinator}");
    for other in (1..=3).filter(|id| *id != coordinator) {
        assert_eq!(
            heartbeat(&cluster, other, group, protocol),
            NOT_COORDINATOR,
            "Heartbeat at node {other}, which does not coordinate {group}"
        );
    }

    let killed_at = Instant::now();
    cluster.node_mut(coordinator).kill();
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "killed").expect("tell the script");
    drop(stdin);
    loop {
        let line = next_line(&lines, SCRIPT_WAIT, "done", &seen);
        seen.push(line.clone());
        if line == "done" {
            break;
        }
    }
    let _ = child.wait();
    eprintln!(
        "killed coordinator {coordinator}; script done {:?} later\n{}",
        killed_at.elapsed(),
        seen.join("\n")
    );
    let value = |prefix: &str| {
        seen.iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{}", seen.join("\n")))
            .to_string()
    };
    assert_eq!(value("after "), ready, "the members kept their member ids");
    assert_eq!(
        value("callbacks_after_kill "),
        "0",
        "no rebalance: no assignment callback after the kill"
    );
    let commits: u64 = value("commits_after_kill ").parse().unwrap_or(0);
    assert!(commits > 0, "each member committed at the new coordinator");

    // The new coordinator serves the offsets the members committed (partition 0's last).
    let (successor, fetched) = cluster.settled_coordinator(group, TOPIC, Some(coordinator), WAIT);
    let last: i64 = value("committed 0 ").parse().unwrap_or(-1);
    assert!(
        fetched >= committed,
        "{fetched} at {successor}, {committed} before the kill"
    );
    assert_eq!(
        fetched, last,
        "OffsetFetch at {successor} against the members' view"
    );

    // The killed broker returns; the group stays where it went (no second move).
    cluster.node_mut(coordinator).spawn();
    cluster.wait_until_formed(3);
    let (after, _) = cluster.settled_coordinator(group, TOPIC, None, WAIT);
    assert_eq!(after, successor, "the group stays with {successor}");
    assert_eq!(
        heartbeat(&cluster, coordinator, group, protocol),
        NOT_COORDINATOR
    );
}

/// Two group names, one classic and one KIP-848, with the same coordinator.
fn groups_of_one_coordinator(cluster: &LocalCluster) -> (String, String, i32) {
    let coordinator = |g: &str| find_coordinator(cluster.node(1), g).expect("FindCoordinator");
    for i in 0..200 {
        let classic = format!("shows-classic-{i}");
        let target = coordinator(&classic);
        for j in 0..200 {
            let consumer = format!("shows-consumer-{j}");
            if coordinator(&consumer) == target {
                return (classic, consumer, target);
            }
        }
    }
    panic!("no two groups with one coordinator");
}

/// A classic member joins `group` at `conn` and, as its leader, syncs generation 1 with
/// assignment `b"a"`: its member id (the SyncGroup must succeed).
fn classic_member(conn: &mut RawConn, group: &str) -> String {
    let (member_id, code) = join_and_sync(conn, group);
    assert_eq!(code, 0, "SyncGroup");
    member_id
}

/// A classic member joins `group` at `conn` and syncs as its leader: its member id and the
/// SyncGroup's error code.
fn join_and_sync(conn: &mut RawConn, group: &str) -> (String, i16) {
    let (member_id, generation) = join_alone(conn, group);
    let synced = conn.call(&leader_sync(group, &member_id, generation), 3);
    (member_id, synced.error_code)
}

/// The SyncGroup of `member`, the leader and only member of `group`, assigning it `b"a"`.
fn leader_sync(group: &str, member_id: &str, generation: i32) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_generation_id(generation)
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_assignment(Bytes::from_static(b"a")),
        ])
}

/// A classic member joins `group` at `conn`, alone: its member id and generation.
fn join_alone(conn: &mut RawConn, group: &str) -> (String, i32) {
    let join = |member_id: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_session_timeout_ms(45_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"m")),
            ])
    };
    // v5: the first JoinGroup hands out the member id (MEMBER_ID_REQUIRED).
    let first = conn.call(&join(""), 5);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member_id = first.member_id.to_string();
    let joined = conn.call(&join(&member_id), 5);
    assert_eq!(joined.error_code, 0, "JoinGroup");
    (member_id, joined.generation_id)
}

/// A KIP-848 member joins `group` subscribed to `topic` (ConsumerGroupHeartbeat v0, the
/// coordinator makes its member id): its member id and epoch.
fn consumer_member(conn: &mut RawConn, group: &str, topic: &str) -> (String, i32) {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_string(
            topic.to_string(),
        ))]))
        .with_topic_partitions(Some(Vec::new()));
    let joined = conn.call(&request, 0);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let member_id = joined.member_id.expect("a member id").to_string();
    (member_id, joined.member_epoch)
}

/// Decision 0024, session 20: the broker that takes a group's slot over loads it when the
/// slot moves (its tick), not at the members' first request, so ListGroups,
/// DescribeGroups and ConsumerGroupDescribe there show it at once. Raw requests only: no
/// member ever talks to the new coordinator. On main the new coordinator listed neither
/// group (the classic one loaded at its first request, the KIP-848 one not at all).
#[test]
fn a_group_taken_over_shows_at_its_new_coordinator_before_its_first_request_there() {
    let mut cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    let topic = "shows";
    cluster.create_replicated_topic(topic, 2, WAIT);
    let (classic, consumer, coordinator) = groups_of_one_coordinator(&cluster);
    let mut conn = RawConn::connect(&cluster.node(coordinator).bootstrap()).expect("connect");
    let classic_id = classic_member(&mut conn, &classic);
    let (consumer_id, epoch) = consumer_member(&mut conn, &consumer, topic);
    drop(conn);
    // Both answers came once their membership records committed (SyncGroup and the
    // heartbeat wait for them), so the next coordinator has applied both.
    cluster.node_mut(coordinator).kill();
    let (successor, _) = cluster.settled_coordinator(&consumer, topic, Some(coordinator), WAIT);
    let mut conn = RawConn::connect(&cluster.node(successor).bootstrap()).expect("connect");

    let listed = conn.call(&ListGroupsRequest::default(), 5);
    let state_of = |g: &str| {
        listed
            .groups
            .iter()
            .find(|l| l.group_id.0.as_str() == g)
            .map(|l| (l.group_state.to_string(), l.group_type.to_string()))
    };
    assert_eq!(
        state_of(&classic),
        Some(("Stable".to_string(), "classic".to_string())),
        "ListGroups at {successor}: {listed:?}"
    );
    assert_eq!(
        state_of(&consumer).map(|s| s.1),
        Some("consumer".to_string()),
        "ListGroups at {successor}: {listed:?}"
    );

    let described = conn.call(
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(classic.clone()))]),
        5,
    );
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "Stable", "{group:?}");
    let members: Vec<&str> = group.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, vec![classic_id.as_str()]);
    assert_eq!(&group.members[0].member_assignment[..], b"a");

    let described = conn.call(
        &ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(consumer.clone()))]),
        0,
    );
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0, "{group:?}");
    let members: Vec<(&str, i32)> = group
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.member_epoch))
        .collect();
    assert_eq!(members, vec![(consumer_id.as_str(), epoch)]);
}

/// Decision 0024, session 20: SyncGroup answers once the generation's membership record
/// has committed, so a coordinator that dies right after answering cannot leave its
/// successor an older generation than the members were told. Without a quorum (both
/// other nodes killed) the record cannot commit: the leader's SyncGroup is answered
/// COORDINATOR_NOT_AVAILABLE (Kafka's answer for a failed group metadata append) within
/// the bound, never success. On main it answered success at once.
#[test]
fn sync_group_without_a_quorum_does_not_answer_success() {
    sync_group_without_a_quorum(|cluster, other| cluster.node_mut(other).kill());
}

/// The same with both other nodes stopped (SIGSTOP), not dead: their connections stay open
/// and take bytes into the kernel's buffers, but no vote or append acknowledgement comes
/// back, so the record still cannot commit.
#[test]
fn sync_group_with_the_other_voters_stopped_does_not_answer_success() {
    sync_group_without_a_quorum(|cluster, other| cluster.node(other).stop_and_wait());
}

fn sync_group_without_a_quorum(take_away: impl Fn(&mut LocalCluster, i32)) {
    let cluster_config = FAST_FENCING;
    let mut cluster = LocalCluster::start_with_config(3, cluster_config);
    cluster.wait_until_formed(3);
    let group = "no-quorum";
    let coordinator = find_coordinator(cluster.node(1), group).expect("FindCoordinator");
    for other in (1..=3).filter(|id| *id != coordinator) {
        take_away(&mut cluster, other);
    }
    let mut conn = RawConn::connect(&cluster.node(coordinator).bootstrap()).expect("connect");
    let started = Instant::now();
    let (_, code) = join_and_sync(&mut conn, group);
    let waited = started.elapsed();
    eprintln!("SyncGroup without a quorum: error {code} after {waited:?}");
    assert!(
        code == COORDINATOR_NOT_AVAILABLE || code == NOT_COORDINATOR,
        "SyncGroup without a quorum answered {code}"
    );
    assert!(waited < WAIT, "answered within the bound, not {waited:?}");
}

/// Decision 0024, session 21: while the record of the generation the leader's SyncGroup
/// completed is proposed, the group is CompletingRebalance, as Kafka's until its
/// GroupMetadata append completes. The other two nodes are killed, so the record cannot
/// commit; meanwhile, on another connection, DescribeGroups says CompletingRebalance
/// without the assignment, an OffsetCommit of the new generation is answered
/// REBALANCE_IN_PROGRESS at once and a Heartbeat is fine. On main the group showed
/// Stable with its assignment and the commit was taken (to wait for a quorum).
#[test]
fn a_generation_whose_record_is_not_committed_is_still_completing_its_rebalance() {
    let mut cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    let topic = "window";
    cluster.create_replicated_topic(topic, 1, WAIT);
    let group = "window";
    let coordinator = find_coordinator(cluster.node(1), group).expect("FindCoordinator");
    let bootstrap = cluster.node(coordinator).bootstrap();
    let mut conn = RawConn::connect(&bootstrap).expect("connect");
    let mut probe = RawConn::connect(&bootstrap).expect("connect");
    let (member_id, generation) = join_alone(&mut conn, group);
    for other in (1..=3).filter(|id| *id != coordinator) {
        cluster.node_mut(other).kill();
    }
    let started = Instant::now();
    let correlation = conn
        .send(&leader_sync(group, &member_id, generation), 3)
        .expect("send SyncGroup");
    // Long enough for the SyncGroup to be taken, well inside the time the coordinator
    // needs to give the record up (over a second: `sync_group_without_a_quorum_...`).
    std::thread::sleep(Duration::from_millis(50));

    let described = probe.call(
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]),
        5,
    );
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.clone()))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ]);
    let committed = probe.call(&commit, 8);
    let beat = probe.call(
        &HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_member_id(StrBytes::from_string(member_id.clone()))
            .with_generation_id(generation),
        4,
    );
    let probed = started.elapsed();
    let synced = conn
        .receive::<SyncGroupRequest>(3, correlation)
        .expect("SyncGroup answer");
    eprintln!(
        "probed within {probed:?}; SyncGroup answered {} after {:?}",
        synced.error_code,
        started.elapsed()
    );
    let group_described = &described.groups[0];
    assert_eq!(
        group_described.group_state.as_str(),
        "CompletingRebalance",
        "{group_described:?}"
    );
    assert!(
        group_described
            .members
            .iter()
            .all(|m| m.member_assignment.is_empty()),
        "{group_described:?}"
    );
    let commit_code = committed.topics[0].partitions[0].error_code;
    assert_eq!(
        commit_code, REBALANCE_IN_PROGRESS,
        "OffsetCommit in the window"
    );
    assert_eq!(beat.error_code, 0, "Heartbeat in the window");
    assert!(
        synced.error_code == COORDINATOR_NOT_AVAILABLE || synced.error_code == NOT_COORDINATOR,
        "the record could not commit: SyncGroup answered {}",
        synced.error_code
    );
}
