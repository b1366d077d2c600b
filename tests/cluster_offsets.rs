//! Committed group offsets survive the loss of their coordinator (issue 17, decision
//! 0018): in cluster mode OffsetCommit is answered only after the metadata quorum
//! committed the offsets and this node applied them, and every node applies them, so the
//! broker FindCoordinator names after the coordinator's SIGKILL serves the same offsets.
//! 3 nodes on 127.0.0.1, one core each, an RF=3 topic; a confluent-kafka consumer group
//! commits, the coordinator is killed, another broker serves the offsets (raw OffsetFetch)
//! and the group resumes from them (no record read twice past the commit, none skipped).
//! The killed node restarts and serves them too, and so does a node restarted from a
//! metadata snapshot taken after more than 1,000 commits.
//! Needs confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`); `SLUICE_SKIP_REAL_CLIENTS=1`
//! skips it loudly.

mod support;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
use kafka_protocol::protocol::StrBytes;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, fetch_offset, find_coordinator};
use support::wire::{RawConn, topic_name};
use support::{Broker, clients_dir, real_clients_skipped};

const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "offsets";
/// Kafka's NOT_COORDINATOR.
const NOT_COORDINATOR: i16 = 16;

/// A standalone commit (generation -1, as an admin tool's) of `offset` (OffsetCommit v8).
fn commit_offset(conn: &mut RawConn, group: &str, offset: i64) -> Result<i16, String> {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(-1);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![partition]),
        ]);
    let response = conn.try_call(&request, 8)?;
    Ok(response.topics[0].partitions[0].error_code)
}

/// `cluster.settled_coordinator` for `TOPIC` within `WAIT`.
fn settled_coordinator(cluster: &LocalCluster, group: &str, not: Option<i32>) -> (i32, i64) {
    cluster.settled_coordinator(group, TOPIC, not, WAIT)
}

/// `fetch_offset` of `TOPIC`.
fn fetch(node: &Broker, group: &str) -> Result<i64, i16> {
    fetch_offset(node, group, TOPIC)
}

