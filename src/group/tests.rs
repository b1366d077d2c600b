//! Group coordinator scenarios, one behaviour per test, driven by a fake clock (`Instant`s
//! built from a fixed origin) and, for offsets, a real data directory.

use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{DescribeGroupsResponse, ListGroupsResponse};
use kafka_protocol::protocol::Encodable;

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
        self.c.sync_group(request, 5, self.at(at_ms))
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

#[test]
fn first_dynamic_join_gets_member_id_required() {
    let h = Harness::new(0);
    let response = ready(h.join("g", "", None, 0));
    assert_eq!(response.error_code, ResponseError::MemberIdRequired.code());
    assert!(
        response.member_id.starts_with("app-"),
        "{:?}",
        response.member_id
    );
    // The id handed out is accepted on the next join, which completes at once (no delay).
    let joined = ready(h.join("g", &response.member_id, None, 10));
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, response.member_id);
    // Before v4 there is no MEMBER_ID_REQUIRED round trip.
    let old = ready(h.join_v("g-old", "", None, b"x", 30_000, 3, 0));
    assert_eq!(old.error_code, 0);
    assert!(!old.member_id.is_empty());
}

#[test]
fn initial_rebalance_delay_is_honoured() {
    let h = Harness::new(3_000);
    let (_, pending) = h.join_new("g", 0);
    let mut rx = waiting(pending);
    h.c.tick(h.at(2_999));
    assert!(
        answered(&mut rx).is_none(),
        "join completed before the initial delay"
    );
    assert_eq!(
        h.c.group_state("g"),
        Some((GroupState::PreparingRebalance, 0))
    );
    h.c.tick(h.at(3_000));
    let response = answered(&mut rx).expect("join completes at the delay");
    assert_eq!((response.error_code, response.generation_id), (0, 1));
    assert_eq!(response.members.len(), 1, "the sole member leads");
}

#[test]
fn three_members_split_and_rebalance_when_a_fourth_joins() {
    let h = Harness::new(3_000);
    let mut ids = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..3 {
        let (id, p) = h.join_new("g", 0);
        ids.push(id);
        rxs.push(waiting(p));
    }
    h.c.tick(h.at(3_000));
    assert!(
        answered(&mut rxs[0]).is_none(),
        "delay extends while members keep joining"
    );
    h.c.tick(h.at(6_000));
    let joins: Vec<JoinGroupResponse> = rxs.iter_mut().map(|rx| answered(rx).unwrap()).collect();
    let leader = joins[0].leader.to_string();
    assert_eq!(leader, ids[0], "the first member leads");
    for (j, id) in joins.iter().zip(&ids) {
        assert_eq!((j.error_code, j.generation_id), (0, 1));
        assert_eq!(j.member_id.as_str(), id.as_str());
        let expected_members = if *id == leader { 3 } else { 0 };
        assert_eq!(j.members.len(), expected_members);
    }
    // Followers sync first and wait; the leader's sync releases everyone.
    let mut f1 = waiting(h.sync("g", &ids[1], 1, &[], 6_100));
    let mut f2 = waiting(h.sync("g", &ids[2], 1, &[], 6_100));
    let split: [(&str, &[u8]); 3] = [
        (&ids[0], b"p0,p1"),
        (&ids[1], b"p2,p3"),
        (&ids[2], b"p4,p5"),
    ];
    let lead = ready(h.sync("g", &ids[0], 1, &split, 6_200));
    assert_eq!(lead.assignment.as_ref(), b"p0,p1");
    assert_eq!(answered(&mut f1).unwrap().assignment.as_ref(), b"p2,p3");
    assert_eq!(answered(&mut f2).unwrap().assignment.as_ref(), b"p4,p5");
    assert_eq!(h.c.group_state("g"), Some((GroupState::Stable, 1)));

    // A fourth member: the group rebalances; heartbeats tell the others to rejoin.
    let (id4, p4) = h.join_new("g", 7_000);
    let mut rx4 = waiting(p4);
    assert_eq!(
        h.c.group_state("g"),
        Some((GroupState::PreparingRebalance, 1))
    );
    let mut rejoins = Vec::new();
    for id in &ids {
        assert_eq!(
            h.heartbeat("g", id, None, 1, 7_100),
            ResponseError::RebalanceInProgress.code()
        );
        rejoins.push(waiting(h.join("g", id, None, 7_200)));
    }
    let j4 = answered(&mut rx4).expect("all four rejoined: join completes");
    assert_eq!(j4.generation_id, 2);
    let lead = answered(&mut rejoins[0]).unwrap();
    assert_eq!(lead.members.len(), 4);
    assert!(lead.members.iter().any(|m| m.member_id.as_str() == id4));
    let split: [(&str, &[u8]); 4] = [
        (&ids[0], b"p0,p1"),
        (&ids[1], b"p2"),
        (&ids[2], b"p3,p4"),
        (&id4, b"p5"),
    ];
    let mut s4 = waiting(h.sync("g", &id4, 2, &[], 7_300));
    ready(h.sync("g", &ids[0], 2, &split, 7_300));
    assert_eq!(answered(&mut s4).unwrap().assignment.as_ref(), b"p5");
    assert_eq!(
        ready(h.sync("g", &ids[1], 2, &[], 7_400))
            .assignment
            .as_ref(),
        b"p2"
    );
    assert_eq!(h.c.rebalance_counts(), vec![("g".to_string(), 2)]);
}

