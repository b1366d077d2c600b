//! Exactly-once consume-transform-produce on a cluster whose group coordinator and
//! transaction coordinator are different brokers (issue 17, decision 0022 "Offsets of a
//! transaction"). 3 nodes; the test picks a group id whose coordinator (FindCoordinator) is
//! not the transactional id's. confluent-kafka (`tests/clients/cluster_eos.py`) copies an
//! input topic to an output topic in rounds with send_offsets_to_transaction: commit, abort,
//! commit. The group's committed offset after the commit is the one sent and is unchanged
//! by the abort; read_committed reads exactly the committed rounds' output. Afterwards the
//! group's coordinator is SIGKILLed and the broker that takes the group over serves the
//! same committed offset (the offsets were replicated, not kept by one broker).
//! A second test kills the group's coordinator while round 1's offsets are pending (after
//! send_offsets_to_transaction, before the commit): the commit's marker reaches the
//! group's next coordinator, which commits exactly the pending offsets.
//! Through the wire, transactions v2: TxnOffsetCommit v5 at the group's coordinator joins
//! the group to the transaction at the id's coordinator on another broker, and EndTxn v5
//! commits (then aborts, then commits) the offset; the id's coordinator answers
//! NOT_COORDINATOR for the group.
//! And when the transaction's coordinator dies with the offsets pending, its successor
//! aborts the transaction past its timeout and the abort reaches the group's coordinator
//! (require_stable: UNSTABLE_OFFSET_COMMIT, then stable with nothing committed).
//! The confluent-kafka tests need confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`);
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips it loudly.

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    EndTxnRequest, FindCoordinatorRequest, GroupId, InitProducerIdRequest, OffsetFetchRequest,
    ProducerId, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::path::Path;
use std::time::Duration;
use support::cluster::{LocalCluster, fetch_offset, find_coordinator};
use support::real_clients_skipped;
use support::scripts::run_script;
use support::wire::RawConn;

/// Fenced after 1.5 s silent: a killed coordinator's slots move within seconds.
const FAST_FENCING: &str = "broker_session_timeout_ms = 1500\nbroker_heartbeat_interval_ms = 300\n";
const INPUT: &str = "eos-in";
const OUTPUT: &str = "eos-out";
const OUTPUT_PARTITIONS: i32 = 3;
const TRANSACTIONAL_ID: &str = "eos-transformer";
/// The script's rounds: 10 input records committed, 10 aborted, the same 10 committed.
const COMMITTED_END: i64 = 20;
const WAIT: Duration = Duration::from_secs(60);
/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Group ids tried until one's coordinator differs from the transactional id's (with 3
/// brokers owning about a third of the slots each, a few suffice).
const GROUP_CANDIDATES: usize = 200;

fn transaction_coordinator(cluster: &LocalCluster, transactional_id: &str) -> i32 {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(transactional_id.to_string()))
        .with_key_type(KEY_TYPE_TRANSACTION);
    let response = RawConn::connect(&cluster.node(1).bootstrap())
        .and_then(|mut c| c.try_call(&request, 3))
        .unwrap_or_else(|e| panic!("FindCoordinator: {e}\n{}", cluster.diagnostics()));
    assert_eq!(response.error_code, 0, "FindCoordinator (transaction)");
    response.node_id.0
}

/// A group id coordinated by another broker than `not`, and that broker.
fn group_elsewhere(cluster: &LocalCluster, prefix: &str, not: i32) -> (String, i32) {
    (0..GROUP_CANDIDATES)
        .map(|i| format!("{prefix}-{i}"))
        .find_map(|group| {
            let coordinator = find_coordinator(cluster.node(1), &group).ok()?;
            (coordinator != not).then_some((group, coordinator))
        })
        .unwrap_or_else(|| {
            panic!("no group of {GROUP_CANDIDATES} coordinated elsewhere than {not}")
        })
}

/// The formed cluster with both topics, the transaction's coordinator and a group
/// coordinated by another broker.
fn set_up(prefix: &str) -> (LocalCluster, i32, String, i32) {
    let cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    cluster.create_replicated_topic(INPUT, 1, WAIT);
    cluster.create_replicated_topic(OUTPUT, OUTPUT_PARTITIONS, WAIT);
    let txn_coordinator = transaction_coordinator(&cluster, TRANSACTIONAL_ID);
    let (group, group_coordinator) = group_elsewhere(&cluster, prefix, txn_coordinator);
    eprintln!("transaction coordinator {txn_coordinator}, group {group} at {group_coordinator}");
    (cluster, txn_coordinator, group, group_coordinator)
}