/// Runs the client script (`cluster_failover.py MODE ...`) to its end; returns its lines.
fn script(python: &std::path::Path, args: &[&str]) -> Vec<String> {
    let output = Command::new(python)
        .arg("cluster_failover.py")
        .args(args)
        .current_dir(clients_dir())
        .output()
        .expect("run the client script");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{args:?} failed: {text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines().map(str::to_string).collect()
}

/// `script consume`: the records read (offset, value) and the last acknowledged commit.
fn consume(
    python: &std::path::Path,
    bootstrap: &str,
    group: &str,
    count: usize,
) -> (Vec<(i64, u64)>, i64) {
    let count = count.to_string();
    let lines = script(
        python,
        &[
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            TOPIC,
            "--group",
            group,
            "--count",
            &count,
            "--print-records",
            "--commit-ms",
            "50",
        ],
    );
    let records = lines
        .iter()
        .filter_map(|l| {
            let mut f = l.strip_prefix("rec ")?.split(' ');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    let committed = lines
        .iter()
        .filter_map(|l| l.strip_prefix("commit ")?.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(-1);
    (records, committed)
}

fn cluster_with_topic() -> LocalCluster {
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    // The group's coordinator may be another node than the one that answered CreateTopics.
    cluster.create_replicated_topic(TOPIC, 1, WAIT);
    cluster
}

#[test]
fn committed_offsets_survive_the_coordinators_sigkill() {
    let test = "committed_offsets_survive_the_coordinators_sigkill";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let mut cluster = cluster_with_topic();
    let filled = script(
        &python,
        &[
            "fill",
            "--bootstrap",
            &cluster.bootstrap(),
            "--topic",
            TOPIC,
            "--count",
            "300",
        ],
    );
    assert!(filled.iter().any(|l| l == "filled 300"), "{filled:?}");
    let group = "survivors";
    let (first, committed) = consume(&python, &cluster.bootstrap(), group, 100);
    let offsets: Vec<i64> = first.iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        (0..100).collect::<Vec<i64>>(),
        "the first 100 records in order"
    );
    assert_eq!(committed, 100, "the group's last acknowledged commit");
    let (coordinator, fetched) = settled_coordinator(&cluster, group, None);
    assert_eq!(fetched, 100, "OffsetFetch at coordinator {coordinator}");
    // The other brokers hold the offsets too, but send the client to the coordinator.
    for id in cluster
        .running_ids()
        .into_iter()
        .filter(|id| *id != coordinator)
    {
        assert_eq!(
            fetch(cluster.node(id), group),
            Err(NOT_COORDINATOR),
            "node {id}"
        );
    }

    cluster.node_mut(coordinator).kill();
    let (successor, fetched) = settled_coordinator(&cluster, group, Some(coordinator));
    eprintln!("killed coordinator {coordinator}; {successor} coordinates {group} now");
    assert_eq!(
        fetched, 100,
        "OffsetFetch at the new coordinator {successor}"
    );
    let (rest, committed) = consume(&python, &cluster.bootstrap(), group, 200);
    let offsets: Vec<i64> = rest.iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        (100..300).collect::<Vec<i64>>(),
        "resumed at the commit, none skipped or twice"
    );
    let values: Vec<u64> = rest.iter().map(|r| r.1).collect();
    assert_eq!(values, (100..300).collect::<Vec<u64>>());
    assert_eq!(committed, 300);

    // The killed node replays the log and comes back, but the group stays where it went
    // (sticky coordinator slots, decision 0024): a second move would be a second
    // rebalance. Every node, the returned one included, names the successor, which still
    // serves the commits made while the other was down.
    cluster.node_mut(coordinator).spawn();
    cluster.wait_until_formed(3);
    let (after, fetched) = settled_coordinator(&cluster, group, None);
    assert_eq!(after, successor, "the group stays with {successor}");
    assert_eq!(fetched, 300, "OffsetFetch at node {after}");
    assert_eq!(
        fetch(cluster.node(coordinator), group),
        Err(NOT_COORDINATOR),
        "the returned node {coordinator} sends the client on"
    );
}

#[test]
fn a_node_restarted_from_a_metadata_snapshot_serves_the_offsets() {
    let mut cluster = cluster_with_topic();
    let group = "snapshotted";
    let (coordinator, fetched) = settled_coordinator(&cluster, group, None);
    assert_eq!(fetched, -1, "nothing committed yet");
    // More commits than entries between two snapshots (1,000): every node compacts its log
    // into a snapshot image, which must carry the offsets.
    let mut conn = RawConn::connect(&cluster.node(coordinator).bootstrap()).expect("connect");
    let commits = 1_100;
    for offset in 1..=commits {
        let code = commit_offset(&mut conn, group, offset).expect("OffsetCommit");
        assert_eq!(code, 0, "commit of {offset}");
    }
    // Which broker takes the group over when its coordinator dies is decided only then
    // (the live broker with the fewest coordinator slots, decision 0024): both others are
    // restarted from their snapshots, one at a time, so the successor is one of them.
    let others: Vec<i32> = (1..=3).filter(|id| *id != coordinator).collect();
    for &other in &others {
        let snapshot_file = cluster
            .node(other)
            .data_dir
            .join("meta")
            .join("raft")
            .join("snapshot");
        let deadline = Instant::now() + WAIT;
        while !snapshot_file.exists() {
            assert!(
                Instant::now() < deadline,
                "node {other} took no metadata snapshot"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A restart loads the snapshot, then replays the entries after it.
        cluster.node_mut(other).kill();
        cluster.node_mut(other).spawn();
        cluster.wait_until_formed(3);
        // Caught up: it names the same coordinator as the others.
        let deadline = Instant::now() + WAIT;
        while find_coordinator(cluster.node(other), group) != Ok(coordinator) {
            assert!(Instant::now() < deadline, "node {other} did not catch up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Killing the coordinator moves the group to a restarted node, which serves the last
    // commit from its snapshot and the entries after it.
    cluster.node_mut(coordinator).kill();
    let (successor, fetched) = settled_coordinator(&cluster, group, Some(coordinator));
    assert!(others.contains(&successor), "moved to {successor}");
    assert_eq!(
        fetched, commits,
        "OffsetFetch at node {successor}, restarted from its snapshot"
    );
}
