//! Nullable fields on the wire (issue 15): where Kafka 4.x sends null, Sluice must not send
//! "" — and where Kafka sends a string, not null. Raw requests at each API's newest version
//! (and the last non-nullable one where the field changed), decoded with kafka-protocol, so
//! `None` here is a null on the wire.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions as ElectTopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, DescribeProducersRequest, DescribeProducersResponse,
    ElectLeadersRequest, ElectLeadersResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, JoinGroupRequest,
    JoinGroupResponse, MetadataRequest, MetadataResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceResponse, SyncGroupRequest, SyncGroupResponse,
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

#[test]
fn group_responses_send_null_where_kafka_does() {
    let broker = Broker::start();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![creatable("nullable-groups", 2)]);
    let _: CreateTopicsResponse = call(&broker, &create, 7);

    // SyncGroup v5: a refusal carries null protocol type and name.
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(sb("nullable-sync")))
        .with_generation_id(1)
        .with_member_id(sb("not-a-member"))
        .with_group_instance_id(None)
        .with_protocol_type(Some(sb("consumer")))
        .with_protocol_name(Some(sb("range")));
    let synced: SyncGroupResponse = call(&broker, &sync, 5);
    assert_ne!(synced.error_code, 0, "{synced:?}");
    assert_eq!(
        (&synced.protocol_type, &synced.protocol_name),
        (&None, &None),
        "{synced:?}"
    );

    // ConsumerGroupHeartbeat v1: a successful join has a null error message.
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("nullable-consumer")))
        .with_member_id(sb(&uuid::Uuid::new_v4().simple().to_string()))
        .with_member_epoch(0)
        .with_instance_id(None)
        .with_rack_id(None)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![wire::topic_name("nullable-groups")]))
        .with_subscribed_topic_regex(None)
        .with_server_assignor(None)
        .with_topic_partitions(Some(Vec::new()));
    let joined: ConsumerGroupHeartbeatResponse = call(&broker, &heartbeat, 1);
    assert_eq!(
        (joined.error_code, &joined.error_message),
        (0, &None),
        "{joined:?}"
    );
    assert!(joined.member_id.is_some(), "{joined:?}");

    // ConsumerGroupDescribe v1: no error message, no instance id, rack or regex.
    let described: ConsumerGroupDescribeResponse = call(
        &broker,
        &ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(sb("nullable-consumer"))]),
        1,
    );
    let group = &described.groups[0];
    assert_eq!(
        (group.error_code, &group.error_message),
        (0, &None),
        "{group:?}"
    );
    assert!(!group.members.is_empty(), "{group:?}");
    for m in &group.members {
        assert_eq!(
            (&m.instance_id, &m.rack_id, &m.subscribed_topic_regex),
            (&None, &None, &None),
            "{m:?}"
        );
    }

    // DescribeGroups v6: a described group has a null error message (and a dynamic member
    // a null instance id); an unknown group carries Kafka's message.
    let groups: DescribeGroupsResponse = call(
        &broker,
        &DescribeGroupsRequest::default().with_groups(vec![
            GroupId(sb("nullable-consumer")),
            GroupId(sb("nullable-missing")),
        ]),
        6,
    );
    let known = &groups.groups[0];
    assert_eq!(
        (known.error_code, &known.error_message),
        (0, &None),
        "{known:?}"
    );
    assert!(
        known.members.iter().all(|m| m.group_instance_id.is_none()),
        "{known:?}"
    );
    let missing = &groups.groups[1];
    assert_eq!(missing.error_code, ResponseError::GroupIdNotFound.code());
    assert!(missing.error_message.is_some(), "{missing:?}");

    // OffsetFetch v9: metadata is not null when nothing is committed — Kafka sends "".
    let fetched: OffsetFetchResponse = call(
        &broker,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb("nullable-offsets")))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(wire::topic_name("nullable-groups"))
                        .with_partition_indexes(vec![0]),
                ])),
        ]),
        9,
    );
    let o = &fetched.groups[0].topics[0].partitions[0];
    assert_eq!(
        (o.committed_offset, o.metadata.as_deref()),
        (-1, Some("")),
        "{o:?}"
    );
}

#[test]
fn topic_admin_responses_send_null_where_kafka_does() {
    let broker = Broker::start();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![creatable("nullable-admin", 1)]);
    let _: CreateTopicsResponse = call(&broker, &create, 7);

    // DescribeProducers v0: a described partition has a null error message.
    let producers: DescribeProducersResponse = call(
        &broker,
        &DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(wire::topic_name("nullable-admin"))
                .with_partition_indexes(vec![0]),
        ]),
        0,
    );
    let p = &producers.topics[0].partitions[0];
    assert_eq!((p.error_code, &p.error_message), (0, &None), "{p:?}");

    // IncrementalAlterConfigs v1: success has a null error message.
    let altered: IncrementalAlterConfigsResponse = call(
        &broker,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(false)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(sb("nullable-admin"))
                    .with_configs(vec![
                        AlterableConfig::default()
                            .with_name(sb("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(sb("3600000"))),
                    ]),
            ]),
        1,
    );
    let r = &altered.responses[0];
    assert_eq!((r.error_code, &r.error_message), (0, &None), "{r:?}");

    // ElectLeaders v2: Kafka sends ELECTION_NOT_NEEDED with its message, never "".
    let elected: ElectLeadersResponse = call(
        &broker,
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(30_000)
            .with_topic_partitions(Some(vec![
                ElectTopicPartitions::default()
                    .with_topic(wire::topic_name("nullable-admin"))
                    .with_partitions(vec![0]),
            ])),
        2,
    );
    let e = &elected.replica_election_results[0].partition_result[0];
    assert_eq!(
        e.error_code,
        ResponseError::ElectionNotNeeded.code(),
        "{e:?}"
    );
    assert!(
        e.error_message.as_ref().is_some_and(|m| !m.is_empty()),
        "{e:?}"
    );
}
