//! Share group membership: join, epochs, the simple assignor, leave and session expiry.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignor::spread;
use super::sessions::SessionUpdate;
use super::{ShareGroup, ShareHeartbeat, ShareTimeouts};
use crate::group::consumer::TopicsView;

fn topics() -> TopicsView {
    let mut t = HashMap::new();
    t.insert("one".to_string(), (Uuid::from_u128(1), 1));
    t.insert("three".to_string(), (Uuid::from_u128(3), 3));
    t
}

fn beat<'a>(member: &'a str, epoch: i32, subscribe: Option<&[&str]>) -> ShareHeartbeat<'a> {
    ShareHeartbeat {
        member_id: member,
        member_epoch: epoch,
        rack_id: None,
        subscribed_topic_names: subscribe.map(|s| s.iter().map(|t| t.to_string()).collect()),
        client_id: "c",
        client_host: "",
    }
}

fn partitions_of(response: &kafka_protocol::messages::ShareGroupHeartbeatResponse) -> Vec<i32> {
    let a = response.assignment.as_ref().expect("assignment sent");
    a.topic_partitions
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect()
}

#[test]
fn every_member_of_a_one_partition_topic_gets_that_partition() {
    let (mut g, t, now) = (ShareGroup::default(), topics(), Instant::now());
    let timeouts = ShareTimeouts::default();
    for m in ["m1", "m2", "m3"] {
        let r = g.heartbeat(beat(m, 0, Some(&["one"])), &t, timeouts, now);
        assert_eq!(r.error_code, 0);
        assert_eq!(partitions_of(&r), vec![0]);
    }
    assert_eq!(g.members.len(), 3);
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn each_joining_member_bumps_the_group_epoch_once() {
    let (mut g, t, now) = (ShareGroup::default(), topics(), Instant::now());
    let timeouts = ShareTimeouts::default();
    let first = g.heartbeat(beat("m1", 0, Some(&["one"])), &t, timeouts, now);
    assert_eq!((first.error_code, first.member_epoch), (0, 1), "{first:?}");
    let second = g.heartbeat(beat("m2", 0, Some(&["one"])), &t, timeouts, now);
    assert_eq!(
        (second.error_code, second.member_epoch),
        (0, 2),
        "{second:?}"
    );
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
}

#[test]
fn epochs_fence_and_leave() {
    let (mut g, t, now) = (ShareGroup::default(), topics(), Instant::now());
    let timeouts = ShareTimeouts::default();
    let r = g.heartbeat(beat("m1", 0, Some(&["three"])), &t, timeouts, now);
    assert_eq!(partitions_of(&r), vec![0, 1, 2]);
    let epoch = r.member_epoch;
    assert!(epoch > 0);
    let r = g.heartbeat(beat("m1", epoch + 5, None), &t, timeouts, now);
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code());
    let r = g.heartbeat(beat("nobody", 3, None), &t, timeouts, now);
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    let r = g.heartbeat(beat("m1", epoch, None), &t, timeouts, now);
    assert_eq!(
        (r.error_code, r.assignment.is_none()),
        (0, true),
        "unchanged: no assignment"
    );
    let r = g.heartbeat(beat("m2", 0, None), &t, timeouts, now);
    assert_eq!(
        r.error_code,
        ResponseError::InvalidRequest.code(),
        "join needs topics"
    );
    let r = g.heartbeat(beat("m1", -1, None), &t, timeouts, now);
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn a_silent_member_is_removed_after_its_session_timeout() {
    let (mut g, t, now) = (ShareGroup::default(), topics(), Instant::now());
    let timeouts = ShareTimeouts {
        session_timeout_ms: 1_000,
        heartbeat_interval_ms: 100,
    };
    g.heartbeat(beat("m1", 0, Some(&["one"])), &t, timeouts, now);
    assert!(g.expire(now + Duration::from_millis(900)).is_empty());
    assert_eq!(
        g.expire(now + Duration::from_millis(1_000)),
        vec!["m1".to_string()]
    );
    assert!(!g.has_members());
}

#[test]
fn spread_shares_partitions_when_members_outnumber_them() {
    assert_eq!(spread(3, 1), vec![(0, 0), (1, 0), (2, 0)]);
    assert_eq!(spread(2, 3), vec![(0, 0), (1, 1), (0, 2)]);
    assert_eq!(spread(0, 3), vec![]);
}

#[test]
fn share_session_epochs() {
    let mut g = ShareGroup::default();
    let now = Instant::now();
    let p = [(Uuid::from_u128(1), 0)];
    let update = |epoch: i32, may_open: bool| SessionUpdate {
        any_member: false,
        connection: 1,
        member_id: "m1",
        epoch,
        add: &p,
        forget: &[],
        may_open,
        now,
    };
    assert_eq!(
        g.sessions.update(update(1, true)),
        Err(ResponseError::ShareSessionNotFound)
    );
    assert_eq!(
        g.sessions.update(update(0, false)),
        Err(ResponseError::InvalidShareSessionEpoch)
    );
    assert_eq!(g.sessions.update(update(0, true)), Ok(p.to_vec()));
    assert_eq!(
        g.sessions.update(update(2, true)),
        Err(ResponseError::InvalidShareSessionEpoch)
    );
    assert_eq!(g.sessions.update(update(1, true)), Ok(p.to_vec()));
    assert_eq!(g.sessions.update(update(2, true)), Ok(p.to_vec()));
    assert_eq!(g.sessions.update(update(-1, true)), Ok(p.to_vec()));
    assert_eq!(
        g.sessions.update(update(3, true)),
        Err(ResponseError::ShareSessionNotFound)
    );
}
