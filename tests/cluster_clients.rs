//! Real clients against a 3-node cluster (issue 17, stage 1): confluent-kafka creates a
//! 6-partition topic whose leaders spread over the three brokers, produces to every leader
//! with an idempotent acks=all producer and consumes it all back in a consumer group.
//! Needs `SLUICE_TEST_PYTHON` (or `<repo>/.venv`) with confluent-kafka, as
//! tests/real_clients.rs; `SLUICE_SKIP_REAL_CLIENTS=1` skips it loudly.

mod support;

use support::cluster::LocalCluster;
use support::real_clients_skipped;
use support::scripts::run_script;

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
