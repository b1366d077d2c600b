//! Kafka 4.x admin behaviours (issue 15 items 6-8) through real clients against a fresh
//! `sluice serve`: `tests/clients/admin_kafka4.py` (confluent-kafka create_partitions with
//! a replica assignment; kafka-python's inferred broker version, elect_leaders,
//! describe_topic_partitions, describe_features, update_features) and
//! `tests/clients/admin_kafka4.js` (KafkaJS createPartitions with assignments).
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips them loudly; a missing client fails with a hint.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Broker, CLIENTS_INSTALL_HINT, clients_dir, real_clients_skipped};

/// Upper bound on one script; each needs a few seconds on a healthy broker.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `program script --bootstrap <broker>` to completion and fails with its output
/// unless it exits 0 having printed "all checks passed".
fn run_script(program: &Path, script: &str, broker: &Broker) {
    let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let out_path = logs.path().join("stdout");
    let stdout = std::fs::File::create(&out_path).unwrap_or_else(|e| panic!("stdout log: {e}"));
    let stderr = stdout
        .try_clone()
        .unwrap_or_else(|e| panic!("stderr log: {e}"));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args([script, "--bootstrap", &broker.bootstrap()])
        .current_dir(clients_dir())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} {script}: {e}", program.display()));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("waiting for {script}: {e}"),
        }
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let passed = status.is_some_and(|s| s.success()) && out.contains("all checks passed");
    assert!(passed, "{script} failed ({status:?}):\n{out}");
    let checks = out.lines().filter(|l| l.starts_with("ok ")).count();
    println!(
        "{script}: passed {checks} checks in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn confluent_and_kafka_python_admin_against_kafka_4_behaviour() {
    if real_clients_skipped("confluent_and_kafka_python_admin_against_kafka_4_behaviour") {
        return;
    }
    let python = support::client_python("confluent_kafka, kafka");
    let broker = Broker::start();
    run_script(&python, "admin_kafka4.py", &broker);
}

#[test]
fn kafkajs_create_partitions_with_assignments() {
    if real_clients_skipped("kafkajs_create_partitions_with_assignments") {
        return;
    }
    let kafkajs = clients_dir().join("node_modules/kafkajs/package.json");
    assert!(
        kafkajs.exists(),
        "{} is missing: run `npm ci` in tests/clients; {CLIENTS_INSTALL_HINT}",
        kafkajs.display()
    );
    let broker = Broker::start();
    run_script(Path::new("node"), "admin_kafka4.js", &broker);
}
