//! Kafka 4.x admin behaviours over the raw protocol (issue 15, items 6-8): manual replica
//! assignments on one node, Empty groups that keep their protocol type, KIP-430 authorized
//! operations, and the APIs single-node admin clients call. Frames are built with
//! kafka-protocol's structs so every error code and value is checked as Kafka sends it.

mod support;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Client id in this test's request headers.
const CLIENT_ID: &str = "admin-apis-kafka4-test";

/// Broker config for group tests: no initial rebalance delay, so a join answers at once.
const NO_REBALANCE_DELAY: &str = "group_initial_rebalance_delay_ms = 0\n";

/// Sends one request at `version` on a new connection and decodes its response.
fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

/// Bits of the KIP-430 bitfield for the given AclOperation codes.
fn bits(codes: &[i32]) -> i32 {
    codes.iter().map(|c| 1 << c).sum()
}

/// READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
const TOPIC_OPERATIONS: &[i32] = &[3, 4, 5, 6, 7, 8, 10, 11];
/// READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
const GROUP_OPERATIONS: &[i32] = &[3, 6, 8, 10, 11];
/// CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: &[i32] = &[5, 7, 8, 9, 10, 11, 12];

/// Creates `name` with `partitions` partitions (replication factor 1) and checks it worked.
fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(sb(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    let answer: CreateTopicsResponse = call(broker, &request, 7);
    assert_eq!(answer.topics[0].error_code, 0, "{:?}", answer.topics[0]);
}

/// Joins `group` as a single classic consumer, syncs, and leaves: the group ends Empty.
fn join_sync_leave(broker: &Broker, group: &str) {
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(sb(""))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
        ]);
    let joined: JoinGroupResponse = call(broker, &join, 3);
    assert_eq!(joined.error_code, 0, "join");
    let member = joined.member_id.clone();
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(member.clone())
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(member.clone())
                .with_assignment(bytes::Bytes::new()),
        ]);
    let synced: SyncGroupResponse = call(broker, &sync, 3);
    assert_eq!(synced.error_code, 0, "sync");
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(member);
    let left: LeaveGroupResponse = call(broker, &leave, 0);
    assert_eq!(left.error_code, 0, "leave");
}

#[test]
fn an_empty_classic_group_keeps_its_protocol_type() {
    let broker = Broker::start_with_config(NO_REBALANCE_DELAY, &[]);
    join_sync_leave(&broker, "emptied");

    let listed: ListGroupsResponse = call(&broker, &ListGroupsRequest::default(), 4);
    assert_eq!(listed.error_code, 0);
    let group = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "emptied")
        .expect("the group is listed");
    assert_eq!(group.group_state.as_str(), "Empty");
    assert_eq!(group.protocol_type.as_str(), "consumer");

    let described: DescribeGroupsResponse = call(
        &broker,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("emptied"))]),
        5,
    );
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.group_state.as_str(), "Empty");
    assert_eq!(group.protocol_type.as_str(), "consumer");
    assert_eq!(group.protocol_data.as_str(), "");
    assert!(group.members.is_empty());
}

#[test]
fn describe_groups_returns_authorized_operations_when_asked() {
    let broker = Broker::start_with_config(NO_REBALANCE_DELAY, &[]);
    join_sync_leave(&broker, "authorized");
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("authorized"))]);
    let without: DescribeGroupsResponse = call(&broker, &request, 5);
    assert_eq!(without.groups[0].authorized_operations, i32::MIN);
    let asked: DescribeGroupsResponse =
        call(&broker, &request.with_include_authorized_operations(true), 5);
    assert_eq!(
        asked.groups[0].authorized_operations,
        bits(GROUP_OPERATIONS)
    );
}

#[test]
fn metadata_and_describe_cluster_return_authorized_operations_when_asked() {
    let broker = Broker::start();
    create_topic(&broker, "ops", 1);
    let topics = Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(sb("ops")))),
    ]);
    let plain = MetadataRequest::default().with_topics(topics.clone());
    let without: MetadataResponse = call(&broker, &plain, 12);
    assert_eq!(without.topics[0].topic_authorized_operations, i32::MIN);
    let asked: MetadataResponse = call(
        &broker,
        &plain
            .clone()
            .with_include_topic_authorized_operations(true),
        12,
    );
    assert_eq!(
        asked.topics[0].topic_authorized_operations,
        bits(TOPIC_OPERATIONS)
    );
    // v8-v10 carry the cluster's bitfield in Metadata; later versions in DescribeCluster.
    let cluster_v10: MetadataResponse = call(
        &broker,
        &plain
            .clone()
            .with_include_cluster_authorized_operations(true),
        10,
    );
    assert_eq!(
        cluster_v10.cluster_authorized_operations,
        bits(CLUSTER_OPERATIONS)
    );
    let not_asked_v10: MetadataResponse = call(&broker, &plain, 10);
    assert_eq!(not_asked_v10.cluster_authorized_operations, i32::MIN);

    let cluster: DescribeClusterResponse = call(
        &broker,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        1,
    );
    assert_eq!(cluster.error_code, 0);
    assert_eq!(
        cluster.cluster_authorized_operations,
        bits(CLUSTER_OPERATIONS)
    );
    let cluster: DescribeClusterResponse = call(&broker, &DescribeClusterRequest::default(), 1);
    assert_eq!(cluster.cluster_authorized_operations, i32::MIN);
}