#[test]
fn member_that_stops_heartbeating_is_removed_and_the_rest_rebalance() {
    let h = Harness::new(3_000);
    let (ids, generation) = stable_group(&h, "g", 2);
    let (alive, silent) = (&ids[0], &ids[1]);
    for t in [9_000, 12_000, 15_000] {
        assert_eq!(h.heartbeat("g", alive, None, generation, t), 0);
        h.c.tick(h.at(t));
    }
    // `silent` last spoke at 6 000 ms (its SyncGroup): its session ends at 16 000 ms.
    h.c.tick(h.at(15_999));
    assert_eq!(h.c.group_state("g"), Some((GroupState::Stable, generation)));
    h.c.tick(h.at(16_000));
    assert_eq!(
        h.c.group_state("g"),
        Some((GroupState::PreparingRebalance, generation))
    );
    assert_eq!(
        h.heartbeat("g", silent, None, generation, 16_100),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        h.heartbeat("g", alive, None, generation, 16_100),
        ResponseError::RebalanceInProgress.code()
    );
    let rejoin = ready(h.join("g", alive, None, 16_200));
    assert_eq!(rejoin.generation_id, generation + 1);
    assert_eq!(rejoin.members.len(), 1);
    assert_eq!(rejoin.members[0].member_id.as_str(), alive.as_str());
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let h = Harness::new(3_000);
    let (ids, generation) = stable_group(&h, "g", 2);
    // A changed subscription while Stable (what cooperative-sticky does) starts a rebalance.
    let mut rx = waiting(h.join_v("g", &ids[0], None, b"topics:t,u", 30_000, 9, 7_000));
    assert_eq!(
        h.c.group_state("g"),
        Some((GroupState::PreparingRebalance, generation))
    );
    // ids[1] keeps heartbeating but never rejoins: after the 30 s rebalance timeout it is out.
    for t in (10_000..37_000).step_by(5_000) {
        let code = h.heartbeat("g", &ids[1], None, generation, t);
        assert_eq!(code, ResponseError::RebalanceInProgress.code());
        h.c.tick(h.at(t));
    }
    h.c.tick(h.at(36_999));
    assert!(answered(&mut rx).is_none());
    h.c.tick(h.at(37_000));
    let j = answered(&mut rx).expect("rebalance timeout completes the join");
    assert_eq!(j.generation_id, generation + 1);
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata.as_ref(), b"topics:t,u");
}

