//! Real Kafka clients against a real `sluice serve`: each test starts a fresh broker and runs
//! one script from `tests/clients/` (confluent-kafka, kafka-python, KafkaJS, kcat, and a raw
//! idempotent-retry check), asserting it exits 0 and printing its output when it does not.
//!
//! Owns: finding the interpreters and tools, and failing loudly with an install hint when one
//! is missing. Must not: skip silently. `SLUICE_SKIP_REAL_CLIENTS=1` skips every test here
//! with a loud notice; `SLUICE_TEST_BOOTSTRAP=host:port` targets an external broker instead.
//!
//! `SLUICE_TEST_TOLERATE_TANSU=1` (only with an external tansu broker, never in CI) passes the
//! scripts' flags that tolerate tansu 0.6's known deviations (ListOffsets latest, duplicate
//! sequence answers), so the scripts themselves can be checked against it.
//!
//! Python comes from `SLUICE_TEST_PYTHON` (set by `tests/run.sh` to its venv), else
//! `<repo>/.venv/bin/python`; Node modules from `tests/clients/node_modules`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use support::scripts::run_script;
use support::{CLIENTS_INSTALL_HINT, Target, clients_dir, real_clients_skipped, require_tool};

/// Python modules the scripts import.
const PYTHON_MODULES: &str = "confluent_kafka, kafka, snappy, lz4, zstandard";

fn python() -> PathBuf {
    support::client_python(PYTHON_MODULES)
}

/// Extra script flags for `SLUICE_TEST_TOLERATE_TANSU=1` with an external broker.
fn tolerance_flags(target: &Target, script: &str) -> Vec<String> {
    if !target.external || std::env::var("SLUICE_TEST_TOLERATE_TANSU").as_deref() != Ok("1") {
        return Vec::new();
    }
    let notice =
        format!("!!! {script}: tolerating tansu deviations (SLUICE_TEST_TOLERATE_TANSU=1) !!!\n");
    let _ = std::io::stderr().write_all(notice.as_bytes());
    let mut flags = vec!["--skip-watermark-check".to_string()];
    if script == "idempotent_retry.py" {
        flags.push("--allow-duplicate-sequence-error".to_string());
    }
    flags
}

/// Runs a KafkaJS script from tests/clients against the target broker.
fn node_script(test: &str, script: &str) {
    if real_clients_skipped(test) {
        return;
    }
    require_tool("node", "nodejs");
    assert!(
        clients_dir()
            .join("node_modules/kafkajs/package.json")
            .exists(),
        "kafkajs is missing: run `npm ci` in tests/clients; {CLIENTS_INSTALL_HINT}"
    );
    let target = Target::from_env_or_start();
    let args = vec![
        script.to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    run_script(script, Path::new("node"), &args);
}

fn python_script(test: &str, script: &str) {
    if real_clients_skipped(test) {
        return;
    }
    let python = python();
    let target = Target::from_env_or_start();
    let mut args = vec![
        script.to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    args.extend(tolerance_flags(&target, script));
    run_script(script, &python, &args);
}

#[test]
fn confluent_kafka_roundtrip_all_codecs_and_idempotence() {
    python_script(
        "confluent_kafka_roundtrip_all_codecs_and_idempotence",
        "confluent_kafka_roundtrip.py",
    );
}

#[test]
fn kafka_python_roundtrip_all_codecs_and_idempotence() {
    python_script(
        "kafka_python_roundtrip_all_codecs_and_idempotence",
        "kafka_python_roundtrip.py",
    );
}

#[test]
fn idempotent_retry_of_the_same_batch_is_written_once() {
    python_script(
        "idempotent_retry_of_the_same_batch_is_written_once",
        "idempotent_retry.py",
    );
}

#[test]
fn kafkajs_roundtrip_codecs_and_idempotence() {
    if real_clients_skipped("kafkajs_roundtrip_codecs_and_idempotence") {
        return;
    }
    require_tool("node", "nodejs");
    let modules = clients_dir().join("node_modules");
    for package in ["kafkajs", "kafkajs-snappy", "lz4js"] {
        assert!(
            modules.join(package).join("package.json").exists(),
            "{} is missing: run `npm ci` in tests/clients; {CLIENTS_INSTALL_HINT}",
            modules.join(package).display()
        );
    }
    let target = Target::from_env_or_start();
    let mut args = vec![
        "kafkajs_roundtrip.js".to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    args.extend(tolerance_flags(&target, "kafkajs_roundtrip.js"));
    run_script("kafkajs_roundtrip.js", Path::new("node"), &args);
}

#[test]
fn kafkajs_admin_creates_topics_with_compression_type() {
    node_script(
        "kafkajs_admin_creates_topics_with_compression_type",
        "kafkajs_compression_type.js",
    );
}

#[test]
fn kcat_roundtrip_all_codecs_and_idempotence() {
    if real_clients_skipped("kcat_roundtrip_all_codecs_and_idempotence") {
        return;
    }
    require_tool("kcat", "kcat");
    let target = Target::from_env_or_start();
    let mut args = vec![
        "kcat_roundtrip.sh".to_string(),
        "--bootstrap".to_string(),
        target.bootstrap.clone(),
    ];
    if target.external {
        // An external broker may not be Sluice; create topics with the Python admin client.
        args.extend(["--python".to_string(), python().display().to_string()]);
    } else {
        args.extend([
            "--sluice".to_string(),
            support::sluice_bin().display().to_string(),
        ]);
    }
    args.extend(tolerance_flags(&target, "kcat_roundtrip.sh"));
    run_script("kcat_roundtrip.sh", Path::new("bash"), &args);
}

#[test]
fn admin_clients_create_describe_and_alter_configs() {
    python_script(
        "admin_clients_create_describe_and_alter_configs",
        "admin_configs.py",
    );
}

#[test]
fn kafkajs_admin_creates_and_describes_topic_configs() {
    node_script(
        "kafkajs_admin_creates_and_describes_topic_configs",
        "kafkajs_configs.js",
    );
}

/// Issue 15 items 6-8: confluent-kafka create_partitions with a replica assignment;
/// kafka-python's inferred broker version, elect_leaders, describe_topic_partitions,
/// describe_features and update_features.
#[test]
fn confluent_and_kafka_python_admin_against_kafka_4_behaviour() {
    python_script(
        "confluent_and_kafka_python_admin_against_kafka_4_behaviour",
        "admin_kafka4.py",
    );
}

/// Issue 15 item 6: KafkaJS createPartitions with assignments.
#[test]
fn kafkajs_create_partitions_with_assignments() {
    node_script(
        "kafkajs_create_partitions_with_assignments",
        "admin_kafka4.js",
    );
}

/// Issue 15: list_offsets with OffsetSpec.max_timestamp() and alter_consumer_group_offsets
/// naming topics and partitions that do not exist, through confluent-kafka's AdminClient.
#[test]
fn confluent_kafka_admin_max_timestamp_and_alter_offsets_of_unknown_topics() {
    python_script(
        "confluent_kafka_admin_max_timestamp_and_alter_offsets_of_unknown_topics",
        "confluent_admin_offsets.py",
    );
}
