//! Unit tests of the replicated metadata state machine (`replicated.rs`): placement, the
//! same answer on every node, images that round-trip.

use super::*;
use crate::metadata::group_offsets::OffsetChange;
use crate::metadata::replicated_image::ShardImages;

#[test]
fn placement_spreads_leaders_and_refuses_too_many_replicas() {
    let live = [1, 2, 3];
    let placed = place_replicas(&live, 6, 0, 2, 0).unwrap();
    let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
    assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
    assert_eq!(placed[2], vec![3, 1]);
    assert!(place_replicas(&live, 1, 0, 4, 0).is_none());
    assert_eq!(
        place_replicas(&live, 5, 3, 1, 1).unwrap(),
        vec![vec![2], vec![3]]
    );
}

fn writer() -> (tempfile::TempDir, MetadataWriter) {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _) =
        MetadataWriter::open_replicated(dir.path(), LogConfig::default(), "c".into()).unwrap();
    (dir, writer)
}

/// Applies a RegisterBroker record for each of `ids`, at log indexes from `first_index` on.
pub(crate) fn register_brokers(writer: &MetadataWriter, ids: &[i32], first_index: u64) {
    for (index, id) in (first_index..).zip(ids) {
        let register = MetadataRecord::RegisterBroker {
            id: *id,
            host: "127.0.0.1".into(),
            port: 9000 + id,
            endpoints: Vec::new(),
            format_levels: Default::default(),
            incarnation: None,
            previous_epoch: None,
            previous_incarnation: None,
        };
        writer.apply_record(index, &register).unwrap();
    }
}

/// A replicated writer with `ids` registered at log indexes 1, 2, ...
pub(crate) fn writer_with_brokers(ids: &[i32]) -> (tempfile::TempDir, MetadataWriter) {
    let (dir, writer) = writer();
    register_brokers(&writer, ids, 1);
    (dir, writer)
}

