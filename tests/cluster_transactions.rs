//! Transactions across brokers (issue 17, decision 0022): on 3 nodes (one core each) an
//! RF=3 topic has partitions led by every broker, so one transaction writes to partitions
//! led by its coordinator's broker and by both others. confluent-kafka's transactional
//! producer commits a transaction, aborts one and commits another; a read_committed
//! consumer reads exactly the committed records of every partition, and every partition's
//! last stable offset (ListOffsets, READ_COMMITTED) reaches its high watermark: each
//! leader, wherever it is, got the coordinator's markers.
//! Through the wire: only the coordinator answers InitProducerId (the others
//! NOT_COORDINATOR); a transactions v2 producer (Produce v12, EndTxn v5) joins partitions
//! on other brokers to its transaction by producing there, and a batch of its finished
//! epoch is fenced there; with its coordinator killed, a transactional Produce to another
//! broker is answered COORDINATOR_NOT_AVAILABLE (retriable) at once, not held; the same v2
//! transaction works when the brokers talk over a SASL_SSL inter-broker listener; and when a
//! leader dies with the transaction open, the commit's markers reach its partition's new
//! leader (retried by the coordinator's timer with the leaders the metadata names then).
//! The coordinator's state is replicated (the metadata log): SIGKILLed with one transaction
//! open and one decided (PrepareCommit), the next coordinator aborts the first past its
//! timeout and completes the second, every LSO reaches its high watermark, read_committed
//! reads exactly the committed records, and the producer re-initialises there, fenced.
//! The confluent-kafka tests need confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`); `SLUICE_SKIP_REAL_CLIENTS=1`
//! skips it loudly.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ProduceRequest, ProducerId,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, leaders};
use support::real_clients_skipped;
use support::scripts::run_script;
use support::wire::{RawConn, encode_batch, plain_record, produce_request};

const TOPIC: &str = "txn-spread";
const PARTITIONS: i32 = 6;
const TRANSACTIONAL_ID: &str = "cluster-txn";
const WAIT: Duration = Duration::from_secs(60);
/// Between two looks of a wait.
const POLL: Duration = Duration::from_millis(100);
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

/// Creates `topic` (RF=3, min.insync.replicas=2) and waits until node 1 sees its leaders
/// on every broker; returns each partition's leader.
fn spread_topic(cluster: &LocalCluster, topic: &str, partitions: i32) -> Vec<i32> {
    let code = support::cluster::create_topic_with_configs(
        cluster.node(1),
        topic,
        partitions,
        3,
        &[("min.insync.replicas", "2")],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "CreateTopics answered {code}");
    let mut led = Vec::new();
    support::wait_until(WAIT, POLL, || {
        led = leaders(cluster.node(1), topic);
        if led.len() == partitions as usize && (1..=3).all(|id| led.contains(&id)) {
            return Ok(());
        }
        Err(format!(
            "the leaders of {topic} did not spread over the three brokers: {led:?}\n{}",
            cluster.diagnostics()
        ))
    });
    led
}

