//! Creating topics is crash safe (issue 19, point 1): the broker is SIGKILLed during a burst
//! of CreateTopics requests. After the restart every topic answered success exists with all
//! its partitions, each led and writable (acks=all), and no topic is half-made: every topic
//! Metadata shows has all its partitions writable. Partitions are created without a file or
//! an fsync of their own (their topic is durable in metadata; the first append creates the
//! log), so the records written after the restart are then read back after a second SIGKILL,
//! through the recovery of logs created that way.
//!
//! Default: `TRIALS_DEFAULT` trials; `SLUICE_LONG_TESTS=1`: `TRIALS_LONG`.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::records::RecordBatchDecoder;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Broker;
use support::wire::{RawConn, encode_batch, plain_record, topic_name};

const TRIALS_DEFAULT: usize = 3;
const TRIALS_LONG: usize = 20;
const PARTITIONS_PER_TOPIC: i32 = 5;
const TOPICS_PER_REQUEST: usize = 20;
/// Kill window after the first answered CreateTopics, in ms.
const KILL_AFTER_MS_MIN: u64 = 50;
const KILL_AFTER_MS_MAX: u64 = 1500;
/// Generous: a loaded 2-core box with a debug build.
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

fn trials() -> usize {
    if std::env::var("SLUICE_LONG_TESTS").is_ok_and(|v| v == "1") {
        TRIALS_LONG
    } else {
        TRIALS_DEFAULT
    }
}

