//! The broker killed while ending a transaction (issue 16, crash acceptance): with
//! `SLUICE_FAULT_TXN_CRASH` the broker SIGKILLs itself right after the PrepareCommit /
//! PrepareAbort record is durable (no marker written yet), or right after the first of the
//! transaction's markers (some partitions marked, others not). After a restart without the
//! fault, on every partition of the transaction: it ended committed (resp. aborted) as a
//! whole, a read_committed reader sees exactly the committed records and none of an aborted
//! transaction, the LSO is not behind what it was before the crash and reaches the high
//! watermark, and every acknowledged record is still there.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, BrokerId, EndTxnRequest, EndTxnResponse,
    FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use sluice::client::{Client, NewTopic};
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use support::{Broker, wire};

const CLIENT_ID: &str = "transactions-crash-test";
const READ_COMMITTED: i8 = 1;
const PARTITIONS: i32 = 3;
/// Records the transaction writes to each partition.
const TXN_RECORDS_PER_PARTITION: usize = 3;
/// Kafka's error codes the test expects.
const CONCURRENT_TRANSACTIONS: i16 = 51;
const INVALID_TXN_STATE: i16 = 48;
/// Control record key type (Kafka's `ControlRecordType`): 0 ABORT, 1 COMMIT.
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;
/// How long the restarted broker may take to finish the decided transaction.
const COMPLETION_DEADLINE: Duration = Duration::from_secs(30);

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

fn init(broker: &Broker, id: &str) -> (i64, i16) {
    let r: InitProducerIdResponse = call(
        broker,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(id))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    assert_eq!(r.error_code, 0, "InitProducerId");
    (r.producer_id.0, r.producer_epoch)
}

fn add_partitions(broker: &Broker, id: &str, (pid, epoch): (i64, i16), topic: &str) {
    let r: AddPartitionsToTxnResponse = call(
        broker,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions((0..PARTITIONS).collect()),
            ]),
        3,
    );
    let codes: Vec<i16> = r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(codes, vec![0; PARTITIONS as usize], "AddPartitionsToTxn");
}

fn end_txn_request(id: &str, (pid, epoch): (i64, i16), commit: bool) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

/// Produces `values` as one batch, transactional when `txn` is (id, pid, epoch, first
/// sequence); asserts it is acknowledged and returns its base offset.
fn produce(
    broker: &Broker,
    topic: &str,
    partition: i32,
    txn: Option<(&str, i64, i16, i32)>,
    values: &[String],
) -> i64 {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: txn.is_some(),
            producer_id: txn.map_or(-1, |t| t.1),
            producer_epoch: txn.map_or(-1, |t| t.2),
            sequence: txn.map_or(-1, |t| t.3 + i as i32),
            ..wire::plain_record(i as i64, 1_700_000_000_000, Bytes::from(v.clone()))
        })
        .collect();
    let batch = wire::encode_batch(&records).freeze();
    let request = wire::produce_request(topic, partition, batch, -1)
        .with_transactional_id(txn.map(|t| TransactionalId(sb(t.0))));
    let r: ProduceResponse = call(broker, &request, 9);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to {topic}-{partition}");
    p.base_offset
}

/// The read_committed end (the LSO) of one partition, from ListOffsets.
fn last_stable_offset(broker: &Broker, topic: &str, partition: i32) -> i64 {
    let r: ListOffsetsResponse = call(
        broker,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(READ_COMMITTED)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-1),
                    ]),
            ]),
        5,
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets");
    p.offset
}

/// One read_committed fetch of a whole partition, decoded.
struct Committed {
    high_watermark: i64,
    last_stable_offset: i64,
    /// Values a read_committed consumer delivers (aborted transactions filtered out with
    /// the answer's aborted-transactions list, as Kafka's clients do).
    values: Vec<String>,
    /// Control record types of `producer_id`'s markers, in offset order.
    markers: Vec<i16>,
}

fn fetch_committed(broker: &Broker, topic: &str, partition: i32, producer_id: i64) -> Committed {
    let r: FetchResponse = call(
        broker,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(READ_COMMITTED)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
        11,
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "Fetch");
    let mut aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect()
        })
        .unwrap_or_default();
    aborted.sort_by_key(|a| a.1);
    let mut bytes = p.records.clone().unwrap_or_default();
    let records: Vec<Record> = if bytes.is_empty() {
        Vec::new()
    } else {
        RecordBatchDecoder::decode_all(&mut bytes)
            .expect("fetched batches decode")
            .into_iter()
            .flat_map(|s| s.records)
            .collect()
    };
    let (values, markers) = committed_view(&records, &aborted, producer_id);
    Committed {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        values,
        markers,
    }
}

/// What a read_committed consumer delivers from `records` given the aborted transactions,
/// and the marker types written for `producer_id`.
fn committed_view(
    records: &[Record],
    aborted: &[(i64, i64)],
    producer_id: i64,
) -> (Vec<String>, Vec<i16>) {
    let mut next_aborted = aborted.iter().peekable();
    let mut aborting: HashSet<i64> = HashSet::new();
    let (mut values, mut markers) = (Vec::new(), Vec::new());
    for r in records {
        while let Some((pid, _)) = next_aborted.next_if(|a| a.1 <= r.offset) {
            aborting.insert(*pid);
        }
        if r.control {
            let key = r.key.as_ref().expect("a control record has a key");
            assert!(key.len() >= 4, "control record key too short: {key:?}");
            let kind = i16::from_be_bytes([key[2], key[3]]);
            if kind == CONTROL_ABORT {
                aborting.remove(&r.producer_id);
            }
            if r.producer_id == producer_id {
                markers.push(kind);
            }
            continue;
        }
        if r.transactional && aborting.contains(&r.producer_id) {
            continue;
        }
        let value = r.value.as_ref().expect("a record value");
        values.push(String::from_utf8_lossy(value).into_owned());
    }
    (values, markers)
}