/// Waits until every partition's last stable offset (READ_COMMITTED) at its leader is its
/// high watermark and above 0: no transaction left open there.
fn wait_until_stable(cluster: &LocalCluster, topic: &str, led: &[i32], coordinator: i32) {
    for (index, &leader) in led.iter().enumerate() {
        let partition = (topic, index as i32);
        support::wait_until(WAIT, POLL, || {
            let end = cluster.latest_offset(leader, partition, READ_UNCOMMITTED);
            let stable = cluster.latest_offset(leader, partition, READ_COMMITTED);
            if let (Ok(end), Ok(stable)) = (&end, &stable)
                && end == stable
                && *end > 0
            {
                return Ok(());
            }
            Err(format!(
                "{topic}-{index} (leader {leader}, coordinator {coordinator}): last stable \
                 offset {stable:?} never reached the high watermark {end:?}\n{}",
                cluster.diagnostics()
            ))
        });
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
    let led = spread_topic(&cluster, TOPIC, PARTITIONS);
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
    // Every partition's leader wrote the last transaction's marker, on brokers other than
    // the coordinator too.
    wait_until_stable(&cluster, TOPIC, &led, coordinator);
}

/// Produce v12 (transactions v2: the partition joins the transaction by being written).
const PRODUCE_V2: i16 = 12;
/// Produce v9: classic transactions (the partition must have been added first).
const PRODUCE_CLASSIC: i16 = 9;
const END_TXN_V2: i16 = 5;

/// InitProducerId v5 at `node`: (error code, producer id, epoch).
fn try_init_producer(cluster: &LocalCluster, node: i32, id: &str) -> (i16, i64, i16) {
    try_init_producer_with_timeout(cluster, node, id, 60_000)
}

/// InitProducerId v5 at `node` asking for `transaction.timeout.ms` = `timeout_ms`.
fn try_init_producer_with_timeout(
    cluster: &LocalCluster,
    node: i32,
    id: &str,
    timeout_ms: i32,
) -> (i16, i64, i16) {
    call_init_producer(cluster, node, id, timeout_ms)
        .unwrap_or_else(|e| panic!("InitProducerId: {e}"))
}

/// InitProducerId v5 at `node`: (error code, producer id, epoch), or why there was no answer.
fn call_init_producer(
    cluster: &LocalCluster,
    node: i32,
    id: &str,
    timeout_ms: i32,
) -> Result<(i16, i64, i16), String> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response = RawConn::connect(&cluster.node(node).bootstrap())
        .and_then(|mut c| c.try_call(&request, 5))?;
    Ok((
        response.error_code,
        response.producer_id.0,
        response.producer_epoch,
    ))
}

/// InitProducerId v5 at the id's coordinator `node`: (producer id, epoch).
fn init_producer(cluster: &LocalCluster, node: i32, id: &str) -> (i64, i16) {
    let (code, producer_id, epoch) = try_init_producer(cluster, node, id);
    assert_eq!(code, 0, "InitProducerId at {node}");
    (producer_id, epoch)
}

/// A transactional Produce of one 2-record batch to `topic`-`partition` at `node`: the
/// partition's error code.
fn produce_transactional(
    cluster: &LocalCluster,
    node: i32,
    (id, (producer_id, epoch)): (&str, (i64, i16)),
    (topic, partition): (&str, i32),
    version: i16,
) -> i16 {
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: true,
            producer_id,
            producer_epoch: epoch,
            sequence: i,
            ..plain_record(
                i64::from(i),
                1_700_000_000_000,
                Bytes::from(format!("e{epoch}-{i}")),
            )
        })
        .collect();
    let request: ProduceRequest =
        produce_request(topic, partition, encode_batch(&records).freeze(), -1)
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))));
    let response = RawConn::connect(&cluster.node(node).bootstrap())
        .and_then(|mut c| c.try_call(&request, version))
        .unwrap_or_else(|e| panic!("Produce v{version} to node {node}: {e}"));
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn a_v2_producer_adds_other_brokers_partitions_by_producing_and_a_stale_epoch_is_fenced_there() {
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    v2_transaction_across_brokers(&cluster);
}

/// The brokers' SCRAM user on the inter-broker listener.
const BROKER_USER: &str = "broker";
const BROKER_PASSWORD: &str = "broker-secret";

#[test]
fn transactions_cross_brokers_over_a_sasl_ssl_inter_broker_listener() {
    // Clients (this test) use the PLAINTEXT listener SETUP; the brokers' verification calls
    // and markers go over SASL_SSL as user `broker`, which the standard authorizer lets
    // CLUSTER_ACTION as a super user (WriteTxnMarkers needs it).
    let certs = support::tls::Certs::make();
    let toml = |_| {
        format!(
            "{}listener_security_protocol_map = \"SETUP:PLAINTEXT\"\n\
             authorizer = \"standard\"\n\
             super_users = [\"User:ANONYMOUS\", \"User:{BROKER_USER}\"]\n\
             inter_broker_listener_name = \"SASL_SSL\"\n\
             inter_broker_sasl_mechanism = \"SCRAM-SHA-512\"\n\
             inter_broker_sasl_username = \"{BROKER_USER}\"\n\
             inter_broker_sasl_password = \"{BROKER_PASSWORD}\"\n",
            certs.broker_toml("none")
        )
    };
    let names = |_| vec!["SETUP", "SASL_SSL"];
    let (cluster, _ports) = LocalCluster::start_with_listeners(3, &names, &toml);
    cluster.wait_until_formed(3);
    let (ok, _, err) = support::sluice_cli(
        &cluster.node(1).bootstrap(),
        &[
            "user",
            "create",
            BROKER_USER,
            "--mechanism",
            "SCRAM-SHA-512",
        ],
        Some(&format!("{BROKER_PASSWORD}\n")),
    );
    assert!(ok, "sluice user create: {err}\n{}", cluster.diagnostics());
    v2_transaction_across_brokers(&cluster);
}

