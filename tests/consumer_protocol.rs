//! KIP-848 over the raw protocol: ConsumerGroupHeartbeat join / reconcile / leave with the
//! broker's assignor, ConsumerGroupDescribe, and the protocol's error codes. Frames are built
//! with kafka-protocol's structs (the crate's client does not speak these APIs).

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice::client::{Client, NewTopic};
use std::collections::BTreeMap;
use support::{Broker, wire};

const HEARTBEAT_VERSION: i16 = 1;
const GROUP: &str = "kip848-raw";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Client id in this test's request headers.
const CLIENT_ID: &str = "kip848-test";

/// Sends one request at `version` on a new connection and decodes its response.
fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), CLIENT_ID, request, version)
}

/// One heartbeat; `owned` is what the member reports it owns (None = unchanged).
fn heartbeat(
    broker: &Broker,
    member: &str,
    epoch: i32,
    subscribe: Option<&str>,
    owned: Option<(uuid::Uuid, Vec<i32>)>,
) -> ConsumerGroupHeartbeatResponse {
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(subscribe.map(|t| vec![TopicName(sb(t))]))
        .with_topic_partitions(owned.map(|(id, partitions)| {
            vec![
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_partitions(partitions),
            ]
        }));
    call(broker, &request, HEARTBEAT_VERSION)
}

fn assigned(response: &ConsumerGroupHeartbeatResponse) -> Option<Vec<i32>> {
    response.assignment.as_ref().map(|a| {
        let mut all: Vec<i32> = a
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        all.sort();
        all
    })
}

fn describe(broker: &Broker, group: &str) -> ConsumerGroupDescribeResponse {
    call(
        broker,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]),
        0,
    )
}

#[test]
fn members_join_reconcile_through_revocation_describe_and_leave() {
    let broker = Broker::start();
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: "t848".to_string(),
            partitions: 4,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic");
    let topic_id = {
        let d = describe(&broker, "nobody");
        assert_eq!(
            d.groups[0].error_code,
            ResponseError::GroupIdNotFound.code(),
            "describing an unknown group"
        );
        // The topic id comes back in assignments; learn it from the first one.
        let a = heartbeat(&broker, "member-a", 0, Some("t848"), None);
        assert_eq!(a.error_code, 0, "{a:?}");
        assert_eq!(
            a.member_id.as_ref().map(|s| s.to_string()).as_deref(),
            Some("member-a")
        );
        assert_eq!(a.member_epoch, 1, "first group epoch");
        assert_eq!(
            assigned(&a),
            Some(vec![0, 1, 2, 3]),
            "a lone member gets all"
        );
        assert!(a.heartbeat_interval_ms > 0);
        a.assignment.expect("assignment").topic_partitions[0].topic_id
    };

    // B joins: the group moves to epoch 2, but B gets nothing A still owns.
    let b = heartbeat(&broker, "member-b", 0, Some("t848"), None);
    assert_eq!(b.error_code, 0);
    assert_eq!(b.member_epoch, 2);
    assert_eq!(assigned(&b), Some(vec![]), "nothing free yet");

    // A is told to give up half and keeps its epoch until it has.
    let a = heartbeat(
        &broker,
        "member-a",
        1,
        None,
        Some((topic_id, vec![0, 1, 2, 3])),
    );
    assert_eq!(a.error_code, 0);
    assert_eq!(a.member_epoch, 1, "epoch held while revoking");
    let kept = assigned(&a).expect("a new, smaller assignment");
    assert_eq!(kept.len(), 2, "{kept:?}");

    // B still waits: A has not confirmed yet.
    let b = heartbeat(&broker, "member-b", 2, None, Some((topic_id, vec![])));
    assert_eq!(assigned(&b), None, "unchanged while A still owns them");

    // A confirms; it advances to epoch 2; then B gets the released partitions.
    let a = heartbeat(&broker, "member-a", 1, None, Some((topic_id, kept.clone())));
    assert_eq!(a.member_epoch, 2);
    let b = heartbeat(&broker, "member-b", 2, None, Some((topic_id, vec![])));
    let got = assigned(&b).expect("b's partitions");
    let mut all = [kept.clone(), got.clone()].concat();
    all.sort();
    assert_eq!(
        all,
        vec![0, 1, 2, 3],
        "disjoint and complete: {kept:?} + {got:?}"
    );

    let d = describe(&broker, GROUP);
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    let by_member: BTreeMap<String, (i32, usize)> = g
        .members
        .iter()
        .map(|m| {
            let n = m
                .assignment
                .topic_partitions
                .iter()
                .map(|t| t.partitions.len())
                .sum();
            (m.member_id.to_string(), (m.member_epoch, n))
        })
        .collect();
    assert_eq!(
        by_member,
        BTreeMap::from([
            ("member-a".to_string(), (2, 2)),
            ("member-b".to_string(), (2, 2))
        ])
    );

    // Errors: unknown member, fenced epoch.
    let unknown = heartbeat(&broker, "member-z", 5, None, None);
    assert_eq!(unknown.error_code, ResponseError::UnknownMemberId.code());
    let fenced = heartbeat(&broker, "member-a", 7, None, None);
    assert_eq!(fenced.error_code, ResponseError::FencedMemberEpoch.code());

    // A leaves; B takes everything at the next epoch.
    let left = heartbeat(&broker, "member-a", -1, None, None);
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let b = heartbeat(&broker, "member-b", 2, None, Some((topic_id, got)));
    assert_eq!(b.member_epoch, 3);
    assert_eq!(assigned(&b), Some(vec![0, 1, 2, 3]));
}
