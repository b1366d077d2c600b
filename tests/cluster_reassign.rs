//! Cluster-mode partition reassignment (KIP-455) and preferred leader election (KIP-460),
//! decision 0019: 3-node clusters of `sluice serve` processes on 127.0.0.1, one
//! core each, driven over the wire (AlterPartitionReassignments, ListPartitionReassignments,
//! ElectLeaders, Metadata, Produce, Fetch).
//! - A partition with data moves to other brokers: the new replicas copy it, the
//!   reassignment completes by itself (ISR = target, the old replica's files deleted,
//!   nothing left in progress), produce and fetch work before, during and after, no record
//!   lost. Errors: an unknown broker is INVALID_REPLICA_ASSIGNMENT, a cancel with nothing
//!   in progress NO_REASSIGNMENT_IN_PROGRESS; a cancel reverts.
//! - After a failover the preferred replica comes back as a follower; ElectLeaders makes
//!   it lead again (Metadata shows it, leader epoch bumped), no record lost.
//! - Throttle: with `follower_replication_throttled_rate` R and the topic's
//!   `follower.replication.throttled.replicas = *`, a new replica's catch-up of N bytes takes
//!   at least N / R (and an unthrottled move of the same data on the same box is faster).
//! - Real clients: kafka-python moves a partition while confluent-kafka's idempotent
//!   producer writes, confluent-kafka's `elect_leaders` moves the leadership, every
//!   acknowledged record is read back once (`SLUICE_SKIP_REAL_CLIENTS=1` skips it loudly).
//!
//! The CLI's `topic reassign`, `topic describe` (Adding/Removing) and `topic elect-leaders`
//! are used along the way.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest, FetchRequest,
    ListPartitionReassignmentsRequest, ProduceRequest,
};
use kafka_protocol::records::RecordBatchDecoder;
use std::path::Path;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, create_topic, create_topic_with_configs, metadata};
use support::wire::{RawConn, encode_batch, plain_record, produce_request, topic_name};

/// Short ISR checks (every second) so a caught-up replica joins quickly.
const CONFIG: &str = "replica_lag_time_max_ms = 2000\n";
/// Generous waits for a loaded 2-core box: bounds, not speed assertions.
const WAIT: Duration = Duration::from_secs(60);

const NONE: i16 = 0;
const ELECTION_NOT_NEEDED: i16 = 84;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// Retried: NOT_CONTROLLER, REQUEST_TIMED_OUT, no answer.
const RETRIED: [i16; 3] = [41, 7, -1];

/// (leader, leader epoch, replicas, ISR sorted) of `topic`-`partition` as `node` sees it.
type View = (i32, i32, Vec<i32>, Vec<i32>);

fn view(node: &support::Broker, topic: &str, partition: i32) -> Option<View> {
    let response = metadata(node, Some(&[topic])).ok()?;
    let t = response.topics.first().filter(|t| t.error_code == 0)?;
    let p = t
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    let replicas = p.replica_nodes.iter().map(|b| b.0).collect();
    Some((p.leader_id.0, p.leader_epoch, replicas, isr))
}

