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

/// The advertised version range of `api`.
fn advertised(versions: &ApiVersionsResponse, api: ApiKey) -> (i16, i16) {
    let key = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .unwrap_or_else(|| panic!("{api:?} is advertised"));
    (key.min_version, key.max_version)
}

#[test]
fn api_versions_advertises_kafka_4_maxima_and_finalized_features() {
    let broker = Broker::start();
    let versions: ApiVersionsResponse = call(&broker, &ApiVersionsRequest::default(), 3);
    assert_eq!(versions.error_code, 0);
    // Kafka 4.0's maxima (ListOffsets v10 is what kafka-python reads as a 4.0 broker).
    let expected = [
        (ApiKey::Produce, 12),
        (ApiKey::Fetch, 17),
        (ApiKey::ListOffsets, 10),
        (ApiKey::Metadata, 13),
        (ApiKey::FindCoordinator, 6),
        (ApiKey::DescribeGroups, 6),
        (ApiKey::DescribeCluster, 2),
        (ApiKey::ElectLeaders, 2),
        (ApiKey::AlterPartitionReassignments, 0),
        (ApiKey::ListPartitionReassignments, 0),
        (ApiKey::DescribeTopicPartitions, 0),
        (ApiKey::DescribeQuorum, 2),
        (ApiKey::UpdateFeatures, 2),
        (ApiKey::AlterReplicaLogDirs, 2),
    ];
    for (api, max) in expected {
        assert_eq!(advertised(&versions, api).1, max, "{api:?}");
    }
    let supported = |name: &str| {
        versions
            .supported_features
            .iter()
            .find(|f| f.name.as_str() == name)
            .map(|f| (f.min_version, f.max_version))
    };
    assert_eq!(supported("metadata.version"), Some((7, 25)));
    assert_eq!(supported("group.version"), Some((0, 1)));
    let finalized: Vec<(String, i16, i16)> = versions
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    assert!(
        finalized.contains(&("metadata.version".into(), 25, 25)),
        "{finalized:?}"
    );
    assert!(
        finalized.contains(&("group.version".into(), 1, 1)),
        "{finalized:?}"
    );
    assert!(
        finalized.iter().all(|(_, min, _)| *min > 0),
        "level-0 features are not finalized"
    );
    assert_eq!(versions.finalized_features_epoch, 0);
    // v0-v2 have no feature fields.
    let v2: ApiVersionsResponse = call(&broker, &ApiVersionsRequest::default(), 2);
    assert!(v2.supported_features.is_empty() && v2.finalized_features.is_empty());
}

#[test]
fn elect_leaders_is_never_needed_on_one_node() {
    let broker = Broker::start();
    create_topic(&broker, "elect", 2);
    let named = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(5_000)
        .with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(TopicName(sb("elect")))
                .with_partitions(vec![0, 1, 7]),
            elect_leaders_request::TopicPartitions::default()
                .with_topic(TopicName(sb("missing")))
                .with_partitions(vec![0]),
        ]));
    for version in [0, 1, 2] {
        let answer: ElectLeadersResponse = call(&broker, &named, version);
        assert_eq!(answer.error_code, 0, "v{version}");
        let codes: Vec<(String, i32, i16)> = answer
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect();
        let not_needed = ResponseError::ElectionNotNeeded.code();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            codes,
            vec![
                ("elect".into(), 0, not_needed),
                ("elect".into(), 1, not_needed),
                ("elect".into(), 7, unknown),
                ("missing".into(), 0, unknown),
            ],
            "v{version}"
        );
    }
    // All partitions (null): Kafka leaves out the ones that need no election.
    let all: ElectLeadersResponse = call(
        &broker,
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(None),
        2,
    );
    assert_eq!(all.error_code, 0);
    assert_eq!(all.replica_election_results.len(), 1);
    assert_eq!(all.replica_election_results[0].topic.0.as_str(), "elect");
    assert!(all.replica_election_results[0].partition_result.is_empty());
    // An election type Kafka does not know.
    let bad: ElectLeadersResponse = call(
        &broker,
        &ElectLeadersRequest::default()
            .with_election_type(5)
            .with_topic_partitions(None),
        2,
    );
    assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
}

