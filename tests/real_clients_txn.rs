//! Real transactional clients against a real `sluice serve` (issue 16): each test starts a
//! fresh broker and runs one script from `tests/clients/` with the script runner the other
//! real-client tests use, asserting it exits 0 having passed its checks.
//!
//! Same switches as `real_clients.rs`: `SLUICE_SKIP_REAL_CLIENTS=1` skips loudly,
//! `SLUICE_TEST_BOOTSTRAP=host:port` targets an external broker, Python comes from
//! `SLUICE_TEST_PYTHON` (else `<repo>/.venv/bin/python`).

mod support;

use std::path::Path;
use support::scripts::run_script;
use support::{CLIENTS_INSTALL_HINT, Target, clients_dir, real_clients_skipped};

/// confluent-kafka's transactional producer: init, commit over 3 partitions with
/// send_offsets_to_transaction, abort, commit; read_committed sees only the committed
/// records, read_uncommitted all; the group's offsets are the committed transaction's; a
/// second producer with the same transactional.id fences the first.
#[test]
fn confluent_kafka_transactions_commit_abort_offsets_and_fencing() {
    let test = "confluent_kafka_transactions_commit_abort_offsets_and_fencing";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let target = Target::from_env_or_start();
    let script = "confluent_transactions.py";
    let args = vec![
        script.to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    run_script(script, &python, &args);
}

/// KafkaJS consume-transform-produce: `producer.transaction()` with `sendOffsets` per
/// batch and one aborted transaction; the output holds each input exactly once for a
/// read_committed reader and the group's offsets are the input's end.
#[test]
fn kafkajs_consume_transform_produce_with_send_offsets() {
    let test = "kafkajs_consume_transform_produce_with_send_offsets";
    if real_clients_skipped(test) {
        return;
    }
    assert!(
        clients_dir()
            .join("node_modules/kafkajs/package.json")
            .exists(),
        "kafkajs is missing: run `npm ci` in tests/clients; {CLIENTS_INSTALL_HINT}"
    );
    let target = Target::from_env_or_start();
    let script = "kafkajs_transactions.js";
    let args = vec![
        script.to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    run_script(script, Path::new("node"), &args);
}

/// kafka-python's transactional producer: commit, abort, commit over 3 partitions;
/// read_committed sees only the committed records, read_uncommitted all.
#[test]
fn kafka_python_transactional_producer_commit_and_abort() {
    let test = "kafka_python_transactional_producer_commit_and_abort";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("kafka");
    let target = Target::from_env_or_start();
    let script = "kafka_python_transactions.py";
    let args = vec![
        script.to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    run_script(script, &python, &args);
}