fn script_args(cluster: &LocalCluster, group: &str, pause: Option<(&Path, &Path)>) -> Vec<String> {
    let mut args: Vec<String> = [
        "cluster_eos.py",
        "--bootstrap",
        &cluster.bootstrap(),
        "--input",
        INPUT,
        "--output",
        OUTPUT,
        "--output-partitions",
        &OUTPUT_PARTITIONS.to_string(),
        "--group",
        group,
        "--transactional-id",
        TRANSACTIONAL_ID,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some((pause_file, go_file)) = pause {
        args.push("--pause-file".to_string());
        args.push(pause_file.display().to_string());
        args.push("--go-file".to_string());
        args.push(go_file.display().to_string());
    }
    args
}

#[test]
fn send_offsets_to_transaction_commits_at_a_group_coordinator_on_another_broker() {
    let test = "send_offsets_to_transaction_commits_at_a_group_coordinator_on_another_broker";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let (mut cluster, txn_coordinator, group, group_coordinator) = set_up("eos-group");
    run_script(
        "cluster_eos.py",
        &python,
        &script_args(&cluster, &group, None),
    );
    assert_eq!(
        fetch_offset(cluster.node(group_coordinator), &group, INPUT),
        Ok(COMMITTED_END),
        "the group's coordinator serves the committed offset"
    );
    // Replicated: the broker that takes the group over serves the same offset.
    cluster.node_mut(group_coordinator).kill();
    let (successor, offset) =
        cluster.settled_coordinator(&group, INPUT, Some(group_coordinator), WAIT);
    assert_eq!(
        offset, COMMITTED_END,
        "broker {successor} (taking the group over from {group_coordinator}; transactions \
         at {txn_coordinator}) serves the committed offset"
    );
}

#[test]
fn pending_offsets_survive_the_group_coordinators_death_and_commit_once() {
    let test = "pending_offsets_survive_the_group_coordinators_death_and_commit_once";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let (mut cluster, txn_coordinator, group, group_coordinator) = set_up("eos-failover");
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let pause_file = files.path().join("pending");
    let go_file = files.path().join("go");
    let args = script_args(&cluster, &group, Some((&pause_file, &go_file)));
    let script = std::thread::spawn(move || run_script("cluster_eos.py", &python, &args));
    support::wait_until(WAIT, Duration::from_millis(50), || {
        if pause_file.exists() {
            Ok(())
        } else {
            Err("the script never reached round 1's pending offsets".to_string())
        }
    });
    // Round 1's offsets are pending at the group's coordinator (replicated); it dies before
    // the transaction ends. The transaction's coordinator lives, decides, and its marker
    // must reach whichever broker takes the group over.
    cluster.node_mut(group_coordinator).kill();
    let (successor, offset) =
        cluster.settled_coordinator(&group, INPUT, Some(group_coordinator), WAIT);
    assert_eq!(
        offset, -1,
        "broker {successor} took the group over with nothing committed before the commit"
    );
    std::fs::write(&go_file, b"go\n").unwrap_or_else(|e| panic!("go file: {e}"));
    if let Err(panic) = script.join() {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(
        fetch_offset(cluster.node(successor), &group, INPUT),
        Ok(COMMITTED_END),
        "broker {successor} (transactions at {txn_coordinator}) serves the pipeline's offset"
    );
}

/// TxnOffsetCommit v5 (transactions v2: the group joins the transaction by this request).
const TXN_OFFSET_COMMIT_V2: i16 = 5;
const END_TXN_V2: i16 = 5;
const INIT_PRODUCER_ID_VERSION: i16 = 5;

/// TxnOffsetCommit v5 of `offset` for `INPUT`-0 at `node`: the partition's error code.
fn txn_offset_commit(
    cluster: &LocalCluster,
    node: i32,
    group: &str,
    (producer_id, epoch): (i64, i16),
    offset: i64,
) -> i16 {
    let partition = TxnOffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset);
    let topic = TxnOffsetCommitRequestTopic::default()
        .with_name(support::wire::topic_name(INPUT))
        .with_partitions(vec![partition]);
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            TRANSACTIONAL_ID.to_string(),
        )))
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![topic]);
    let response = RawConn::connect(&cluster.node(node).bootstrap())
        .and_then(|mut c| c.try_call(&request, TXN_OFFSET_COMMIT_V2))
        .unwrap_or_else(|e| panic!("TxnOffsetCommit: {e}"));
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code)
}

/// EndTxn v5 at the transaction's coordinator; the producer's next epoch (v5 bumps it).
fn end_txn(
    cluster: &LocalCluster,
    node: i32,
    (producer_id, epoch): (i64, i16),
    commit: bool,
) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            TRANSACTIONAL_ID.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let response = RawConn::connect(&cluster.node(node).bootstrap())
        .and_then(|mut c| c.try_call(&request, END_TXN_V2))
        .unwrap_or_else(|e| panic!("EndTxn: {e}"));
    assert_eq!(response.error_code, 0, "EndTxn v5 (commit {commit})");
    response.producer_epoch
}