/// Until a request is answered after a restart.
fn wait_until_serving(broker: &Broker) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = wire::RawConn::connect(&broker.bootstrap()).and_then(|mut conn| {
            conn.try_call(&kafka_protocol::messages::ApiVersionsRequest::default(), 0)
        });
        if answered.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker not serving after restart: {answered:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One crash: a transaction over every partition of a fresh topic, plain records acked
/// around it, the broker armed to die at `crash_point` during EndTxn(`commit`).
fn crash_while_ending(crash_point: &str, commit: bool) {
    let topic = format!(
        "crash-{crash_point}-{}",
        if commit { "commit" } else { "abort" }
    );
    let id = format!("tx-{topic}");
    // Two shards so the partitions' markers are written by different shards.
    let mut broker = Broker::start_with_env(
        &["--cores", "2"],
        &[("SLUICE_FAULT_TXN_CRASH", crash_point)],
    );
    Client::connect(&broker.bootstrap())
        .expect("client")
        .create_topic(&NewTopic {
            name: topic.clone(),
            partitions: PARTITIONS,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic");
    let producer = init(&broker, &id);
    add_partitions(&broker, &id, producer, &topic);

    // Per partition: a plain record, the transaction's records, another plain record.
    let mut acked_plain: Vec<Vec<String>> = Vec::new();
    let mut txn_values: Vec<Vec<String>> = Vec::new();
    let mut lso_before = Vec::new();
    for p in 0..PARTITIONS {
        let before = format!("plain-{p}-before");
        produce(&broker, &topic, p, None, std::slice::from_ref(&before));
        let values: Vec<String> = (0..TXN_RECORDS_PER_PARTITION)
            .map(|i| format!("txn-{p}-{i}"))
            .collect();
        let first = produce(
            &broker,
            &topic,
            p,
            Some((&id, producer.0, producer.1, 0)),
            &values,
        );
        assert_eq!(
            first, 1,
            "the transaction starts after the first plain record"
        );
        let after = format!("plain-{p}-after");
        produce(&broker, &topic, p, None, std::slice::from_ref(&after));
        let lso = last_stable_offset(&broker, &topic, p);
        assert_eq!(
            lso, first,
            "partition {p}: the open transaction holds the LSO"
        );
        lso_before.push(lso);
        acked_plain.push(vec![before, after]);
        txn_values.push(values);
    }

    // EndTxn: the broker dies before it can answer.
    let answer = wire::RawConn::connect(&broker.bootstrap())
        .and_then(|mut conn| conn.try_call(&end_txn_request(&id, producer, commit), 3));
    assert!(
        answer.is_err(),
        "EndTxn was answered although the broker was armed to crash: {answer:?}"
    );
    let mut dead = broker.child.take().expect("the broker process");
    let status = dead.wait().expect("wait for the broker");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the broker killed itself at {crash_point}: {status:?}\n{}",
        broker.diagnostics()
    );

    broker.extra_env.clear();
    broker.spawn();
    wait_until_serving(&broker);

    // The client's retry of EndTxn: CONCURRENT_TRANSACTIONS while the restarted
    // coordinator is still completing, then success — the outcome decided before the crash.
    let deadline = Instant::now() + COMPLETION_DEADLINE;
    loop {
        let r: EndTxnResponse = call(&broker, &end_txn_request(&id, producer, commit), 3);
        if r.error_code == 0 {
            break;
        }
        assert_eq!(
            r.error_code, CONCURRENT_TRANSACTIONS,
            "EndTxn retry after the restart"
        );
        assert!(
            Instant::now() < deadline,
            "the decided transaction was not completed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r: EndTxnResponse = call(&broker, &end_txn_request(&id, producer, !commit), 3);
    assert_eq!(
        r.error_code, INVALID_TXN_STATE,
        "the other outcome is refused"
    );

    let expected_marker = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    for p in 0..PARTITIONS {
        let i = p as usize;
        let seen = fetch_committed(&broker, &topic, p, producer.0);
        let lso = last_stable_offset(&broker, &topic, p);
        assert!(
            lso >= lso_before[i],
            "partition {p}: LSO went back from {} to {lso}",
            lso_before[i]
        );
        assert_eq!(
            lso, seen.high_watermark,
            "partition {p}: the transaction is over"
        );
        assert_eq!(
            seen.last_stable_offset, seen.high_watermark,
            "partition {p}: Fetch's LSO"
        );
        assert!(
            !seen.markers.is_empty() && seen.markers.iter().all(|m| *m == expected_marker),
            "partition {p}: markers {:?}, every one should be {expected_marker}",
            seen.markers
        );
        let mut expected = vec![acked_plain[i][0].clone()];
        if commit {
            expected.extend(txn_values[i].iter().cloned());
        }
        expected.push(acked_plain[i][1].clone());
        assert_eq!(
            seen.values, expected,
            "partition {p}: what read_committed delivers"
        );
    }
}

#[test]
fn a_crash_after_prepare_commit_ends_committed_on_every_partition() {
    crash_while_ending("after_prepare", true);
}

#[test]
fn a_crash_after_prepare_abort_ends_aborted_on_every_partition() {
    crash_while_ending("after_prepare", false);
}

#[test]
fn a_crash_between_commit_markers_ends_committed_on_every_partition() {
    crash_while_ending("after_first_marker", true);
}

#[test]
fn a_crash_between_abort_markers_ends_aborted_on_every_partition() {
    crash_while_ending("after_first_marker", false);
}