#[test]
fn static_member_rejoin_gets_its_assignment_back_without_rebalance() {
    let h = Harness::new(0);
    // Two static members: no MEMBER_ID_REQUIRED round trip.
    let a = ready(h.join("g", "", Some("inst-a"), 0));
    assert_eq!((a.error_code, a.generation_id), (0, 1));
    let a_id = a.member_id.to_string();
    ready(h.sync("g", &a_id, 1, &[(a_id.as_str(), b"solo")], 10));
    let mut b_join = waiting(h.join("g", "", Some("inst-b"), 20));
    let mut a_rejoin = waiting(h.join("g", &a_id, Some("inst-a"), 30));
    let b = answered(&mut b_join).unwrap();
    let lead = answered(&mut a_rejoin).unwrap();
    assert_eq!(lead.generation_id, 2);
    let b_id = b.member_id.to_string();
    let split: [(&str, &[u8]); 2] = [(&a_id, b"p0"), (&b_id, b"p1")];
    let mut b_sync = waiting(h.sync("g", &b_id, 2, &[], 40));
    ready(h.sync("g", &a_id, 2, &split, 40));
    assert_eq!(answered(&mut b_sync).unwrap().assignment.as_ref(), b"p1");
    let rebalances = h.c.rebalance_counts();

    // inst-b restarts within its session timeout: new member id, same generation.
    let again = ready(h.join("g", "", Some("inst-b"), 5_000));
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, 2, "no rebalance");
    assert_ne!(again.member_id.as_str(), b_id);
    assert_eq!(h.c.group_state("g"), Some((GroupState::Stable, 2)));
    let new_b = again.member_id.to_string();
    assert_eq!(
        ready(h.sync("g", &new_b, 2, &[], 5_010))
            .assignment
            .as_ref(),
        b"p1"
    );
    assert_eq!(h.c.rebalance_counts(), rebalances);
    // The old incarnation is fenced.
    assert_eq!(
        h.heartbeat("g", &b_id, Some("inst-b"), 2, 5_020),
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(h.heartbeat("g", &new_b, Some("inst-b"), 2, 5_020), 0);
    let fenced = ready(h.join("g", &b_id, Some("inst-b"), 5_030));
    assert_eq!(fenced.error_code, ResponseError::FencedInstanceId.code());
}

