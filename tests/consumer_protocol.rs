//! KIP-848 over the raw protocol: ConsumerGroupHeartbeat join / reconcile / leave with the
//! broker's assignor, ConsumerGroupDescribe, and the protocol's error codes. Frames are built
//! with kafka-protocol's structs (the crate's client does not speak these APIs).

mod support;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice::client::{Client, NewTopic};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::Broker;

const HEARTBEAT_VERSION: i16 = 1;
const GROUP: &str = "kip848-raw";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<Req: Encodable, Resp: Decodable>(
    broker: &Broker,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let mut stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(3)
        .with_client_id(Some(sb("kip848-test")))
        .encode(&mut body, api.request_header_version(version))
        .expect("encode header");
    request.encode(&mut body, version).expect("encode body");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).expect("send");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("response length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).expect("response body");
    let mut buf = Bytes::from(buf);
    ResponseHeader::decode(&mut buf, api.response_header_version(version)).expect("header");
    let response = Resp::decode(&mut buf, version).expect("decode response");
    assert_eq!(buf.remaining(), 0, "{api:?}: trailing bytes");
    response
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
    call(
        broker,
        ApiKey::ConsumerGroupHeartbeat,
        HEARTBEAT_VERSION,
        &request,
    )
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
        ApiKey::ConsumerGroupDescribe,
        0,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]),
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
