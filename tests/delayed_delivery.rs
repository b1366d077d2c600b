//! Delayed delivery through the wire (issue 18, decision 0008): records with a
//! `sluice.delay.ms` / `sluice.deliver.at.ms` header, or on a topic with
//! `sluice.delivery.delay.ms`, are not fetchable before they are due and are fetchable after,
//! exactly once, across clean restarts and SIGKILLs; bad header values get INVALID_RECORD.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use sluice::client::{Client, Consumer, ConsumerConfig, NewTopic, StartOffset};
use support::{Broker, wire};

const CLIENT_ID: &str = "delayed-delivery-test";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn create_topic(broker: &Broker, name: &str, configs: Vec<(String, String)>) {
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: name.to_string(),
            partitions: 1,
            replication_factor: 1,
            configs,
        })
        .expect("create topic");
}

/// A record with value `value` and the given headers.
fn record(index: i64, value: &str, headers: &[(&str, &str)]) -> Record {
    let mut r = wire::plain_record(index, now_ms(), Bytes::from(value.to_string()));
    for (k, v) in headers {
        r.headers.insert(
            StrBytes::from_string(k.to_string()),
            Some(Bytes::from(v.to_string())),
        );
    }
    r
}

/// Starts the broker again and waits until it answers requests (its listener accepts
/// before every shard has opened its partitions and replayed its delay log).
fn restart(broker: &mut Broker) {
    broker.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Client::connect(&broker.bootstrap()).is_err() {
        assert!(Instant::now() < deadline, "{}", broker.diagnostics());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produces one batch of `records` to partition 0 (acks=all) and returns the partition's
/// (error code, base offset, error message).
fn produce(broker: &Broker, topic: &str, records: &[Record]) -> (i16, i64, Option<String>) {
    let batch = wire::encode_batch(records).freeze();
    let response: ProduceResponse = wire::call_once(
        &broker.bootstrap(),
        CLIENT_ID,
        &wire::produce_request(topic, 0, batch, -1),
        9,
    );
    let p = &response.responses[0].partition_responses[0];
    (
        p.error_code,
        p.base_offset,
        p.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Every record of partition 0 from offset 0, as (offset, value), reading until `wanted`
/// records arrived or `within` passed.
fn consume(broker: &Broker, topic: &str, wanted: usize, within: Duration) -> Vec<(i64, String)> {
    let client = Client::connect(&broker.bootstrap()).expect("client");
    let mut consumer = Consumer::new(
        client,
        ConsumerConfig {
            max_wait_ms: 100,
            ..ConsumerConfig::default()
        },
    );
    consumer
        .assign(topic, 0, StartOffset::Earliest)
        .expect("assign");
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < wanted && Instant::now() < deadline {
        for r in consumer.poll().expect("poll") {
            let value = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            out.push((r.offset, value.unwrap_or_default()));
        }
    }
    out
}

#[test]
fn a_delayed_record_is_not_fetchable_before_its_time_and_is_after() {
    let broker = Broker::start();
    create_topic(&broker, "later", Vec::new());
    let sent = Instant::now();
    let (code, base, message) = produce(
        &broker,
        "later",
        &[record(0, "in-2s", &[("sluice.delay.ms", "2000")])],
    );
    assert_eq!((code, base), (0, -1), "{message:?}");
    let admin = format!("127.0.0.1:{}", broker.admin_port);
    let (ok, describe, stderr) = support::sluice_cli(
        &broker.bootstrap(),
        &["topic", "describe", "later", "--admin", &admin],
        None,
    );
    assert!(ok, "{stderr}");
    assert!(
        describe.contains("DelayedPending: 1\tByPartition: 0:1"),
        "{describe}"
    );
    // A record without a delay produced afterwards gets offset 0 at once.
    let (code, base, _) = produce(&broker, "later", &[record(0, "now", &[])]);
    assert_eq!((code, base), (0, 0));
    let early = consume(&broker, "later", 2, Duration::from_millis(1000));
    assert!(
        sent.elapsed() < Duration::from_millis(1900),
        "the test itself was too slow"
    );
    assert_eq!(early, vec![(0, "now".to_string())]);
    let all = consume(&broker, "later", 2, Duration::from_secs(10));
    assert!(sent.elapsed() >= Duration::from_millis(2000));
    assert_eq!(all, vec![(0, "now".to_string()), (1, "in-2s".to_string())]);
    let (_, describe, _) = support::sluice_cli(
        &broker.bootstrap(),
        &["topic", "describe", "later", "--admin", &admin],
        None,
    );
    assert!(
        describe.contains("DelayedPending: 0\tByPartition: -"),
        "{describe}"
    );
}

#[test]
fn deliver_at_and_the_topic_config_delay_records() {
    let broker = Broker::start();
    create_topic(
        &broker,
        "slow-topic",
        vec![("sluice.delivery.delay.ms".into(), "1500".into())],
    );
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    let configs = client
        .describe_topic_configs("slow-topic")
        .expect("describe");
    let delay = configs
        .iter()
        .find(|c| c.name == "sluice.delivery.delay.ms")
        .and_then(|c| c.value.clone());
    assert_eq!(delay.as_deref(), Some("1500"));
    let sent = Instant::now();
    let (code, base, _) = produce(
        &broker,
        "slow-topic",
        &[record(0, "a", &[]), record(1, "b", &[])],
    );
    assert_eq!((code, base), (0, -1));
    assert!(consume(&broker, "slow-topic", 1, Duration::from_millis(500)).is_empty());
    let got = consume(&broker, "slow-topic", 2, Duration::from_secs(10));
    assert!(sent.elapsed() >= Duration::from_millis(1500));
    assert_eq!(got, vec![(0, "a".to_string()), (1, "b".to_string())]);

    create_topic(&broker, "at-time", Vec::new());
    let at = (now_ms() + 1200).to_string();
    let (code, base, _) = produce(
        &broker,
        "at-time",
        &[record(0, "x", &[("sluice.deliver.at.ms", at.as_str())])],
    );
    assert_eq!((code, base), (0, -1));
    assert!(consume(&broker, "at-time", 1, Duration::from_millis(400)).is_empty());
    assert_eq!(
        consume(&broker, "at-time", 1, Duration::from_secs(10)),
        vec![(0, "x".to_string())]
    );
}

#[test]
fn bad_delay_headers_and_delays_over_the_maximum_get_invalid_record() {
    let broker = Broker::start_with_config("[log]\ndelivery_delay_max_ms = 60000\n", &[]);
    create_topic(&broker, "bad", Vec::new());
    let invalid = ResponseError::InvalidRecord.code();
    for (key, value, why) in [
        ("sluice.delay.ms", "soon", "not a non-negative decimal"),
        ("sluice.delay.ms", "-1", "not a non-negative decimal"),
        ("sluice.deliver.at.ms", "12.5", "not a non-negative decimal"),
        (
            "sluice.delay.ms",
            "60001",
            "exceeds the broker's delivery_delay_max_ms",
        ),
    ] {
        let (code, _, message) = produce(&broker, "bad", &[record(0, "x", &[(key, value)])]);
        assert_eq!(code, invalid, "{key}={value}");
        let message = message.unwrap_or_default();
        assert!(message.contains(why), "{key}={value}: {message}");
    }
    // Nothing refused reached the topic.
    assert!(consume(&broker, "bad", 1, Duration::from_millis(300)).is_empty());
    // A topic delay above the broker's maximum is refused at creation.
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    let refused = client.create_topic(&NewTopic {
        name: "too-slow".into(),
        partitions: 1,
        replication_factor: 1,
        configs: vec![("sluice.delivery.delay.ms".into(), "60001".into())],
    });
    assert!(refused.is_err());
}

/// Produces `count` records due `delay_ms` from now, each value `v<i>`.
fn produce_delayed(broker: &Broker, topic: &str, count: usize, delay_ms: &str) {
    let records: Vec<Record> = (0..count)
        .map(|i| record(i as i64, &format!("v{i}"), &[("sluice.delay.ms", delay_ms)]))
        .collect();
    let (code, base, message) = produce(broker, topic, &records);
    assert_eq!((code, base), (0, -1), "{message:?}");
}

fn assert_each_once(got: &[(i64, String)], count: usize) {
    let mut values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(
        values.len(),
        got.len(),
        "a record was delivered twice: {got:?}"
    );
    assert_eq!(got.len(), count, "records missing: {got:?}");
    let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..count as i64).collect::<Vec<_>>());
}

#[test]
fn pending_records_survive_a_clean_restart_and_a_sigkill_and_arrive_once() {
    let mut broker = Broker::start();
    create_topic(&broker, "kept", Vec::new());
    produce_delayed(&broker, "kept", 20, "2500");
    assert_eq!(broker.terminate().map(|s| s.success()), Some(true));
    restart(&mut broker);
    assert!(consume(&broker, "kept", 1, Duration::from_millis(300)).is_empty());
    produce_delayed(&broker, "kept", 5, "1000");
    broker.kill();
    restart(&mut broker);
    let got = consume(&broker, "kept", 25, Duration::from_secs(15));
    assert_eq!(got.len(), 25, "{got:?}");
    let mut values: Vec<String> = got.iter().map(|(_, v)| v.clone()).collect();
    values.sort();
    let mut expected: Vec<String> = (0..20).chain(0..5).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
    // Killed again after delivery: nothing is delivered a second time.
    broker.kill();
    restart(&mut broker);
    std::thread::sleep(Duration::from_millis(1500));
    let again = consume(&broker, "kept", 26, Duration::from_secs(2));
    assert_eq!(again.len(), 25, "{again:?}");
}

#[test]
fn sigkills_during_delivery_lose_and_duplicate_nothing() {
    let mut broker = Broker::start();
    create_topic(&broker, "storm", Vec::new());
    // Rounds of records falling due while the broker is killed every 300 ms.
    for round in 0..4 {
        let records: Vec<Record> = (0..50)
            .map(|i| {
                let delay = (i * 10).to_string();
                record(
                    i,
                    &format!("r{round}-{i}"),
                    &[("sluice.delay.ms", delay.as_str())],
                )
            })
            .collect();
        let (code, base, message) = produce(&broker, "storm", &records);
        assert_eq!((code, base), (0, -1), "{message:?}");
        std::thread::sleep(Duration::from_millis(300));
        broker.kill();
        restart(&mut broker);
    }
    let got = consume(&broker, "storm", 200, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    let settled = consume(&broker, "storm", 201, Duration::from_secs(2));
    assert_eq!(got.len(), settled.len());
    assert_each_once(&settled, 200);
}

#[test]
fn sluice_produce_delay_sets_the_header() {
    let broker = Broker::start();
    create_topic(&broker, "cli-delay", Vec::new());
    let sent = Instant::now();
    let (ok, _, stderr) = support::sluice_cli(
        &broker.bootstrap(),
        &["produce", "cli-delay", "--delay", "1500ms"],
        Some("one\ntwo\n"),
    );
    assert!(ok, "{stderr}");
    if sent.elapsed() < Duration::from_millis(1200) {
        assert!(consume(&broker, "cli-delay", 1, Duration::from_millis(200)).is_empty());
    }
    let got = consume(&broker, "cli-delay", 2, Duration::from_secs(10));
    assert!(sent.elapsed() >= Duration::from_millis(1500));
    let values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, vec!["one", "two"]);
    let (ok, _, stderr) = support::sluice_cli(
        &broker.bootstrap(),
        &["produce", "cli-delay", "--delay", "soon"],
        Some("x\n"),
    );
    assert!(!ok && stderr.contains("invalid duration"), "{stderr}");
}

#[test]
fn a_compressed_batch_on_a_delayed_topic_is_delayed_with_its_records_intact() {
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
    let broker = Broker::start();
    create_topic(
        &broker,
        "gz-later",
        vec![("sluice.delivery.delay.ms".into(), "1200".into())],
    );
    let records = [
        record(0, "first", &[("trace", "a")]),
        record(1, "second", &[("sluice.delay.ms", "1500")]),
    ];
    let mut batch = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Gzip,
        },
    )
    .expect("encode a gzip batch");
    let sent = Instant::now();
    let response: ProduceResponse = wire::call_once(
        &broker.bootstrap(),
        CLIENT_ID,
        &wire::produce_request("gz-later", 0, batch.freeze(), -1),
        9,
    );
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, -1),
        "{:?}",
        p.error_message
    );
    if sent.elapsed() < Duration::from_millis(1000) {
        assert!(consume(&broker, "gz-later", 1, Duration::from_millis(200)).is_empty());
    }
    let got = consume(&broker, "gz-later", 2, Duration::from_secs(10));
    assert!(sent.elapsed() >= Duration::from_millis(1200));
    assert_eq!(
        got,
        vec![(0, "first".to_string()), (1, "second".to_string())]
    );
}

