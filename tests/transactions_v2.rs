//! Transactions v2 (KIP-890 part 2) through the wire: the broker finalizes
//! `transaction.version` 2; a producer speaking it sends Produce v12 without
//! AddPartitionsToTxn, commits with EndTxn v5 and gets the bumped epoch back; a lost
//! answer's retry is answered the same; batches of the finished epoch are fenced; an abort
//! with nothing sent bumps the epoch; TxnOffsetCommit v5 adds its group implicitly.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, EndTxnRequest, EndTxnResponse, FetchRequest,
    FetchResponse, GroupId, InitProducerIdRequest, InitProducerIdResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProduceResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use sluice::client::{Client, NewTopic};
use support::{Broker, wire};

const CLIENT_ID: &str = "transactions-v2-test";
const PRODUCE_V2: i16 = 12;
const END_TXN_V2: i16 = 5;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

fn create_topic(broker: &Broker, name: &str) {
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: name.to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic");
}

fn init(broker: &Broker, id: &str) -> (i64, i16) {
    let r: InitProducerIdResponse = call(
        broker,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(id))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        5,
    );
    assert_eq!(r.error_code, 0, "InitProducerId");
    (r.producer_id.0, r.producer_epoch)
}

/// One transactional batch of `count` records from `sequence`; the partition's error code.
fn produce(
    broker: &Broker,
    id: &str,
    (pid, epoch): (i64, i16),
    sequence: i32,
    count: usize,
) -> i16 {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: true,
            producer_id: pid,
            producer_epoch: epoch,
            sequence: sequence + i as i32,
            ..wire::plain_record(
                i as i64,
                1_700_000_000_000,
                Bytes::from(format!("e{epoch}-{i}")),
            )
        })
        .collect();
    let batch = wire::encode_batch(&records).freeze();
    let request = wire::produce_request("v2", 0, batch, -1)
        .with_transactional_id(Some(TransactionalId(sb(id))));
    let r: ProduceResponse = call(broker, &request, PRODUCE_V2);
    r.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: (error code, producer id, epoch) answered.
fn end_txn(broker: &Broker, id: &str, (pid, epoch): (i64, i16), commit: bool) -> (i16, i64, i16) {
    let r: EndTxnResponse = call(
        broker,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        END_TXN_V2,
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// Values of the records a read_committed fetch of `v2`-0 returns, control batches skipped.
fn committed_values(broker: &Broker) -> Vec<String> {
    let r: FetchResponse = call(
        broker,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(sb("v2")))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
        11,
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "Fetch");
    let aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    let mut bytes = p.records.clone().unwrap_or_default();
    let mut values = Vec::new();
    while !bytes.is_empty() {
        let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
            break;
        };
        for record in set.records {
            let aborted_here = aborted
                .iter()
                .any(|(pid, first)| *pid == record.producer_id && record.offset >= *first);
            if record.control || aborted_here {
                continue;
            }
            values.push(String::from_utf8_lossy(&record.value.unwrap_or_default()).into_owned());
        }
    }
    values
}

#[test]
fn the_broker_finalizes_transaction_version_2() {
    let broker = Broker::start();
    let r: ApiVersionsResponse = call(&broker, &ApiVersionsRequest::default(), 3);
    let finalized = r
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| f.max_version_level);
    assert_eq!(finalized, Some(2));
    let end_txn = r
        .api_keys
        .iter()
        .find(|k| k.api_key == 26)
        .map(|k| k.max_version);
    assert_eq!(end_txn, Some(5));
}