/// A transactions v2 producer writes to a topic led by every broker, producing at each
/// leader, and commits; every LSO reaches the end; the finished epoch is fenced at every
/// leader; and only the coordinator answers InitProducerId.
fn v2_transaction_across_brokers(cluster: &LocalCluster) {
    const V2_TOPIC: &str = "txn-v2";
    const V2_ID: &str = "cluster-v2";
    let led = spread_topic(cluster, V2_TOPIC, 3);
    let coordinator = transaction_coordinator(cluster, 1, V2_ID)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()));
    // Only the coordinator FindCoordinator names keeps the id's state.
    for other in (1..=3).filter(|&n| n != coordinator) {
        let (code, _, _) = try_init_producer(cluster, other, V2_ID);
        assert_eq!(
            code,
            ResponseError::NotCoordinator.code(),
            "InitProducerId at {other}, not the coordinator {coordinator}"
        );
    }
    let producer = init_producer(cluster, coordinator, V2_ID);
    assert_eq!(
        produce_v2_at_each_leader(cluster, (V2_ID, producer), V2_TOPIC, &led),
        vec![0; led.len()],
        "Produce v12 to each partition at its leader {led:?}"
    );
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(V2_ID.to_string())))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(true);
    let ended = RawConn::connect(&cluster.node(coordinator).bootstrap())
        .and_then(|mut c| c.try_call(&end, END_TXN_V2))
        .unwrap_or_else(|e| panic!("EndTxn: {e}"));
    assert_eq!(ended.error_code, 0, "EndTxn v5 commit");
    assert_eq!(
        ended.producer_epoch,
        producer.1 + 1,
        "EndTxn v5 bumps the epoch"
    );
    wait_until_stable(cluster, V2_TOPIC, &led, coordinator);
    // The finished epoch is fenced on every leader: each asked the coordinator.
    assert_eq!(
        produce_v2_at_each_leader(cluster, (V2_ID, producer), V2_TOPIC, &led),
        vec![ResponseError::InvalidProducerEpoch.code(); led.len()],
        "a batch of the finished epoch at each partition's leader {led:?} (coordinator \
         {coordinator})"
    );
}

/// Produce v12 of `producer` (transactional id, (producer id, epoch)) to each partition of
/// `topic` at its leader (`led[partition]`); each answer's code.
fn produce_v2_at_each_leader(
    cluster: &LocalCluster,
    producer: (&str, (i64, i16)),
    topic: &str,
    led: &[i32],
) -> Vec<i16> {
    led.iter()
        .enumerate()
        .map(|(index, &leader)| {
            produce_transactional(cluster, leader, producer, (topic, index as i32), PRODUCE_V2)
        })
        .collect()
}

#[test]
fn a_transactional_produce_whose_coordinator_is_down_is_refused_retriably() {
    const DOWN_TOPIC: &str = "txn-down";
    const DOWN_ID: &str = "cluster-down";
    // The dead coordinator stays registered (unfenced) for the whole test: produce
    // verification tries it and fails fast instead of naming a successor.
    let mut cluster = LocalCluster::start_with_config(3, "broker_session_timeout_ms = 60000\n");
    cluster.wait_until_formed(3);
    let led = spread_topic(&cluster, DOWN_TOPIC, 3);
    let coordinator = transaction_coordinator(&cluster, 1, DOWN_ID)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()));
    let producer = init_producer(&cluster, coordinator, DOWN_ID);
    let (index, &leader) = led
        .iter()
        .enumerate()
        .find(|(_, l)| **l != coordinator)
        .unwrap_or_else(|| panic!("no partition led away from the coordinator: {led:?}"));
    cluster.node_mut(coordinator).kill();
    let started = Instant::now();
    let code = produce_transactional(
        &cluster,
        leader,
        (DOWN_ID, producer),
        (DOWN_TOPIC, index as i32),
        PRODUCE_CLASSIC,
    );
    let took = started.elapsed();
    assert_eq!(
        code,
        ResponseError::CoordinatorNotAvailable.code(),
        "Produce to {DOWN_TOPIC}-{index} at {leader} with coordinator {coordinator} killed"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
}

