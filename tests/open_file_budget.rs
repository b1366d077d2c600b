//! Issue 19, points 1 and 2, through the wire: a broker with more partitions than its
//! descriptor limit could hold open keeps every one writable and readable, before and after
//! a clean restart (the open-file budget closes idle segment files and reopens them on use);
//! and a partition that cannot be created fails its CreateTopics, is shown offline by
//! Metadata, `/metrics`, `/v1/status` and `sluice topic describe`, and refuses produce and
//! fetch with KAFKA_STORAGE_ERROR at once.
//!
//! By default 2,000 partitions run under a 1,024-descriptor limit (creating a partition costs
//! about 7 ms on the 2-core test box, its fsyncs included); with SLUICE_LONG_TESTS=1 the
//! issue's 30,000 partitions under 20,000.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::records::RecordBatchDecoder;
use std::time::{Duration, Instant};
use support::Broker;
use support::wire::{RawConn, encode_batch, plain_record, produce_request, topic_name};

const PARTITIONS_PER_TOPIC: i32 = 10;
/// Topics per CreateTopics, Produce and Fetch request: 200 partitions, whose fetched file
/// regions each keep a descriptor until the answer is sent (the budget's socket share).
const TOPICS_PER_REQUEST: usize = 20;
/// A produce or fetch to an offline partition must be answered long before a client's
/// request timeout (30 s): it is refused, not left to time out.
const FAIL_FAST: Duration = Duration::from_secs(5);

/// (descriptor limit, topics, how long a clean shutdown may take): over the limit either
/// way, by a wide margin. Closing 30,000 partitions cleanly (four fsyncs each) took over
/// 30 s on the loaded 2-core test box.
fn scale() -> (u64, usize, Duration) {
    if std::env::var_os("SLUICE_LONG_TESTS").is_some_and(|v| v == "1") {
        (20_000, 3_000, Duration::from_secs(600))
    } else {
        (1_024, 200, Duration::from_secs(30))
    }
}

fn topic(t: usize) -> String {
    format!("many-{t:05}")
}

fn value(round: u32, t: usize, p: i32) -> Bytes {
    Bytes::from(format!("round {round} of {}-{p}", topic(t)))
}

fn connect(broker: &Broker) -> RawConn {
    RawConn::connect_with(
        &broker.bootstrap(),
        "open-file-budget",
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", broker.diagnostics()))
}

fn create_all(conn: &mut RawConn, topics: usize) {
    for chunk in (0..topics).collect::<Vec<_>>().chunks(TOPICS_PER_REQUEST) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(
                chunk
                    .iter()
                    .map(|&t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&topic(t)))
                            .with_num_partitions(PARTITIONS_PER_TOPIC)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        for created in conn.call(&request, 5).topics {
            assert_eq!(
                created.error_code, 0,
                "CreateTopics {}: {:?}",
                created.name.0, created.error_message
            );
        }
    }
}

