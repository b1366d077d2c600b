//! Nullable fields on the wire, second part (issue 15 item 3): the classic group calls
//! (Heartbeat, LeaveGroup, DeleteGroups, OffsetDelete), InitProducerId and the admin APIs
//! (AlterConfigs, partition reassignments, DescribeTopicPartitions, DescribeQuorum,
//! UpdateFeatures, the log-dir calls), each at the newest version Sluice serves, decoded
//! with kafka-protocol so `None` is a null on the wire. Where a response has no nullable
//! field, the check is that it decodes whole at that version with Kafka's values.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig as LegacyConfig,
};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

const CLIENT_ID: &str = "nullable-fields-admin-test";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(wire::topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    let created: CreateTopicsResponse = call(broker, &request, 7);
    assert_eq!(created.topics[0].error_code, 0, "create {name}");
}

fn join(broker: &Broker, group: &str, member_id: &str) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(sb(member_id))
        .with_group_instance_id(None)
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(Bytes::new()),
        ]);
    call(broker, &request, 9)
}

#[test]
fn classic_group_calls_decode_at_their_newest_versions_with_kafkas_nulls() {
    // No 3 s initial rebalance delay for a new group.
    let broker = Broker::start_with_config("group_initial_rebalance_delay_ms = 0\n", &[]);
    create_topic(&broker, "nullable-grp", 1);
    let group = "nullable-classic";
    let first = join(&broker, group, "");
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member = first.member_id.to_string();
    let joined = join(&broker, group, &member);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(sb(&member))
        .with_group_instance_id(None)
        .with_protocol_type(Some(sb("consumer")))
        .with_protocol_name(Some(sb("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(sb(&member))
                .with_assignment(Bytes::new()),
        ]);
    let synced: SyncGroupResponse = call(&broker, &sync, 5);
    assert_eq!(synced.error_code, 0, "{synced:?}");

    // Heartbeat v4: no nullable field; the member's heartbeat is accepted.
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(sb(&member))
        .with_group_instance_id(None);
    let beat: HeartbeatResponse = call(&broker, &heartbeat, 4);
    assert_eq!(beat.error_code, 0, "{beat:?}");

    // LeaveGroup v5: a dynamic member's group_instance_id is echoed as null.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_members(vec![
            MemberIdentity::default()
                .with_member_id(sb(&member))
                .with_group_instance_id(None)
                .with_reason(Some(sb("test done"))),
        ]);
    let left: LeaveGroupResponse = call(&broker, &leave, 5);
    assert_eq!(left.error_code, 0, "{left:?}");
    let m = &left.members[0];
    assert_eq!(
        (m.error_code, m.member_id.as_str(), &m.group_instance_id),
        (0, member.as_str(), &None),
        "{m:?}"
    );

    // OffsetDelete v0: the empty group answers per partition; an unknown group at the top.
    let offset_delete = |g: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(sb(g)))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(wire::topic_name("nullable-grp"))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0),
                    ]),
            ])
    };
    let deleted: OffsetDeleteResponse = call(&broker, &offset_delete(group), 0);
    assert_eq!(deleted.error_code, 0, "{deleted:?}");
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0, "{deleted:?}");
    let unknown: OffsetDeleteResponse = call(&broker, &offset_delete("nullable-nobody"), 0);
    assert_eq!(unknown.error_code, ResponseError::GroupIdNotFound.code());

    // DeleteGroups v2: no nullable field; the empty group goes, an unknown one is named.
    let delete = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(sb(group)), GroupId(sb("nullable-nobody"))]);
    let gone: DeleteGroupsResponse = call(&broker, &delete, 2);
    let codes: Vec<(String, i16)> = gone
        .results
        .iter()
        .map(|r| (r.group_id.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (group.to_string(), 0),
            (
                "nullable-nobody".to_string(),
                ResponseError::GroupIdNotFound.code()
            )
        ]
    );

    // InitProducerId v5 without a transactional id (null): an idempotent producer's id.
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let producer: InitProducerIdResponse = call(&broker, &init, 5);
    assert_eq!(producer.error_code, 0, "{producer:?}");
    assert!(producer.producer_id.0 >= 0, "{producer:?}");
    assert_eq!(producer.producer_epoch, 0, "{producer:?}");
}

