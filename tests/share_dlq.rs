//! Dead-letter topics for share groups (KIP-1191) through confluent-kafka's `ShareConsumer`
//! (`tests/clients/share_dlq.py`): rejected records and records past the delivery count
//! limit reach the group's dead-letter topic once each, with Kafka's `__dlq.errors.*`
//! headers and the copied key and value; bad DLQ group configs get INVALID_CONFIG; and a
//! broker SIGKILLed right after a dead-letter append (before the records are archived)
//! neither loses nor duplicates a dead letter.
//!
//! Python comes from `SLUICE_TEST_PYTHON`, else `<repo>/.venv/bin/python`;
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips with a loud notice.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::scripts::run_script;
use support::wire::RawConn;
use support::{Broker, real_clients_skipped};

const SCRIPT: &str = "share_dlq.py";

fn python() -> PathBuf {
    support::client_python("confluent_kafka")
}

fn run(broker: &Broker, scenario: &str) {
    let args = vec![SCRIPT.to_string(), scenario.to_string(), broker.bootstrap()];
    run_script(&format!("{SCRIPT} {scenario}"), &python(), &args);
}

#[test]
fn rejected_and_exhausted_records_reach_the_dead_letter_topic_once_with_kafkas_headers() {
    if real_clients_skipped("share dlq") {
        return;
    }
    let broker = Broker::start();
    run(&broker, "dlq");
}

#[test]
fn a_broker_killed_after_a_dead_letter_append_neither_loses_nor_duplicates_dead_letters() {
    if real_clients_skipped("share dlq crash") {
        return;
    }
    let mut broker = Broker::start_with_env(&[], &[("SLUICE_FAULT_DLQ_CRASH", "after_append")]);
    run(&broker, "reject");
    // The broker kills itself after the first dead-letter append.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let exited = broker
            .child
            .as_mut()
            .map(|c| c.try_wait().ok().flatten().is_some())
            .unwrap_or(true);
        if exited {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker did not crash at the armed point"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.child = None;
    broker.extra_env.clear();
    broker.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = RawConn::connect(&broker.bootstrap()).and_then(|mut conn| {
            conn.try_call(&kafka_protocol::messages::ApiVersionsRequest::default(), 0)
        });
        if answered.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not serving after restart: {answered:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run(&broker, "recover");
}