/// Waits until every running node shows `topic`-`partition` the same way and `ok` holds.
fn wait_for_view(
    cluster: &LocalCluster,
    topic: &str,
    partition: i32,
    what: &str,
    ok: impl Fn(&View) -> bool,
) -> View {
    let deadline = Instant::now() + WAIT;
    loop {
        let views: Vec<Option<View>> = cluster
            .running_ids()
            .into_iter()
            .map(|id| view(cluster.node(id), topic, partition))
            .collect();
        if let Some(Some(first)) = views.first()
            && views.iter().all(|v| v.as_ref() == Some(first))
            && ok(first)
        {
            return first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within {WAIT:?}: {views:?}\n{}",
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// AlterPartitionReassignments of one partition through `node` (`None`: cancel); returns
/// (error code, message), retrying while the quorum has no leader.
fn reassign(
    node: &support::Broker,
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> (i16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(partition)
                            .with_replicas(
                                replicas.map(|r| r.iter().copied().map(BrokerId).collect()),
                            ),
                    ]),
            ]);
        let answer = RawConn::connect(&node.bootstrap())
            .and_then(|mut c| c.try_call(&request, 0))
            .map(|r| {
                assert_eq!(r.error_code, NONE, "top-level error");
                let p = &r.responses[0].partitions[0];
                (
                    p.error_code,
                    p.error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )
            })
            .unwrap_or((-1, "no answer".into()));
        if !RETRIED.contains(&answer.0) || Instant::now() >= deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A listed reassignment: (topic, partition, replicas, adding, removing).
type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// ListPartitionReassignments (all) on `node`.
fn in_progress(node: &support::Broker) -> Vec<Ongoing> {
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(None);
    let response = RawConn::connect(&node.bootstrap())
        .and_then(|mut c| c.try_call(&request, 0))
        .expect("ListPartitionReassignments answers");
    assert_eq!(response.error_code, NONE);
    let ids = |b: &[BrokerId]| b.iter().map(|b| b.0).collect::<Vec<i32>>();
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

/// ElectLeaders (v2, preferred) of one partition through `node`: its error code.
fn elect_preferred(node: &support::Broker, topic: &str, partition: i32) -> i16 {
    let deadline = Instant::now() + WAIT;
    loop {
        let request = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![partition]),
            ]));
        let code = RawConn::connect(&node.bootstrap())
            .and_then(|mut c| c.try_call(&request, 2))
            .map(|r| r.replica_election_results[0].partition_result[0].error_code)
            .unwrap_or(-1);
        if !RETRIED.contains(&code) || Instant::now() >= deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Produces `values` (one-record batches, acks=all) to the partition's current leader,