#[test]
fn markers_follow_a_leader_that_moved_before_the_commit() {
    const MOVED_TOPIC: &str = "txn-moved";
    const MOVED_ID: &str = "cluster-moved";
    let mut cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    let led = spread_topic(&cluster, MOVED_TOPIC, 3);
    let coordinator = transaction_coordinator(&cluster, 1, MOVED_ID)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()));
    let producer = init_producer(&cluster, coordinator, MOVED_ID);
    for (index, &leader) in led.iter().enumerate() {
        let code = produce_transactional(
            &cluster,
            leader,
            (MOVED_ID, producer),
            (MOVED_TOPIC, index as i32),
            PRODUCE_V2,
        );
        assert_eq!(code, 0, "Produce v12 to {MOVED_TOPIC}-{index} at {leader}");
    }
    // A leader other than the coordinator dies with the transaction open; its partition's
    // leadership moves (the broker is fenced after its session timeout).
    let Some(&gone) = led.iter().find(|&&l| l != coordinator) else {
        panic!("no leader other than the coordinator {coordinator}: {led:?}");
    };
    cluster.node_mut(gone).kill();
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(MOVED_ID.to_string())))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(true);
    let ended = RawConn::connect(&cluster.node(coordinator).bootstrap())
        .and_then(|mut c| c.try_call(&end, END_TXN_V2))
        .unwrap_or_else(|e| panic!("EndTxn: {e}"));
    assert_eq!(
        ended.error_code, 0,
        "EndTxn v5 commit (the decision is durable)"
    );
    // The markers reach the partition's new leader: every LSO at the current leaders
    // reaches the high watermark.
    let mut moved = Vec::new();
    support::wait_until(WAIT, POLL, || {
        moved = leaders(cluster.node(coordinator), MOVED_TOPIC);
        if moved.len() == led.len() && !moved.contains(&gone) && !moved.contains(&-1) {
            return Ok(());
        }
        Err(format!(
            "leadership did not leave broker {gone}: {moved:?}\n{}",
            cluster.diagnostics()
        ))
    });
    wait_until_stable(&cluster, MOVED_TOPIC, &moved, coordinator);
}

/// A killed broker is fenced (its transactional ids' coordinator moves) within 1.5 s.
const FAST_FENCING: &str = "broker_session_timeout_ms = 1500\nbroker_heartbeat_interval_ms = 300\n";
/// The open transaction's `transaction.timeout.ms`: the next coordinator aborts it then.
const SHORT_TXN_TIMEOUT_MS: i32 = 8_000;

/// EndTxn v5 of `producer` at `node`.
fn end_txn_v2(
    cluster: &LocalCluster,
    node: i32,
    (id, (producer_id, epoch)): (&str, (i64, i16)),
    commit: bool,
) -> Result<kafka_protocol::messages::EndTxnResponse, String> {
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    RawConn::connect(&cluster.node(node).bootstrap()).and_then(|mut c| c.try_call(&end, END_TXN_V2))
}