#[test]
fn records_apply_the_same_way_and_images_round_trip() {
    let (_dir, a) = writer();
    let register = |id| MetadataRecord::RegisterBroker {
        id,
        host: "127.0.0.1".into(),
        port: 9000 + id,
        endpoints: Vec::new(),
        format_levels: Default::default(),
        incarnation: None,
        previous_epoch: None,
        previous_incarnation: None,
    };
    a.apply_record(1, &register(1)).unwrap();
    a.apply_record(2, &register(2)).unwrap();
    let create = MetadataRecord::CreateTopic {
        name: "t".into(),
        id: uuid::Uuid::new_v4(),
        replicas: vec![vec![1, 2], vec![2, 1]],
        overrides: BTreeMap::new(),
    };
    a.apply_record(3, &create).unwrap();
    // The same record again fails the same way on every node: the topic exists.
    let again = a.apply_record(4, &create).unwrap_err();
    assert_eq!(again.kafka_error_code(), 36);
    let bad = MetadataRecord::CreateTopic {
        name: "u".into(),
        id: uuid::Uuid::new_v4(),
        replicas: vec![vec![1, 7]],
        overrides: BTreeMap::new(),
    };
    assert_eq!(a.apply_record(5, &bad).unwrap_err().kafka_error_code(), 38);
    let shrink = |epoch| MetadataRecord::AlterPartition {
        topic: "t".into(),
        partition: 0,
        isr: vec![1],
        partition_epoch: epoch,
    };
    a.apply_record(6, &shrink(0)).unwrap();
    assert!(a.apply_record(6, &shrink(0)).is_err(), "stale epoch");
    a.apply_record(6, &MetadataRecord::FenceBroker { id: 2 })
        .unwrap();
    let snapshot = a.snapshot();
    let cluster = snapshot.cluster.as_deref().unwrap();
    assert_eq!(cluster.applied_index, 6);
    assert_eq!(cluster.live_brokers(), vec![1]);
    // Broker 2 led t-1: its ISR [2, 1] elects 1, leader epoch 1; t-0 (ISR [1]) is
    // untouched (2 had already left its ISR).
    assert!(!snapshot.is_led_by(2, "t", 1));
    assert!(snapshot.is_led_by(1, "t", 1));
    assert_eq!(cluster.leader_epoch("t", 1), 1);
    assert_eq!(cluster.isr("t", 1), vec![1]);
    assert_eq!(cluster.partition_epoch("t", 1), 1);
    assert!(snapshot.is_followed_by(2, "t", 1));
    assert_eq!(cluster.isr("t", 0), vec![1]);
    assert_eq!(cluster.partition_epoch("t", 0), 1);
    assert_eq!(cluster.leader_epoch("t", 0), 0);
    assert_eq!(cluster.followed_from(2, 1).len(), 2);
    // Fencing 1 too leaves both partitions without a live ISR member: offline, and the
    // ISR keeps its last member.
    a.apply_record(7, &MetadataRecord::FenceBroker { id: 1 })
        .unwrap();
    let cluster = a.snapshot().cluster.clone().unwrap();
    assert_eq!(cluster.leader("t", 0), None);
    assert_eq!(cluster.leader("t", 1), None);
    assert_eq!(cluster.isr("t", 1), vec![1]);
    assert_eq!(cluster.leader_epoch("t", 1), 2);
    // 2 coming back cannot lead (it was not in sync); 1 coming back leads both again.
    a.apply_record(8, &MetadataRecord::UnfenceBroker { id: 2 })
        .unwrap();
    assert_eq!(a.snapshot().cluster.as_ref().unwrap().leader("t", 1), None);
    a.apply_record(9, &MetadataRecord::UnfenceBroker { id: 1 })
        .unwrap();
    let snapshot = a.snapshot();
    let cluster = snapshot.cluster.as_deref().unwrap();
    assert_eq!(cluster.leader("t", 1), Some(1));
    assert_eq!(cluster.leader_epoch("t", 1), 3);
    // A stale AlterPartition (from before the elections) is refused; the leader's is not.
    let grow = |epoch| MetadataRecord::AlterPartition {
        topic: "t".into(),
        partition: 1,
        isr: vec![1, 2],
        partition_epoch: epoch,
    };
    assert!(a.apply_record(10, &grow(0)).is_err());
    let epoch = cluster.partition_epoch("t", 1);
    // A fenced (or shutting-down) broker is INELIGIBLE_REPLICA, and nothing changes.
    a.apply_record(10, &MetadataRecord::FenceBroker { id: 2 })
        .unwrap();
    let refused = a.apply_record(10, &grow(epoch)).unwrap_err();
    assert_eq!(refused.kafka_error_code(), 107, "{refused}");
    assert_eq!(a.snapshot().cluster.as_ref().unwrap().isr("t", 1), vec![1]);
    a.apply_record(10, &MetadataRecord::UnfenceBroker { id: 2 })
        .unwrap();
    a.apply_record(10, &grow(epoch)).unwrap();
    let snapshot = a.snapshot();
    assert_eq!(snapshot.cluster.as_ref().unwrap().isr("t", 1), vec![1, 2]);

    let (_dir_b, b) = writer();
    b.install_image(&a.encode_image(ShardImages::default()))
        .unwrap();
    let restored = b.snapshot();
    assert_eq!(restored.cluster, snapshot.cluster);
    assert_eq!(
        restored.topic("t").unwrap().id,
        snapshot.topic("t").unwrap().id
    );
}

fn commit(topic: &str, offset: i64) -> OffsetChange {
    OffsetChange::Commit {
        topic: topic.into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_ms: 1,
    }
}

