//! Transactions through the wire (issue 16), with kafka-protocol's structs on a raw socket
//! so every field of the broker's answers is checked: InitProducerId with a transactional
//! id (timeout bound, epoch bumps, fencing), produce-time verification, the LSO in
//! ListOffsets and Fetch, read_committed fetches with their aborted-transactions list, the
//! coordinator's timeout abort, and a restart (SIGKILL) with a transaction open.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, BrokerId, EndTxnRequest, EndTxnResponse,
    FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::Record;
use sluice::client::{Client, NewTopic};
use std::time::{Duration, Instant};
use support::{Broker, wire};

const CLIENT_ID: &str = "transactions-test";
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic");
}

fn init(
    broker: &Broker,
    id: &str,
    timeout_ms: i32,
    current: Option<(i64, i16)>,
) -> (i16, i64, i16) {
    let (pid, epoch) = current.unwrap_or((-1, -1));
    let r: InitProducerIdResponse = call(
        broker,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        4,
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

fn add_partitions(
    broker: &Broker,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    parts: &[i32],
    version: i16,
) -> Vec<i16> {
    let r: AddPartitionsToTxnResponse = call(
        broker,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(parts.to_vec()),
            ]),
        version,
    );
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

fn end_txn(broker: &Broker, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let r: EndTxnResponse = call(
        broker,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        3,
    );
    r.error_code
}

/// Who writes a batch: a transactional id (None: not transactional) and producer id/epoch.
#[derive(Clone, Copy)]
struct Writer<'a> {
    transactional_id: Option<&'a str>,
    producer_id: i64,
    epoch: i16,
}

/// A plain producer (no id, no transaction).
const PLAIN: Writer<'static> = Writer {
    transactional_id: None,
    producer_id: -1,
    epoch: -1,
};

/// Produces `count` records as one batch from `writer` starting at `sequence`; returns
/// (error code, base offset).
fn produce(
    broker: &Broker,
    (topic, partition): (&str, i32),
    writer: Writer<'_>,
    sequence: i32,
    count: usize,
) -> (i16, i64) {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: writer.transactional_id.is_some(),
            producer_id: writer.producer_id,
            producer_epoch: writer.epoch,
            sequence: if writer.producer_id < 0 {
                -1
            } else {
                sequence + i as i32
            },
            ..wire::plain_record(i as i64, 1_700_000_000_000, Bytes::from(format!("v{i}")))
        })
        .collect();
    let batch = wire::encode_batch(&records).freeze();
    let request = wire::produce_request(topic, partition, batch, -1)
        .with_transactional_id(writer.transactional_id.map(|t| TransactionalId(sb(t))));
    let r: ProduceResponse = call(broker, &request, 9);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// ListOffsets latest for one partition in the given isolation level.
fn latest(broker: &Broker, topic: &str, partition: i32, isolation: i8) -> i64 {
    let r: ListOffsetsResponse = call(
        broker,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
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

/// What one fetch from offset 0 answered for the partition.
#[derive(Debug)]
struct Fetched {
    high_watermark: i64,
    last_stable_offset: i64,
    bytes: usize,
    /// (producer id, first offset); None when the answer carried a null list.
    aborted: Option<Vec<(i64, i64)>>,
}

fn fetch(broker: &Broker, topic: &str, partition: i32, isolation: i8) -> Fetched {
    let r: FetchResponse = call(
        broker,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(isolation)
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
    let aborted = p.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect()
    });
    let bytes = p.records.as_ref().map_or(0, |r| r.len());
    Fetched {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        bytes,
        aborted,
    }
}

/// After a restart: until a request is answered (a connection made while the broker binds
/// its listeners may be reset).
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

#[test]
fn find_coordinator_answers_for_transactional_ids() {
    let broker = Broker::start();
    let r: FindCoordinatorResponse = call(
        &broker,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![sb("tx-a")]),
        4,
    );
    assert_eq!(r.coordinators[0].error_code, 0);
    assert_eq!(r.coordinators[0].port, broker.port as i32);
}

