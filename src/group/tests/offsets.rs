//! Committed offsets: durability across reopening, group commit, compaction, retention,
//! OffsetFetch forms and OffsetDelete.

use super::*;

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
