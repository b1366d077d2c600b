//! DescribeLogDirs, OffsetForLeaderEpoch and DescribeProducers over the raw protocol (the
//! crate's client does not speak them): frames are built with kafka-protocol's structs and
//! sent on a plain socket, so the broker's answers are checked field by field.

mod support;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeProducersRequest,
    DescribeProducersResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice::client::{Client, NewTopic};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::Broker;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Sends one request at `version` and decodes its response.
fn call<Req: Encodable, Resp: Decodable>(
    broker: &Broker,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let mut stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(sb("admin-apis-test")))
        .encode(&mut body, api.request_header_version(version))
        .expect("encode header");
    request.encode(&mut body, version).expect("encode body");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).expect("send");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("response length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).expect("response body");
    let mut buf = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, 7);
    let response = Resp::decode(&mut buf, version).expect("decode response");
    assert_eq!(buf.remaining(), 0, "{api:?} v{version}: trailing bytes");
    response
}

/// A 2-partition topic with `records` records in partition 0, written as one batch by an
/// idempotent producer (InitProducerId, then Produce with sequences 0..records).
fn topic_with_records(broker: &Broker, topic: &str, records: usize) {
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: topic.to_string(),
            partitions: 2,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic");
    let init: InitProducerIdResponse = call(
        broker,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0, "InitProducerId");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let batch: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: init.producer_id.0,
            producer_epoch: init.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: now_ms,
            key: None,
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut encoded = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut encoded,
        &batch,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    let produced: ProduceResponse = call(
        broker,
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(encoded.freeze())),
                    ]),
            ]),
    );
    let code = produced.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 0, "produce");
}

#[test]
fn describe_log_dirs_reports_the_data_dir_and_partition_sizes() {
    let broker = Broker::start();
    topic_with_records(&broker, "sized", 50);
    for version in [1i16, 4] {
        let all: DescribeLogDirsResponse = call(
            &broker,
            ApiKey::DescribeLogDirs,
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(all.results.len(), 1, "one log dir");
        let dir = &all.results[0];
        assert_eq!(dir.error_code, 0);
        let expected = std::fs::canonicalize(&broker.data_dir).expect("canonical data dir");
        assert_eq!(dir.log_dir.to_string(), expected.display().to_string());
        let topic = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "sized")
            .expect("topic listed");
        let mut sizes: Vec<(i32, i64)> = topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        sizes.sort();
        assert_eq!(sizes.len(), 2, "both partitions: {sizes:?}");
        assert!(
            sizes[0].1 > 50 * 7,
            "partition 0 holds 50 records: {sizes:?}"
        );
        assert_eq!(sizes[1].1, 0, "partition 1 is empty: {sizes:?}");
        if version >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
            assert!(dir.usable_bytes <= dir.total_bytes);
        }
    }
    let some: DescribeLogDirsResponse = call(
        &broker,
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName(sb("sized")))
                .with_partitions(vec![1]),
            DescribableLogDirTopic::default()
                .with_topic(TopicName(sb("no-such-topic")))
                .with_partitions(vec![0]),
        ])),
    );
    let topics = &some.results[0].topics;
    assert_eq!(topics.len(), 1, "unknown topics are left out");
    assert_eq!(topics[0].partitions.len(), 1, "only the partition asked");
    assert_eq!(topics[0].partitions[0].partition_index, 1);
}

#[test]
fn offset_for_leader_epoch_zero_ends_at_the_log_end() {
    let broker = Broker::start();
    topic_with_records(&broker, "epochs", 30);
    let partition = |p: i32, current: i32, epoch: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(p)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)
    };
    let response: OffsetForLeaderEpochResponse = call(
        &broker,
        ApiKey::OffsetForLeaderEpoch,
        4,
        &OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(sb("epochs")))
                    .with_partitions(vec![
                        partition(0, 0, 0),
                        partition(1, -1, 0),
                        partition(0, 0, 5),
                        partition(0, 3, 0),
                        partition(9, 0, 0),
                    ]),
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(sb("missing")))
                    .with_partitions(vec![partition(0, 0, 0)]),
            ]),
    );
    let got: Vec<(i32, i16, i32, i64)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition, p.error_code, p.leader_epoch, p.end_offset))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 0, 0, 30),
            (1, 0, 0, 0),
            (0, 0, -1, -1),
            (0, ResponseError::UnknownLeaderEpoch.code(), -1, -1),
            (9, ResponseError::UnknownTopicOrPartition.code(), -1, -1),
        ]
    );
    assert_eq!(
        response.topics[1].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn describe_producers_lists_the_idempotent_producer() {
    let broker = Broker::start();
    topic_with_records(&broker, "producers", 10);
    let response: DescribeProducersResponse = call(
        &broker,
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(TopicName(sb("producers")))
                .with_partition_indexes(vec![0, 1, 7]),
        ]),
    );
    let parts = &response.topics[0].partitions;
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].error_code, 0);
    assert_eq!(parts[0].active_producers.len(), 1, "one producer wrote p0");
    let state = &parts[0].active_producers[0];
    assert!(state.producer_id.0 >= 0, "a real producer id");
    assert_eq!(state.last_sequence, 9, "ten records, sequences 0..=9");
    assert!(state.last_timestamp > 0);
    assert_eq!(parts[1].error_code, 0);
    assert!(parts[1].active_producers.is_empty(), "nobody wrote p1");
    assert_eq!(
        parts[2].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}