/// One record per partition of every topic, expected at `offset`.
fn produce_round(conn: &mut RawConn, topics: usize, round: u32, offset: i64) {
    for chunk in (0..topics).collect::<Vec<_>>().chunks(TOPICS_PER_REQUEST) {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(
                chunk
                    .iter()
                    .map(|&t| {
                        TopicProduceData::default()
                            .with_name(topic_name(&topic(t)))
                            .with_partition_data(
                                (0..PARTITIONS_PER_TOPIC)
                                    .map(|p| {
                                        let record = plain_record(0, 1_000, value(round, t, p));
                                        PartitionProduceData::default()
                                            .with_index(p)
                                            .with_records(Some(encode_batch(&[record]).freeze()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = conn.call(&request, 9);
        assert_eq!(response.responses.len(), chunk.len());
        for topic_response in &response.responses {
            for p in &topic_response.partition_responses {
                assert_eq!(
                    (p.error_code, p.base_offset),
                    (0, offset),
                    "produce round {round} to {}-{}",
                    topic_response.name.0,
                    p.index
                );
            }
        }
    }
}

/// Reads every partition from `offset` and checks the one record there is `round`'s.
fn fetch_round(conn: &mut RawConn, topics: usize, round: u32, offset: i64) {
    for chunk in (0..topics).collect::<Vec<_>>().chunks(TOPICS_PER_REQUEST) {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(64 * 1024 * 1024)
            .with_session_epoch(-1)
            .with_topics(
                chunk
                    .iter()
                    .map(|&t| {
                        FetchTopic::default()
                            .with_topic(topic_name(&topic(t)))
                            .with_partitions(
                                (0..PARTITIONS_PER_TOPIC)
                                    .map(|p| {
                                        FetchPartition::default()
                                            .with_partition(p)
                                            .with_fetch_offset(offset)
                                            .with_partition_max_bytes(64 * 1024)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = conn.call(&request, 12);
        assert_eq!(response.responses.len(), chunk.len());
        for (topic_response, &t) in response.responses.iter().zip(chunk) {
            assert_eq!(topic_response.topic.0.as_str(), topic(t));
            assert_eq!(
                topic_response.partitions.len(),
                PARTITIONS_PER_TOPIC as usize
            );
            for p in &topic_response.partitions {
                let what = format!("{}-{} at {offset}", topic(t), p.partition_index);
                assert_eq!(p.error_code, 0, "fetch {what}");
                let mut records = p.records.clone().unwrap_or_default();
                let batches = RecordBatchDecoder::decode_all(&mut records)
                    .unwrap_or_else(|e| panic!("decode {what}: {e}"));
                let first = batches
                    .iter()
                    .flat_map(|b| b.records.iter())
                    .next()
                    .unwrap_or_else(|| panic!("no record fetched from {what}"));
                assert_eq!(first.offset, offset, "{what}");
                assert_eq!(
                    first.value.as_ref(),
                    Some(&value(round, t, p.partition_index)),
                    "{what}"
                );
            }
        }
    }
}

/// A per-shard gauge summed over the broker's shards.
fn sum_over_shards(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{shard=")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Prints the end of the broker's output when the test fails (the broker and its log are
/// gone once the test's values drop).
struct LogOnPanic(std::path::PathBuf);

impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("broker output (last lines):");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn metrics(broker: &Broker) -> String {
    support::scrape_metrics(broker.admin_port)
}

#[test]
fn more_partitions_than_descriptors_stay_writable_and_readable_across_a_restart() {
    let (limit, topics, shutdown_within) = scale();
    let partitions = topics as u64 * PARTITIONS_PER_TOPIC as u64;
    assert!(
        partitions * 3 > limit * 4,
        "every partition's three segment files could never be open at once"
    );
    let mut broker = Broker::start_with_open_file_limit(limit, &[]);
    let _log = LogOnPanic(broker.log_path.clone().expect("broker log"));
    let mut conn = connect(&broker);
    let started = Instant::now();
    create_all(&mut conn, topics);
    eprintln!("created {partitions} partitions in {:?}", started.elapsed());
    produce_round(&mut conn, topics, 1, 0);
    fetch_round(&mut conn, topics, 1, 0);

    let mut text = metrics(&broker);
    let budget = sum_over_shards(&text, "sluice_open_file_limit");
    assert!(
        budget > 0.0 && budget < limit as f64,
        "budget {budget} under {limit}\n{text}"
    );
    // Right after the rounds the budget may be over by the index files of segments being
    // written while its share of evicted files is still being synced before they close
    // (`storage::open_files`: an index open does not wait for those syncs, so an append
    // never waits for another partition's fdatasync); the syncs end and it is back within.
    let first = sum_over_shards(&text, "sluice_open_files");
    assert!(
        first < limit as f64,
        "{first} segment files open, limit {limit}"
    );
    let settle_by = Instant::now() + Duration::from_secs(10);
    let mut open = first;
    while open > budget && Instant::now() < settle_by {
        std::thread::sleep(Duration::from_millis(100));
        text = metrics(&broker);
        open = sum_over_shards(&text, "sluice_open_files");
    }
    assert!(
        open <= budget,
        "{open} segment files open 10 s after the rounds (first {first}), budget {budget}"
    );
    let evictions = support::metric_sample(&text, "sluice_open_file_evictions_total");
    assert!(
        evictions.is_some_and(|e| e >= (partitions as f64) / 2.0),
        "idle segments were closed to stay within the budget: {evictions:?}"
    );
    assert_eq!(sum_over_shards(&text, "sluice_offline_partitions"), 0.0);

    drop(conn);
    let shutdown = Instant::now();
    let status = broker
        .terminate_within(shutdown_within)
        .expect("broker was running");
    assert!(
        status.success(),
        "clean shutdown: {status}\n{}",
        broker.diagnostics()
    );
    eprintln!(
        "clean shutdown with {partitions} partitions took {:?}",
        shutdown.elapsed()
    );
    broker.spawn();
    let mut conn = connect(&broker);
    fetch_round(&mut conn, topics, 1, 0);
    produce_round(&mut conn, topics, 2, 1);
    fetch_round(&mut conn, topics, 2, 1);
    let text = metrics(&broker);
    assert!(
        sum_over_shards(&text, "sluice_open_files")
            <= sum_over_shards(&text, "sluice_open_file_limit")
    );
    assert_eq!(
        sum_over_shards(&text, "sluice_offline_partitions"),
        0.0,
        "{}",
        broker.diagnostics()
    );
}

fn metadata_partitions(
    conn: &mut RawConn,
    name: &str,
) -> Vec<kafka_protocol::messages::metadata_response::MetadataResponsePartition> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(name))),
        ]))
        .with_allow_auto_topic_creation(false);
    let response = conn.call(&request, 12);
    assert_eq!(response.topics[0].error_code, 0, "Metadata {name}");
    let mut partitions = response.topics[0].partitions.clone();
    partitions.sort_by_key(|p| p.partition_index);
    partitions
}

/// Metadata shows exactly `offline` without a leader, as Kafka shows a partition whose
/// only replica is offline; the others are led by this node.
fn assert_metadata_offline(conn: &mut RawConn, name: &str, count: i32, offline: i32) {
    let partitions = metadata_partitions(conn, name);
    assert_eq!(partitions.len(), count as usize);
    for p in &partitions {
        if p.partition_index == offline {
            assert_eq!(p.error_code, ResponseError::LeaderNotAvailable.code());
            assert_eq!(p.leader_id.0, -1, "no leader");
            assert!(p.isr_nodes.is_empty(), "no ISR");
            assert_eq!(
                p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
                vec![0]
            );
            assert_eq!(
                p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                vec![0]
            );
        } else {
            assert_eq!(
                (p.error_code, p.leader_id.0),
                (0, 0),
                "partition {}",
                p.partition_index
            );
            assert!(p.offline_replicas.is_empty());
        }
    }
}

fn produce_one(conn: &mut RawConn, name: &str, partition: i32) -> (i16, Duration) {
    let batch = encode_batch(&[plain_record(0, 1_000, Bytes::from_static(b"v"))]).freeze();
    let started = Instant::now();
    let response = conn.call(&produce_request(name, partition, batch, -1), 9);
    (
        response.responses[0].partition_responses[0].error_code,
        started.elapsed(),
    )
}

fn fetch_one(conn: &mut RawConn, name: &str, partition: i32) -> (i16, Duration) {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(10_000)
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(name))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1024 * 1024),
                ]),
        ]);
    let started = Instant::now();
    let response = conn.call(&request, 12);
    (
        response.responses[0].partitions[0].error_code,
        started.elapsed(),
    )
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read admin answer");
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The offline partitions `/v1/status` lists, as (topic, partition).
fn status_offline(broker: &Broker) -> Vec<(String, i64)> {
    let body = http_get(broker.admin_port, "/v1/status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    let mut out = Vec::new();
    for shard in status["shards"].as_array().expect("shards") {
        for p in shard["offline_partitions"]
            .as_array()
            .expect("offline_partitions")
        {
            assert!(p["reason"].as_str().is_some_and(|r| !r.is_empty()), "{p}");
            out.push((
                p["topic"].as_str().expect("topic").to_string(),
                p["partition"].as_i64().expect("partition"),
            ));
        }
    }
    out
}

fn check_offline_everywhere(broker: &Broker, conn: &mut RawConn, name: &str) {
    assert_metadata_offline(conn, name, 4, 2);
    let (code, took) = produce_one(conn, name, 2);
    assert_eq!(
        code,
        ResponseError::KafkaStorageError.code(),
        "produce to the offline partition"
    );
    assert!(took < FAIL_FAST, "refused at once, not timed out: {took:?}");
    let (code, took) = fetch_one(conn, name, 2);
    assert_eq!(
        code,
        ResponseError::KafkaStorageError.code(),
        "fetch from the offline partition"
    );
    assert!(
        took < FAIL_FAST,
        "refused at once, not parked as a long poll: {took:?}"
    );
    assert_eq!(
        produce_one(conn, name, 0).0,
        0,
        "the other partitions take writes"
    );
    assert_eq!(
        sum_over_shards(&metrics(broker), "sluice_offline_partitions"),
        1.0
    );
    assert_eq!(status_offline(broker), vec![(name.to_string(), 2)]);
    let (ok, out, err) =
        support::sluice_cli(&broker.bootstrap(), &["topic", "describe", name], None);
    assert!(ok, "topic describe: {err}");
    let line = out
        .lines()
        .find(|l| l.contains("Partition: 2\t"))
        .unwrap_or_else(|| panic!("no line for partition 2 in:\n{out}"));
    assert!(
        line.contains("Leader: none") && line.contains("Offline: yes"),
        "{line}"
    );
    assert_eq!(out.matches("Offline: yes").count(), 1, "{out}");
}

#[test]
fn a_partition_that_cannot_be_created_fails_create_topics_and_is_shown_offline() {
    let mut broker = Broker::start();
    let name = "squatted";
    // A file where partition 2's directory must go: its log cannot be created.
    std::fs::write(
        broker.data_dir.join(format!("{name}-2")),
        b"not a directory",
    )
    .unwrap();
    let mut conn = connect(&broker);
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(4)
                .with_replication_factor(1),
        ]);
    let created = &conn.call(&request, 5).topics[0];
    assert_eq!(created.error_code, ResponseError::KafkaStorageError.code());
    let message = created
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("1 of 4 partitions") && message.contains("2: "),
        "{message}"
    );
    check_offline_everywhere(&broker, &mut conn, name);

    // Still offline after a restart, and shown so from the first answer.
    drop(conn);
    let status = broker.terminate().expect("broker was running");
    assert!(status.success(), "clean shutdown: {status}");
    broker.spawn();
    let mut conn = connect(&broker);
    check_offline_everywhere(&broker, &mut conn, name);
}

#[test]
fn a_partition_found_damaged_while_served_is_taken_offline_and_shown_so() {
    let mut broker = Broker::start();
    let name = "damaged";
    let mut conn = connect(&broker);
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(2)
                .with_replication_factor(1),
        ]);
    assert_eq!(conn.call(&request, 5).topics[0].error_code, 0);
    assert_eq!(produce_one(&mut conn, name, 1).0, 0);
    drop(conn);
    let status = broker.terminate().expect("broker was running");
    assert!(status.success(), "clean shutdown: {status}");
    // After a clean shutdown the data is trusted without a scan; its CRCs are checked at
    // the first read, which finds this byte flipped inside the record.
    let log = broker
        .data_dir
        .join(format!("{name}-1"))
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&log, bytes).unwrap();
    broker.spawn();
    let mut conn = connect(&broker);
    assert_eq!(
        fetch_one(&mut conn, name, 1).0,
        ResponseError::KafkaStorageError.code(),
        "damaged data is never served"
    );
    // The next background pass finds the log offline and says so everywhere.
    let deadline = Instant::now() + FAIL_FAST;
    while metadata_partitions(&mut conn, name)[1].leader_id.0 != -1 {
        assert!(Instant::now() < deadline, "Metadata still shows a leader");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_metadata_offline(&mut conn, name, 2, 1);
    let (code, took) = produce_one(&mut conn, name, 1);
    assert_eq!(code, ResponseError::KafkaStorageError.code());
    assert!(took < FAIL_FAST, "{took:?}");
    assert_eq!(produce_one(&mut conn, name, 0).0, 0);
    assert_eq!(
        sum_over_shards(&metrics(&broker), "sluice_offline_partitions"),
        1.0
    );
    assert_eq!(status_offline(&broker), vec![(name.to_string(), 1)]);
}