#[test]
fn init_bounds_the_timeout_bumps_the_epoch_and_fences_the_old_one() {
    let broker = Broker::start();
    create_topic(&broker, "fence", 1);
    assert_eq!(
        init(&broker, "tx-fence", 900_001, None).0,
        ResponseError::InvalidTransactionTimeout.code()
    );
    let (code, pid, epoch) = init(&broker, "tx-fence", 60_000, None);
    assert_eq!((code, epoch), (0, 0));
    assert!(pid >= 0);
    let (code, pid2, epoch2) = init(&broker, "tx-fence", 60_000, None);
    assert_eq!((code, pid2, epoch2), (0, pid, 1), "same id, bumped epoch");
    // The old epoch is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before.
    let fenced = add_partitions(&broker, "tx-fence", pid, 0, "fence", &[0], 3);
    assert_eq!(fenced, vec![ResponseError::ProducerFenced.code()]);
    let old = add_partitions(&broker, "tx-fence", pid, 0, "fence", &[0], 1);
    assert_eq!(old, vec![ResponseError::InvalidProducerEpoch.code()]);
    // Another producer id for the same transactional id is not a mapping the broker knows.
    let other = add_partitions(&broker, "tx-fence", pid + 1000, 1, "fence", &[0], 3);
    assert_eq!(other, vec![ResponseError::InvalidProducerIdMapping.code()]);
    // KIP-360: the current producer re-initialises with its id and epoch.
    let (code, pid3, epoch3) = init(&broker, "tx-fence", 60_000, Some((pid, 1)));
    assert_eq!((code, pid3, epoch3), (0, pid, 2));
    // Unknown partitions are refused, the others not attempted.
    let codes = add_partitions(&broker, "tx-fence", pid, 2, "fence", &[0, 7], 3);
    assert_eq!(
        codes,
        vec![
            ResponseError::OperationNotAttempted.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
}

#[test]
fn an_aborted_transaction_is_listed_and_the_lso_waits_for_the_marker() {
    let broker = Broker::start();
    create_topic(&broker, "orders", 2);
    let (_, pid, epoch) = init(&broker, "tx-orders", 60_000, None);
    // Not added to the transaction yet: refused (produce-time verification).
    let (code, _) = produce(
        &broker,
        ("orders", 0),
        Writer {
            transactional_id: Some("tx-orders"),
            producer_id: pid,
            epoch,
        },
        0,
        3,
    );
    assert_eq!(code, ResponseError::InvalidTxnState.code());
    assert_eq!(
        add_partitions(&broker, "tx-orders", pid, epoch, "orders", &[0], 3),
        vec![0]
    );
    let (code, _) = produce(&broker, ("orders", 0), PLAIN, -1, 2); // 0..=1 plain
    assert_eq!(code, 0);
    let (code, base) = produce(
        &broker,
        ("orders", 0),
        Writer {
            transactional_id: Some("tx-orders"),
            producer_id: pid,
            epoch,
        },
        0,
        3,
    ); // 2..=4
    assert_eq!((code, base), (0, 2));
    let (code, _) = produce(&broker, ("orders", 0), PLAIN, -1, 1); // 5 plain
    assert_eq!(code, 0);
    assert_eq!(latest(&broker, "orders", 0, READ_UNCOMMITTED), 6);
    assert_eq!(
        latest(&broker, "orders", 0, READ_COMMITTED),
        2,
        "LSO at the open transaction"
    );
    let committed = fetch(&broker, "orders", 0, READ_COMMITTED);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (6, 2)
    );
    assert_eq!(
        committed.aborted,
        Some(Vec::new()),
        "read_committed carries a list"
    );
    let all = fetch(&broker, "orders", 0, READ_UNCOMMITTED);
    assert!(
        committed.bytes > 0 && committed.bytes < all.bytes,
        "{committed:?} {all:?}"
    );
    assert_eq!(all.aborted, None, "read_uncommitted carries none");
    // Metrics: the partition's LSO and the coordinator's open transactions (timer-updated).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = support::scrape_metrics(broker.admin_port);
        let lso = support::metric_sample(
            &text,
            "sluice_partition_last_stable_offset{topic=\"orders\",partition=\"0\"}",
        );
        let open: f64 = (0..2)
            .filter_map(|shard| {
                support::metric_sample(
                    &text,
                    &format!("sluice_shard_open_transactions{{shard=\"{shard}\"}}"),
                )
            })
            .sum();
        if lso == Some(2.0) && open == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics: lso {lso:?}, open {open}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The abort, a retry of it, and a commit that contradicts it.
    assert_eq!(end_txn(&broker, "tx-orders", pid, epoch, false), 0);
    assert_eq!(
        end_txn(&broker, "tx-orders", pid, epoch, false),
        0,
        "a retried abort"
    );
    assert_eq!(
        end_txn(&broker, "tx-orders", pid, epoch, true),
        ResponseError::InvalidTxnState.code()
    );
    let ended = fetch(&broker, "orders", 0, READ_COMMITTED);
    assert_eq!(
        (ended.high_watermark, ended.last_stable_offset),
        (7, 7),
        "the marker moved the LSO to the high watermark"
    );
    assert!(
        ended.bytes > all.bytes,
        "everything up to the marker is readable"
    );
    assert_eq!(ended.aborted, Some(vec![(pid, 2)]));
    // After the transaction ended, transactional produce needs the partition added again.
    let (code, _) = produce(
        &broker,
        ("orders", 0),
        Writer {
            transactional_id: Some("tx-orders"),
            producer_id: pid,
            epoch,
        },
        3,
        1,
    );
    assert_eq!(code, ResponseError::InvalidTxnState.code());
    // A request without a transactional id may not carry transactional batches, and no
    // client may write control batches (markers are the coordinator's).
    let (code, _) = produce(
        &broker,
        ("orders", 1),
        Writer {
            transactional_id: None,
            producer_id: pid,
            epoch,
        },
        0,
        1,
    );
    assert_eq!(code, 0, "an idempotent (non-transactional) batch is fine");
    let sneaky = Record {
        transactional: true,
        producer_id: pid,
        producer_epoch: epoch,
        sequence: 1,
        ..wire::plain_record(0, 1_700_000_000_000, Bytes::from_static(b"x"))
    };
    let request = wire::produce_request(
        "orders",
        1,
        wire::encode_batch(std::slice::from_ref(&sneaky)).freeze(),
        -1,
    );
    let r: ProduceResponse = call(&broker, &request, 9);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRecord.code()
    );
    let control = Record {
        control: true,
        ..sneaky
    };
    let request = wire::produce_request("orders", 1, wire::encode_batch(&[control]).freeze(), -1)
        .with_transactional_id(Some(TransactionalId(sb("tx-orders"))));
    let r: ProduceResponse = call(&broker, &request, 9);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRecord.code()
    );
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let broker = Broker::start();
    create_topic(&broker, "slow", 1);
    let (_, pid, epoch) = init(&broker, "tx-slow", 1_000, None);
    assert_eq!(
        add_partitions(&broker, "tx-slow", pid, epoch, "slow", &[0], 3),
        vec![0]
    );
    let (code, _) = produce(
        &broker,
        ("slow", 0),
        Writer {
            transactional_id: Some("tx-slow"),
            producer_id: pid,
            epoch,
        },
        0,
        2,
    );
    assert_eq!(code, 0);
    assert_eq!(latest(&broker, "slow", 0, READ_COMMITTED), 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while latest(&broker, "slow", 0, READ_COMMITTED) == 0 {
        assert!(
            Instant::now() < deadline,
            "the timed-out transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        latest(&broker, "slow", 0, READ_COMMITTED),
        3,
        "LSO past the abort marker"
    );
    let aborted = fetch(&broker, "slow", 0, READ_COMMITTED).aborted;
    assert_eq!(aborted, Some(vec![(pid, 0)]));
    // The zombie is fenced everywhere.
    assert_eq!(
        end_txn(&broker, "tx-slow", pid, epoch, true),
        ResponseError::ProducerFenced.code()
    );
    let (code, _) = produce(
        &broker,
        ("slow", 0),
        Writer {
            transactional_id: Some("tx-slow"),
            producer_id: pid,
            epoch,
        },
        2,
        1,
    );
    assert_eq!(code, ResponseError::InvalidProducerEpoch.code());
    // KIP-360: the fenced producer may re-initialise with its old epoch and go on.
    let (code, pid2, epoch2) = init(&broker, "tx-slow", 1_000, Some((pid, epoch)));
    assert_eq!((code, pid2), (0, pid));
    assert!(epoch2 > epoch + 1);
}

#[test]
fn an_open_transaction_survives_a_crash_and_the_next_incarnation_aborts_it() {
    let mut broker = Broker::start();
    create_topic(&broker, "crash", 1);
    let (_, pid, epoch) = init(&broker, "tx-crash", 60_000, None);
    assert_eq!(
        add_partitions(&broker, "tx-crash", pid, epoch, "crash", &[0], 3),
        vec![0]
    );
    let (code, _) = produce(
        &broker,
        ("crash", 0),
        Writer {
            transactional_id: Some("tx-crash"),
            producer_id: pid,
            epoch,
        },
        0,
        4,
    ); // 0..=3
    assert_eq!(code, 0);
    let (code, _) = produce(&broker, ("crash", 0), PLAIN, -1, 1); // 4
    assert_eq!(code, 0);
    broker.kill();
    broker.spawn();
    wait_until_serving(&broker);
    assert_eq!(latest(&broker, "crash", 0, READ_UNCOMMITTED), 5);
    assert_eq!(
        latest(&broker, "crash", 0, READ_COMMITTED),
        0,
        "still open after the crash"
    );
    // The coordinator remembered the id: the next incarnation bumps the epoch and aborts.
    let (code, pid2, epoch2) = init(&broker, "tx-crash", 60_000, None);
    assert_eq!((code, pid2), (0, pid));
    assert!(epoch2 > epoch);
    assert_eq!(
        latest(&broker, "crash", 0, READ_COMMITTED),
        6,
        "aborted: LSO at the end"
    );
    let aborted = fetch(&broker, "crash", 0, READ_COMMITTED).aborted;
    assert_eq!(aborted, Some(vec![(pid, 0)]));
}

#[test]
fn describe_and_list_transactions_show_the_coordinators_state() {
    use kafka_protocol::messages::{
        DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
        ListTransactionsResponse,
    };
    let broker = Broker::start();
    create_topic(&broker, "seen", 2);
    let (_, pid, epoch) = init(&broker, "tx-seen", 45_000, None);
    let codes = add_partitions(&broker, "tx-seen", pid, epoch, "seen", &[1, 0], 3);
    assert_eq!(codes, vec![0, 0]);
    let (_, other_pid, _) = init(&broker, "tx-idle", 45_000, None);

    let described: DescribeTransactionsResponse = call(
        &broker,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![
            TransactionalId(sb("tx-seen")),
            TransactionalId(sb("tx-never")),
        ]),
        0,
    );
    let open = &described.transaction_states[0];
    assert_eq!(open.error_code, 0);
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    assert_eq!((open.producer_id.0, open.producer_epoch), (pid, epoch));
    assert_eq!(open.transaction_timeout_ms, 45_000);
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(open.topics.len(), 1);
    assert_eq!(open.topics[0].topic.0.as_str(), "seen");
    assert_eq!(open.topics[0].partitions, vec![0, 1]);
    assert_eq!(
        described.transaction_states[1].error_code,
        ResponseError::TransactionalIdNotFound.code()
    );

    let listed: ListTransactionsResponse = call(
        &broker,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![sb("Ongoing"), sb("Bogus")])
            .with_duration_filter(-1),
        1,
    );
    let ids: Vec<(&str, i64, &str)> = listed
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.as_str(),
                t.producer_id.0,
                t.transaction_state.as_str(),
            )
        })
        .collect();
    assert_eq!(ids, vec![("tx-seen", pid, "Ongoing")]);
    assert_eq!(listed.unknown_state_filters, vec![sb("Bogus")]);
    let all: ListTransactionsResponse = call(&broker, &ListTransactionsRequest::default(), 0);
    let mut ids: Vec<(String, i64)> = all
        .transaction_states
        .iter()
        .map(|t| (t.transactional_id.0.to_string(), t.producer_id.0))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            ("tx-idle".to_string(), other_pid),
            ("tx-seen".to_string(), pid)
        ]
    );

    // The CLI shows the same.
    let (ok, out, err) = support::sluice_cli(&broker.bootstrap(), &["txn", "list"], None);
    assert!(ok, "sluice txn list: {err}");
    let rows: Vec<Vec<String>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let want =
        |id: &str, pid: i64, state: &str| vec![id.to_string(), pid.to_string(), state.to_string()];
    assert_eq!(
        rows,
        vec![
            want("tx-idle", other_pid, "Empty"),
            want("tx-seen", pid, "Ongoing")
        ]
    );
    let (ok, out, err) =
        support::sluice_cli(&broker.bootstrap(), &["txn", "describe", "tx-seen"], None);
    assert!(ok, "sluice txn describe: {err}");
    assert!(out.contains("state:            Ongoing"), "{out}");
    assert!(
        out.contains("partition:        seen-0") && out.contains("seen-1"),
        "{out}"
    );
    let (ok, _, err) =
        support::sluice_cli(&broker.bootstrap(), &["txn", "describe", "tx-never"], None);
    assert!(!ok && err.contains("TRANSACTIONAL_ID_NOT_FOUND"), "{err}");
}