#[test]
fn protocol_and_session_timeout_are_validated() {
    let h = Harness::new(0);
    let (id, p) = h.join_new("g", 0);
    ready(p);
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_session_timeout_ms(SESSION_MS)
        .with_protocol_type(sb("connect"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(sb("range")),
        ]);
    let response = ready(h.c.join_group(request.clone(), &ClientInfo::default(), 9, h.at(1)));
    assert_eq!(
        response.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let too_short = request
        .with_session_timeout_ms(1_000)
        .with_protocol_type(sb("consumer"));
    let response = ready(h.c.join_group(too_short, &ClientInfo::default(), 9, h.at(1)));
    assert_eq!(
        response.error_code,
        ResponseError::InvalidSessionTimeout.code()
    );
    assert_eq!(
        h.c.group_state("g"),
        Some((GroupState::CompletingRebalance, 1))
    );
    assert!(!id.is_empty());
}

#[test]
fn unknown_member_illegal_generation_and_rebalance_in_progress() {
    let h = Harness::new(3_000);
    let (ids, generation) = stable_group(&h, "g", 2);
    let unknown = ResponseError::UnknownMemberId.code();
    assert_eq!(h.heartbeat("g", "nobody", None, generation, 7_000), unknown);
    assert_eq!(
        h.heartbeat("no-such-group", "nobody", None, 1, 7_000),
        unknown
    );
    assert_eq!(
        ready(h.sync("g", "nobody", generation, &[], 7_000)).error_code,
        unknown
    );
    assert_eq!(
        ready(h.join("g", "nobody", None, 7_000)).error_code,
        unknown
    );

    let illegal = ResponseError::IllegalGeneration.code();
    assert_eq!(
        h.heartbeat("g", &ids[0], None, generation + 5, 7_000),
        illegal
    );
    assert_eq!(
        ready(h.sync("g", &ids[0], generation - 1, &[], 7_000)).error_code,
        illegal
    );
    assert_eq!(
        h.commit("g", &ids[0], generation + 1, &[("t", 0, 5)], 7_000),
        vec![illegal]
    );
    assert_eq!(
        h.commit("unknown-group", "m", 3, &[("t", 0, 5)], 7_000),
        vec![illegal]
    );
    assert_eq!(
        h.commit("g", "", -1, &[("t", 0, 5)], 7_000),
        vec![unknown],
        "not a simple commit: the group has members"
    );
    assert_eq!(
        h.commit("g", &ids[0], generation, &[("t", 0, 5)], 7_000),
        vec![0]
    );

    // Member 0 rejoins with a new subscription: rebalance in progress for member 1.
    let _rx = waiting(h.join_v("g", &ids[0], None, b"topics:other", 30_000, 9, 8_000));
    let in_progress = ResponseError::RebalanceInProgress.code();
    assert_eq!(
        h.heartbeat("g", &ids[1], None, generation, 8_100),
        in_progress
    );
    assert_eq!(
        ready(h.sync("g", &ids[1], generation, &[], 8_100)).error_code,
        in_progress
    );
}

#[test]
fn delete_groups_refuses_non_empty_groups() {
    let mut h = Harness::new(0);
    let (id, p) = h.join_new("g", 0);
    ready(p);
    ready(h.sync("g", &id, 1, &[(id.as_str(), b"all")], 10));
    assert_eq!(h.commit("g", &id, 1, &[("t", 0, 42)], 20), vec![0]);
    assert_eq!(
        run(h.c.delete_group("g", h.at(30))),
        ResponseError::NonEmptyGroup.code()
    );
    assert_eq!(
        run(h.c.delete_group("nope", h.at(30))),
        ResponseError::GroupIdNotFound.code()
    );

    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(sb(&id)),
            MemberIdentity::default().with_member_id(sb("ghost")),
        ]);
    let left = h.c.leave_group(leave, 5, h.at(40));
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, ResponseError::UnknownMemberId.code()]);
    assert_eq!(h.c.group_state("g"), Some((GroupState::Empty, 2)));
    assert_eq!(h.committed("g").len(), 1, "offsets outlive membership");

    assert_eq!(run(h.c.delete_group("g", h.at(50))), 0);
    assert_eq!(h.c.group_state("g"), None);
    assert!(h.committed("g").is_empty());
    h.reopen();
    assert!(h.committed("g").is_empty(), "deletion is durable");
}

#[test]
fn committed_offsets_survive_reopening() {
    let mut h = Harness::new(0);
    assert_eq!(
        h.commit(
            "standalone",
            "",
            -1,
            &[("orders", 0, 10), ("orders", 1, 20), ("audit", 0, 5)],
            0
        ),
        vec![0, 0, 0]
    );
    assert_eq!(
        h.commit("standalone", "", -1, &[("orders", 0, 11)], 5),
        vec![0]
    );
    let before = h.committed("standalone");
    assert_eq!(
        before,
        vec![
            ("audit".to_string(), 0, 5, "m5".to_string()),
            ("orders".to_string(), 0, 11, "m11".to_string()),
            ("orders".to_string(), 1, 20, "m20".to_string()),
        ]
    );
    h.reopen();
    assert_eq!(h.committed("standalone"), before);
    // A shard that does not own the group does not load it.
    let other = GroupCoordinator::open(h.dir.path(), 1, 2, &h.config).expect("open");
    let owner = owner_shard("standalone", 2);
    let loaded_elsewhere = other.fetch_offsets("standalone", None).topics.len();
    assert_eq!(loaded_elsewhere > 0, owner == 1);

    // A torn tail (crash mid-append) is cut off on the next start.
    let path = offset_log::log_path(&offset_log::offsets_dir(h.dir.path()), "standalone").unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    std::fs::write(&path, &bytes).unwrap();
    h.reopen();
    assert_eq!(h.committed("standalone"), before);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_eq!(
        h.commit("standalone", "", -1, &[("audit", 0, 6)], 10),
        vec![0]
    );
    h.reopen();
    assert_eq!(h.committed("standalone")[0].2, 6);
}