#[test]
fn alter_partition_reassignments_to_this_node_is_a_no_op() {
    let broker = Broker::start();
    create_topic(&broker, "moving", 1);
    let partition = |index: i32, replicas: Option<&[i32]>| {
        alter_partition_reassignments_request::ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.iter().map(|b| BrokerId(*b)).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(TopicName(sb("moving")))
                .with_partitions(vec![
                    partition(0, Some(&[0])),
                    partition(0, Some(&[10])),
                    partition(0, Some(&[0, 0])),
                    partition(0, None),
                    partition(3, Some(&[0])),
                ]),
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(TopicName(sb("missing")))
                .with_partitions(vec![partition(0, Some(&[0]))]),
        ]);
    let answer: AlterPartitionReassignmentsResponse = call(&broker, &request, 0);
    assert_eq!(answer.error_code, 0);
    let codes: Vec<i16> = answer
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        codes,
        vec![
            0,
            invalid,
            invalid,
            ResponseError::NoReassignmentInProgress.code(),
            unknown,
            unknown
        ]
    );
    let moved = &answer.responses[0].partitions[0];
    assert_eq!(moved.error_message, None);
    let message = answer.responses[0].partitions[1]
        .error_message
        .as_ref()
        .map(|m| m.to_string());
    assert_eq!(
        message.as_deref(),
        Some(
            "The manual partition assignment includes broker 10, but no such broker is registered."
        )
    );
    // Still nothing in progress.
    let listed: ListPartitionReassignmentsResponse = call(
        &broker,
        &ListPartitionReassignmentsRequest::default().with_topics(None),
        0,
    );
    assert!(listed.topics.is_empty());
}

fn describe_partitions(
    broker: &Broker,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    describe_topic_partitions_request::TopicRequest::default()
                        .with_name(TopicName(sb(t)))
                })
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(TopicName(sb(t)))
                .with_partition_index(p)
        }));
    call(broker, &request, 0)
}

/// An answer's (topic, partition indexes) and its cursor (topic, partition).
type Page = (Vec<(String, Vec<i32>)>, Option<(String, i32)>);