#[test]
fn a_v2_txn_offset_commit_joins_the_group_through_its_coordinator_on_another_broker() {
    let (cluster, txn_coordinator, group, group_coordinator) = set_up("eos-v2");
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
            TRANSACTIONAL_ID.to_string(),
        ))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let init = RawConn::connect(&cluster.node(txn_coordinator).bootstrap())
        .and_then(|mut c| c.try_call(&init, INIT_PRODUCER_ID_VERSION))
        .unwrap_or_else(|e| panic!("InitProducerId: {e}"));
    assert_eq!(init.error_code, 0, "InitProducerId");
    let mut producer = (init.producer_id.0, init.producer_epoch);
    // Only the group's coordinator takes a group's offsets (Kafka: NOT_COORDINATOR).
    assert_eq!(
        txn_offset_commit(&cluster, txn_coordinator, &group, producer, 5),
        ResponseError::NotCoordinator.code(),
        "TxnOffsetCommit at the transaction's coordinator {txn_coordinator}, not the group's"
    );
    // The group joins the transaction at its coordinator on another broker (AddOffsetsToTxn
    // over the inter-broker link); the commit's marker makes the offset committed.
    assert_eq!(
        txn_offset_commit(&cluster, group_coordinator, &group, producer, 5),
        0
    );
    assert_eq!(
        fetch_offset(cluster.node(group_coordinator), &group, INPUT),
        Ok(-1),
        "pending, not committed"
    );
    producer.1 = end_txn(&cluster, txn_coordinator, producer, true);
    assert_committed(&cluster, group_coordinator, &group, 5);
    // Aborted: the offset stays.
    assert_eq!(
        txn_offset_commit(&cluster, group_coordinator, &group, producer, 9),
        0
    );
    producer.1 = end_txn(&cluster, txn_coordinator, producer, false);
    assert_committed(&cluster, group_coordinator, &group, 5);
    // Committed again, with the epoch the abort bumped to.
    assert_eq!(
        txn_offset_commit(&cluster, group_coordinator, &group, producer, 12),
        0
    );
    end_txn(&cluster, txn_coordinator, producer, true);
    assert_committed(&cluster, group_coordinator, &group, 12);
}

/// Waits until `node` answers OffsetFetch for `group` with `offset` (the marker's end is
/// applied before EndTxn's answer when it succeeds at once; a retry takes a timer tick).
fn assert_committed(cluster: &LocalCluster, node: i32, group: &str, offset: i64) {
    support::wait_until(WAIT, Duration::from_millis(50), || {
        match fetch_offset(cluster.node(node), group, INPUT) {
            Ok(found) if found == offset => Ok(()),
            other => Err(format!(
                "{group} at {node}: {other:?}, want {offset}\n{}",
                cluster.diagnostics()
            )),
        }
    });
}

/// A transaction timeout short enough for the next coordinator to abort within the test.
const SHORT_TXN_TIMEOUT_MS: i32 = 8_000;

/// OffsetFetch v7 of `INPUT`-0 for `group` at `node` with `require_stable`: (partition
/// error code, committed offset), or why there was no answer.
fn fetch_stable(cluster: &LocalCluster, node: i32, group: &str) -> Result<(i16, i64), String> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_require_stable(true)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(support::wire::topic_name(INPUT))
                .with_partition_indexes(vec![0]),
        ]));
    let response = RawConn::connect(&cluster.node(node).bootstrap())
        .and_then(|mut c| c.try_call(&request, 7))?;
    if response.error_code != 0 {
        return Err(format!("OffsetFetch error {}", response.error_code));
    }
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| (p.error_code, p.committed_offset))
        .ok_or_else(|| "OffsetFetch answered no partition".to_string())
}

#[test]
fn the_next_transaction_coordinator_ends_the_pending_offsets_at_the_groups_coordinator() {
    let (mut cluster, txn_coordinator, group, group_coordinator) = set_up("eos-txn-dies");
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
            TRANSACTIONAL_ID.to_string(),
        ))))
        .with_transaction_timeout_ms(SHORT_TXN_TIMEOUT_MS)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let init = RawConn::connect(&cluster.node(txn_coordinator).bootstrap())
        .and_then(|mut c| c.try_call(&init, INIT_PRODUCER_ID_VERSION))
        .unwrap_or_else(|e| panic!("InitProducerId: {e}"));
    assert_eq!(init.error_code, 0, "InitProducerId");
    let producer = (init.producer_id.0, init.producer_epoch);
    assert_eq!(
        txn_offset_commit(&cluster, group_coordinator, &group, producer, 5),
        0
    );
    assert_eq!(
        fetch_stable(&cluster, group_coordinator, &group),
        Ok((ResponseError::UnstableOffsetCommit.code(), -1)),
        "pending at the group's coordinator: require_stable waits for the transaction"
    );
    // The transaction's coordinator dies with the transaction open. Its successor holds the
    // state, aborts it past its timeout, and its marker reaches the group's coordinator,
    // which drops the pending offset: stable again, nothing committed.
    cluster.node_mut(txn_coordinator).kill();
    support::wait_until(WAIT, Duration::from_millis(100), || {
        match fetch_stable(&cluster, group_coordinator, &group) {
            Ok((0, -1)) => Ok(()),
            other => Err(format!(
                "{group} at {group_coordinator} after the death of {txn_coordinator}: {other:?}\n{}",
                cluster.diagnostics()
            )),
        }
    });
}
