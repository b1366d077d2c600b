//! Issue 19: the Kafka port accepts only once the shards serve it. Before, every shard's
//! socket listened from the first moment of start-up, so a client connecting at once was
//! accepted by the kernel and then left unanswered while the shards opened (or after a
//! crash recovered) their partitions, or reset if start-up then failed. Now a connect is
//! refused until every shard has opened its partitions, and the first connection the port
//! accepts is served at once.

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

#[test]
fn the_port_accepts_only_once_every_shard_serves_and_answers_at_once() {
    let cores = SHARDS.to_string();
    let mut broker = Broker::start_with(&["--cores", &cores]);
    create_topics(&broker);
    assert!(
        broker.terminate().is_some_and(|s| s.success()),
        "clean stop\n{}",
        broker.diagnostics()
    );

    // Restart by hand (`Broker::spawn` would itself wait for the port), logging to a fresh
    // file so the "shard ready" lines counted are this start's.
    let log_path = broker.data_dir.with_file_name("restart.log");
    let log = std::fs::File::create(&log_path).expect("restart log");
    let child = Command::new(support::sluice_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", broker.port))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{}", broker.admin_port))
        .args(["--cores", &cores])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn sluice serve");
    broker.child = Some(child);
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
