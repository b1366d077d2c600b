//! Share-group admin across partition leaders (issue 17, decision 0025): in a 3-node
//! cluster, a share group whose coordinator does NOT lead the topic's partition consumes
//! and accepts all 20 records at the leader; its member leaves (the group is Empty); then
//! AlterShareGroupOffsets to the earliest offset, DeleteShareGroupOffsets or DeleteGroups at
//! the coordinator. What Kafka gives: a new member receives records 0-19 again, each with
//! delivery count 1 (the group's state on the partition was restarted or dropped, and the
//! group's `share.auto.offset.reset` is earliest). Before the reset went through the
//! metadata log, the coordinator changed only the partitions it led itself: Alter answered
//! NOT_LEADER_OR_FOLLOWER, Delete too (or DeleteGroups 0 with the state left in place), and
//! the new member got nothing.
//! While a member is in the group, the same requests are refused with NON_EMPTY_GROUP.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, GroupId,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use support::share::sb;
use support::share_member::{ShareMember, cluster_with_group_led_elsewhere};
use support::wire::{MemberConn, RawConn, call_once, encode_batch, plain_record, produce_request};

const RECORDS: i64 = 20;
const ACCEPT: i8 = 1;

/// A member leaves its share group (ShareGroupHeartbeat with epoch -1).
fn leave(addr: &str, group: &str, member: &str) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(-1);
    call_once(addr, "share-admin-test", &request, 1)
}

/// The admin request under test, sent to the coordinator: its error code.
#[derive(Clone, Copy, Debug)]
enum Admin {
    AlterToEarliest,
    DeleteOffsets,
    DeleteGroup,
}

fn admin(op: Admin, coordinator: &str, group: &str, topic: &str) -> i16 {
    let id = "share-admin-test";
    match op {
        Admin::AlterToEarliest => {
            let request = AlterShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_topics(vec![
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(sb(topic)))
                        .with_partitions(vec![
                            AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(0)
                                .with_start_offset(0),
                        ]),
                ]);
            let r: AlterShareGroupOffsetsResponse = call_once(coordinator, id, &request, 0);
            match r.error_code {
                0 => r.responses[0].partitions[0].error_code,
                code => code,
            }
        }
        Admin::DeleteOffsets => {
            let request = DeleteShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_topics(vec![
                    DeleteShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(sb(topic))),
                ]);
            let r: DeleteShareGroupOffsetsResponse = call_once(coordinator, id, &request, 0);
            match r.error_code {
                0 => r.responses[0].error_code,
                code => code,
            }
        }
        Admin::DeleteGroup => {
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]);
            let r: DeleteGroupsResponse = call_once(coordinator, id, &request, 2);
            r.results[0].error_code
        }
    }
}

/// The scenario of the module doc for one admin request.
fn a_new_member_starts_again_after(op: Admin, topic: &str) {
    let (cluster, leader, coordinator, group) = cluster_with_group_led_elsewhere(topic, "admin");
    let at_leader = cluster.node(leader).bootstrap();
    let at_coordinator = cluster.node(coordinator).bootstrap();
    let batch: Vec<_> = (0..RECORDS)
        .map(|i| plain_record(i, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let produced = RawConn::connect(&at_leader).unwrap().call(
        &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    let mut a = ShareMember::join(&at_coordinator, &group, "member-a", topic);
    assert_eq!(
        a.fetch_until_acquired(&at_leader),
        vec![(0, RECORDS - 1, 1)]
    );
    let accepted = a
        .fetch(&at_leader, &[(0, RECORDS - 1, ACCEPT)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted.error_code, 0, "{accepted:?}");
    let partition = &accepted.responses[0].partitions[0];
    assert_eq!(partition.acknowledge_error_code, 0, "{accepted:?}");

    // Kafka: only an Empty group's share state may be changed.
    assert_eq!(
        admin(op, &at_coordinator, &group, topic),
        ResponseError::NonEmptyGroup.code(),
        "{op:?} with a member in the group"
    );
    let left = leave(&at_coordinator, &group, "member-a");
    assert_eq!(left.error_code, 0, "{left:?}");
    a.conn = MemberConn::default();

    assert_eq!(admin(op, &at_coordinator, &group, topic), 0, "{op:?}");
    let mut b = ShareMember::join(&at_coordinator, &group, "member-b", topic);
    assert_eq!(
        b.fetch_until_acquired(&at_leader),
        vec![(0, RECORDS - 1, 1)],
        "after {op:?}, the group starts again at offset 0 at the leader {leader}, \
         which does not coordinate it ({coordinator} does)"
    );
}

#[test]
fn alter_share_group_offsets_restarts_the_group_at_a_leader_that_does_not_coordinate_it() {
    a_new_member_starts_again_after(Admin::AlterToEarliest, "alter");
}

#[test]
fn delete_share_group_offsets_drops_the_state_at_a_leader_that_does_not_coordinate_it() {
    a_new_member_starts_again_after(Admin::DeleteOffsets, "delete-offsets");
}

#[test]
fn delete_groups_drops_a_share_groups_state_at_a_leader_that_does_not_coordinate_it() {
    a_new_member_starts_again_after(Admin::DeleteGroup, "delete-group");
}
