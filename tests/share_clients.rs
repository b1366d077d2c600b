//! confluent-kafka's `ShareConsumer` (librdkafka 2.16, KIP-932) against Sluice's share
//! groups, through `tests/clients/share_consumers.py`: three members of one partition get
//! disjoint records and together all of them; a member SIGKILLed holding records loses them
//! to another member, with delivery count 2, as soon as its connection drops (its share
//! session ends with it, as in Kafka; not after the lock timeout); a broker SIGKILL loses
//! no acknowledgement and no record.
//!
//! Python comes from `SLUICE_TEST_PYTHON`, else `<repo>/.venv/bin/python`;
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips with a loud notice.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::scripts::run_script;
use support::wire::RawConn;
use support::{Broker, real_clients_skipped};

const SCRIPT: &str = "share_consumers.py";

fn python() -> PathBuf {
    support::client_python("confluent_kafka")
}

fn run(broker: &Broker, scenario: &str, extra: &[String]) {
    let mut args = vec![SCRIPT.to_string(), scenario.to_string(), broker.bootstrap()];
    args.extend_from_slice(extra);
    run_script(&format!("{SCRIPT} {scenario}"), &python(), &args);
}

#[test]
fn three_share_consumers_on_one_partition_get_disjoint_records_and_all_of_them() {
    if real_clients_skipped("share disjoint") {
        return;
    }
    let broker = Broker::start();
    run(&broker, "disjoint", &[]);
}

#[test]
fn a_killed_share_consumers_records_reach_another_member_with_delivery_count_two() {
    if real_clients_skipped("share redeliver") {
        return;
    }
    let broker = Broker::start();
    run(&broker, "redeliver", &[]);
}

#[test]
fn a_broker_sigkill_loses_no_share_acknowledgement_and_no_record() {
    if real_clients_skipped("share broker sigkill") {
        return;
    }
    let mut broker = Broker::start();
    let state = tempfile::tempdir().expect("temp dir");
    let state_dir = state.path().display().to_string();
    run(&broker, "before", std::slice::from_ref(&state_dir));
    broker.kill();
    broker.spawn();
    // The port accepts before every shard serves: wait for an answer.
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
    run(&broker, "after", &[state_dir]);
}
