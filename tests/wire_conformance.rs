//! Kafka 4.x behaviours checked through the raw protocol (issue 15): offset commits to
//! topics or partitions that do not exist, ListOffsets MAX_TIMESTAMP, and the produce rules
//! of compacted topics. Requests are built with kafka-protocol's structs and each answer is
//! checked field by field against what Apache Kafka sends.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, GroupId, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::Record;
use sluice::client::{Client, NewTopic};
use support::{Broker, wire};

/// Client id in this test's request headers.
const CLIENT_ID: &str = "wire-conformance-test";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

fn create_topic(broker: &Broker, name: &str, partitions: i32, configs: Vec<(String, String)>) {
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: 1,
            configs,
        })
        .expect("create topic");
}

fn commit_topic(name: &str, partitions: &[(i32, i64)]) -> OffsetCommitRequestTopic {
    OffsetCommitRequestTopic::default()
        .with_name(wire::topic_name(name))
        .with_partitions(
            partitions
                .iter()
                .map(|&(index, offset)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)
                        .with_committed_metadata(Some(sb("")))
                })
                .collect(),
        )
}

/// (topic, partition) -> error code of an OffsetCommit answer; fails on a duplicate entry.
fn commit_codes(response: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    let mut codes: Vec<(String, i32, i16)> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    codes.sort();
    let before = codes.len();
    codes.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    assert_eq!(
        before,
        codes.len(),
        "one answer per partition: {response:?}"
    );
    codes
}

#[test]
fn offset_commit_answers_unknown_topic_or_partition_and_commits_the_rest() {
    let broker = Broker::start();
    create_topic(&broker, "commit-known", 2, Vec::new());
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for version in [2i16, 8, 9] {
        let group = format!("commit-unknown-v{version}");
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(&group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(sb(""))
            .with_topics(vec![
                commit_topic("commit-known", &[(0, 5), (1, 7), (2, 9), (-1, 1)]),
                commit_topic("no-such-topic", &[(0, 3)]),
            ]);
        let response: OffsetCommitResponse = call(&broker, &request, version);
        assert_eq!(
            commit_codes(&response),
            vec![
                ("commit-known".to_string(), -1, unknown),
                ("commit-known".to_string(), 0, 0),
                ("commit-known".to_string(), 1, 0),
                ("commit-known".to_string(), 2, unknown),
                ("no-such-topic".to_string(), 0, unknown),
            ],
            "v{version}"
        );
        assert_eq!(
            response.topics.len(),
            2,
            "one entry per topic (v{version}): {response:?}"
        );
        // The partitions that exist were committed; nothing was stored for the others.
        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(&group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(wire::topic_name("commit-known"))
                    .with_partition_indexes(vec![0, 1, 2]),
            ]));
        let fetched: OffsetFetchResponse = call(&broker, &fetch, 7);
        let offsets: Vec<(i32, i64)> = fetched.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect();
        assert_eq!(offsets, vec![(0, 5), (1, 7), (2, -1)], "v{version}");
    }
}

#[test]
fn offset_commit_of_only_unknown_topics_answers_every_partition() {
    let broker = Broker::start();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("commit-only-unknown")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_topics(vec![commit_topic("absent", &[(0, 1), (3, 2)])]);
    let response: OffsetCommitResponse = call(&broker, &request, 9);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        commit_codes(&response),
        vec![
            ("absent".to_string(), 0, unknown),
            ("absent".to_string(), 3, unknown)
        ]
    );
}

/// The `index`th record of a batch: kafka-protocol's encoder starts a new batch unless
/// offset - sequence stays the same, so the sequence follows the offset (the first is -1,
/// the batch's base sequence for a producer without idempotence).
fn single_batch(index: usize, record: Record) -> Record {
    Record {
        sequence: index as i32 - 1,
        ..record
    }
}

/// How many record batches `bytes` holds (each is 12 bytes of offset and length + length).
fn batch_count(bytes: &[u8]) -> usize {
    let mut count = 0;
    let mut at = 0usize;
    while at + 12 <= bytes.len() {
        let length =
            i32::from_be_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        at += 12 + length.max(0) as usize;
        count += 1;
    }
    count
}

/// Produces one uncompressed batch whose records carry `timestamps` (CreateTime) to
/// partition 0 and returns the partition's answer (base offset, log append time).
fn produce_timestamps(broker: &Broker, topic: &str, timestamps: &[i64]) -> (i64, i64) {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| {
            single_batch(
                i,
                wire::plain_record(i as i64, ts, Bytes::from(format!("value-{i}"))),
            )
        })
        .collect();
    let batch = wire::encode_batch(&records).freeze();
    assert_eq!(batch_count(&batch), 1, "the records form one batch");
    let batch = wire::encode_batch(&records).freeze();
    let response: ProduceResponse = call(broker, &wire::produce_request(topic, 0, batch, -1), 9);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0, "produce to {topic}: {response:?}");
    (partition.base_offset, partition.log_append_time_ms)
}

/// ListOffsets MAX_TIMESTAMP (-3) on partition 0: (error code, timestamp, offset).
fn max_timestamp_of(broker: &Broker, topic: &str) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(wire::topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-3),
                ]),
        ]);
    let response: ListOffsetsResponse = call(broker, &request, 9);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.timestamp, p.offset)
}

