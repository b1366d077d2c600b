//! The everyday CLI tools (`sluice topic|produce|consume`) end to end against a real broker:
//! the `sluice` broker started by `support::Broker`, or any Kafka-compatible broker named by
//! `SLUICE_TEST_BOOTSTRAP=host:port` (topics get unique names so runs do not collide).

mod support;

use sluice::client::partition_for_key;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::Target;

/// Longest a consume in these tests waits for a record before giving up.
const CONSUME_TIMEOUT_MS: &str = "10000";

fn target() -> Target {
    Target::from_env_or_start()
}

/// A topic name no earlier run used (external brokers keep state between runs).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn create_topic(t: &Target, name: &str, partitions: u32) {
    let partitions = partitions.to_string();
    t.ok(
        &[
            "topic",
            "create",
            name,
            "--partitions",
            &partitions,
            "--replication-factor",
            "1",
        ],
        None,
    );
}

/// A failing command printed exactly one `sluice: ...` line and no panic or backtrace.
fn assert_one_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr:?}");
    assert!(
        lines[0].starts_with("sluice: "),
        "error line: {:?}",
        lines[0]
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    lines[0]
}

#[test]
fn topic_create_list_describe_delete_round_trip() {
    let t = target();
    let name = unique("roundtrip");
    t.ok(
        &[
            "topic",
            "create",
            &name,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    let list = t.ok(&["topic", "list"], None);
    assert!(list.lines().any(|l| l == name), "list: {list}");

    let describe = t.ok(&["topic", "describe", &name], None);
    assert!(
        describe.contains(&format!("Topic: {name}\tPartitionCount: 3")),
        "{describe}"
    );
    for p in 0..3 {
        let line = describe
            .lines()
            .find(|l| l.contains(&format!("Partition: {p}\t")))
            .unwrap_or_else(|| panic!("no line for partition {p}: {describe}"));
        assert!(
            line.contains("Earliest: 0\tLatest: 0"),
            "fresh partition: {line}"
        );
        assert!(
            !line.contains("Leader: -1"),
            "partition without leader: {line}"
        );
    }
    if !t.external {
        // Our broker reports topic configs; external brokers vary.
        assert!(describe.contains("retention.ms=3600000"), "{describe}");
    }

    let (ok, _, err) = t.run(&["topic", "create", &name, "--partitions", "1"], None);
    assert!(!ok, "creating an existing topic must fail");
    assert!(
        assert_one_error_line(&err).contains("TOPIC_ALREADY_EXISTS"),
        "{err}"
    );

    t.ok(&["topic", "delete", &name], None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = t.ok(&["topic", "list"], None);
        if !list.lines().any(|l| l == name) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "topic still listed after delete: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn keyed_lines_with_headers_come_back_in_order_from_the_beginning() {
    let t = target();
    let name = unique("keyed");
    create_topic(&t, &name, 1);
    let input: String = (0..200)
        .map(|i| format!("key{}:value-{i}\n", i % 7))
        .collect();
    t.ok(
        &[
            "produce",
            &name,
            "--key-separator",
            ":",
            "--header",
            "source=cli",
            "--header",
            "n=1",
            "--acks",
            "all",
        ],
        Some(&input),
    );
    let out = t.ok(
        &[
            "consume",
            &name,
            "--from-beginning",
            "--max-messages",
            "200",
            "--timeout-ms",
            CONSUME_TIMEOUT_MS,
            "--format",
            "%o|%k|%v|%h\\n",
        ],
        None,
    );
    let expected: Vec<String> = (0..200)
        .map(|i| format!("{i}|key{}|value-{i}|source=cli,n=1", i % 7))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn keyed_records_land_on_the_java_partition_and_keep_per_partition_order() {
    let t = target();
    let name = unique("partitioned");
    create_topic(&t, &name, 4);
    let input: String = (0..120).map(|i| format!("k{}\t{i}\n", i % 10)).collect();
    t.ok(&["produce", &name, "--key-separator", "\t"], Some(&input));
    let out = t.ok(
        &[
            "consume",
            &name,
            "--from-beginning",
            "--max-messages",
            "120",
            "--timeout-ms",
            CONSUME_TIMEOUT_MS,
            "--format",
            "%p %k %v\\n",
        ],
        None,
    );
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "line {line:?}");
        let partition: i32 = fields[0].parse().expect("partition number");
        assert_eq!(
            partition,
            partition_for_key(fields[1].as_bytes(), 4),
            "key {} on the wrong partition",
            fields[1]
        );
        per_key
            .entry(fields[1].to_string())
            .or_default()
            .push(fields[2].parse().expect("value number"));
    }
    assert_eq!(per_key.len(), 10);
    for (key, values) in per_key {
        let k: u32 = key[1..].parse().expect("key number");
        let expected: Vec<u32> = (0..12).map(|j| k + 10 * j).collect();
        assert_eq!(values, expected, "order of key {key}");
    }
}

#[test]
fn every_compression_codec_round_trips() {
    let t = target();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let name = unique(&format!("codec-{codec}"));
        create_topic(&t, &name, 1);
        // Repetitive text so every codec actually compresses.
        let input: String = (0..500)
            .map(|i| format!("{codec} record number {i} {}\n", "abc".repeat(i % 20)))
            .collect();
        t.ok(&["produce", &name, "--compression", codec], Some(&input));
        let out = t.ok(
            &[
                "consume",
                &name,
                "--from-beginning",
                "--max-messages",
                "500",
                "--timeout-ms",
                CONSUME_TIMEOUT_MS,
            ],
            None,
        );
        assert_eq!(out, input, "codec {codec}");
    }
}

#[test]
fn consume_defaults_to_the_end_of_the_log() {
    let t = target();
    let name = unique("latest");
    create_topic(&t, &name, 1);
    // Two runs, one record each: some brokers (tansu 0.6) report the high watermark as the
    // last batch's base offset + 1, which would hide the second record of one batch.
    t.ok(&["produce", &name], Some("old-1\n"));
    t.ok(&["produce", &name], Some("old-2\n"));
    let out = t.ok(&["consume", &name, "--timeout-ms", "1500"], None);
    assert_eq!(
        out, "",
        "records written before the consumer started must not show"
    );
    let out = t.ok(
        &[
            "consume",
            &name,
            "--offset",
            "1",
            "--partition",
            "0",
            "--timeout-ms",
            CONSUME_TIMEOUT_MS,
            "--max-messages",
            "1",
        ],
        None,
    );
    assert_eq!(out, "old-2\n");
}

#[test]
fn group_consumer_commits_and_the_next_run_resumes_after_the_commit() {
    let t = target();
    let name = unique("grouped");
    let group = unique("group");
    create_topic(&t, &name, 2);
    let input: String = (0..30).map(|i| format!("k{i}:v{i}\n")).collect();
    t.ok(&["produce", &name, "--key-separator", ":"], Some(&input));

    let consume = |max: Option<&str>| {
        let mut args = vec![
            "consume",
            &name,
            "--group",
            &group,
            "--from-beginning",
            "--timeout-ms",
            "3000",
        ];
        if let Some(max) = max {
            args.extend(["--max-messages", max]);
        }
        t.ok(&args, None)
    };
    let first = consume(Some("10"));
    let second = consume(None);
    let first: Vec<&str> = first.lines().collect();
    let second: Vec<&str> = second.lines().collect();
    assert_eq!(first.len(), 10, "first run: {first:?}");
    assert_eq!(
        second.len(),
        20,
        "second run must resume after the commit: {second:?}"
    );
    let mut all: Vec<&str> = first.iter().chain(second.iter()).copied().collect();
    all.sort_unstable();
    let mut expected: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    expected.sort_unstable();
    assert_eq!(
        all, expected,
        "every record exactly once across the two runs"
    );

    let third = consume(None);
    assert_eq!(third, "", "nothing left after everything was committed");
}

#[test]
fn describing_an_unknown_topic_fails_with_one_line() {
    let t = target();
    let (ok, out, err) = t.run(&["topic", "describe", &unique("missing")], None);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(
        assert_one_error_line(&err).contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );
}

#[test]
fn bad_acks_value_fails_with_one_line_before_connecting() {
    // No broker needed: argument validation comes first. (No stdin either: the process
    // exits before reading it, and writing to its closed pipe would fail the helper.)
    let unused = format!("127.0.0.1:{}", support::free_port());
    let (ok, _, err) = support::sluice_cli(&unused, &["produce", "t", "--acks", "2"], None);
    assert!(!ok);
    let line = assert_one_error_line(&err);
    assert!(
        line.contains("--acks") && line.contains("0, 1 or all"),
        "{line}"
    );
}

#[test]
fn unreachable_bootstrap_fails_fast_with_one_line() {
    let unused = format!("127.0.0.1:{}", support::free_port());
    let started = Instant::now();
    let (ok, _, err) = support::sluice_cli(&unused, &["topic", "list"], None);
    assert!(!ok);
    let line = assert_one_error_line(&err);
    assert!(
        line.contains(&unused) && line.contains("cannot connect"),
        "{line}"
    );
    // Connection refused is immediate; only a hang would take this long.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn producing_to_a_missing_partition_fails_and_says_why() {
    let t = target();
    let name = unique("narrow");
    create_topic(&t, &name, 1);
    let (ok, _, err) = t.run(&["produce", &name, "--partition", "5"], None);
    assert!(!ok);
    assert!(
        assert_one_error_line(&err).contains("no partition 5"),
        "{err}"
    );
}

#[test]
fn lines_without_the_key_separator_are_reported_and_fail_the_run() {
    let t = target();
    let name = unique("nosep");
    create_topic(&t, &name, 1);
    let (ok, _, err) = t.run(
        &["produce", &name, "--key-separator", "="],
        Some("a=1\nbroken\nb=2\n"),
    );
    assert!(!ok, "a record that could not be sent must fail the run");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("1 of 3 record(s) failed"), "{err}");
    let out = t.ok(
        &[
            "consume",
            &name,
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            CONSUME_TIMEOUT_MS,
            "--print-key",
        ],
        None,
    );
    assert_eq!(out, "a\t1\nb\t2\n");
}

