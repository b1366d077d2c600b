//! The admin listener through the wire: after a produce/consume workload sent with the raw
//! Kafka protocol, `/metrics` parses with Prometheus' own Python parser and the partition
//! counters equal exactly what the test sent and received; `/v1/ready` and `/v1/status` answer.
//!
//! Needs `SLUICE_TEST_PYTHON`: a python3 with `prometheus_client` installed.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchRequest, ProduceRequest, TopicName,
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use support::Broker;
use support::wire::{RawConn, encode_batch, plain_record};

const TOPIC: &str = "metrics-test";
const PARTITIONS: i32 = 2;
const BATCHES_PER_PARTITION: usize = 4;
/// How long counters may take to show a request the client already saw answered.
const METRICS_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw connection that knows the broker's highest version of each API.
struct Client {
    conn: RawConn,
    /// Highest version the broker speaks, by API key.
    versions: BTreeMap<i16, i16>,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let mut conn = RawConn::connect_with(addr, "sluice-metrics-test", Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
        // ApiVersions v0 is understood by every broker.
        let response = conn.call(&ApiVersionsRequest::default(), 0);
        assert_eq!(response.error_code, 0, "ApiVersions error");
        let versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.max_version))
            .collect();
        Client { conn, versions }
    }

    /// The version to use for `R`: the newest both sides know, capped at `preferred`.
    fn version<R: Request>(&self, preferred: i16, minimum: i16) -> i16 {
        let broker_max = *self
            .versions
            .get(&R::KEY)
            .unwrap_or_else(|| panic!("broker does not advertise API {}", R::KEY));
        let v = broker_max.min(preferred);
        assert!(
            v >= minimum,
            "broker speaks API {} only up to v{broker_max}",
            R::KEY
        );
        v
    }
}

fn batch(records: usize, seed: usize) -> Bytes {
    let records: Vec<Record> = (0..records)
        .map(|i| {
            let value = format!("value-{seed}-{i}-{}", "x".repeat(seed * 7));
            plain_record(i as i64, 1_700_000_000_000, Bytes::from(value))
        })
        .collect();
    encode_batch(&records).freeze()
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Traffic {
    bytes_in: f64,
    records_in: f64,
    bytes_out: f64,
    records_out: f64,
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read admin response");
    let (head, body) = out.split_once("\r\n\r\n").expect("HTTP head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

fn python() -> String {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_PYTHON is not set: point it at a python3 that has prometheus_client \
             (e.g. `pip install prometheus_client; export SLUICE_TEST_PYTHON=$(command -v python3)`)"
        )
    });
    let ok = Command::new(&python)
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "SLUICE_TEST_PYTHON={python} cannot import prometheus_client (pip install prometheus_client)"
    );
    python
}

/// Parses `text` with prometheus_client and returns this test topic's partition counters.
fn parse_with_prometheus_client(python: &str, text: &str) -> BTreeMap<i32, Traffic> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
topic = sys.argv[1]
out = {}
families = 0
for family in text_string_to_metric_families(sys.stdin.read()):
    families += 1
    for s in family.samples:
        if s.labels.get("topic") == topic and s.name.endswith("_total"):
            out.setdefault(s.labels["partition"], {})[s.name] = s.value
assert families > 10, "too few metric families: %d" % families
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", SCRIPT, TOPIC])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics: {}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python JSON");
    let mut result = BTreeMap::new();
    for (partition, counters) in json.as_object().expect("object") {
        let get = |name: &str| counters[name].as_f64().unwrap_or(-1.0);
        result.insert(
            partition.parse().expect("partition label is a number"),
            Traffic {
                bytes_in: get("sluice_partition_bytes_in_total"),
                records_in: get("sluice_partition_records_in_total"),
                bytes_out: get("sluice_partition_bytes_out_total"),
                records_out: get("sluice_partition_records_out_total"),
            },
        );
    }
    result
}

