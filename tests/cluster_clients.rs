//! Real clients against Sluice clusters (issue 17): confluent-kafka creates a 6-partition
//! topic whose leaders spread over the three brokers, produces to every leader with an
//! idempotent acks=all producer and consumes it all back in a consumer group; kafka-python,
//! KafkaJS and kcat each create a replicated topic (RF=3, min.insync.replicas=2), produce with
//! acks=all, consume in a group and commit; and on five nodes confluent-kafka's RF=3 topic
//! spreads its replicas over every broker with full ISRs.
//! Needs `SLUICE_TEST_PYTHON` (or `<repo>/.venv`) with confluent-kafka and kafka-python,
//! node with tests/clients/node_modules, and kcat, as tests/real_clients.rs;
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips them loudly.

mod support;

use std::path::Path;
use support::cluster::LocalCluster;
use support::scripts::run_script;
use support::{CLIENTS_INSTALL_HINT, clients_dir, real_clients_skipped, require_tool};

#[test]
fn confluent_kafka_produces_and_consumes_across_three_leaders() {
    let test = "confluent_kafka_produces_and_consumes_across_three_leaders";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    let args = vec![
        "cluster_spread.py".to_string(),
        "--bootstrap".to_string(),
        cluster.bootstrap(),
    ];
    run_script("cluster_spread.py", &python, &args);
}

#[test]
fn kafka_python_kafkajs_and_kcat_use_a_replicated_topic_on_three_nodes() {
    let test = "kafka_python_kafkajs_and_kcat_use_a_replicated_topic_on_three_nodes";
    if real_clients_skipped(test) {
        return;
    }
    require_tool("kcat", "kcat");
    require_tool("node", "nodejs");
    let kafkajs = clients_dir().join("node_modules").join("kafkajs");
    assert!(
        kafkajs.join("package.json").exists(),
        "{} is missing: run `npm ci` in tests/clients; {CLIENTS_INSTALL_HINT}",
        kafkajs.display()
    );
    let python = support::client_python("kafka");
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    let bootstrap = cluster.bootstrap();
    let script = |name: &str| {
        vec![
            name.to_string(),
            "--bootstrap".to_string(),
            bootstrap.clone(),
        ]
    };
    run_script(
        "cluster_kafka_python.py",
        &python,
        &script("cluster_kafka_python.py"),
    );
    run_script(
        "cluster_kafkajs.js",
        Path::new("node"),
        &script("cluster_kafkajs.js"),
    );
    let mut kcat = script("cluster_kcat.sh");
    kcat.extend([
        "--sluice".to_string(),
        support::sluice_bin().display().to_string(),
    ]);
    run_script("cluster_kcat.sh", Path::new("bash"), &kcat);
}

#[test]
fn five_nodes_spread_replicated_partitions_and_serve_confluent_kafka() {
    let test = "five_nodes_spread_replicated_partitions_and_serve_confluent_kafka";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let cluster = LocalCluster::start(5);
    cluster.wait_until_formed(5);
    let args: Vec<String> = [
        "cluster_spread.py",
        "--bootstrap",
        &cluster.bootstrap(),
        "--brokers",
        "5",
        "--partitions",
        "10",
        "--replication-factor",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_script("cluster_spread.py", &python, &args);
}
