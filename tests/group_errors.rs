//! Group coordinator error codes over the raw protocol (`sluice::client::Connection` and the
//! kafka-protocol structs): FindCoordinator (batched v4 form, group and transaction keys),
//! UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, NON_EMPTY_GROUP and
//! GROUP_ID_NOT_FOUND on DeleteGroups. NOT_COORDINATOR cannot happen on a single node (every
//! key's coordinator is this broker), which the FindCoordinator test pins down instead.

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DeleteGroupsRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, MetadataRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice::client::{Connection, ConnectionConfig};
use support::Broker;

const SESSION_TIMEOUT_MS: i32 = 6_000;
const REBALANCE_TIMEOUT_MS: i32 = 10_000;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A broker whose new groups start without the 3 s initial rebalance delay.
fn broker() -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("sluice.toml");
    std::fs::write(&conf, "group_initial_rebalance_delay_ms = 0\n").expect("write config");
    let conf = conf.display().to_string();
    (Broker::start_with(&["--config", &conf]), dir)
}

fn connect(broker: &Broker) -> Connection {
    Connection::connect(&broker.bootstrap(), &ConnectionConfig::default()).expect("connect")
}

fn subscription(topic: &str) -> Bytes {
    let sub = ConsumerProtocolSubscription::default().with_topics(vec![sb(topic)]);
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).expect("encode subscription");
    buf.freeze()
}

fn join_request(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_member_id(sb(member_id))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(subscription("t")),
        ])
}

/// Joins (answering MEMBER_ID_REQUIRED) and syncs as the only member: (member id, generation).
fn join_and_sync(conn: &mut Connection, group: &str) -> (String, i32) {
    let first = conn.call(&join_request(group, "")).expect("first join");
    assert_eq!(
        first.error_code,
        ResponseError::MemberIdRequired.code(),
        "a first JoinGroup (v4+) without a member id gets MEMBER_ID_REQUIRED"
    );
    let member_id = first.member_id.to_string();
    assert!(!member_id.is_empty(), "MEMBER_ID_REQUIRED carries the id");
    let joined: JoinGroupResponse = conn.call(&join_request(group, &member_id)).expect("join");
    assert_eq!(joined.error_code, 0, "second join succeeds");
    assert_eq!(
        joined.leader.to_string(),
        member_id,
        "the only member leads"
    );
    let generation = joined.generation_id;
    let synced = conn
        .call(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_generation_id(generation)
                .with_member_id(sb(&member_id))
                .with_protocol_type(Some(sb("consumer")))
                .with_protocol_name(Some(sb("range")))
                .with_assignments(vec![
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(&member_id))
                        .with_assignment(Bytes::new()),
                ]),
        )
        .expect("sync");
    assert_eq!(synced.error_code, 0, "leader's SyncGroup succeeds");
    (member_id, generation)
}

fn heartbeat(conn: &mut Connection, group: &str, member_id: &str, generation: i32) -> i16 {
    conn.call(
        &HeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(member_id))
            .with_generation_id(generation),
    )
    .expect("heartbeat")
    .error_code
}

fn delete_group(conn: &mut Connection, group: &str) -> i16 {
    let response = conn
        .call(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]))
        .expect("delete groups");
    assert_eq!(response.results.len(), 1, "one result per group asked");
    assert_eq!(response.results[0].group_id.0.to_string(), group);
    response.results[0].error_code
}

#[test]
fn find_coordinator_batched_answers_this_broker_for_group_and_transaction_keys() {
    let (broker, _conf) = broker();
    let mut conn = connect(&broker);
    let metadata = conn
        .call(&MetadataRequest::default().with_topics(Some(Vec::new())))
        .expect("metadata");
    assert_eq!(metadata.brokers.len(), 1, "one broker");
    let node = metadata.brokers[0].node_id;
    assert!(
        conn.version_of::<FindCoordinatorRequest>()
            .expect("version")
            >= 4,
        "the batched form (v4+) is negotiated"
    );
    for key_type in [0i8, 1] {
        let keys = ["alpha", "beta", "gamma-with-a-longer-name"];
        let response = conn
            .call(
                &FindCoordinatorRequest::default()
                    .with_key_type(key_type)
                    .with_coordinator_keys(keys.iter().map(|k| sb(k)).collect()),
            )
            .expect("find coordinator");
        assert_eq!(
            response.coordinators.len(),
            keys.len(),
            "one answer per key"
        );
        for (c, key) in response.coordinators.iter().zip(keys) {
            assert_eq!(c.key.to_string(), key, "answers in request order");
            assert_eq!(c.error_code, 0, "key type {key_type} key {key}");
            assert_eq!(c.node_id, node, "this broker coordinates {key}");
            assert_eq!(c.host.to_string(), "127.0.0.1");
            assert_eq!(c.port, i32::from(broker.port));
        }
    }
}