/// Offsets of a group committed in a transaction: pending (UNSTABLE_OFFSET_COMMIT for
/// require_stable, invisible otherwise) until EndTxn(commit), and durable with the
/// transaction across a SIGKILL before the commit.
#[test]
fn transactional_offsets_are_visible_only_at_commit_and_survive_a_crash() {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, GroupId, OffsetFetchRequest,
        OffsetFetchResponse, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    };
    let mut broker = Broker::start();
    create_topic(&broker, "input", 1);
    let (_, pid, epoch) = init(&broker, "tx-offsets", 60_000, None);
    let added: AddOffsetsToTxnResponse = call(
        &broker,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(sb("tx-offsets")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(sb("etl"))),
        3,
    );
    assert_eq!(added.error_code, 0);
    let committed: TxnOffsetCommitResponse = call(
        &broker,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(sb("tx-offsets")))
            .with_group_id(GroupId(sb("etl")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("input")))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(17)
                            .with_committed_leader_epoch(-1),
                    ]),
            ]),
        3,
    );
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let fetch_offset = |broker: &Broker, require_stable: bool| -> (i16, i64) {
        let r: OffsetFetchResponse = call(
            broker,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(sb("etl")))
                .with_require_stable(require_stable)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb("input")))
                        .with_partition_indexes(vec![0]),
                ])),
            7,
        );
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    };
    assert_eq!(
        fetch_offset(&broker, true).0,
        ResponseError::UnstableOffsetCommit.code()
    );
    assert_eq!(
        fetch_offset(&broker, false),
        (0, -1),
        "invisible until the commit"
    );
    broker.kill();
    broker.spawn();
    wait_until_serving(&broker);
    // The pending mark is rebuilt from the durable transaction record at start-up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch_offset(&broker, true).0 != ResponseError::UnstableOffsetCommit.code() {
        assert!(
            Instant::now() < deadline,
            "require_stable after the restart: {:?}",
            fetch_offset(&broker, true)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetch_offset(&broker, false), (0, -1), "still invisible");
    assert_eq!(end_txn(&broker, "tx-offsets", pid, epoch, true), 0);
    assert_eq!(
        fetch_offset(&broker, true),
        (0, 17),
        "committed with the transaction"
    );
}