/// The library surface the benchmark harness uses: many Produce requests in flight on one
/// connection, answered in order, then the records read back with a raw Fetch.
#[test]
fn client_pipelines_produce_requests_on_one_connection() {
    use bytes::Bytes;
    use kafka_protocol::messages::ProduceRequest;
    use sluice::client::{
        Acks, Client, Compression, ConsumerConfig, decode_batches, encode_batch, fetch_request,
        produce_request,
    };

    const REQUESTS: usize = 64;
    const RECORDS_PER_BATCH: usize = 10;
    let t = target();
    let name = unique("pipelined");
    create_topic(&t, &name, 1);
    let mut client = Client::connect(&t.bootstrap).expect("connect");
    let leader = client.leader_for(&name, 0).expect("leader");
    let conn = client.broker_connection(leader).expect("leader connection");
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = (0..RECORDS_PER_BATCH)
        .map(|i| (None, Some(Bytes::from(format!("r{i}")))))
        .collect();
    let batch = encode_batch(&records, Compression::Lz4, 1_700_000_000_000).expect("encode");
    let request = produce_request(&name, 0, batch, Acks::All, 30_000);

    let ids: Vec<i32> = (0..REQUESTS)
        .map(|_| conn.send(&request).expect("send"))
        .collect();
    assert_eq!(conn.in_flight(), REQUESTS);
    let mut base_offsets = Vec::new();
    for id in ids {
        let (correlation_id, response) = conn.receive::<ProduceRequest>().expect("receive");
        assert_eq!(correlation_id, id, "responses arrive in send order");
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        base_offsets.push(p.base_offset);
    }
    assert_eq!(conn.in_flight(), 0);
    let expected: Vec<i64> = (0..REQUESTS as i64)
        .map(|i| i * RECORDS_PER_BATCH as i64)
        .collect();
    assert_eq!(base_offsets, expected);

    let mut out = Vec::new();
    let mut position = 0;
    let key = (name.clone(), 0);
    while out.len() < REQUESTS * RECORDS_PER_BATCH {
        let response = conn
            .call(&fetch_request(
                &name,
                0,
                position,
                &ConsumerConfig::default(),
            ))
            .expect("fetch");
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let Some(bytes) = partition.records.clone() else {
            panic!("no records at offset {position}");
        };
        position = decode_batches(&key, bytes, position, &mut out).expect("decode");
    }
    assert_eq!(out.len(), REQUESTS * RECORDS_PER_BATCH);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(
            r.value.as_deref(),
            Some(format!("r{}", i % RECORDS_PER_BATCH).as_bytes())
        );
    }
}