#[test]
fn unknown_member_and_illegal_generation() {
    let (broker, _conf) = broker();
    let mut conn = connect(&broker);
    let group = "errors-member";
    let (member_id, generation) = join_and_sync(&mut conn, group);
    assert_eq!(heartbeat(&mut conn, group, &member_id, generation), 0);
    assert_eq!(
        heartbeat(&mut conn, group, "not-a-member", generation),
        ResponseError::UnknownMemberId.code(),
        "heartbeat from an unknown member id"
    );
    assert_eq!(
        heartbeat(&mut conn, group, &member_id, generation + 1),
        ResponseError::IllegalGeneration.code(),
        "heartbeat with a generation the group is not in"
    );
    let sync = conn
        .call(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_generation_id(generation - 1)
                .with_member_id(sb(&member_id)),
        )
        .expect("sync");
    assert_eq!(
        sync.error_code,
        ResponseError::IllegalGeneration.code(),
        "SyncGroup with an old generation"
    );
    let join = conn
        .call(&join_request(group, "made-up-member"))
        .expect("join");
    assert_eq!(
        join.error_code,
        ResponseError::UnknownMemberId.code(),
        "JoinGroup with a member id the group never issued"
    );
}

#[test]
fn rebalance_in_progress_when_a_new_member_joins() {
    let (broker, _conf) = broker();
    let mut a = connect(&broker);
    let group = "errors-rebalance";
    let (member_a, generation) = join_and_sync(&mut a, group);
    // Member B's JoinGroup waits for A to rejoin, so it goes on its own connection and
    // is never read: the group is in PreparingRebalance while it waits.
    let mut b = connect(&broker);
    let first = b.call(&join_request(group, "")).expect("b first join");
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    b.send(&join_request(group, &first.member_id.to_string()))
        .expect("b join");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let code = loop {
        let code = heartbeat(&mut a, group, &member_a, generation);
        if code != 0 || std::time::Instant::now() > deadline {
            break code;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        code,
        ResponseError::RebalanceInProgress.code(),
        "the stable member's heartbeat tells it to rejoin"
    );
    let mut client = sluice::client::Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&sluice::client::NewTopic {
            name: "t".to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic t");
    let coordinator =
        sluice::client::group::find_coordinator(&mut client, group).expect("coordinator");
    // Kafka accepts commits from the current generation while the group prepares a
    // rebalance (consumers commit in their revoke callback)...
    sluice::client::group::commit_offsets(
        &mut client,
        coordinator,
        group,
        generation,
        &member_a,
        &[("t".to_string(), 0, 1)],
    )
    .expect("commit while preparing the rebalance is accepted");
    // ...but not between the join and the leader's SyncGroup (CompletingRebalance).
    let rejoined = a.call(&join_request(group, &member_a)).expect("a rejoins");
    assert_eq!(
        rejoined.error_code, 0,
        "a's rejoin completes the join phase"
    );
    assert!(rejoined.generation_id > generation, "a new generation");
    let (_, b_joined) = b.receive::<JoinGroupRequest>().expect("b's join answer");
    assert_eq!(b_joined.error_code, 0, "b joined");
    assert_eq!(b_joined.generation_id, rejoined.generation_id);
    let commit_code = sluice::client::group::commit_offsets(
        &mut client,
        coordinator,
        group,
        rejoined.generation_id,
        &member_a,
        &[("t".to_string(), 0, 2)],
    )
    .err()
    .and_then(|e| e.kafka_code());
    assert_eq!(
        commit_code,
        Some(ResponseError::RebalanceInProgress.code()),
        "OffsetCommit before the new assignment is synced"
    );
}

#[test]
fn delete_groups_non_empty_then_deleted_then_not_found() {
    let (broker, _conf) = broker();
    let mut conn = connect(&broker);
    let group = "errors-delete";
    let (member_id, _generation) = join_and_sync(&mut conn, group);
    assert_eq!(
        delete_group(&mut conn, group),
        ResponseError::NonEmptyGroup.code(),
        "a group with a member is not deleted"
    );
    let left = conn
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(sb(&member_id)),
                ]),
        )
        .expect("leave");
    assert_eq!(left.error_code, 0, "leave");
    assert_eq!(
        delete_group(&mut conn, group),
        0,
        "an empty group is deleted"
    );
    assert_eq!(
        delete_group(&mut conn, group),
        ResponseError::GroupIdNotFound.code(),
        "a deleted group is gone"
    );
}