#[test]
fn group_offsets_are_applied_only_from_the_groups_coordinator() {
    let (_dir, a) = writer();
    let record = |coordinator| MetadataRecord::GroupOffsets {
        group: "g".into(),
        coordinator,
        changes: vec![commit("t", 5)],
    };
    // No broker registered: nobody coordinates, so a coordinator's record is refused.
    let refused = a.apply_record(1, &record(Some(1))).unwrap_err();
    assert_eq!(refused.kafka_error_code(), 16, "NOT_COORDINATOR");
    register_brokers(&a, &[1, 2, 3], 2);
    let cluster = a.snapshot().cluster.clone().unwrap();
    let coordinator = cluster.coordinator("g").unwrap();
    let other = if coordinator == 1 { 2 } else { 1 };
    assert!(a.apply_record(5, &record(Some(other))).is_err());
    match a.apply_record(6, &record(Some(coordinator))).unwrap() {
        Applied::GroupOffsets { group, changes } => {
            assert_eq!((group.as_str(), changes), ("g", vec![commit("t", 5)]))
        }
        other => panic!("applied as {other:?}"),
    }
    // A transaction's commit (no coordinator named) is not checked.
    assert!(a.apply_record(7, &record(None)).is_ok());
    // Fenced: a live broker takes the group's slot over, the same on every node.
    let fence = MetadataRecord::FenceBroker { id: coordinator };
    a.apply_record(8, &fence).unwrap();
    let next = a
        .snapshot()
        .cluster
        .clone()
        .unwrap()
        .coordinator("g")
        .unwrap();
    assert_ne!(next, coordinator);
    assert!(a.apply_record(9, &record(Some(coordinator))).is_err());
    assert!(a.apply_record(10, &record(Some(next))).is_ok());
    let too_many = MetadataRecord::GroupOffsets {
        group: "g".into(),
        coordinator: Some(next),
        changes: vec![
            commit("t", 1);
            crate::metadata::group_offsets::MAX_OFFSET_CHANGES_PER_RECORD + 1
        ],
    };
    assert_eq!(
        a.apply_record(11, &too_many)
            .unwrap_err()
            .kafka_error_code(),
        42
    );
}

#[test]
fn images_carry_the_group_offsets() {
    let (_dir_a, a) = writer();
    let offsets = vec![("g".to_string(), vec![commit("t", 7), commit("u", 9)])];
    let image = a.encode_image(ShardImages {
        group_offsets: offsets.clone(),
        ..ShardImages::default()
    });
    let (_dir_b, b) = writer();
    let installed = b.install_image(&image).unwrap();
    assert_eq!(installed.group_offsets, offsets);
    // An image written before offsets were replicated has none.
    let mut old: serde_json::Value = serde_json::from_slice(&image).unwrap();
    old.as_object_mut().unwrap().remove("group_offsets");
    let old = serde_json::to_vec(&old).unwrap();
    assert!(b.install_image(&old).unwrap().group_offsets.is_empty());
}

