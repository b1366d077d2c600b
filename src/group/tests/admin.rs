//! Admin requests (DeleteGroups, ListGroups, DescribeGroups, FindCoordinator) and the
//! encoding of every answer in every served version.

use super::*;

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
fn responses_encode_in_every_served_version() {
    let h = Harness::new(0);
    let (_, p) = h.join_new("g", 0);
    let join = ready(p);
    for v in 0..=9 {
        join.encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("join v{v}: {e}"));
    }
    let mut listed = ListGroupsResponse::default()
        .with_groups(h.c.list_groups(&ListGroupsRequest::default(), h.at(0)));
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "CompletingRebalance");
    for v in 0..=5 {
        listed
            .encode(&mut BytesMut::new(), v)
            .unwrap_or_else(|e| panic!("list v{v}: {e}"));
    }
    let filtered = h.c.list_groups(
        &ListGroupsRequest::default().with_states_filter(vec![sb("stable")]),
        h.at(0),
    );
    assert!(filtered.is_empty());
    listed.groups.clear();
    for v in 0..=5 {
        let d = DescribeGroupsResponse::default().with_groups(vec![
            h.c.describe_group("g", v, h.at(0)),
            h.c.describe_group("none", v, h.at(0)),
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
        let r = find_coordinator(
            &request,
            v,
            &|_| Some((7, "localhost".to_string(), 9092)),
            &|_, _| true,
        );
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
