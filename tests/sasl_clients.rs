//! Real clients authenticating on a SASL_PLAINTEXT listener (issue 20): confluent-kafka
//! (librdkafka) with SCRAM-SHA-512, KafkaJS with SCRAM-SHA-256 and kafka-python with PLAIN
//! each produce, consume through a group and commit; each also sees a wrong password
//! refused. Users are created with `sluice user create` on the PLAINTEXT listener.
//!
//! Python comes from `SLUICE_TEST_PYTHON`; `SLUICE_SKIP_REAL_CLIENTS=1` skips loudly.

mod support;

use std::path::Path;
use support::scripts::run_script;
use support::{Broker, clients_dir, real_clients_skipped};

/// A broker with a SASL listener and `user` (password `password`) created through the CLI.
fn broker_with_user(user: &str, password: &str) -> Broker {
    let broker = Broker::start_with_sasl_listener("");
    let (ok, _, err) = support::sluice_cli(
        &broker.bootstrap(),
        &["user", "create", user],
        Some(&format!("{password}\n")),
    );
    assert!(ok, "sluice user create: {err}");
    broker
}

fn script_args(script: &Path, broker: &Broker, user: &str, password: &str) -> Vec<String> {
    vec![
        script.display().to_string(),
        "--bootstrap".into(),
        broker.sasl_bootstrap(),
        "--user".into(),
        user.into(),
        "--password".into(),
        password.into(),
    ]
}

fn python_script(test: &str, script: &str, user: &str, password: &str) {
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka, kafka");
    let broker = broker_with_user(user, password);
    let args = script_args(&clients_dir().join(script), &broker, user, password);
    run_script(script, &python, &args);
}

#[test]
fn confluent_kafka_with_scram_sha_512() {
    python_script(
        "confluent_kafka_with_scram_sha_512",
        "sasl_confluent.py",
        "confluent-user",
        "confluent-pw",
    );
}

#[test]
fn kafka_python_with_plain() {
    python_script(
        "kafka_python_with_plain",
        "sasl_kafka_python.py",
        "kp-user",
        "kp-pw",
    );
}

#[test]
fn kafkajs_with_scram_sha_256() {
    if real_clients_skipped("kafkajs_with_scram_sha_256") {
        return;
    }
    let broker = broker_with_user("js-user", "js-pw");
    let args = script_args(
        &clients_dir().join("sasl_kafkajs.js"),
        &broker,
        "js-user",
        "js-pw",
    );
    run_script("sasl_kafkajs.js", Path::new("node"), &args);
}