#[test]
fn compaction_keeps_the_log_bounded_and_content_identical() {
    let mut h = Harness::new(0);
    let mut max_len = 0;
    run(async {
        for i in 0..200i64 {
            let offsets: Vec<(&str, i32, i64)> =
                (0..4).map(|p| ("t", p, i * 10 + i64::from(p))).collect();
            let mut topics = Vec::new();
            let parts = offsets
                .iter()
                .map(|(_, p, o)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(*o)
                        .with_committed_metadata(Some(sb(&"m".repeat(1_000))))
                })
                .collect();
            topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("t")))
                    .with_partitions(parts),
            );
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(sb("busy")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(topics);
            let r = h.c.offset_commit(request, h.at(i as u64)).await;
            assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
            max_len = max_len.max(h.c.log_len_bytes("busy").unwrap());
        }
    });
    let one_commit_bytes = 4 * (offset_log::FRAME_HEADER_BYTES as u64 + 1_050);
    // 200 commits of 4 partitions would be ~830 KiB uncompacted.
    assert!(
        max_len <= COMPACTION_MIN_LOG_BYTES + one_commit_bytes,
        "log grew to {max_len}"
    );
    let path = offset_log::log_path(&offset_log::offsets_dir(h.dir.path()), "busy").unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        h.c.log_len_bytes("busy").unwrap()
    );
    let before = h.committed("busy");
    assert_eq!(before.len(), 4);
    assert_eq!(before[3].2, 199 * 10 + 3);
    h.reopen();
    assert_eq!(h.committed("busy"), before);
}

#[test]
fn offsets_of_empty_groups_expire_after_retention() {
    let mut h = Harness::new(0);
    let retention = h.config.offsets_retention_ms as u64;
    assert_eq!(
        h.commit("idle", "", -1, &[("t", 0, 1), ("t", 1, 2)], 0),
        vec![0, 0]
    );
    assert_eq!(h.commit("idle", "", -1, &[("t", 1, 3)], 1_000), vec![0]);
    // A group with a live member keeps its offsets however old they are.
    let (id, p) = h.join_new("busy", 0);
    ready(p);
    assert_eq!(
        h.commit("busy", &id, 1, &[("t", 0, 9)], 0),
        vec![ResponseError::RebalanceInProgress.code()],
        "no commits between JoinGroup and SyncGroup"
    );
    ready(h.sync("busy", &id, 1, &[], 0));
    assert_eq!(h.commit("busy", &id, 1, &[("t", 0, 9)], 0), vec![0]);
    for t in (0..=retention + 2_000).step_by(5_000) {
        h.heartbeat("busy", &id, None, 1, t);
    }

    assert_eq!(run(h.c.expire_offsets(h.at(retention - 1))), 0);
    assert_eq!(run(h.c.expire_offsets(h.at(retention))), 1);
    assert_eq!(
        h.committed("idle"),
        vec![("t".to_string(), 1, 3, "m3".to_string())]
    );
    assert_eq!(run(h.c.expire_offsets(h.at(retention + 1_000))), 1);
    assert!(h.committed("idle").is_empty());
    assert_eq!(h.committed("busy").len(), 1);
    let path = offset_log::log_path(&offset_log::offsets_dir(h.dir.path()), "idle").unwrap();
    assert!(!path.exists(), "an empty log is removed");
    h.reopen();
    assert!(h.committed("idle").is_empty());
}

#[test]
fn offset_fetch_forms_and_offset_delete() {
    let h = Harness::new(0);
    assert_eq!(h.commit("a", "", -1, &[("t", 0, 7)], 0), vec![0]);
    assert_eq!(h.commit("b", "", -1, &[("t", 0, 8)], 0), vec![0]);
    // v8+: several groups, null topics = everything.
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("a")))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("b")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb("t")))
                    .with_partition_indexes(vec![0, 1]),
            ])),
    ]);
    let response = h.c.offset_fetch(&request, 9);
    assert_eq!(response.groups.len(), 2);
    assert_eq!(
        response.groups[0].topics[0].partitions[0].committed_offset,
        7
    );
    let b: Vec<i64> = response.groups[1].topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect();
    assert_eq!(b, vec![8, -1]);
    // v1–v7: one group at the top level.
    let old = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb("a")))
        .with_topics(None);
    let response = h.c.offset_fetch(&old, 7);
    assert_eq!(response.topics[0].partitions[0].committed_offset, 7);
    for v in 1..=9 {
        let r = h.c.offset_fetch(if v >= 8 { &request } else { &old }, v);
        r.encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("v{v}: {e}"));
    }

    let delete = OffsetDeleteRequest::default().with_group_id(GroupId(sb("a"))).with_topics(vec![
        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(TopicName(sb("t")))
            .with_partitions(vec![
                kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
            ]),
    ]);
    let r = run(h.c.offset_delete(delete.clone(), h.at(10)));
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert!(h.committed("a").is_empty());
    let missing = run(h
        .c
        .offset_delete(delete.with_group_id(GroupId(sb("zzz"))), h.at(10)));
    assert_eq!(missing.error_code, ResponseError::GroupIdNotFound.code());
}