/// Restarts `node` armed to SIGKILL itself right after its next Prepare* is durable
/// (`txn::fault`), and returns two transactional ids it coordinates once the cluster has
/// settled: InitProducerId answers at `node` for the first (with `SHORT_TXN_TIMEOUT_MS`).
/// If the restart took longer than the broker session the node was fenced and its
/// coordinator slots moved for good (decision 0024); the quorum leader's coordinator
/// rebalance (`leader_imbalance_check_interval_seconds = 1`) gives it a share back.
fn restart_armed(cluster: &mut LocalCluster, node: i32) -> (String, String) {
    let broker = cluster.node_mut(node);
    broker.kill();
    broker
        .extra_env
        .push(("SLUICE_FAULT_TXN_CRASH".into(), "after_prepare".into()));
    broker.spawn();
    cluster.wait_until_formed(3);
    let asked = node % 3 + 1;
    let mut ids = Vec::new();
    support::wait_until(WAIT, POLL, || {
        ids = (0..400)
            .map(|i| format!("failover-{i}"))
            .filter(|id| transaction_coordinator(cluster, asked, id) == Ok(node))
            .take(2)
            .collect();
        if ids.len() == 2 {
            return Ok(());
        }
        Err(format!(
            "{node} coordinates no ids\n{}",
            cluster.diagnostics()
        ))
    });
    let open_id = ids[0].clone();
    support::wait_until(WAIT, POLL, || {
        let answer = call_init_producer(cluster, node, &open_id, SHORT_TXN_TIMEOUT_MS);
        if let Ok((0, _, _)) = answer {
            return Ok(());
        }
        Err(format!(
            "InitProducerId at the restarted {node} answered {answer:?}\n{}",
            cluster.diagnostics()
        ))
    });
    (open_id, ids[1].clone())
}

/// Waits until `node` exits by itself (the armed crash) and reaps it.
fn wait_for_crash(cluster: &mut LocalCluster, node: i32) {
    support::wait_until(WAIT, POLL, || {
        let exited = cluster
            .node_mut(node)
            .child
            .as_mut()
            .is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))));
        if exited {
            return Ok(());
        }
        Err(format!(
            "broker {node} did not kill itself after PrepareCommit"
        ))
    });
    cluster.node_mut(node).kill();
}

