//! Issue 19: the Kafka port accepts only once the shards serve it. Before, every shard's
//! socket listened from the first moment of start-up, so a client connecting at once was
//! accepted by the kernel and then left unanswered while the shards opened (or after a
//! crash recovered) their partitions, or reset if start-up then failed. Now a connect is
//! refused until every shard has opened its partitions, and the first connection the port
//! accepts is served at once.
//!
//! Session 25: a port that does not listen yet is still taken. A second broker started on
//! the same address while the first was opening its partitions found the port silent and
//! joined it through SO_REUSEPORT: both ran, and the kernel split the port's connections
//! between them. Now the later one refuses to start.

mod support;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiVersionsRequest, CreateTopicsRequest};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Broker;
use support::wire::{RawConn, topic_name};

/// Shards the broker runs (each logs "shard ready" once its partitions are open).
const SHARDS: usize = 2;
/// Enough partitions that opening them at start-up is not instant.
const TOPICS: usize = 200;
const PARTITIONS_PER_TOPIC: i32 = 10;
const TOPICS_PER_REQUEST: usize = 20;
/// Generous: the restart opens 2,000 partitions on a loaded 2-core box.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one read may wait for the broker's answer.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn create_topics(broker: &Broker) {
    let mut conn = RawConn::connect_with(&broker.bootstrap(), "listen-after-open", IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", broker.diagnostics()));
    let names: Vec<String> = (0..TOPICS).map(|t| format!("open-{t:04}")).collect();
    for chunk in names.chunks(TOPICS_PER_REQUEST) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(
                chunk
                    .iter()
                    .map(|name| {
                        CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(PARTITIONS_PER_TOPIC)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        for created in conn.call(&request, 5).topics {
            assert_eq!(created.error_code, 0, "create {:?}", created.name);
        }
    }
}

/// A broker with `TOPICS` × `PARTITIONS_PER_TOPIC` partitions, stopped cleanly: its next
/// start takes a while to open them.
fn stopped_broker_with_many_partitions() -> Broker {
    let cores = SHARDS.to_string();
    let mut broker = Broker::start_with(&["--cores", &cores]);
    create_topics(&broker);
    assert!(
        broker.terminate().is_some_and(|s| s.success()),
        "clean stop\n{}",
        broker.diagnostics()
    );
    broker
}

/// Starts `sluice serve` by hand (`Broker::spawn` would itself wait for the port) on
/// `data_dir`, the Kafka port `port`, logging to `log_path`.
fn spawn_serve(
    data_dir: &std::path::Path,
    port: u16,
    admin_port: u16,
    log_path: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::File::create(log_path).expect("broker log");
    Command::new(support::sluice_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin_port}"))
        .args(["--cores", &SHARDS.to_string()])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn sluice serve")
}

#[test]
fn the_port_accepts_only_once_every_shard_serves_and_answers_at_once() {
    let mut broker = stopped_broker_with_many_partitions();
    // Restart by hand, logging to a fresh file so the "shard ready" lines counted are this
    // start's.
    let log_path = broker.data_dir.with_file_name("restart.log");
    broker.child = Some(spawn_serve(
        &broker.data_dir,
        broker.port,
        broker.admin_port,
        &log_path,
    ));
    let restart_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Connect the instant the port accepts.
    let deadline = Instant::now() + RESTART_TIMEOUT;
    let mut conn = loop {
        match RawConn::connect_with(&broker.bootstrap(), "listen-after-open", IO_TIMEOUT) {
            Ok(conn) => break conn,
            Err(_) => {
                if let Some(child) = broker.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("sluice serve exited: {status}\n{}", restart_log());
                }
                assert!(
                    Instant::now() < deadline,
                    "the port never accepted within {RESTART_TIMEOUT:?}\n{}",
                    restart_log()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    // Every shard had opened its partitions before the port accepted (each logs "shard
    // ready" right after, before it reports ready to the start-up that then listens).
    let ready_lines = restart_log().matches("shard ready").count();
    assert_eq!(
        ready_lines,
        SHARDS,
        "the port accepted before every shard had opened its partitions\n{}",
        restart_log()
    );
    // And the first request on that connection is answered, not reset.
    let versions = conn
        .try_call(&ApiVersionsRequest::default(), 3)
        .unwrap_or_else(|e| {
            panic!(
                "ApiVersions on the first connection: {e}\n{}",
                restart_log()
            )
        });
    assert_eq!(versions.error_code, 0);
    assert!(
        versions.api_keys.iter().any(|k| k.api_key == 18),
        "ApiVersions lists itself"
    );
}

/// How long one of two brokers on one port gets to refuse (before the claim, both ran).
const SECOND_START_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_second_broker_on_a_port_still_opening_its_partitions_refuses_to_start() {
    let mut first = stopped_broker_with_many_partitions();
    let first_log = first.data_dir.with_file_name("first.log");
    first.child = Some(spawn_serve(
        &first.data_dir,
        first.port,
        first.admin_port,
        &first_log,
    ));
    // The first broker binds its port, then opens 2,000 partitions (its port does not
    // listen meanwhile). A second one, with a data directory of its own, on the same port:
    std::thread::sleep(Duration::from_millis(200));
    let second_dir = tempfile::tempdir().expect("temp dir");
    let second_log = second_dir.path().join("second.log");
    let second_admin_port = support::free_port();
    let mut second = Some(spawn_serve(
        &second_dir.path().join("data"),
        first.port,
        second_admin_port,
        &second_log,
    ));
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let both_logs = || {
        format!(
            "first:\n{}\nsecond:\n{}",
            read(&first_log),
            read(&second_log)
        )
    };
    // Exactly one refuses: normally the second; the first, if the second bound before it on a
    // slow box. Either way with the reason, and the other one serves the port.
    let deadline = Instant::now() + SECOND_START_TIMEOUT;
    let refused_log = loop {
        if let Some(Ok(Some(status))) = second.as_mut().map(|c| c.try_wait()) {
            assert!(!status.success(), "the second broker's exit: {status}");
            break second_log.clone();
        }
        if let Some(Ok(Some(status))) = first.child.as_mut().map(|c| c.try_wait()) {
            assert!(!status.success(), "the first broker's exit: {status}");
            first.child = second.take();
            first.admin_port = second_admin_port;
            break first_log.clone();
        }
        if Instant::now() >= deadline {
            if let Some(mut child) = second.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("two brokers started on one port\n{}", both_logs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        read(&refused_log).contains("listening on this address or starting up on it"),
        "the refused broker says why\n{}",
        both_logs()
    );
    // The other one was not disturbed: it serves the port once its partitions are open.
    let deadline = Instant::now() + RESTART_TIMEOUT;
    let mut conn = loop {
        match RawConn::connect_with(&first.bootstrap(), "listen-after-open", IO_TIMEOUT) {
            Ok(conn) => break conn,
            Err(e) => {
                if let Some(Ok(Some(status))) = first.child.as_mut().map(|c| c.try_wait()) {
                    panic!("the remaining broker exited: {status}\n{}", both_logs());
                }
                assert!(
                    Instant::now() < deadline,
                    "never served: {e}\n{}",
                    both_logs()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let versions = conn
        .try_call(&ApiVersionsRequest::default(), 3)
        .unwrap_or_else(|e| panic!("ApiVersions: {e}\n{}", both_logs()));
    assert_eq!(versions.error_code, 0);
}