#[test]
fn responses_encode_in_every_served_version() {
    let h = Harness::new(0);
    let (_, p) = h.join_new("g", 0);
    let join = ready(p);
    for v in 0..=9 {
        join.encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("join v{v}: {e}"));
    }
    let mut listed =
        ListGroupsResponse::default().with_groups(h.c.list_groups(&ListGroupsRequest::default()));
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "CompletingRebalance");
    for v in 0..=5 {
        listed
            .encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("list v{v}: {e}"));
    }
    let filtered =
        h.c.list_groups(&ListGroupsRequest::default().with_states_filter(vec![sb("stable")]));
    assert!(filtered.is_empty());
    listed.groups.clear();
    for v in 0..=5 {
        let d = DescribeGroupsResponse::default().with_groups(vec![
            h.c.describe_group("g", v),
            h.c.describe_group("none", v),
        ]);
        assert_eq!(d.groups[1].group_state.as_str(), "Dead");
        d.encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("describe v{v}: {e}"));
    }
    for v in 0..=6 {
        let request = FindCoordinatorRequest::default()
            .with_key(if v < 4 { sb("g") } else { StrBytes::default() })
            .with_coordinator_keys(if v >= 4 {
                vec![sb("g"), sb("")]
            } else {
                vec![]
            });
        let r = find_coordinator(&request, v, 7, "localhost", 9092);
        if v >= 4 {
            assert_eq!(r.coordinators[0].node_id, BrokerId(7));
            assert_eq!(
                r.coordinators[1].error_code,
                ResponseError::InvalidRequest.code()
            );
        } else {
            assert_eq!((r.error_code, r.port), (0, 9092));
        }
        r.encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("find_coordinator v{v}: {e}"));
    }
    for v in 0..=5 {
        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(sb("x")))
            .with_member_id(if v < 3 { sb("m") } else { StrBytes::default() });
        let r = h.c.leave_group(leave, v, h.at(1));
        r.encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("leave v{v}: {e}"));
    }
}

#[test]
fn concurrent_commits_share_fsyncs_and_are_all_durable() {
    let mut h = Harness::new(0);
    let commits = 20;
    let responses = run(async {
        let calls = (0..commits).map(|i| {
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(sb("g")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb("t")))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(i)
                                .with_committed_offset(i64::from(i) * 100),
                        ]),
                ]);
            h.c.offset_commit(request, h.at(0))
        });
        futures_util::future::join_all(calls).await
    });
    assert!(
        responses
            .iter()
            .all(|r| r.topics[0].partitions[0].error_code == 0)
    );
    let flushes = h.c.log_flushes_total();
    eprintln!("{commits} concurrent commits -> {flushes} log appends (fdatasync)");
    assert!(
        (1..commits as u64).contains(&flushes),
        "{commits} concurrent commits took {flushes} fsyncs"
    );
    h.reopen();
    let committed = h.committed("g");
    assert_eq!(committed.len(), commits as usize);
    assert!(
        committed
            .iter()
            .all(|(_, p, o, _)| *o == i64::from(*p) * 100)
    );
}