#[test]
fn v2_producers_add_partitions_by_producing_and_every_end_bumps_the_epoch() {
    let broker = Broker::start();
    create_topic(&broker, "v2");
    let id = "tv2";
    let (pid, e0) = init(&broker, id);

    // No AddPartitionsToTxn: the produce itself opens the transaction.
    assert_eq!(produce(&broker, id, (pid, e0), 0, 3), 0);
    let (code, pid1, e1) = end_txn(&broker, id, (pid, e0), true);
    assert_eq!(
        (code, pid1, e1),
        (0, pid, e0 + 1),
        "commit answers the bumped epoch"
    );
    // The answer was lost: the retry (old epoch) is answered the same, nothing re-decided.
    assert_eq!(end_txn(&broker, id, (pid, e0), true), (0, pid, e1));
    // A retry asking the other outcome is refused.
    assert_eq!(
        end_txn(&broker, id, (pid, e0), false).0,
        ResponseError::InvalidTxnState.code()
    );

    // A late batch of the finished epoch is fenced by the markers' bumped epoch.
    assert_eq!(
        produce(&broker, id, (pid, e0), 3, 1),
        ResponseError::InvalidProducerEpoch.code()
    );

    // The next transaction uses the new epoch (sequences restart) and is aborted.
    assert_eq!(produce(&broker, id, (pid, e1), 0, 2), 0);
    let (code, _, e2) = end_txn(&broker, id, (pid, e1), false);
    assert_eq!((code, e2), (0, e1 + 1));
    assert_eq!(
        committed_values(&broker),
        vec![format!("e{e0}-0"), format!("e{e0}-1"), format!("e{e0}-2")],
        "read_committed sees the committed transaction only"
    );

    // Commit with nothing open is refused; an abort with nothing open bumps the epoch.
    assert_eq!(
        end_txn(&broker, id, (pid, e2), true).0,
        ResponseError::InvalidTxnState.code()
    );
    assert_eq!(end_txn(&broker, id, (pid, e2), false), (0, pid, e2 + 1));
    // An epoch that is neither current nor the one before is fenced.
    assert_eq!(
        end_txn(&broker, id, (pid, e0), false).0,
        ResponseError::ProducerFenced.code()
    );
}

#[test]
fn txn_offset_commit_v5_adds_its_group_without_add_offsets_to_txn() {
    let broker = Broker::start();
    create_topic(&broker, "in");
    let id = "tv2-offsets";
    let (pid, epoch) = init(&broker, id);
    let r: TxnOffsetCommitResponse = call(
        &broker,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_group_id(GroupId(sb("g-v2")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_member_id(sb(""))
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("in")))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(42),
                    ]),
            ]),
        5,
    );
    let code = r.topics[0].partitions[0].error_code;
    assert_eq!(
        code, 0,
        "the group joined the transaction by the commit itself"
    );
    let (code, _, bumped) = end_txn(&broker, id, (pid, epoch), true);
    assert_eq!((code, bumped), (0, epoch + 1));
    let r: OffsetFetchResponse = call(
        &broker,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(sb("g-v2")))
            .with_require_stable(true)
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(sb("in")))
                    .with_partition_indexes(vec![0]),
            ])),
        7,
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.committed_offset), (0, 42));
}