#[test]
fn admin_calls_send_null_where_kafka_does() {
    let broker = Broker::start();
    create_topic(&broker, "nullable-adm", 3);

    // AlterConfigs v2: null on success, the reason on an unknown topic.
    let alter = |topic: &str| {
        AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb(topic))
                .with_configs(vec![
                    LegacyConfig::default()
                        .with_name(sb("retention.ms"))
                        .with_value(Some(sb("3600000"))),
                ]),
        ])
    };
    let ok: AlterConfigsResponse = call(&broker, &alter("nullable-adm"), 2);
    let r = &ok.responses[0];
    assert_eq!((r.error_code, &r.error_message), (0, &None), "{r:?}");
    let missing: AlterConfigsResponse = call(&broker, &alter("nullable-none"), 2);
    let r = &missing.responses[0];
    assert_eq!(r.error_code, ResponseError::UnknownTopicOrPartition.code());
    assert!(
        r.error_message.as_ref().is_some_and(|m| !m.is_empty()),
        "{r:?}"
    );

    // AlterPartitionReassignments v0: null at the top and for an accepted partition.
    let reassign = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(wire::topic_name("nullable-adm"))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(vec![BrokerId(0)])),
                    ReassignablePartition::default()
                        .with_partition_index(1)
                        .with_replicas(Some(vec![BrokerId(10)])),
                ]),
        ]);
    let moved: AlterPartitionReassignmentsResponse = call(&broker, &reassign, 0);
    assert_eq!((moved.error_code, &moved.error_message), (0, &None));
    let parts = &moved.responses[0].partitions;
    assert_eq!((parts[0].error_code, &parts[0].error_message), (0, &None));
    assert_eq!(
        parts[1].error_code,
        ResponseError::InvalidReplicaAssignment.code()
    );
    assert!(parts[1].error_message.is_some(), "{:?}", parts[1]);

    // ListPartitionReassignments v0: null error message.
    let listed: ListPartitionReassignmentsResponse = call(
        &broker,
        &ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(None),
        0,
    );
    assert_eq!((listed.error_code, &listed.error_message), (0, &None));

    // DescribeTopicPartitions v0: the topic's name is set, ELR lists are empty (not
    // null, as Kafka's KRaft cache sends them) and the cursor is null when all fit.
    let describe = |limit: i32| {
        DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(wire::topic_name("nullable-adm")),
            ])
            .with_response_partition_limit(limit)
            .with_cursor(None)
    };
    let all: DescribeTopicPartitionsResponse = call(&broker, &describe(100), 0);
    assert_eq!(all.next_cursor, None, "{all:?}");
    let t = &all.topics[0];
    assert_eq!(t.name.as_ref().map(|n| n.as_str()), Some("nullable-adm"));
    assert_eq!(t.partitions.len(), 3);
    for p in &t.partitions {
        assert_eq!(
            (&p.eligible_leader_replicas, &p.last_known_elr),
            (&Some(vec![]), &Some(vec![])),
            "{p:?}"
        );
    }
    let first_page: DescribeTopicPartitionsResponse = call(&broker, &describe(2), 0);
    let cursor = first_page
        .next_cursor
        .expect("a cursor when partitions are left");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("nullable-adm", 2)
    );

    // DescribeQuorum v2: null messages at the top and on the partition.
    let quorum = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(wire::topic_name("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let q: DescribeQuorumResponse = call(&broker, &quorum, 2);
    assert_eq!((q.error_code, &q.error_message), (0, &None));
    let qp = &q.topics[0].partitions[0];
    assert_eq!((qp.error_code, &qp.error_message), (0, &None), "{qp:?}");

    // UpdateFeatures v2: null on success; a refusal carries its reason at the top.
    let update = |level: i16| {
        UpdateFeaturesRequest::default()
            .with_timeout_ms(5_000)
            .with_validate_only(false)
            .with_feature_updates(vec![
                FeatureUpdateKey::default()
                    .with_feature(sb("group.version"))
                    .with_max_version_level(level)
                    .with_upgrade_type(1),
            ])
    };
    let same: UpdateFeaturesResponse = call(&broker, &update(1), 2);
    assert_eq!((same.error_code, &same.error_message), (0, &None));
    let other: UpdateFeaturesResponse = call(&broker, &update(9), 2);
    assert_eq!(other.error_code, ResponseError::InvalidUpdateVersion.code());
    assert!(other.error_message.is_some(), "{other:?}");

    // DescribeLogDirs v4 and AlterReplicaLogDirs v2: no nullable field; they decode whole.
    let dirs: DescribeLogDirsResponse = call(
        &broker,
        &DescribeLogDirsRequest::default().with_topics(None),
        4,
    );
    assert_eq!(dirs.error_code, 0);
    let dir = &dirs.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(!dir.log_dir.is_empty());
    let alter_dirs = AlterReplicaLogDirsRequest::default().with_dirs(vec![
        AlterReplicaLogDir::default()
            .with_path(dir.log_dir.clone())
            .with_topics(vec![
                AlterReplicaLogDirTopic::default()
                    .with_name(wire::topic_name("nullable-adm"))
                    .with_partitions(vec![0]),
            ]),
    ]);
    let altered: AlterReplicaLogDirsResponse = call(&broker, &alter_dirs, 2);
    assert_eq!(altered.results[0].partitions[0].error_code, 0);
}