#[test]
fn offset_delete_refuses_topics_the_members_subscribe_to() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    let h = Harness::new(0);
    let mut subscription = BytesMut::new();
    subscription.extend_from_slice(&1i16.to_be_bytes());
    ConsumerProtocolSubscription::default()
        .with_topics(vec![sb("orders")])
        .encode(&mut subscription, 1)
        .unwrap();
    let first = ready(h.join_v("g", "", None, &subscription, 30_000, 9, 0));
    let id = first.member_id.to_string();
    let joined = ready(h.join_v("g", &id, None, &subscription, 30_000, 9, 0));
    assert_eq!(joined.error_code, 0);
    ready(h.sync("g", &id, 1, &[(id.as_str(), b"a")], 0));
    assert_eq!(
        h.commit("g", &id, 1, &[("orders", 0, 5), ("old", 0, 3)], 10),
        vec![0, 0]
    );
    let topic = |name: &str| {
        OffsetDeleteRequestTopic::default()
            .with_name(TopicName(sb(name)))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0),
            ])
    };
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_topics(vec![topic("orders"), topic("old")]);
    let r = run(h.c.offset_delete(request, h.at(20)));
    assert_eq!(r.error_code, 0);
    let codes: Vec<i16> = r
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![ResponseError::GroupSubscribedToTopic.code(), 0]);
    assert_eq!(
        h.committed("g"),
        vec![("orders".to_string(), 0, 5, "m5".to_string())]
    );
}

#[test]
fn protocol_is_chosen_by_member_votes_among_common_ones() {
    let h = Harness::new(0);
    let join = |member_id: &str, protocols: &[&str], at_ms: u64| {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_session_timeout_ms(SESSION_MS)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(sb(member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(
                protocols
                    .iter()
                    .map(|p| {
                        JoinGroupRequestProtocol::default()
                            .with_name(sb(p))
                            .with_metadata(Bytes::from(format!("meta-{p}")))
                    })
                    .collect(),
            );
        h.c.join_group(request, &ClientInfo::default(), 3, h.at(at_ms))
    };
    // v3: no MEMBER_ID_REQUIRED. A joins alone (generation 1, its favourite "cooperative").
    let a = ready(join("", &["cooperative", "range"], 0));
    assert_eq!(a.protocol_name.as_deref(), Some("cooperative"));
    let a_id = a.member_id.to_string();
    // B and C prefer "range"; all three support both: "range" wins 2 votes to 1.
    let mut b = waiting(join("", &["range", "cooperative"], 10));
    let mut c = waiting(join("", &["range", "cooperative"], 10));
    let mut a2 = waiting(join(&a_id, &["cooperative", "range"], 20));
    let leader = answered(&mut a2).unwrap();
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
    assert!(
        leader
            .members
            .iter()
            .all(|m| m.metadata.as_ref() == b"meta-range")
    );
    assert_eq!(answered(&mut b).unwrap().generation_id, 2);
    assert_eq!(answered(&mut c).unwrap().generation_id, 2);
    // A member that shares no protocol with the group is refused.
    let odd = ready(join("", &["sticky"], 30));
    assert_eq!(
        odd.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[test]
fn static_member_leaves_by_instance_id() {
    let h = Harness::new(0);
    let a = ready(h.join("g", "", Some("inst-a"), 0));
    let a_id = a.member_id.to_string();
    let leave = |members: Vec<MemberIdentity>| {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_members(members);
        h.c.leave_group(request, 4, h.at(10))
    };
    let wrong = leave(vec![
        MemberIdentity::default()
            .with_member_id(sb("someone-else"))
            .with_group_instance_id(Some(sb("inst-a"))),
    ]);
    assert_eq!(
        wrong.members[0].error_code,
        ResponseError::FencedInstanceId.code()
    );
    let ok = leave(vec![
        MemberIdentity::default()
            .with_member_id(StrBytes::default())
            .with_group_instance_id(Some(sb("inst-a"))),
    ]);
    assert_eq!(ok.members[0].error_code, 0);
    assert_eq!(h.c.group_state("g"), Some((GroupState::Empty, 2)));
    assert_eq!(
        h.heartbeat("g", &a_id, Some("inst-a"), 1, 20),
        ResponseError::UnknownMemberId.code()
    );
}