/// AddPartitionsToTxn v4+, the batched form: several transactions in one request, each
/// added or (verify_only) checked on its own.
#[test]
fn batched_add_partitions_adds_or_verifies_each_transaction() {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
    let broker = Broker::start();
    create_topic(&broker, "v2");
    let a = init(&broker, "batch-a");
    let b = init(&broker, "batch-b");
    let txn = |id: &str, (pid, epoch): (i64, i16), verify_only: bool, partitions: Vec<i32>| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb("v2")))
                    .with_partitions(partitions),
            ])
    };
    let codes = |r: &AddPartitionsToTxnResponse| -> Vec<(String, Vec<i16>)> {
        r.results_by_transaction
            .iter()
            .map(|t| {
                let codes = t.topic_results[0]
                    .results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
                    .collect();
                (t.transactional_id.to_string(), codes)
            })
            .collect()
    };
    // a: added; b: only verified, and it has no open transaction.
    let first: AddPartitionsToTxnResponse = call(
        &broker,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![
            txn("batch-a", a, false, vec![0]),
            txn("batch-b", b, true, vec![0]),
        ]),
        5,
    );
    assert_eq!(first.error_code, 0);
    assert_eq!(
        codes(&first),
        vec![
            ("batch-a".to_string(), vec![0]),
            (
                "batch-b".to_string(),
                vec![ResponseError::InvalidTxnState.code()]
            ),
        ]
    );
    // Now a's partition verifies; an unknown partition is named, a stale epoch fenced.
    let second: AddPartitionsToTxnResponse = call(
        &broker,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![
            txn("batch-a", a, true, vec![0, 7]),
            txn("batch-b", (b.0, b.1 - 1), true, vec![0]),
        ]),
        4,
    );
    assert_eq!(
        codes(&second),
        vec![
            (
                "batch-a".to_string(),
                vec![
                    ResponseError::OperationNotAttempted.code(),
                    ResponseError::UnknownTopicOrPartition.code()
                ]
            ),
            (
                "batch-b".to_string(),
                vec![ResponseError::ProducerFenced.code()]
            ),
        ]
    );
    let third: AddPartitionsToTxnResponse = call(
        &broker,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![txn(
            "batch-a",
            a,
            true,
            vec![0],
        )]),
        4,
    );
    assert_eq!(codes(&third), vec![("batch-a".to_string(), vec![0])]);
}

/// ListTransactions v2 (KIP-1152): a regular expression the whole transactional id matches.
#[test]
fn list_transactions_v2_filters_by_a_whole_id_pattern() {
    use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse};
    let broker = Broker::start();
    for id in ["orders-1", "orders-2", "billing-1"] {
        init(&broker, id);
    }
    let list = |pattern: Option<&str>, version: i16| -> (i16, Vec<String>) {
        let r: ListTransactionsResponse = call(
            &broker,
            &ListTransactionsRequest::default()
                .with_duration_filter(-1)
                .with_transactional_id_pattern(pattern.filter(|_| version >= 2).map(sb)),
            version,
        );
        let mut ids: Vec<String> = r
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.to_string())
            .collect();
        ids.sort();
        (r.error_code, ids)
    };
    assert_eq!(
        list(Some("orders-.*"), 2),
        (0, vec!["orders-1".to_string(), "orders-2".to_string()])
    );
    assert_eq!(
        list(Some("orders"), 2),
        (0, vec![]),
        "the whole id must match"
    );
    assert_eq!(
        list(Some(""), 2).1.len(),
        3,
        "an empty pattern filters nothing"
    );
    assert_eq!(
        list(Some("(unclosed"), 2).0,
        ResponseError::InvalidRegularExpression.code()
    );
    assert_eq!(list(None, 1).1.len(), 3);
}

/// `transactional_id_expiration_ms`: an id with nothing open and no change for that long is
/// forgotten (its coordinator slot freed), durably: it stays gone after a restart, and a
/// producer using it again starts afresh.
#[test]
fn an_idle_transactional_id_expires_and_stays_forgotten() {
    use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse};
    let mut broker = Broker::start_with_config("transactional_id_expiration_ms = 1500\n", &[]);
    let describe = |broker: &Broker| -> i16 {
        let r: DescribeTransactionsResponse = call(
            broker,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(sb("idle"))]),
            0,
        );
        r.transaction_states[0].error_code
    };
    init(&broker, "idle");
    assert_eq!(describe(&broker), 0, "known right after InitProducerId");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while describe(&broker) != ResponseError::TransactionalIdNotFound.code() {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle id never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    broker.kill();
    broker.spawn();
    wait_for(&broker);
    assert_eq!(
        describe(&broker),
        ResponseError::TransactionalIdNotFound.code(),
        "the tombstone survives a restart"
    );
    let (_, epoch) = init(&broker, "idle");
    assert_eq!(epoch, 0, "a returning producer starts afresh");
}

fn wait_for(broker: &Broker) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wire::RawConn::connect(&broker.bootstrap())
        .and_then(|mut c| c.try_call(&ApiVersionsRequest::default(), 0))
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "broker not serving");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