#[test]
fn a_killed_coordinators_transactions_are_ended_by_the_next_coordinator() {
    const TOPIC_F: &str = "txn-failover";
    let test = "a_killed_coordinators_transactions_are_ended_by_the_next_coordinator";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let config = format!("{FAST_FENCING}leader_imbalance_check_interval_seconds = 1\n");
    let mut cluster = LocalCluster::start_with_config(3, &config);
    cluster.wait_until_formed(3);
    // Node 1 is armed; the ids are two it coordinates after its restart: one left open at
    // the kill, one decided (PrepareCommit) at the kill.
    let coordinator = 1;
    let (open_id, decided_id) = restart_armed(&mut cluster, coordinator);
    let open_id = open_id.as_str();
    // Armed, the coordinator dies at its first EndTxn: the transaction left open is of a
    // second incarnation (epoch 1), so its records are told apart from the decided one's.
    let (code, open_producer_id, open_epoch) =
        try_init_producer_with_timeout(&cluster, coordinator, open_id, SHORT_TXN_TIMEOUT_MS);
    assert_eq!(code, 0, "InitProducerId again at {coordinator}");
    let open = (open_producer_id, open_epoch);
    let led = spread_topic(&cluster, TOPIC_F, 3);
    let value = |p: usize, epoch: i16, i: i32| format!("{p}:e{epoch}-{i}");

    // One transaction left open at the kill ...
    assert_eq!(
        produce_v2_at_each_leader(&cluster, (open_id, open), TOPIC_F, &led),
        vec![0; led.len()]
    );
    // ... and one decided: the coordinator kills itself once its PrepareCommit is durable.
    let decided = init_producer(&cluster, coordinator, &decided_id);
    assert_eq!(
        produce_v2_at_each_leader(&cluster, (&decided_id, decided), TOPIC_F, &led),
        vec![0; led.len()]
    );
    assert_ne!(
        decided.1, open.1,
        "the two transactions' records are told apart by epoch"
    );
    let committed: Vec<String> = (0..led.len())
        .flat_map(|p| (0..2).map(move |i| value(p, decided.1, i)))
        .collect();
    let _ = end_txn_v2(&cluster, coordinator, (&decided_id, decided), true);
    wait_for_crash(&mut cluster, coordinator);

    // The next coordinator holds both states: it completes the decided one and aborts the
    // open one past its timeout, writing markers at the partitions' new leaders.
    let survivor = (1..=3).find(|&n| n != coordinator).unwrap_or(1);
    let mut next = coordinator;
    let mut moved = Vec::new();
    support::wait_until(WAIT, POLL, || {
        next = transaction_coordinator(&cluster, survivor, open_id).unwrap_or(coordinator);
        moved = leaders(cluster.node(survivor), TOPIC_F);
        let settled = next != coordinator
            && moved.len() == led.len()
            && !moved.contains(&coordinator)
            && !moved.contains(&-1);
        if settled {
            return Ok(());
        }
        Err(format!(
            "the coordinator ({next}) or the leaders ({moved:?}) did not leave {coordinator}\n{}",
            cluster.diagnostics()
        ))
    });
    wait_until_stable(&cluster, TOPIC_F, &moved, next);
    let args: Vec<String> = [
        "cluster_txn_failover_read.py",
        "--bootstrap",
        &cluster.node(survivor).bootstrap(),
        "--topic",
        TOPIC_F,
        "--partitions",
        &led.len().to_string(),
        "--expected",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(committed)
    .collect();
    run_script("cluster_txn_failover_read.py", &python, &args);

    // The producer re-initialises at the new coordinator: same producer id, a newer epoch,
    // and the old epoch is fenced at the leaders.
    let (code, producer_id, epoch) = try_init_producer(&cluster, next, open_id);
    assert_eq!(code, 0, "InitProducerId at the new coordinator {next}");
    assert_eq!(producer_id, open.0, "the same producer id");
    assert!(epoch > open.1, "a bumped epoch: {epoch} after {}", open.1);
    let (index, &leader) = moved
        .iter()
        .enumerate()
        .next()
        .unwrap_or_else(|| panic!("no partition"));
    let stale = (open_id, open);
    assert_eq!(
        produce_transactional(&cluster, leader, stale, (TOPIC_F, index as i32), PRODUCE_V2),
        ResponseError::InvalidProducerEpoch.code(),
        "a batch of the old epoch at {leader}"
    );
}

#[test]
fn a_node_restarted_from_a_metadata_snapshot_holds_the_transaction_states() {
    const SNAPSHOT_ID: &str = "snapshotted-txn";
    let mut cluster = LocalCluster::start_with_config(3, FAST_FENCING);
    cluster.wait_until_formed(3);
    let coordinator = transaction_coordinator(&cluster, 1, SNAPSHOT_ID)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()));
    // More state changes than entries between two snapshots (1,000), one per epoch bump:
    // every node compacts its log into an image, which must carry the id's state.
    let mut last = (0, 0);
    for _ in 0..1_100 {
        last = init_producer(&cluster, coordinator, SNAPSHOT_ID);
    }
    // Which broker takes the id over is decided only when its coordinator is fenced
    // (decision 0024): both others are restarted from their snapshots, one at a time, so
    // the successor is one of them.
    let others: Vec<i32> = (1..=3).filter(|id| *id != coordinator).collect();
    for &other in &others {
        let snapshot = cluster.node(other).data_dir.join("meta/raft/snapshot");
        support::wait_until(WAIT, POLL, || {
            snapshot
                .exists()
                .then_some(())
                .ok_or(format!("node {other} took no metadata snapshot"))
        });
        cluster.node_mut(other).kill();
        cluster.node_mut(other).spawn();
        cluster.wait_until_formed(3);
    }
    cluster.node_mut(coordinator).kill();
    let mut answer = Err(String::new());
    let mut successor = 0;
    support::wait_until(WAIT, POLL, || {
        successor = transaction_coordinator(&cluster, others[0], SNAPSHOT_ID)?;
        if !others.contains(&successor) {
            return Err(format!("coordinator still {successor}"));
        }
        answer = call_init_producer(&cluster, successor, SNAPSHOT_ID, 60_000);
        match answer {
            Ok((0, _, _)) => Ok(()),
            _ => Err(format!("InitProducerId at {successor}: {answer:?}")),
        }
    });
    assert_eq!(
        answer,
        Ok((0, last.0, last.1 + 1)),
        "the restarted node continues the id's producer from its snapshot"
    );
}