/// following it when it moves (NOT_LEADER_OR_FOLLOWER and friends are retried). Returns
/// how many requests were sent again after one that may have been appended (a plain, not
/// idempotent, producer's retry may write a record twice, as with Kafka).
fn produce(cluster: &LocalCluster, topic: &str, partition: i32, values: &[String]) -> usize {
    let mut ambiguous = 0;
    for value in values {
        let deadline = Instant::now() + WAIT;
        loop {
            let leader =
                view(cluster.node(cluster.running_ids()[0]), topic, partition).map_or(-1, |v| v.0);
            let code = if cluster.running_ids().contains(&leader) {
                let batch = encode_batch(&[plain_record(
                    0,
                    1_700_000_000_000,
                    Bytes::from(value.clone()),
                )]);
                let request: ProduceRequest =
                    produce_request(topic, partition, batch.freeze(), -1).with_timeout_ms(10_000);
                RawConn::connect(&cluster.node(leader).bootstrap())
                    .and_then(|mut c| c.try_call(&request, 9))
                    .map(|r| r.responses[0].partition_responses[0].error_code)
                    .unwrap_or(-1)
            } else {
                -1
            };
            if code == NONE {
                break;
            }
            // Refused before any append: not enough replicas, no leader. Not so
            // NOT_LEADER_OR_FOLLOWER (6): a leader deposed while its acks=all append waited
            // for the followers answers it after the append, which the followers may
            // already hold (Kafka's answer too): the retry may write the record twice.
            if ![19, 5].contains(&code) {
                ambiguous += 1;
            }
            assert!(
                Instant::now() < deadline,
                "produce of {value} kept failing ({code})\n{}",
                cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    ambiguous
}

/// Waits until `node` serves every one of `expected`, in order, and nothing else (a record
/// a retried produce wrote twice is allowed `retries` times); a new leader's high watermark
/// may need its followers' next fetches to come up to the end.
fn wait_for_records(
    cluster: &LocalCluster,
    node: i32,
    topic: &str,
    expected: &[String],
    retries: usize,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let read = read_all(cluster.node(node), topic, 0);
        if let Ok(read) = &read {
            let mut seen = std::collections::HashSet::new();
            let first: Vec<&String> = read.iter().filter(|v| seen.insert(*v)).collect();
            let doubled = read.len() - first.len();
            if first.len() == expected.len() && first.iter().zip(expected).all(|(a, b)| *a == b) {
                assert!(
                    doubled <= retries,
                    "{doubled} records twice, {retries} ambiguous retries"
                );
                return;
            }
            assert!(
                first.len() <= expected.len(),
                "records nobody produced: {read:?}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "node {node} serves {:?}, expected {} records\n{}",
            read.map(|r| r.len()),
            expected.len(),
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every record value of `topic`-`partition` below the high watermark of `node` (which
/// must lead it), read with consumer fetches from offset 0.
fn read_all(node: &support::Broker, topic: &str, partition: i32) -> Result<Vec<String>, String> {
    let mut conn = RawConn::connect(&node.bootstrap())?;
    let mut values = Vec::new();
    let mut offset = 0i64;
    loop {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let response = conn.try_call(&request, 11)?;
        let p = &response.responses[0].partitions[0];
        if p.error_code != NONE {
            return Err(format!("fetch error {}", p.error_code));
        }
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return if offset >= p.high_watermark {
                Ok(values)
            } else {
                Err(format!("no records below the high watermark at {offset}"))
            };
        }
        let sets = RecordBatchDecoder::decode_all(&mut records).map_err(|e| format!("{e:?}"))?;
        for set in sets {
            for record in set.records {
                if record.offset >= offset {
                    offset = record.offset + 1;
                    let value = record.value.map(|v| v.to_vec()).unwrap_or_default();
                    values.push(String::from_utf8_lossy(&value).into_owned());
                }
            }
        }
    }
}

fn values(tag: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{tag}-{i}")).collect()
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> std::path::PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

#[test]
fn a_partition_moves_to_other_brokers_with_its_data_and_the_old_copy_is_deleted() {
    let cluster = LocalCluster::start_with_config(3, CONFIG);
    cluster.wait_until_formed(3);
    let topic = "moved";
    assert_eq!(create_topic(cluster.node(1), topic, 1, 1, WAIT), NONE);
    let (old, epoch, replicas, _) = wait_for_view(&cluster, topic, 0, "the topic", |v| v.0 > 0);
    assert_eq!(replicas, vec![old]);
    let target: Vec<i32> = (1..=3).filter(|&id| id != old).collect();

    // Refusals change nothing.
    let (code, message) = reassign(cluster.node(1), topic, 0, Some(&[target[0], 9]));
    assert_eq!(code, INVALID_REPLICA_ASSIGNMENT, "{message}");
    let (code, message) = reassign(cluster.node(1), topic, 0, None);
    assert_eq!(code, NO_REASSIGNMENT_IN_PROGRESS, "{message}");
    let (code, _) = reassign(cluster.node(1), "no-such-topic", 0, Some(&[1]));
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    let before = values("before", 200);
    let mut retries = produce(&cluster, topic, 0, &before);

    // Start a move and cancel it: the original replica set is back, nothing in progress.
    // (A third broker is added and removed again; the cancel may race its catch-up, but the
    // partition ends where it started either way.)
    let (code, message) = reassign(cluster.node(2), topic, 0, Some(&[old, target[0]]));
    assert_eq!(code, NONE, "{message}");
    let listed = in_progress(cluster.node(3));
    let mut cancelled = false;
    if let Some(entry) = listed.first() {
        assert_eq!(entry.0, topic);
        assert_eq!(entry.2, vec![old, target[0]], "replicas");
        assert_eq!(entry.3, vec![target[0]], "adding");
        assert!(entry.4.is_empty(), "removing");
        let (code, message) = reassign(cluster.node(3), topic, 0, None);
        assert!(
            code == NONE || code == NO_REASSIGNMENT_IN_PROGRESS,
            "{code} {message}"
        );
        cancelled = code == NONE;
    }
    if !cancelled {
        // It completed first: move back to the original set (a pure shrink completes at once).
        let (code, message) = reassign(cluster.node(3), topic, 0, Some(&[old]));
        assert_eq!(code, NONE, "{message}");
    }
    wait_for_view(&cluster, topic, 0, "one replica again", |v| {
        v.0 == old && v.2 == vec![old]
    });
    assert!(in_progress(cluster.node(1)).is_empty());

    // The real move: to the two other brokers, away from the current leader.
    let (code, message) = reassign(cluster.node(1), topic, 0, Some(&target));
    assert_eq!(code, NONE, "{message}");
    let during = values("during", 100);
    retries += produce(&cluster, topic, 0, &during);
    let (leader, new_epoch, replicas, isr) =
        wait_for_view(&cluster, topic, 0, "the move completed", |v| v.2 == target);
    let mut sorted_target = target.clone();
    sorted_target.sort();
    let settled = wait_for_view(&cluster, topic, 0, "ISR = target", |v| v.3 == sorted_target);
    assert!(
        target.contains(&leader),
        "led by a target replica: {leader}"
    );
    assert!(
        new_epoch > epoch,
        "the leader moved: epoch {epoch} -> {new_epoch}"
    );
    assert_eq!(replicas, target);
    assert!(isr.iter().all(|r| target.contains(r)));
    assert_eq!(settled.2, target);
    for id in 1..=3 {
        assert!(
            in_progress(cluster.node(id)).is_empty(),
            "node {id} still lists a reassignment"
        );
    }
    // The removed replica deleted its copy.
    let old_dir = partition_dir(&cluster.node(old).data_dir, topic, 0);
    let deadline = Instant::now() + WAIT;
    while old_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} still exists\n{}",
            old_dir.display(),
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let after = values("after", 100);
    retries += produce(&cluster, topic, 0, &after);
    let leader = wait_for_view(&cluster, topic, 0, "a leader", |v| v.0 > 0).0;
    let expected: Vec<String> = before.into_iter().chain(during).chain(after).collect();
    wait_for_records(&cluster, leader, topic, &expected, retries);
    // The other new replica holds the same records: make it lead (preferred election may
    // be not needed if it already leads) and read them there too.
    let other = target
        .iter()
        .copied()
        .find(|&r| r != leader)
        .unwrap_or(leader);
    let (code, message) = reassign(cluster.node(1), topic, 0, Some(&[other, leader]));
    assert_eq!(code, NONE, "{message}");
    let code = elect_preferred(cluster.node(1), topic, 0);
    assert!(code == NONE || code == ELECTION_NOT_NEEDED, "elect: {code}");
    wait_for_view(&cluster, topic, 0, "the other replica leads", |v| {
        v.0 == other
    });
    wait_for_records(&cluster, other, topic, &expected, retries);
}

#[test]
fn elect_leaders_gives_the_preferred_replica_its_leadership_back_after_a_failover() {
    let mut cluster = LocalCluster::start_with_config(3, CONFIG);
    cluster.wait_until_formed(3);
    let topic = "preferred";
    let configs = [("min.insync.replicas", "2")];
    assert_eq!(
        create_topic_with_configs(cluster.node(1), topic, 1, 3, &configs, WAIT),
        NONE
    );
    let (preferred, _, replicas, _) =
        wait_for_view(&cluster, topic, 0, "all in sync", |v| v.3.len() == 3);
    assert_eq!(replicas[0], preferred, "the first replica leads at first");
    assert_eq!(
        elect_preferred(cluster.node(1), topic, 0),
        ELECTION_NOT_NEEDED
    );
    let first = values("first", 100);
    let mut retries = produce(&cluster, topic, 0, &first);

    cluster.node_mut(preferred).kill();
    let (interim, _, _, _) = wait_for_view(&cluster, topic, 0, "a failover", |v| {
        v.0 > 0 && v.0 != preferred
    });
    // The preferred replica is down: it cannot be elected.
    let other = cluster.running_ids()[0];
    assert_eq!(
        elect_preferred(cluster.node(other), topic, 0),
        PREFERRED_LEADER_NOT_AVAILABLE
    );
    let second = values("second", 100);
    retries += produce(&cluster, topic, 0, &second);
    cluster.node_mut(preferred).spawn();
    let (_, epoch, _, _) = wait_for_view(&cluster, topic, 0, "the preferred back in sync", |v| {
        v.0 == interim && v.3.len() == 3
    });

    let (ok, out, err) = support::sluice_cli(
        &cluster.node(interim).bootstrap(),
        &["topic", "elect-leaders", topic, "--partition", "0"],
        None,
    );
    assert!(ok, "sluice topic elect-leaders: {out}{err}");
    assert!(
        out.contains(&format!("{topic}-0: preferred replica elected")),
        "{out}"
    );
    let (leader, new_epoch, _, isr) =
        wait_for_view(&cluster, topic, 0, "the preferred leads", |v| {
            v.0 == preferred
        });
    assert_eq!(leader, preferred);
    assert!(
        new_epoch > epoch,
        "leader epoch bumped: {epoch} -> {new_epoch}"
    );
    assert_eq!(isr.len(), 3, "the election keeps the ISR");
    assert_eq!(
        elect_preferred(cluster.node(1), topic, 0),
        ELECTION_NOT_NEEDED
    );
    let third = values("third", 100);
    retries += produce(&cluster, topic, 0, &third);
    let expected: Vec<String> = first.into_iter().chain(second).chain(third).collect();
    wait_for_records(&cluster, preferred, topic, &expected, retries);
}

/// Auto leader rebalance, looking every second (Kafka's default is 300 s).
const REBALANCING: &str =
    "replica_lag_time_max_ms = 2000\nleader_imbalance_check_interval_seconds = 1\n";

#[test]
fn without_being_asked_the_quorum_leader_hands_leadership_back_to_the_preferred_replica() {
    let mut cluster = LocalCluster::start_with_config(3, REBALANCING);
    cluster.wait_until_formed(3);
    let topic = "rebalanced";
    let configs = [("min.insync.replicas", "2")];
    assert_eq!(
        create_topic_with_configs(cluster.node(1), topic, 1, 3, &configs, WAIT),
        NONE
    );
    let (preferred, epoch, replicas, _) =
        wait_for_view(&cluster, topic, 0, "all in sync", |v| v.3.len() == 3);
    assert_eq!(replicas[0], preferred, "the first replica leads at first");
    let first = values("first", 100);
    let mut retries = produce(&cluster, topic, 0, &first);

    cluster.node_mut(preferred).kill();
    let (interim, _, _, _) = wait_for_view(&cluster, topic, 0, "a failover", |v| {
        v.0 > 0 && v.0 != preferred
    });
    let second = values("second", 100);
    retries += produce(&cluster, topic, 0, &second);
    cluster.node_mut(preferred).spawn();
    // No ElectLeaders: once the preferred replica is back in the ISR, the next check elects
    // it, with a new leader epoch and the ISR kept.
    let (leader, new_epoch, _, isr) = wait_for_view(
        &cluster,
        topic,
        0,
        "the preferred replica leading again on its own",
        |v| v.0 == preferred,
    );
    assert_eq!(leader, preferred);
    assert_ne!(leader, interim);
    assert!(
        new_epoch > epoch + 1,
        "two leader changes: {epoch} -> {new_epoch}"
    );
    assert_eq!(isr.len(), 3, "the election keeps the ISR");
    let third = values("third", 100);
    retries += produce(&cluster, topic, 0, &third);
    let expected: Vec<String> = first.into_iter().chain(second).chain(third).collect();
    wait_for_records(&cluster, preferred, topic, &expected, retries);
}

#[test]
fn a_throttled_new_replica_catches_up_no_faster_than_the_rate() {
    // 256 KiB/s; about 1.5 MiB to copy: at least ~6 s.
    let rate: u64 = 256 * 1024;
    let config = format!("{CONFIG}follower_replication_throttled_rate = {rate}\n");
    let mut cluster = LocalCluster::start_with_config(3, &config);
    let controller = cluster.wait_until_formed(3);
    let topic = "throttled";
    let configs = [("follower.replication.throttled.replicas", "*")];
    assert_eq!(
        create_topic_with_configs(cluster.node(1), topic, 1, 1, &configs, WAIT),
        NONE
    );
    let (mut leader, _, _, _) = wait_for_view(&cluster, topic, 0, "the topic", |v| v.0 > 0);
    // The move is made between the two brokers that are not the metadata quorum's leader,
    // which is killed halfway: the reassignment is in the metadata log, not in a
    // controller's memory, so the next quorum leader's cluster finishes it.
    let others: Vec<i32> = (1..=3).filter(|&id| id != controller).collect();
    if leader == controller {
        // Still empty: moving it away takes one ISR check.
        let (code, message) = reassign(cluster.node(1), topic, 0, Some(&[others[0]]));
        assert_eq!(code, NONE, "{message}");
        leader = wait_for_view(&cluster, topic, 0, "moved off the controller", |v| {
            v.2 == vec![others[0]]
        })
        .0;
    }
    let new = others.iter().copied().find(|&id| id != leader).unwrap_or(1);
    write_megabytes(&cluster, leader, topic);
    let bytes = log_bytes(&cluster.node(leader).data_dir, topic, 0);
    assert!(bytes >= 1_500_000, "{bytes} bytes written");

    // Started with the CLI; `topic describe` shows it moving meanwhile.
    let started = Instant::now();
    let replicas = format!("{leader},{new}");
    let (ok, out, err) = support::sluice_cli(
        &cluster.node(leader).bootstrap(),
        &[
            "topic",
            "reassign",
            topic,
            "--partition",
            "0",
            "--replicas",
            &replicas,
        ],
        None,
    );
    assert!(ok, "sluice topic reassign: {out}{err}");
    let (ok, out, err) = support::sluice_cli(
        &cluster.node(new).bootstrap(),
        &["topic", "describe", topic],
        None,
    );
    assert!(ok, "sluice topic describe: {out}{err}");
    assert!(
        out.contains(&format!("Adding: {new}\tRemoving: \n")),
        "describe while catching up (well within {:?}) shows the replica being added:\n{out}",
        Duration::from_secs_f64(bytes as f64 / rate as f64)
    );
    let floor = Duration::from_secs_f64(bytes as f64 / rate as f64);
    cluster.node_mut(controller).kill();
    let deadline = Instant::now() + WAIT;
    let next_controller = loop {
        let seen = support::cluster::controller_of(cluster.node(leader)).unwrap_or(-1);
        if seen >= 0 && seen != controller {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "no new quorum leader\n{}",
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let listed = in_progress(cluster.node(next_controller));
    // Completion cannot come before the floor: until then it must still be listed.
    if started.elapsed() < floor {
        assert_eq!(
            listed.len(),
            1,
            "the reassignment outlives the quorum leader {controller}"
        );
    }
    println!(
        "quorum leader {controller} killed; {next_controller} leads, {} listed at {:?}",
        listed.len(),
        started.elapsed()
    );
    let mut both = vec![leader, new];
    both.sort();
    wait_for_view(&cluster, topic, 0, "the throttled replica in sync", |v| {
        v.3 == both && v.2.len() == 2
    });
    let deadline = Instant::now() + WAIT;
    while !in_progress(cluster.node(leader)).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reassignment never completed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    println!(
        "throttled catch-up: {bytes} bytes at {rate} B/s took {took:?} (floor {floor:?}, {:.0} B/s)",
        bytes as f64 / took.as_secs_f64()
    );
    assert!(
        took >= floor,
        "{bytes} bytes copied in {took:?}, under the {floor:?} the rate allows"
    );
    assert!(
        took < floor + Duration::from_secs(30),
        "the throttle stalled the catch-up: {took:?}"
    );
    let copy = log_bytes(&cluster.node(new).data_dir, topic, 0);
    assert_eq!(copy, bytes, "the new replica holds the whole log");

    // The same move of an unthrottled topic on the same box: the rate, not the box, is
    // what made the first one slow.
    let free = "unthrottled";
    assert_eq!(create_topic(cluster.node(leader), free, 1, 1, WAIT), NONE);
    let (free_leader, _, _, _) = wait_for_view(&cluster, free, 0, "the topic", |v| v.0 > 0);
    let free_new = others
        .iter()
        .copied()
        .find(|&id| id != free_leader)
        .unwrap_or(1);
    write_megabytes(&cluster, free_leader, free);
    let free_bytes = log_bytes(&cluster.node(free_leader).data_dir, free, 0);
    let started = Instant::now();
    let (code, message) = reassign(
        cluster.node(leader),
        free,
        0,
        Some(&[free_leader, free_new]),
    );
    assert_eq!(code, NONE, "{message}");
    let deadline = Instant::now() + WAIT;
    while !in_progress(cluster.node(leader)).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reassignment never completed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let free_took = started.elapsed();
    println!("unthrottled catch-up: {free_bytes} bytes took {free_took:?}");
    assert!(
        free_took < took,
        "unthrottled {free_took:?} is not faster than throttled {took:?}"
    );
}

/// About 1.5 MiB into `topic`-0 on `leader`: 96 one-record batches of 16 KiB (distinct
/// text per record).
fn write_megabytes(cluster: &LocalCluster, leader: i32, topic: &str) {
    let mut conn = RawConn::connect(&cluster.node(leader).bootstrap()).expect("connect");
    for i in 0..96 {
        let value: String = (0..16 * 1024 / 8)
            .map(|j| format!("{:08x}", i * 4096 + j))
            .collect();
        let batch = encode_batch(&[plain_record(0, 1_700_000_000_000, Bytes::from(value))]);
        let request: ProduceRequest = produce_request(topic, 0, batch.freeze(), 1);
        let response = conn.call(&request, 9);
        assert_eq!(
            response.responses[0].partition_responses[0].error_code,
            NONE
        );
    }
}

/// Bytes of `topic`-`partition`'s `.log` segments in `data_dir`.
fn log_bytes(data_dir: &Path, topic: &str, partition: i32) -> u64 {
    let Ok(entries) = std::fs::read_dir(partition_dir(data_dir, topic, partition)) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Real clients: kafka-python moves a partition (Alter/ListPartitionReassignments) while
/// confluent-kafka's idempotent producer writes, confluent-kafka's AdminClient.elect_leaders
/// gives the preferred replica the leadership, every acknowledged record is read back once
/// (tests/clients/cluster_reassign.py).
#[test]
fn kafka_python_moves_a_partition_and_confluent_kafka_elects_its_preferred_leader() {
    let test = "kafka_python_moves_a_partition_and_confluent_kafka_elects_its_preferred_leader";
    if support::real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("kafka, confluent_kafka");
    let cluster = LocalCluster::start_with_config(3, CONFIG);
    cluster.wait_until_formed(3);
    let args = vec![
        "cluster_reassign.py".to_string(),
        "--bootstrap".to_string(),
        cluster.bootstrap(),
    ];
    support::scripts::run_script("cluster_reassign.py", &python, &args);
}