#[test]
fn partition_counters_match_the_traffic_and_metrics_parse() {
    let python = python();
    let broker = Broker::start();
    let mut client = Client::connect(&broker.bootstrap());

    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1),
        ]);
    let v = client.version::<CreateTopicsRequest>(5, 0);
    let created = client.conn.call(&create, v);
    assert_eq!(created.topics[0].error_code, 0, "CreateTopics failed");

    // Produce: several batches of different sizes to each partition, acks=all.
    let mut expected: BTreeMap<i32, Traffic> = BTreeMap::new();
    let produce_version = client.version::<ProduceRequest>(9, 3);
    for partition in 0..PARTITIONS {
        for b in 0..BATCHES_PER_PARTITION {
            let records = 1 + b + partition as usize;
            let bytes = batch(records, b);
            let e = expected.entry(partition).or_default();
            e.bytes_in += bytes.len() as f64;
            e.records_in += records as f64;
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(partition)
                                .with_records(Some(bytes)),
                        ]),
                ]);
            let response = client.conn.call(&request, produce_version);
            let p = &response.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "produce to partition {partition} failed");
        }
    }

    // The storage gauges are read from the logs at the scrape itself: each partition's log
    // end is the records it took, at once, with no timer to wait for.
    let (_, scraped) = http_get(broker.admin_port, "/metrics");
    for (partition, traffic) in &expected {
        let (topic_label, partition_label) = (
            format!("topic=\"{TOPIC}\""),
            format!("partition=\"{partition}\""),
        );
        let log_end = scraped
            .lines()
            .find(|l| {
                l.starts_with("sluice_partition_log_end_offset{")
                    && l.contains(&topic_label)
                    && l.contains(&partition_label)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(
            log_end,
            Some(traffic.records_in),
            "partition {partition}'s log end in the first scrape after producing"
        );
    }

    // Consume everything back; count exactly what the broker sent.
    let fetch_version = client.version::<FetchRequest>(12, 4);
    for partition in 0..PARTITIONS {
        let mut offset = 0i64;
        let want = expected[&partition].records_in as i64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while offset < want {
            assert!(
                Instant::now() < deadline,
                "fetch made no progress at offset {offset}"
            );
            let request = FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(16 * 1024 * 1024)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(16 * 1024 * 1024),
                        ]),
                ]);
            let response = client.conn.call(&request, fetch_version);
            let data = &response.responses[0].partitions[0];
            assert_eq!(
                data.error_code, 0,
                "fetch from partition {partition} failed"
            );
            let Some(records) = data.records.clone() else {
                continue;
            };
            let e = expected.get_mut(&partition).unwrap();
            e.bytes_out += records.len() as f64;
            let mut buf = records;
            for set in RecordBatchDecoder::decode_all(&mut buf).expect("decode fetched batches") {
                for r in set.records {
                    assert!(r.offset >= offset, "offsets move forward");
                    offset = r.offset + 1;
                    e.records_out += 1.0;
                }
            }
        }
    }

    // Counters may be recorded just after the response is written: poll briefly.
    let deadline = Instant::now() + METRICS_SETTLE_TIMEOUT;
    let (text, seen) = loop {
        let (status, text) = http_get(broker.admin_port, "/metrics");
        assert_eq!(status, 200);
        let seen = parse_with_prometheus_client(&python, &text);
        if seen == expected || Instant::now() > deadline {
            break (text, seen);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(seen, expected, "partition counters vs traffic");
    let produce_count = text
        .lines()
        .find(|l| {
            l.starts_with("sluice_request_duration_seconds_count{")
                && l.contains("api=\"Produce\"")
                && l.contains("stage=\"total\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("Produce request count");
    assert!(produce_count >= (PARTITIONS as usize * BATCHES_PER_PARTITION) as f64);
    // Default durability syncs before an acks=all answer, and each request above waited for
    // its answer, so every one of them needed its own fdatasync, each timed.
    let fsync_count = text
        .lines()
        .find(|l| l.starts_with("sluice_fsync_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("fsync count");
    assert!(
        fsync_count >= (PARTITIONS as usize * BATCHES_PER_PARTITION) as f64,
        "{fsync_count} fdatasyncs timed for {} sequential acks=all requests",
        PARTITIONS as usize * BATCHES_PER_PARTITION
    );
}

#[test]
fn ready_and_status_describe_the_running_broker() {
    let broker = Broker::start();
    let (status, body) = http_get(broker.admin_port, "/v1/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = http_get(broker.admin_port, "/v1/ready");
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "not-ready is 503");
        assert!(Instant::now() < deadline, "broker never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (status, body) = http_get(broker.admin_port, "/v1/status");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["node_id"], 0);
    assert!(json["uptime_seconds"].as_f64().is_some());
    let shards = json["shards"].as_array().expect("shards array");
    assert!(!shards.is_empty());
    for shard in shards {
        assert!(
            shard["core"].as_u64().is_some(),
            "shard has a core: {shard}"
        );
        assert!(shard["partitions"].is_array());
    }

    assert_eq!(http_get(broker.admin_port, "/nope").0, 404);
}
