//! Kafka 4.x behaviours checked through the raw protocol (issue 15): offset commits to
//! topics or partitions that do not exist, ListOffsets MAX_TIMESTAMP, and the produce rules
//! of compacted topics. Requests are built with kafka-protocol's structs and each answer is
//! checked field by field against what Apache Kafka sends.

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
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
