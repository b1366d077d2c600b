//! Group coordinator scenarios, one behaviour per test, driven by a fake clock (`Instant`s
//! built from a fixed origin) and, for offsets, a real data directory.
//!
//! This file is the shared set-up (`Harness` and its request helpers); the scenarios are
//! in `classic`, `offsets` and `admin`, which see everything here through `use super::*`.

mod admin;
mod classic;
mod offsets;
mod resign;
mod share_takeover;
mod takeover;
mod txn_cluster;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    BrokerId, DescribeGroupsResponse, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::wire::sb;
use super::*;
use crate::config::BrokerConfig;

const SESSION_MS: i32 = 10_000;

struct Harness {
    c: GroupCoordinator,
    t0: Instant,
    dir: tempfile::TempDir,
    config: BrokerConfig,
}

fn config(initial_delay_ms: u64) -> BrokerConfig {
    BrokerConfig {
        group_initial_rebalance_delay_ms: initial_delay_ms,
        ..BrokerConfig::default()
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("compio runtime")
        .block_on(f)
}

fn ready<T>(p: Pending<T>) -> T {
    match p {
        Pending::Ready(t) => t,
        Pending::Waiting(mut rx) => rx
            .try_recv()
            .expect("request was dropped")
            .expect("answer should be ready now"),
    }
}

fn waiting<T>(p: Pending<T>) -> oneshot::Receiver<T> {
    match p {
        Pending::Waiting(rx) => rx,
        Pending::Ready(_) => panic!("expected the request to wait"),
    }
}

fn answered<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
    rx.try_recv().expect("request was dropped")
}

impl Harness {
    fn new(initial_delay_ms: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(initial_delay_ms);
        let c = GroupCoordinator::open(dir.path(), 0, 1, &config).expect("open");
        Harness {
            c,
            t0: Instant::now(),
            dir,
            config,
        }
    }

    fn reopen(&mut self) {
        self.c = GroupCoordinator::open(self.dir.path(), 0, 1, &self.config).expect("reopen");
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    #[allow(clippy::too_many_arguments)]
    fn join_v(
        &self,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        metadata: &[u8],
        rebalance_ms: i32,
        version: i16,
        at_ms: u64,
    ) -> Pending<JoinGroupResponse> {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_session_timeout_ms(SESSION_MS)
            .with_rebalance_timeout_ms(rebalance_ms)
            .with_member_id(sb(member_id))
            .with_group_instance_id(instance.map(sb))
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(sb("range"))
                    .with_metadata(Bytes::copy_from_slice(metadata)),
            ]);
        let client = ClientInfo {
            client_id: "app".into(),
            client_host: "/127.0.0.1".into(),
        };
        self.c.join_group(request, &client, version, self.at(at_ms))
    }

    fn join(
        &self,
        group: &str,
        member_id: &str,
        instance: Option<&str>,
        at_ms: u64,
    ) -> Pending<JoinGroupResponse> {
        self.join_v(group, member_id, instance, b"topics:t", 30_000, 9, at_ms)
    }

    /// A v9 dynamic member's first join: MEMBER_ID_REQUIRED, then the real join.
    fn join_new(&self, group: &str, at_ms: u64) -> (String, Pending<JoinGroupResponse>) {
        let first = ready(self.join(group, "", None, at_ms));
        assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
        let id = first.member_id.to_string();
        let second = self.join(group, &id, None, at_ms);
        (id, second)
    }

    fn sync(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
        at_ms: u64,
    ) -> Pending<SyncGroupResponse> {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(m))
                            .with_assignment(Bytes::copy_from_slice(a))
                    })
                    .collect(),
            );
        // As `GroupCoordinator::sync`: the SyncGroup that completes a generation stores it
        // (cluster mode) before the answers go; the tests' replicators commit at once.
        let was_held = self.c.sync_held(group);
        let answer = self.c.sync_group(request, 5, self.at(at_ms));
        if !was_held && self.c.sync_held(group) {
            let stored = self.c.sync_stored(group, self.at(at_ms));
            futures_util::FutureExt::now_or_never(stored).expect("stored at once");
        }
        answer
    }

    fn heartbeat(
        &self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        at_ms: u64,
    ) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb));
        self.c.heartbeat(request, self.at(at_ms)).error_code
    }

    fn commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
        at_ms: u64,
    ) -> Vec<i16> {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let p = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_metadata(Some(sb(&format!("m{offset}"))));
            match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(sb(member))
            .with_topics(topics);
        let response = run(self.c.offset_commit(request, self.at(at_ms)));
        response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    /// Every committed offset of a group as (topic, partition, offset, metadata).
    fn committed(&self, group: &str) -> Vec<(String, i32, i64, String)> {
        let g = self.c.fetch_offsets(group, None);
        g.topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                    )
                })
            })
            .collect()
    }
}

/// Brings `n` dynamic members into a Stable group inside the initial delay; returns their
/// ids in join order and the generation.
fn stable_group(h: &Harness, group: &str, n: usize) -> (Vec<String>, i32) {
    let mut ids = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..n {
        let (id, p) = h.join_new(group, 0);
        ids.push(id);
        rxs.push(waiting(p));
    }
    // The delay is extended once while members keep arriving (rebalance timeout 30 s).
    h.c.tick(h.at(3_000));
    h.c.tick(h.at(6_000));
    let responses: Vec<JoinGroupResponse> = rxs
        .iter_mut()
        .map(|rx| answered(rx).expect("join complete"))
        .collect();
    let generation = responses[0].generation_id;
    let leader = responses[0].leader.to_string();
    let assignments: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("part-{i}").into_bytes()))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_slice()))
        .collect();
    ready(h.sync(group, &leader, generation, &borrowed, 6_000));
    for id in &ids {
        if *id != leader {
            ready(h.sync(group, id, generation, &[], 6_000));
        }
    }
    assert_eq!(
        h.c.group_state(group),
        Some((GroupState::Stable, generation))
    );
    (ids, generation)
}