#[test]
fn security_records_apply_through_the_log_and_travel_in_images() {
    use crate::metadata::credentials::ScramChange;
    use crate::metadata::quotas::{QuotaAlteration, QuotaEntity, QuotaKey};
    use crate::metadata::security_records::{SecurityApplied, SecurityRecord};
    use crate::security::acl::{
        AclBinding, AclFilter, AclOperation, PatternFilter, PatternType, Permission, ResourceType,
    };
    use crate::security::scram::{ScramCredential, ScramMechanism};

    let (_dir, a) = writer();
    a.apply_record(
        1,
        &MetadataRecord::RegisterBroker {
            id: 1,
            host: "127.0.0.1".into(),
            port: 9001,
            endpoints: Vec::new(),
            format_levels: Default::default(),
            incarnation: None,
            previous_epoch: None,
            previous_incarnation: None,
        },
    )
    .unwrap();
    let binding = AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: "orders".into(),
        pattern_type: PatternType::Prefixed,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: AclOperation::Read,
        permission: Permission::Allow,
    };
    let credential = ScramCredential {
        salt: b"salt".to_vec(),
        stored_key: vec![1; 32],
        server_key: vec![2; 32],
        iterations: 4096,
    };
    let records = [
        SecurityRecord::CreateAcls {
            bindings: vec![binding.clone()],
        },
        SecurityRecord::AlterScramCredentials {
            changes: vec![
                ScramChange::Upsert("alice".into(), ScramMechanism::Sha512, credential.clone()),
                ScramChange::Delete("nobody".into(), ScramMechanism::Sha256),
            ],
        },
        SecurityRecord::AlterClientQuotas {
            alterations: vec![QuotaAlteration {
                entity: QuotaEntity::from_wire([("user", Some("alice"))].into_iter()).unwrap(),
                ops: vec![(QuotaKey::ProducerByteRate, Some(1024.0))],
            }],
        },
    ];
    let mut answers = Vec::new();
    for (i, record) in records.into_iter().enumerate() {
        // Through the log's encoding, as every node receives it.
        let proposal = Proposal {
            origin: 1,
            sequence: 1,
            record: MetadataRecord::Security(record),
        };
        let decoded = Proposal::decode(&proposal.encode()).unwrap();
        assert_eq!(decoded.record, proposal.record);
        answers.push(a.apply_record(2 + i as u64, &decoded.record).unwrap());
    }
    // The deletion of a credential that does not exist fails alone.
    match &answers[1] {
        Applied::Security(SecurityApplied::ScramCredentials(outcome)) => {
            assert!(outcome[0].is_ok());
            assert!(outcome[1].is_err());
        }
        other => panic!("{other:?}"),
    }
    let snapshot = a.snapshot();
    assert_eq!(snapshot.acls.bindings(), std::slice::from_ref(&binding));
    assert_eq!(
        snapshot
            .scram_credentials
            .get("alice", ScramMechanism::Sha512),
        Some(&credential)
    );

    let (_dir_b, b) = writer();
    b.install_image(&a.encode_image(ShardImages::default()))
        .unwrap();
    let restored = b.snapshot();
    assert_eq!(restored.acls.bindings(), snapshot.acls.bindings());
    assert_eq!(restored.scram_credentials, snapshot.scram_credentials);
    assert_eq!(restored.client_quotas, snapshot.client_quotas);
    assert_eq!(restored.client_quotas.len(), 1);

    let filter = AclFilter {
        resource_type: Some(ResourceType::Topic),
        resource_name: None,
        pattern: PatternFilter::Any,
        principal: None,
        host: None,
        operation: None,
        permission: None,
    };
    let deleted = b
        .apply_record(
            9,
            &MetadataRecord::Security(SecurityRecord::DeleteAcls {
                filters: vec![filter],
            }),
        )
        .unwrap();
    match deleted {
        Applied::Security(SecurityApplied::AclsDeleted(removed)) => {
            assert_eq!(removed, vec![vec![binding]])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.snapshot().acls.len(), 0);
}

#[test]
fn registrations_carry_endpoints_and_older_records_still_load() {
    let (_dir, a) = writer();
    // A RegisterBroker written before endpoints were carried.
    let old =
        br#"{"origin":1,"sequence":1,"record":{"RegisterBroker":{"id":1,"host":"h","port":9}}}"#;
    let proposal = Proposal::decode(old).unwrap();
    a.apply_record(1, &proposal.record).unwrap();
    let endpoint = ListenerEndpoint {
        name: "EXTERNAL".into(),
        host: "e".into(),
        port: 19,
        security_protocol: "SASL_SSL".into(),
    };
    let register = MetadataRecord::RegisterBroker {
        id: 2,
        host: "h".into(),
        port: 10,
        endpoints: vec![endpoint],
        format_levels: Default::default(),
        incarnation: None,
        previous_epoch: None,
        previous_incarnation: None,
    };
    a.apply_record(2, &register).unwrap();
    let snapshot = a.snapshot();
    let cluster = snapshot.cluster.as_deref().unwrap();
    assert_eq!(
        cluster.brokers[&1].endpoint(Some("EXTERNAL")),
        Some(("h", 9))
    );
    assert_eq!(
        cluster.brokers[&2].endpoint(Some("EXTERNAL")),
        Some(("e", 19))
    );
    assert_eq!(cluster.brokers[&2].endpoint(Some("PLAINTEXT")), None);
    // A node installing the image has the same endpoints.
    let (_dir2, b) = writer();
    b.install_image(&a.encode_image(ShardImages::default()))
        .unwrap();
    assert_eq!(
        b.snapshot().cluster.as_deref().unwrap().brokers,
        cluster.brokers
    );
}

