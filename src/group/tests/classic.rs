//! Classic protocol scenarios: JoinGroup, SyncGroup, Heartbeat and LeaveGroup through
//! rebalances, static membership and protocol selection.

use super::*;

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