/// Cuts every shard's delay log at its first `DONE` frame, as a power cut after the round's
/// intent sync would (the `DONE` frames are written unsynced). Returns how many `DONE`
/// frames were cut; fails if an `INTENT` or `PENDING` follows a `DONE` (then the cut would
/// not be a state a crash can leave).
fn cut_done_frames(data_dir: &std::path::Path) -> usize {
    const KIND_DONE: u8 = 3;
    let mut cut = 0;
    let shards = std::fs::read_dir(data_dir.join("delay")).expect("delay dir");
    for shard in shards {
        let shard = shard.expect("shard dir").path();
        for segment in std::fs::read_dir(&shard).expect("segments") {
            let path = segment.expect("segment").path();
            let bytes = std::fs::read(&path).expect("read segment");
            let (mut at, mut first_done) = (0usize, None);
            while at + 9 <= bytes.len() {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                let kind = bytes[at + 8];
                if kind == KIND_DONE {
                    first_done.get_or_insert(at);
                    cut += 1;
                } else {
                    assert!(first_done.is_none(), "frame kind {kind} after a DONE");
                }
                at += 8 + len as usize;
            }
            if let Some(done) = first_done {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open segment");
                file.set_len(done as u64).expect("truncate segment");
            }
        }
    }
    cut
}