/// A one-member classic group's stored membership (also the group_membership tests').
pub(crate) fn membership(
    generation: i32,
    metadata: &str,
) -> crate::metadata::group_membership::GroupMembership {
    use crate::metadata::group_membership::{GroupMembership, MemberRecord};
    GroupMembership {
        generation,
        protocol_type: "consumer".into(),
        protocol_name: "range".into(),
        leader: "m1".into(),
        members: vec![MemberRecord {
            member_id: "m1".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            metadata: metadata.into(),
            assignment: String::new(),
        }],
        consumer: None,
        share: None,
        version: Default::default(),
    }
}

#[test]
fn memberships_apply_only_from_the_slot_holder_at_its_epoch_and_travel_in_images() {
    let (_dir, a) = writer_with_brokers(&[1, 2, 3]);
    let record = |coordinator, coordinator_epoch, m| MetadataRecord::GroupMembership {
        group: "g".into(),
        coordinator,
        coordinator_epoch,
        membership: m,
    };
    let cluster = a.snapshot().cluster.clone().unwrap();
    let (holder, epoch) = cluster.coordinator_with_epoch("g").unwrap();
    match a.apply_record(4, &record(holder, epoch, membership(3, "AA=="))) {
        Ok(Applied::GroupMembership {
            group,
            membership: m,
        }) => {
            assert_eq!((group.as_str(), m), ("g", membership(3, "AA==")))
        }
        other => panic!("applied as {other:?}"),
    }
    let stale_epoch = a.apply_record(5, &record(holder, epoch + 1, membership(4, "")));
    assert_eq!(
        stale_epoch.unwrap_err().kafka_error_code(),
        16,
        "NOT_COORDINATOR"
    );
    let other = holder % 3 + 1;
    assert!(
        a.apply_record(6, &record(other, epoch, membership(4, "")))
            .is_err()
    );
    let big = "A".repeat(crate::metadata::group_membership::MAX_GROUP_MEMBERSHIP_BYTES);
    let too_large = a.apply_record(7, &record(holder, epoch, membership(4, &big)));
    assert!(
        matches!(too_large, Err(MetadataError::MembershipTooLarge { .. })),
        "{too_large:?}"
    );
    // Fenced: the slot moves with its epoch bumped; the old holder's records are refused,
    // and it takes nothing back when it returns.
    a.apply_record(8, &MetadataRecord::FenceBroker { id: holder })
        .unwrap();
    let (next, next_epoch) = a
        .snapshot()
        .cluster
        .clone()
        .unwrap()
        .coordinator_with_epoch("g")
        .unwrap();
    assert_ne!(next, holder);
    assert_eq!(next_epoch, epoch + 1);
    assert!(
        a.apply_record(9, &record(holder, epoch, membership(4, "")))
            .is_err()
    );
    assert!(
        a.apply_record(10, &record(next, next_epoch, membership(4, "")))
            .is_ok()
    );
    a.apply_record(11, &MetadataRecord::UnfenceBroker { id: holder })
        .unwrap();
    let register = MetadataRecord::RegisterBroker {
        id: holder,
        host: "127.0.0.1".into(),
        port: 9000 + holder,
        endpoints: Vec::new(),
        format_levels: Default::default(),
        incarnation: None,
        previous_epoch: None,
        previous_incarnation: None,
    };
    a.apply_record(12, &register).unwrap();
    let after = a
        .snapshot()
        .cluster
        .clone()
        .unwrap()
        .coordinator_with_epoch("g");
    assert_eq!(after, Some((next, next_epoch)), "sticky across the return");

    let memberships = vec![("g".to_string(), membership(4, "AA=="))];
    let image = a.encode_image(ShardImages {
        group_memberships: memberships.clone(),
        ..ShardImages::default()
    });
    let (_dir_b, b) = writer();
    let installed = b.install_image(&image).unwrap();
    assert_eq!(installed.group_memberships, memberships);
    let slots = b
        .snapshot()
        .cluster
        .clone()
        .unwrap()
        .coordinator_with_epoch("g");
    assert_eq!(
        slots,
        Some((next, next_epoch)),
        "the image carries the slots"
    );
    let mut old: serde_json::Value = serde_json::from_slice(&image).unwrap();
    old.as_object_mut().unwrap().remove("group_memberships");
    let old = serde_json::to_vec(&old).unwrap();
    assert!(b.install_image(&old).unwrap().group_memberships.is_empty());
}