fn pages(answer: &DescribeTopicPartitionsResponse) -> Page {
    let topics = answer
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = answer
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    let broker = Broker::start();
    create_topic(&broker, "dtp-a", 5);
    create_topic(&broker, "dtp-b", 2);
    // All topics (none named), three partitions a page.
    let first = describe_partitions(&broker, &[], 3, None);
    assert_eq!(
        pages(&first),
        (
            vec![("dtp-a".into(), vec![0, 1, 2])],
            Some(("dtp-a".into(), 3))
        )
    );
    let topic = &first.topics[0];
    assert_eq!(topic.error_code, 0);
    assert!(!topic.topic_id.is_nil());
    assert_eq!(topic.topic_authorized_operations, bits(TOPIC_OPERATIONS));
    let p = &topic.partitions[0];
    assert_eq!((p.leader_id, p.leader_epoch), (BrokerId(0), 0));
    assert_eq!(p.replica_nodes, vec![BrokerId(0)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(0)]);
    // The limit ends exactly at dtp-a's end: the cursor moves to the next topic.
    let second = describe_partitions(&broker, &[], 2, Some(("dtp-a", 3)));
    assert_eq!(
        pages(&second),
        (
            vec![("dtp-a".into(), vec![3, 4])],
            Some(("dtp-b".into(), 0))
        )
    );
    let third = describe_partitions(&broker, &[], 3, Some(("dtp-b", 0)));
    assert_eq!(pages(&third), (vec![("dtp-b".into(), vec![0, 1])], None));
    // Named topics, in name order, unknown ones with an error; no limit cut.
    let named = describe_partitions(&broker, &["dtp-b", "nope", "dtp-a"], 100, None);
    assert_eq!(
        pages(&named),
        (
            vec![
                ("dtp-a".into(), vec![0, 1, 2, 3, 4]),
                ("dtp-b".into(), vec![0, 1]),
                ("nope".into(), vec![]),
            ],
            None
        )
    );
    assert_eq!(
        named.topics[2].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // A cursor outside the named topics is refused.
    let bad = describe_partitions(&broker, &["dtp-a"], 100, Some(("dtp-b", 0)));
    assert_eq!(
        bad.topics[0].error_code,
        ResponseError::InvalidRequest.code()
    );
}

#[test]
fn describe_quorum_answers_as_a_single_voter_quorum() {
    let broker = Broker::start();
    let request = |topic: &str, partition: i32| {
        DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(sb(topic)))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default()
                        .with_partition_index(partition),
                ]),
        ])
    };
    let answer: DescribeQuorumResponse = call(&broker, &request("__cluster_metadata", 0), 2);
    assert_eq!(answer.error_code, 0);
    let partition = &answer.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.leader_id, BrokerId(0));
    assert!(partition.leader_epoch >= 1);
    assert_eq!(partition.current_voters.len(), 1);
    let voter = &partition.current_voters[0];
    assert_eq!(voter.replica_id, BrokerId(0));
    assert_eq!(voter.log_end_offset, partition.high_watermark);
    assert!(voter.last_caught_up_timestamp > 0);
    assert!(partition.observers.is_empty());
    assert_eq!(answer.nodes.len(), 1);
    assert_eq!(answer.nodes[0].node_id, BrokerId(0));
    assert_eq!(
        i32::from(answer.nodes[0].listeners[0].port),
        broker.port as i32
    );
    let v0: DescribeQuorumResponse = call(&broker, &request("__cluster_metadata", 0), 0);
    assert_eq!(v0.topics[0].partitions[0].leader_id, BrokerId(0));
    let wrong: DescribeQuorumResponse = call(&broker, &request("other", 0), 2);
    assert_eq!(
        wrong.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let wrong: DescribeQuorumResponse = call(&broker, &request("__cluster_metadata", 1), 2);
    assert_eq!(
        wrong.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn update_features_accepts_only_the_current_levels() {
    let broker = Broker::start();
    let update = |feature: &str, level: i16| {
        update_features_request::FeatureUpdateKey::default()
            .with_feature(sb(feature))
            .with_max_version_level(level)
            .with_upgrade_type(1)
    };
    let request = UpdateFeaturesRequest::default()
        .with_timeout_ms(5_000)
        .with_feature_updates(vec![
            update("metadata.version", 25),
            update("metadata.version", 26),
            update("no.such.feature", 1),
            update("transaction.version", 2),
        ]);
    let answer: UpdateFeaturesResponse = call(&broker, &request, 1);
    assert_eq!(answer.error_code, 0);
    let codes: Vec<i16> = answer.results.iter().map(|r| r.error_code).collect();
    let invalid = ResponseError::InvalidUpdateVersion.code();
    assert_eq!(codes, vec![0, invalid, invalid, 0]);
    assert_eq!(answer.results[0].error_message, None);
    assert!(answer.results[1].error_message.is_some());
    // v2 has no per-feature results: a failure is the top-level error.
    let v2: UpdateFeaturesResponse = call(&broker, &request, 2);
    assert_eq!(v2.error_code, invalid);
    assert!(v2.results.is_empty());
    let ok: UpdateFeaturesResponse = call(
        &broker,
        &UpdateFeaturesRequest::default().with_feature_updates(vec![update("group.version", 1)]),
        2,
    );
    assert_eq!(ok.error_code, 0);
}

#[test]
fn alter_replica_log_dirs_knows_the_one_log_dir() {
    let broker = Broker::start();
    create_topic(&broker, "dirs", 1);
    let described: DescribeLogDirsResponse = call(
        &broker,
        &DescribeLogDirsRequest::default().with_topics(None),
        4,
    );
    let log_dir = described.results[0].log_dir.to_string();
    let request = |path: &str| {
        AlterReplicaLogDirsRequest::default().with_dirs(vec![
            alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                .with_path(sb(path))
                .with_topics(vec![
                    alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                        .with_name(TopicName(sb("dirs")))
                        .with_partitions(vec![0, 9]),
                ]),
        ])
    };
    let answer: AlterReplicaLogDirsResponse = call(&broker, &request(&log_dir), 2);
    let codes: Vec<i16> = answer.results[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );
    let elsewhere: AlterReplicaLogDirsResponse = call(&broker, &request("/var/elsewhere"), 1);
    let codes: Vec<i16> = elsewhere.results[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    let not_found = ResponseError::LogDirNotFound.code();
    assert_eq!(codes, vec![not_found, not_found]);
}

#[test]
fn describe_groups_v6_reports_an_unknown_group_as_not_found() {
    let broker = Broker::start();
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("nobody"))]);
    let v6: DescribeGroupsResponse = call(&broker, &request, 6);
    assert_eq!(
        v6.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    assert_eq!(
        v6.groups[0]
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .as_deref(),
        Some("Group nobody not found.")
    );
    let v5: DescribeGroupsResponse = call(&broker, &request, 5);
    assert_eq!(v5.groups[0].error_code, 0);
    assert_eq!(v5.groups[0].group_state.as_str(), "Dead");
}
