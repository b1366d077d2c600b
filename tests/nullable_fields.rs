//! Nullable fields on the wire (issue 15): where Kafka 4.x sends null, Sluice must not send
//! "" — and where Kafka sends a string, not null. Raw requests at each API's newest version
//! (and the last non-nullable one where the field changed), decoded with kafka-protocol, so
//! `None` here is a null on the wire.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, JoinGroupRequest, JoinGroupResponse, MetadataRequest,
    MetadataResponse, ProduceResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

const CLIENT_ID: &str = "nullable-fields-test";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

fn creatable(name: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(wire::topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

#[test]
fn create_topics_error_message_is_null_unless_there_is_an_error() {
    let broker = Broker::start();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            creatable("nullable-ok", 1),
            creatable("nullable-bad", 0),
        ]);
    let response: CreateTopicsResponse = call(&broker, &request, 7);
    let ok = &response.topics[0];
    assert_eq!((ok.error_code, &ok.error_message), (0, &None), "{ok:?}");
    let bad = &response.topics[1];
    assert_eq!(
        bad.error_code,
        ResponseError::InvalidPartitions.code(),
        "{bad:?}"
    );
    assert!(
        bad.error_message.as_ref().is_some_and(|m| !m.is_empty()),
        "an error carries its message: {bad:?}"
    );
}

#[test]
fn find_coordinator_error_message_is_kafkas_none_string() {
    // Kafka sets Errors.message(): "NONE" on success, the error's message otherwise.
    let broker = Broker::start();
    let batched = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![sb("a-group"), sb("")]);
    let response: FindCoordinatorResponse = call(&broker, &batched, 5);
    let found = &response.coordinators[0];
    assert_eq!(
        (found.error_code, found.error_message.as_deref()),
        (0, Some("NONE"))
    );
    let refused = &response.coordinators[1];
    assert_eq!(refused.error_code, ResponseError::InvalidRequest.code());
    assert!(
        refused
            .error_message
            .as_ref()
            .is_some_and(|m| !m.is_empty() && m != "NONE")
    );
    let single = FindCoordinatorRequest::default()
        .with_key(sb("a-group"))
        .with_key_type(0);
    let response: FindCoordinatorResponse = call(&broker, &single, 3);
    assert_eq!(
        (response.error_code, response.error_message.as_deref()),
        (0, Some("NONE"))
    );
}

#[test]
fn join_group_refusal_has_a_null_protocol_name_from_v7() {
    let broker = Broker::start();
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(sb("nullable-join")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(sb("not-a-member"))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(Bytes::new()),
        ]);
    let v9: JoinGroupResponse = call(&broker, &request, 9);
    assert_eq!(
        v9.error_code,
        ResponseError::UnknownMemberId.code(),
        "{v9:?}"
    );
    assert_eq!(v9.protocol_name, None, "v9");
    let v6: JoinGroupResponse = call(&broker, &request, 6);
    assert_eq!(
        v6.error_code,
        ResponseError::UnknownMemberId.code(),
        "{v6:?}"
    );
    assert_eq!(v6.protocol_name.as_deref(), Some(""), "v6 is not nullable");
}

#[test]
fn metadata_cluster_and_produce_nullables_are_null() {
    let broker = Broker::start();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![creatable("nullable-meta", 1)]);
    let _: CreateTopicsResponse = call(&broker, &create, 7);
    let metadata: MetadataResponse = call(
        &broker,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(wire::topic_name("nullable-meta"))),
        ])),
        12,
    );
    assert!(!metadata.brokers.is_empty());
    for b in &metadata.brokers {
        assert_eq!(b.rack, None, "no rack configured: {b:?}");
    }
    let cluster: DescribeClusterResponse = call(&broker, &DescribeClusterRequest::default(), 1);
    assert_eq!((cluster.error_code, &cluster.error_message), (0, &None));
    assert!(
        cluster.brokers.iter().all(|b| b.rack.is_none()),
        "{cluster:?}"
    );
    let batch = wire::encode_batch(&[wire::plain_record(0, 1_000, Bytes::from("v"))]).freeze();
    let produced: ProduceResponse = call(
        &broker,
        &wire::produce_request("nullable-meta", 0, batch, -1),
        12,
    );
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!((p.error_code, &p.error_message), (0, &None), "{p:?}");
}

#[test]
fn delete_topics_by_id_names_the_topic_and_null_when_unknown() {
    let broker = Broker::start();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![creatable("nullable-delete", 1)]);
    let created: CreateTopicsResponse = call(&broker, &create, 7);
    let id = created.topics[0].topic_id;
    let unknown_id = uuid::Uuid::from_u128(0x1234);
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(id),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(unknown_id),
        ]);
    let response: DeleteTopicsResponse = call(&broker, &request, 6);
    let deleted = &response.responses[0];
    assert_eq!(deleted.error_code, 0, "{deleted:?}");
    assert_eq!(
        deleted.name.as_ref().map(|n| n.0.to_string()).as_deref(),
        Some("nullable-delete")
    );
    let unknown = &response.responses[1];
    assert_eq!(unknown.error_code, ResponseError::UnknownTopicId.code());
    assert_eq!(unknown.name, None);
}
