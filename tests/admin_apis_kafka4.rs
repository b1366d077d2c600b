//! Kafka 4.x admin behaviours over the raw protocol (issue 15, items 6-8): manual replica
//! assignments on one node, Empty groups that keep their protocol type, KIP-430 authorized
//! operations, and the APIs single-node admin clients call. Frames are built with
//! kafka-protocol's structs so every error code and value is checked as Kafka sends it.

mod support;

use kafka_protocol::ResponseError;
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
    let asked: DescribeGroupsResponse = call(
        &broker,
        &request.with_include_authorized_operations(true),
        5,
    );
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
        &plain.clone().with_include_topic_authorized_operations(true),
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

/// A CreateTopics topic with manual `assignments` (partition index, broker ids).
fn assigned_topic(
    name: &str,
    assignments: &[(i32, &[i32])],
) -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(
            assignments
                .iter()
                .map(|(index, brokers)| {
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(*index)
                        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect(),
        )
}

fn partition_count(broker: &Broker, topic: &str) -> usize {
    let answer: MetadataResponse = call(
        broker,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic)))),
        ])),
        12,
    );
    assert_eq!(answer.topics[0].error_code, 0, "{topic}");
    answer.topics[0].partitions.len()
}

#[test]
fn create_topics_takes_manual_assignments_that_name_this_broker() {
    let broker = Broker::start();
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            assigned_topic("manual", &[(0, &[0]), (1, &[0]), (2, &[0])]),
            assigned_topic("unknown-broker", &[(0, &[0]), (1, &[10])]),
            assigned_topic("twice", &[(0, &[0, 0])]),
            assigned_topic("gap", &[(0, &[0]), (2, &[0])]),
            assigned_topic("empty-list", &[(0, &[])]),
            assigned_topic("with-count", &[(0, &[0])]).with_num_partitions(1),
            assigned_topic("with-factor", &[(0, &[0])]).with_replication_factor(1),
        ]);
    let answer: CreateTopicsResponse = call(&broker, &request, 7);
    let by_name = |name: &str| {
        answer
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .unwrap_or_else(|| panic!("{name} answered"))
    };
    let manual = by_name("manual");
    assert_eq!(manual.error_code, 0, "{manual:?}");
    // (Its null error_message is issue 15 item 3's, not checked here.)
    assert_eq!(manual.num_partitions, 3);
    assert_eq!(manual.replication_factor, 1);
    assert_eq!(partition_count(&broker, "manual"), 3);
    let refused = [
        (
            "unknown-broker",
            invalid,
            "includes broker 10, but no such broker is registered",
        ),
        ("twice", invalid, "includes the broker 0 more than once"),
        ("gap", invalid, "consecutive 0-based integer sequence"),
        ("empty-list", invalid, "empty replica list"),
        (
            "with-count",
            ResponseError::InvalidPartitions.code(),
            "numPartitions was not set to -1",
        ),
        (
            "with-factor",
            ResponseError::InvalidReplicationFactor.code(),
            "replication factor was not set to -1",
        ),
    ];
    for (name, code, message) in refused {
        let topic = by_name(name);
        assert_eq!(topic.error_code, code, "{name}: {topic:?}");
        let said = topic
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(said.contains(message), "{name}: {said}");
    }
    // Nothing refused was created.
    let all: MetadataResponse = call(&broker, &MetadataRequest::default().with_topics(None), 12);
    let names: Vec<&str> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref())
        .map(|n| n.0.as_str())
        .collect();
    assert_eq!(names, vec!["manual"]);
}

fn grow(
    name: &str,
    count: i32,
    assignments: Option<&[&[i32]]>,
) -> create_partitions_request::CreatePartitionsTopic {
    create_partitions_request::CreatePartitionsTopic::default()
        .with_name(TopicName(sb(name)))
        .with_count(count)
        .with_assignments(assignments.map(|lists| {
            lists
                .iter()
                .map(|brokers| {
                    create_partitions_request::CreatePartitionsAssignment::default()
                        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect()
        }))
}

#[test]
fn create_partitions_checks_manual_assignments() {
    let broker = Broker::start();
    create_topic(&broker, "grown", 1);
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    let cases: [(Option<&[&[i32]]>, &str); 4] = [
        (
            Some(&[&[10]]),
            "includes broker 10, but no such broker is registered",
        ),
        (Some(&[&[0, 0]]), "includes the broker 0 more than once"),
        (
            Some(&[]),
            "Attempted to add 1 additional partition(s), but only 0 assignment(s) were specified.",
        ),
        (
            Some(&[&[0], &[0]]),
            "Attempted to add 1 additional partition(s), but only 2 assignment(s) were specified.",
        ),
    ];
    for (assignments, message) in cases {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![grow("grown", 2, assignments)]);
        let answer: CreatePartitionsResponse = call(&broker, &request, 3);
        let result = &answer.results[0];
        assert_eq!(result.error_code, invalid, "{assignments:?}: {result:?}");
        let said = result
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(said.contains(message), "{said}");
        assert_eq!(partition_count(&broker, "grown"), 1, "nothing was added");
    }
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![grow("grown", 3, Some(&[&[0], &[0]]))]);
    let answer: CreatePartitionsResponse = call(&broker, &request, 3);
    assert_eq!(answer.results[0].error_code, 0, "{:?}", answer.results[0]);
    assert_eq!(answer.results[0].error_message, None);
    assert_eq!(partition_count(&broker, "grown"), 3);
}
