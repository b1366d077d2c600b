//! Transactions across brokers (issue 17, decision 0022): on 3 nodes (one core each) an
//! RF=3 topic has partitions led by every broker, so one transaction writes to partitions
//! led by its coordinator's broker and by both others. confluent-kafka's transactional
//! producer commits a transaction, aborts one and commits another; a read_committed
//! consumer reads exactly the committed records of every partition, and every partition's
//! last stable offset (ListOffsets, READ_COMMITTED) reaches its high watermark: each
//! leader, wherever it is, got the coordinator's markers.
//! Needs confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`); `SLUICE_SKIP_REAL_CLIENTS=1`
//! skips it loudly.

mod support;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, ListOffsetsRequest};
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, leaders};
use support::real_clients_skipped;
use support::scripts::run_script;
use support::wire::{RawConn, topic_name};

const TOPIC: &str = "txn-spread";
const PARTITIONS: i32 = 6;
const TRANSACTIONAL_ID: &str = "cluster-txn";
const WAIT: Duration = Duration::from_secs(60);
/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// ListOffsets' isolation levels.
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

/// The broker `node` names as the coordinator of `transactional_id` (FindCoordinator v3).
fn transaction_coordinator(
    cluster: &LocalCluster,
    node: i32,
    transactional_id: &str,
) -> Result<i32, String> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(transactional_id.to_string()))
        .with_key_type(KEY_TYPE_TRANSACTION);
    let response = RawConn::connect(&cluster.node(node).bootstrap())?.try_call(&request, 3)?;
    if response.error_code != 0 {
        return Err(format!("FindCoordinator error {}", response.error_code));
    }
    Ok(response.node_id.0)
}

/// The latest offset of `partition` at `isolation` as its leader `node` answers ListOffsets v5.
fn latest_offset(
    cluster: &LocalCluster,
    node: i32,
    partition: i32,
    isolation: i8,
) -> Result<i64, String> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1),
                ]),
        ]);
    let response = RawConn::connect(&cluster.node(node).bootstrap())?.try_call(&request, 5)?;
    let answer = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or("ListOffsets answered no partition")?;
    if answer.error_code != 0 {
        return Err(format!("ListOffsets error {}", answer.error_code));
    }
    Ok(answer.offset)
}

/// Waits until the topic's leaders, as node 1 sees them, include every broker.
fn leaders_on_every_broker(cluster: &LocalCluster) -> Vec<i32> {
    let deadline = Instant::now() + WAIT;
    loop {
        let led = leaders(cluster.node(1), TOPIC);
        if led.len() == PARTITIONS as usize && (1..=3).all(|id| led.contains(&id)) {
            return led;
        }
        assert!(
            Instant::now() < deadline,
            "the leaders of {TOPIC} did not spread over the three brokers: {led:?}\n{}",
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_transaction_over_partitions_led_by_every_broker_commits_and_aborts() {
    let test = "a_transaction_over_partitions_led_by_every_broker_commits_and_aborts";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    let code = support::cluster::create_topic_with_configs(
        cluster.node(1),
        TOPIC,
        PARTITIONS,
        3,
        &[("min.insync.replicas", "2")],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "CreateTopics answered {code}");
    let led = leaders_on_every_broker(&cluster);
    let coordinator = transaction_coordinator(&cluster, 1, TRANSACTIONAL_ID)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()));
    assert!(
        led.contains(&coordinator) && led.iter().filter(|&&l| l != coordinator).count() >= 2,
        "partitions led by the coordinator {coordinator} and by two others: {led:?}"
    );
    let args: Vec<String> = [
        "cluster_transactions.py",
        "--bootstrap",
        &cluster.bootstrap(),
        "--topic",
        TOPIC,
        "--partitions",
        &PARTITIONS.to_string(),
        "--transactional-id",
        TRANSACTIONAL_ID,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_script("cluster_transactions.py", &python, &args);

    // Every partition's leader wrote the last transaction's marker: its last stable offset
    // is its high watermark (nothing open), on brokers other than the coordinator too.
    for (index, &leader) in led.iter().enumerate() {
        let partition = index as i32;
        let deadline = Instant::now() + WAIT;
        loop {
            let end = latest_offset(&cluster, leader, partition, READ_UNCOMMITTED);
            let stable = latest_offset(&cluster, leader, partition, READ_COMMITTED);
            if let (Ok(end), Ok(stable)) = (&end, &stable)
                && end == stable
                && *end > 0
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{TOPIC}-{partition} (leader {leader}, coordinator {coordinator}): last stable \
                 offset {stable:?} never reached the high watermark {end:?}\n{}",
                cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