/// `max_timestamp_of` on a broker that just restarted: its first connections may be reset
/// and its topics may not be served yet for a moment, so retry for a bounded time.
fn max_timestamp_after_restart(broker: &Broker, topic: &str) -> (i16, i64, i64) {
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = std::panic::catch_unwind(|| max_timestamp_of(broker, topic));
        match answer {
            Ok(a) if a.0 != unknown => return a,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Ok(a) => return a,
            Err(_) => panic!("ListOffsets failed for 10 s after a restart"),
        }
    }
}

#[test]
fn list_offsets_max_timestamp_names_the_record_with_the_largest_timestamp() {
    let mut broker = Broker::start();
    create_topic(&broker, "max-ts", 1, Vec::new());
    let (base, _) = produce_timestamps(&broker, "max-ts", &[1; 10]);
    assert_eq!(base, 0);
    // Offsets 10, 11, 12 carry timestamps 5, 9, 3: Kafka answers offset 11, not 12.
    let (base, _) = produce_timestamps(&broker, "max-ts", &[5, 9, 3]);
    assert_eq!(base, 10);
    produce_timestamps(&broker, "max-ts", &[4, 8]);
    assert_eq!(max_timestamp_of(&broker, "max-ts"), (0, 9, 11));
    // The same after a clean restart and after a crash (recovery rebuilds it).
    broker.terminate();
    broker.spawn();
    assert_eq!(
        max_timestamp_after_restart(&broker, "max-ts"),
        (0, 9, 11),
        "after restart"
    );
    broker.kill();
    broker.spawn();
    assert_eq!(
        max_timestamp_after_restart(&broker, "max-ts"),
        (0, 9, 11),
        "after a crash"
    );
}

#[test]
fn list_offsets_max_timestamp_with_log_append_time_names_the_batch_start() {
    let broker = Broker::start();
    let log_append_time = vec![(
        "message.timestamp.type".to_string(),
        "LogAppendTime".to_string(),
    )];
    create_topic(&broker, "max-ts-lat", 1, log_append_time);
    produce_timestamps(&broker, "max-ts-lat", &[5, 9, 3]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Every record of a LogAppendTime batch has the batch's time: Kafka answers its first.
    let (base, appended_at) = produce_timestamps(&broker, "max-ts-lat", &[1, 2]);
    assert_eq!(base, 3);
    assert!(
        appended_at > 0,
        "LogAppendTime answers carry the append time"
    );
    assert_eq!(max_timestamp_of(&broker, "max-ts-lat"), (0, appended_at, 3));
}

/// A batch of one record per key (`None`: no key), compressed with `compression`.
fn keyed_batch(keys: &[Option<&str>], compression: kafka_protocol::records::Compression) -> Bytes {
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let record = Record {
                key: key.map(|k| Bytes::from(k.to_string())),
                ..wire::plain_record(i as i64, 1_700_000_000_000, Bytes::from(format!("v{i}")))
            };
            single_batch(i, record)
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode a test batch");
    let batch = buf.freeze();
    assert_eq!(batch_count(&batch), 1, "the records form one batch");
    batch
}

fn produce_partition(
    broker: &Broker,
    topic: &str,
    batch: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    let response: ProduceResponse = call(broker, &wire::produce_request(topic, 0, batch, -1), 9);
    response.responses[0].partition_responses[0].clone()
}

#[test]
fn compacted_topic_refuses_records_without_a_key() {
    use kafka_protocol::records::Compression;
    let broker = Broker::start();
    let compact = vec![("cleanup.policy".to_string(), "compact".to_string())];
    create_topic(&broker, "compacted", 1, compact);
    create_topic(&broker, "not-compacted", 1, Vec::new());
    let invalid_record = ResponseError::InvalidRecord.code();
    let expected_record_message =
        "Compacted topic cannot accept message without key in topic partition compacted-0.";
    for compression in [Compression::None, Compression::Gzip] {
        let refused = produce_partition(
            &broker,
            "compacted",
            keyed_batch(&[Some("k0"), None, Some("k2"), None], compression),
        );
        assert_eq!(
            refused.error_code, invalid_record,
            "{compression:?}: {refused:?}"
        );
        assert_eq!(refused.base_offset, -1);
        let errors: Vec<(i32, Option<String>)> = refused
            .record_errors
            .iter()
            .map(|e| {
                (
                    e.batch_index,
                    e.batch_index_error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect();
        assert_eq!(
            errors,
            vec![
                (1, Some(expected_record_message.to_string())),
                (3, Some(expected_record_message.to_string())),
            ],
            "{compression:?}"
        );
        let message = refused
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("One or more records have been rejected due to 2 record errors"),
            "{compression:?}: {message}"
        );
    }
    // Nothing of the refused batches was appended: the first keyed batch lands at 0.
    let accepted = produce_partition(
        &broker,
        "compacted",
        keyed_batch(&[Some("a"), Some("b")], Compression::None),
    );
    assert_eq!((accepted.error_code, accepted.base_offset), (0, 0));
    assert!(accepted.record_errors.is_empty());
    assert_eq!(accepted.error_message, None);
    // Other topics take records without keys.
    let plain = produce_partition(
        &broker,
        "not-compacted",
        keyed_batch(&[None, None], Compression::None),
    );
    assert_eq!((plain.error_code, plain.base_offset), (0, 0));
}