/// WriteTxnMarkers `markers` for one producer on `topic`'s `partitions`; per partition its
/// error code.
fn write_markers(
    broker: &Broker,
    (pid, epoch): (i64, i16),
    commit: bool,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    use kafka_protocol::messages::WriteTxnMarkersRequest;
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(0)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_indexes(partitions.to_vec()),
            ]),
    ]);
    let r: kafka_protocol::messages::WriteTxnMarkersResponse = call(broker, &request, 1);
    assert_eq!(r.markers.len(), 1);
    assert_eq!(r.markers[0].producer_id.0, pid);
    r.markers[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// KIP-664's way out of a hanging transaction (`kafka-transactions.sh abort`, and what a
/// coordinator on another broker sends a partition leader): WriteTxnMarkers writes the
/// ABORT marker, and the last stable offset moves past the transaction at once.
#[test]
fn write_txn_markers_ends_an_open_transaction_on_the_partition() {
    let broker = Broker::start();
    create_topic(&broker, "hung", 1);
    let (_, pid, epoch) = init(&broker, "tx-hung", 600_000, None);
    assert_eq!(
        add_partitions(&broker, "tx-hung", pid, epoch, "hung", &[0], 3),
        vec![0]
    );
    let writer = Writer {
        transactional_id: Some("tx-hung"),
        producer_id: pid,
        epoch,
    };
    assert_eq!(produce(&broker, ("hung", 0), writer, 0, 3), (0, 0));
    assert_eq!(
        latest(&broker, "hung", 0, READ_COMMITTED),
        0,
        "open: LSO held"
    );
    assert_eq!(latest(&broker, "hung", 0, READ_UNCOMMITTED), 3);

    // Partition 7 does not exist: that partition alone fails.
    let codes = write_markers(&broker, (pid, epoch), false, "hung", &[0, 7]);
    assert_eq!(
        codes,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );
    // Three records and the marker; nothing is open any more.
    assert_eq!(latest(&broker, "hung", 0, READ_UNCOMMITTED), 4);
    assert_eq!(latest(&broker, "hung", 0, READ_COMMITTED), 4);
    let fetched = fetch(&broker, "hung", 0, READ_COMMITTED);
    assert_eq!(fetched.aborted, Some(vec![(pid, 0)]), "listed as aborted");
    assert_eq!(fetched.last_stable_offset, 4);

    // Without CLUSTER_ACTION the request is refused before it touches a partition.
    let locked = Broker::start_with_config("authorizer = \"standard\"\n", &[]);
    let codes = write_markers(&locked, (pid, epoch), false, "hung", &[0]);
    assert_eq!(
        codes,
        vec![ResponseError::ClusterAuthorizationFailed.code()]
    );
}
