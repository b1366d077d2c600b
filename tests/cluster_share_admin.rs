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
    ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
    TopicName,
};
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, create_topic, find_coordinator, leaders};
use support::share::{acquired, alter_group, fetch_topics, sb};
use support::wire::{MemberConn, RawConn, call_once, encode_batch, plain_record, produce_request};

const RECORDS: i64 = 20;
const ACCEPT: i8 = 1;
/// Waits on a loaded 2-core box: not speed assertions.
const WAIT: Duration = Duration::from_secs(60);

/// A formed 3-node cluster, an RF=3 one-partition topic and a share group (earliest)
/// coordinated by a broker that does not lead the partition: (cluster, leader,
/// coordinator, group).
fn cluster_with_group_led_elsewhere(topic: &str) -> (LocalCluster, i32, i32, String) {
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    assert_eq!(create_topic(cluster.node(1), topic, 1, 3, WAIT), 0);
    cluster.wait_until_known_everywhere(topic, 1, WAIT);
    let leader = leaders(cluster.node(1), topic)[0];
    let (group, coordinator) = (0..1000)
        .map(|i| format!("{topic}-admin-{i}"))
        .find_map(|g| {
            let c = find_coordinator(cluster.node(leader), &g).ok()?;
            (c != leader).then_some((g, c))
        })
        .expect("a group another broker coordinates");
    let earliest = [("share.auto.offset.reset", "earliest")];
    assert_eq!(alter_group(cluster.node(leader), &group, &earliest), 0);
    (cluster, leader, coordinator, group)
}

/// A member: it heartbeats at the coordinator and fetches at the leader over one
/// connection (its share session lives there).
struct Member {
    group: String,
    id: String,
    topic_id: uuid::Uuid,
    session_epoch: i32,
    conn: MemberConn,
}

fn heartbeat(
    addr: &str,
    group: &str,
    member: &str,
    epoch: i32,
    topic: &str,
) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names((epoch == 0).then(|| vec![TopicName(sb(topic))]));
    call_once(addr, "share-admin-test", &request, 1)
}

impl Member {
    fn join(coordinator: &str, group: &str, id: &str, topic: &str) -> Member {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = heartbeat(coordinator, group, id, 0, topic);
            if r.error_code == 0
                && let Some(a) = &r.assignment
                && a.topic_partitions
                    .first()
                    .is_some_and(|t| t.partitions == [0])
            {
                return Member {
                    group: group.to_string(),
                    id: id.to_string(),
                    topic_id: a.topic_partitions[0].topic_id,
                    session_epoch: 0,
                    conn: MemberConn::default(),
                };
            }
            assert!(Instant::now() < deadline, "{id} never joined: {r:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn fetch(&mut self, leader: &str, acks: &[(i64, i64, i8)]) -> ShareFetchResponse {
        let request = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(500)
            .with_batch_size(500)
            .with_topics(fetch_topics(self.topic_id, acks, 1 << 20));
        let response: ShareFetchResponse = self.conn.call(leader, &request, 1);
        if response.error_code == 0 {
            self.session_epoch += 1;
        }
        response
    }

    /// Acquired ranges of the first answer that has any, within `WAIT` (empty if none).
    fn fetch_until_acquired(&mut self, leader: &str) -> Vec<(i64, i64, i16)> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let got = acquired(&self.fetch(leader, &[]));
            if !got.is_empty() {
                return got;
            }
        }
        Vec::new()
    }
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
    let (cluster, leader, coordinator, group) = cluster_with_group_led_elsewhere(topic);
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

    let mut a = Member::join(&at_coordinator, &group, "member-a", topic);
    assert_eq!(
        a.fetch_until_acquired(&at_leader),
        vec![(0, RECORDS - 1, 1)]
    );
    let accepted = a.fetch(&at_leader, &[(0, RECORDS - 1, ACCEPT)]);
    assert_eq!(accepted.error_code, 0, "{accepted:?}");
    let partition = &accepted.responses[0].partitions[0];
    assert_eq!(partition.acknowledge_error_code, 0, "{accepted:?}");

    // Kafka: only an Empty group's share state may be changed.
    assert_eq!(
        admin(op, &at_coordinator, &group, topic),
        ResponseError::NonEmptyGroup.code(),
        "{op:?} with a member in the group"
    );
    let left = heartbeat(&at_coordinator, &group, "member-a", -1, topic);
    assert_eq!(left.error_code, 0, "{left:?}");
    a.conn = MemberConn::default();

    assert_eq!(admin(op, &at_coordinator, &group, topic), 0, "{op:?}");
    let mut b = Member::join(&at_coordinator, &group, "member-b", topic);
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