#[test]
fn more_unresolved_deliveries_than_the_producer_state_remembers_settle_once() {
    // Eight records of 300 KiB due at the same moment: one round, one delivery batch each
    // (two exceed DELIVERY_BATCH_BYTES_MAX), so eight intents on one partition, more than the
    // five batches the partition remembers per producer. Pipelined rounds leave two rounds'
    // intents unresolved at a crash; this is the general case of that window.
    const RECORDS: usize = 8;
    let mut broker = Broker::start();
    create_topic(&broker, "lost-done", Vec::new());
    let due = (now_ms() + 1500).to_string();
    let padding = "x".repeat(300 * 1024);
    for i in 0..RECORDS {
        let value = format!("big{i}-{padding}");
        let records = [record(0, &value, &[("sluice.deliver.at.ms", due.as_str())])];
        let (code, base, message) = produce(&broker, "lost-done", &records);
        assert_eq!((code, base), (0, -1), "{message:?}");
    }
    let short = |got: Vec<(i64, String)>| -> Vec<(i64, String)> {
        got.into_iter()
            .map(|(o, v)| (o, v.split('-').next().unwrap_or_default().to_string()))
            .collect()
    };
    let got = short(consume(
        &broker,
        "lost-done",
        RECORDS,
        Duration::from_secs(15),
    ));
    assert_each_once(&got, RECORDS);
    assert_eq!(broker.terminate().map(|s| s.success()), Some(true));
    assert_eq!(cut_done_frames(&broker.data_dir), RECORDS);
    restart(&mut broker);
    // Recovery must settle all eight intents without appending any again (the first three
    // are older than the partition remembers), and the partition must take new deliveries.
    produce_delayed(&broker, "lost-done", 1, "200");
    let got = short(consume(
        &broker,
        "lost-done",
        RECORDS + 1,
        Duration::from_secs(15),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let settled = short(consume(
        &broker,
        "lost-done",
        RECORDS + 2,
        Duration::from_secs(2),
    ));
    assert_eq!(got, settled);
    assert_each_once(&settled, RECORDS + 1);
}
