//! DescribeLogDirs, OffsetForLeaderEpoch, DescribeProducers and ListPartitionReassignments over the raw protocol (the
//! crate's client does not speak them): frames are built with kafka-protocol's structs and
//! sent on a plain socket, so the broker's answers are checked field by field.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeProducersRequest, DescribeProducersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::Record;
use sluice::client::{Client, NewTopic};
use support::{Broker, wire};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Client id in this test's request headers.
const CLIENT_ID: &str = "admin-apis-test";

/// Sends one request at `version` on a new connection and decodes its response.
fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
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
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    assert_eq!(init.error_code, 0, "InitProducerId");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let batch: Vec<Record> = (0..records)
        .map(|i| Record {
            partition_leader_epoch: 0,
            producer_id: init.producer_id.0,
            producer_epoch: init.producer_epoch,
            sequence: i as i32,
            ..wire::plain_record(i as i64, now_ms, Bytes::from(format!("value-{i}")))
        })
        .collect();
    let encoded = wire::encode_batch(&batch);
    let produced: ProduceResponse = call(
        broker,
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
        9,
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
            &DescribeLogDirsRequest::default().with_topics(None),
            version,
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
        &DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName(sb("sized")))
                .with_partitions(vec![1]),
            DescribableLogDirTopic::default()
                .with_topic(TopicName(sb("no-such-topic")))
                .with_partitions(vec![0]),
        ])),
        4,
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
        4,
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
        &DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(TopicName(sb("producers")))
                .with_partition_indexes(vec![0, 1, 7]),
        ]),
        0,
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

#[test]
fn list_partition_reassignments_reports_none_in_progress() {
    let broker = Broker::start();
    topic_with_records(&broker, "reassign", 1);
    let versions: ApiVersionsResponse = call(&broker, &ApiVersionsRequest::default(), 3);
    let advertised = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ListPartitionReassignments as i16)
        .expect("ListPartitionReassignments is advertised");
    assert_eq!((advertised.min_version, advertised.max_version), (0, 0));

    // All topics, then one named topic and one that does not exist: nothing is moving.
    let all: ListPartitionReassignmentsResponse = call(
        &broker,
        &ListPartitionReassignmentsRequest::default().with_topics(None),
        0,
    );
    assert_eq!(all.error_code, 0);
    assert_eq!(all.error_message, None);
    assert!(all.topics.is_empty(), "{:?}", all.topics);
    let named = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(1_000)
        .with_topics(Some(vec![
            kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                .with_name(TopicName(sb("reassign")))
                .with_partition_indexes(vec![0, 1]),
            kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                .with_name(TopicName(sb("no-such-topic")))
                .with_partition_indexes(vec![0]),
        ]));
    let answer: ListPartitionReassignmentsResponse = call(&broker, &named, 0);
    assert_eq!(answer.error_code, 0);
    assert!(answer.topics.is_empty(), "{:?}", answer.topics);
}