/// Whether `/v1/ready` answers 200 (false while the admin listener is not up).
fn ready(admin_port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", admin_port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    if write!(
        s,
        "GET /v1/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// Connects once the broker reports ready: the Kafka port accepts a moment before the
/// shards have opened their partitions and serve it (tests/polling_driver.rs waits alike).
fn connect(broker: &Broker) -> RawConn {
    let deadline = Instant::now() + support::BROKER_START_TIMEOUT;
    while !ready(broker.admin_port) {
        assert!(
            Instant::now() < deadline,
            "/v1/ready never answered 200\n{}",
            broker.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    RawConn::connect_with(&broker.bootstrap(), "create-crash", CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", broker.diagnostics()))
}

/// Sends CreateTopics requests until the connection fails (the kill), recording every
/// topic answered success in `created`.
fn create_until_killed(
    bootstrap: String,
    trial: usize,
    created: Arc<Mutex<Vec<String>>>,
    answered: Arc<AtomicBool>,
) {
    let Ok(mut conn) = RawConn::connect_with(&bootstrap, "create-burst", CONNECT_TIMEOUT) else {
        return;
    };
    for request_no in 0.. {
        let names: Vec<String> = (0..TOPICS_PER_REQUEST)
            .map(|t| format!("burst-{trial}-{request_no:05}-{t:02}"))
            .collect();
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(
                names
                    .iter()
                    .map(|name| {
                        CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(PARTITIONS_PER_TOPIC)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        let Ok(response) = conn.try_call(&request, 5) else {
            return;
        };
        let mut created = created.lock().expect("created list");
        for topic in response.topics {
            assert_eq!(
                topic.error_code, 0,
                "CreateTopics {}: {:?}",
                topic.name.0, topic.error_message
            );
            created.push(topic.name.0.to_string());
        }
        answered.store(true, Ordering::SeqCst);
    }
}

/// Every topic Metadata shows: name -> (partition index, error code, leader) sorted.
fn all_topics(conn: &mut RawConn, broker: &Broker) -> BTreeMap<String, Vec<(i32, i16, i32)>> {
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let response = conn
        .try_call(&request, 12)
        .unwrap_or_else(|e| panic!("Metadata after the restart: {e}\n{}", broker.diagnostics()));
    response
        .topics
        .into_iter()
        .map(|t| {
            let mut partitions: Vec<(i32, i16, i32)> = t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code, p.leader_id.0))
                .collect();
            partitions.sort_unstable();
            let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            (name, partitions)
        })
        .collect()
}

fn value(name: &str, partition: i32) -> Bytes {
    Bytes::from(format!("after the crash: {name}-{partition}"))
}

/// Produces one record (acks=all) to every partition of `topics`; each must be at offset 0.
fn produce_everywhere(conn: &mut RawConn, topics: &[String]) {
    for chunk in topics.chunks(TOPICS_PER_REQUEST) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(
                chunk
                    .iter()
                    .map(|name| {
                        TopicProduceData::default()
                            .with_name(topic_name(name))
                            .with_partition_data(
                                (0..PARTITIONS_PER_TOPIC)
                                    .map(|p| {
                                        let record = plain_record(0, 1_000, value(name, p));
                                        PartitionProduceData::default()
                                            .with_index(p)
                                            .with_records(Some(encode_batch(&[record]).freeze()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        for topic in conn.call(&request, 9).responses {
            for p in &topic.partition_responses {
                assert_eq!(
                    (p.error_code, p.base_offset),
                    (0, 0),
                    "produce to {}-{} after the restart",
                    topic.name.0,
                    p.index
                );
            }
        }
    }
}

/// Reads every partition of `topics` from offset 0: exactly the record produced.
fn fetch_everywhere(conn: &mut RawConn, broker: &Broker, topics: &[String]) {
    for chunk in topics.chunks(TOPICS_PER_REQUEST) {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_max_bytes(64 << 20)
            .with_topics(
                chunk
                    .iter()
                    .map(|name| {
                        FetchTopic::default()
                            .with_topic(topic_name(name))
                            .with_partitions(
                                (0..PARTITIONS_PER_TOPIC)
                                    .map(|p| {
                                        FetchPartition::default()
                                            .with_partition(p)
                                            .with_fetch_offset(0)
                                            .with_partition_max_bytes(1 << 20)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = conn
            .try_call(&request, 11)
            .unwrap_or_else(|e| panic!("Fetch after the restart: {e}\n{}", broker.diagnostics()));
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for p in topic.partitions {
                assert_eq!(p.error_code, 0, "fetch {name}-{}", p.partition_index);
                assert_eq!(p.high_watermark, 1, "{name}-{}", p.partition_index);
                let mut records = p.records.unwrap_or_default();
                let batches = RecordBatchDecoder::decode_all(&mut records)
                    .unwrap_or_else(|e| panic!("decode {name}-{}: {e:?}", p.partition_index));
                let values: Vec<Bytes> = batches
                    .into_iter()
                    .flat_map(|b| b.records)
                    .filter_map(|r| r.value)
                    .collect();
                assert_eq!(values, vec![value(&name, p.partition_index)]);
            }
        }
    }
}

fn run_trial(trial: usize) -> usize {
    let mut broker = Broker::start();
    let created = Arc::new(Mutex::new(Vec::new()));
    let answered = Arc::new(AtomicBool::new(false));
    let burst = {
        let (bootstrap, created, answered) =
            (broker.bootstrap(), created.clone(), answered.clone());
        std::thread::spawn(move || create_until_killed(bootstrap, trial, created, answered))
    };
    let deadline = Instant::now() + FIRST_ANSWER_TIMEOUT;
    while !answered.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "no CreateTopics answered\n{}",
            broker.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill_after = rand::rng().random_range(KILL_AFTER_MS_MIN..=KILL_AFTER_MS_MAX);
    std::thread::sleep(Duration::from_millis(kill_after));
    broker.kill();
    burst.join().expect("burst thread");
    let created = created.lock().expect("created list").clone();

    broker.spawn();
    let mut conn = connect(&broker);
    let shown = all_topics(&mut conn, &broker);
    let whole: Vec<(i32, i16, i32)> = (0..PARTITIONS_PER_TOPIC).map(|p| (p, 0, 0)).collect();
    for name in &created {
        assert_eq!(
            shown.get(name),
            Some(&whole),
            "topic {name} was answered success before the kill"
        );
    }
    // Also the topics whose answer the kill cut off: whole, or absent.
    let burst_topics: Vec<String> = shown
        .iter()
        .filter(|(name, _)| name.starts_with("burst-"))
        .map(|(name, partitions)| {
            assert_eq!(partitions, &whole, "topic {name} is half-made");
            name.clone()
        })
        .collect();
    produce_everywhere(&mut conn, &burst_topics);
    drop(conn);

    broker.kill();
    broker.spawn();
    let mut conn = connect(&broker);
    fetch_everywhere(&mut conn, &broker, &burst_topics);
    created.len()
}

#[test]
fn topics_answered_during_a_create_burst_survive_sigkill_whole_and_writable() {
    for trial in 0..trials() {
        let created = run_trial(trial);
        eprintln!("trial {trial}: {created} topics answered before the kill");
    }
}
