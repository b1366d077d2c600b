use super::*;
use crate::config::LogConfig;
use crate::metadata::MetadataWriter;

fn writer() -> (MetadataWriter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _view) =
        MetadataWriter::open_replicated(dir.path(), LogConfig::default(), "c".into()).unwrap();
    (writer, dir)
}

fn register(id: i32, max: i16) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        id,
        host: "127.0.0.1".into(),
        port: 9000 + id,
        endpoints: Vec::new(),
        format_levels: LevelRange { min: 1, max },
        incarnation: None,
        previous_epoch: None,
        previous_incarnation: None,
    }
}

fn finalize(level: i16) -> MetadataRecord {
    MetadataRecord::FinalizeFeature {
        name: FEATURE.into(),
        level,
    }
}

fn level_of(writer: &MetadataWriter) -> (i16, i64) {
    let cluster = writer.cluster_state();
    (cluster.format_level(), cluster.features_epoch())
}

#[test]
fn the_level_rises_only_once_every_registered_broker_reads_it() {
    let (writer, _dir) = writer();
    writer.apply_record(1, &register(1, CURRENT_LEVEL)).unwrap();
    writer.apply_record(2, &register(2, 1)).unwrap();
    assert_eq!(
        level_of(&writer),
        (1, 0),
        "a log without the record is at level 1"
    );
    let refused = writer.apply_record(3, &finalize(2)).unwrap_err();
    assert_eq!(
        refused.kafka_error_code(),
        ResponseError::InvalidUpdateVersion.code()
    );
    assert!(
        refused.to_string().contains("broker 2 (up to 1)"),
        "{refused}"
    );
    assert_eq!(level_of(&writer), (1, 0));
    // Broker 2 restarts with a newer binary: its registration carries the new range.
    writer.apply_record(4, &register(2, CURRENT_LEVEL)).unwrap();
    writer.apply_record(5, &finalize(2)).unwrap();
    assert_eq!(
        level_of(&writer),
        (2, 5),
        "the epoch is the record's log index"
    );
    // The same level again changes nothing, not even the epoch; lower is refused.
    writer.apply_record(6, &finalize(2)).unwrap();
    assert_eq!(level_of(&writer), (2, 5));
    let down = writer.apply_record(7, &finalize(1)).unwrap_err();
    assert!(down.to_string().contains("cannot downgrade"), "{down}");
    assert_eq!(level_of(&writer), (2, 5));
}

#[test]
fn a_fenced_broker_counts_and_an_older_binary_is_refused_registration() {
    let (writer, _dir) = writer();
    writer.apply_record(1, &register(1, CURRENT_LEVEL)).unwrap();
    writer.apply_record(2, &register(2, 1)).unwrap();
    writer
        .apply_record(3, &MetadataRecord::FenceBroker { id: 2 })
        .unwrap();
    assert!(
        writer.apply_record(4, &finalize(2)).is_err(),
        "fenced brokers count"
    );
    writer.apply_record(5, &register(2, CURRENT_LEVEL)).unwrap();
    writer.apply_record(6, &finalize(2)).unwrap();
    // A node started with an older binary (or a session-20 one, no range: level 1) is
    // refused, and its old registration stays as it was.
    let refused = writer.apply_record(7, &register(3, 1)).unwrap_err();
    assert_eq!(
        refused.kafka_error_code(),
        ResponseError::UnsupportedVersion.code()
    );
    assert!(!writer.cluster_state().brokers.contains_key(&3));
    let legacy = r#"{"RegisterBroker":{"id":3,"host":"h","port":1}}"#;
    let legacy: MetadataRecord = serde_json::from_str(legacy).unwrap();
    assert!(writer.apply_record(8, &legacy).is_err());
    let before = writer.cluster_state().brokers[&2].epoch;
    assert!(writer.apply_record(9, &register(2, 1)).is_err());
    assert_eq!(writer.cluster_state().brokers[&2].epoch, before);
}

#[test]
fn records_above_the_finalized_level_are_not_written_and_unknown_features_refused() {
    // `FinalizeFeature` is the level-2 kind: judged by the level it sets, never written
    // as a level-1 record.
    assert!(check_record_level(&finalize(2), 1).is_ok());
    let below = check_record_level(&finalize(1), 1).unwrap_err();
    assert!(
        below
            .to_string()
            .contains("needs sluice.metadata.version 2"),
        "{below}"
    );
    assert!(check_record_level(&MetadataRecord::RebalanceCoordinators, 1).is_ok());
    // Session 21's new kind, the share-state reset, waits for level 3: a level-2 cluster
    // may still hold a node that cannot decode it.
    let reset = MetadataRecord::ShareStateReset(
        crate::metadata::share_state_reset::ShareStateResetRecord {
            group: "g".into(),
            coordinator: 1,
            scope: crate::metadata::share_state_reset::ResetScope::Group,
        },
    );
    let refused = check_record_level(&reset, 2).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("needs sluice.metadata.version 3"),
        "{refused}"
    );
    assert!(check_record_level(&reset, 3).is_ok());
    let (writer, _dir) = writer();
    writer.apply_record(1, &register(1, CURRENT_LEVEL)).unwrap();
    let other = MetadataRecord::FinalizeFeature {
        name: "metadata.version".into(),
        level: 25,
    };
    assert!(writer.apply_record(2, &other).is_err());
    // Every level a binary may claim is described, and a table row exists for each.
    assert_eq!(LEVELS.len(), usize::try_from(CURRENT_LEVEL).unwrap());
    assert_eq!(LevelRange::of_this_node(Some(1)).max, 1);
    assert_eq!(LevelRange::of_this_node(None).max, CURRENT_LEVEL);
}

#[test]
fn snapshots_carry_the_finalized_level_and_old_states_read_as_level_1() {
    let (writer, _dir) = writer();
    writer.apply_record(1, &register(1, CURRENT_LEVEL)).unwrap();
    writer.apply_record(2, &finalize(2)).unwrap();
    let state = serde_json::to_string(&writer.cluster_state()).unwrap();
    let back: ClusterState = serde_json::from_str(&state).unwrap();
    assert_eq!((back.format_level(), back.features_epoch()), (2, 2));
    let old: ClusterState = serde_json::from_str(
        r#"{"brokers":{},"assignments":{},"next_producer_id":0,"applied_index":0}"#,
    )
    .unwrap();
    assert_eq!(old.format_level(), 1);
}

#[test]
fn a_fresh_cluster_bootstraps_to_what_every_voter_reads_and_an_old_one_never_does() {
    let (writer, _dir) = writer();
    let voters = [1, 2, 3];
    writer.apply_record(1, &register(1, CURRENT_LEVEL)).unwrap();
    writer.apply_record(2, &register(2, CURRENT_LEVEL)).unwrap();
    assert_eq!(
        writer.cluster_state().bootstrap_target(&voters),
        None,
        "3 missing"
    );
    writer.apply_record(3, &register(3, CURRENT_LEVEL)).unwrap();
    assert_eq!(
        writer.cluster_state().bootstrap_target(&voters),
        Some(CURRENT_LEVEL)
    );
    writer.apply_record(4, &finalize(CURRENT_LEVEL)).unwrap();
    assert_eq!(
        writer.cluster_state().bootstrap_target(&voters),
        None,
        "done once"
    );

    // An initial voter of an older binary closes the bootstrap for good: rolling it later
    // does not raise the level without an UpdateFeatures.
    let (writer, _dir2) = self::writer();
    writer.apply_record(1, &register(1, CURRENT_LEVEL)).unwrap();
    writer.apply_record(2, &register(2, 1)).unwrap();
    writer.apply_record(3, &register(3, CURRENT_LEVEL)).unwrap();
    writer.apply_record(4, &register(2, CURRENT_LEVEL)).unwrap();
    assert_eq!(writer.cluster_state().bootstrap_target(&voters), None);

    // A cluster from before this change (brokers registered, nothing finalized) is not new.
    let mut old = writer.cluster_state();
    old.format_bootstrap_open = false;
    let text = serde_json::to_string(&old)
        .unwrap()
        .replace(",\"format_bootstrap_open\":false", "");
    let old: ClusterState = serde_json::from_str(&text).unwrap();
    assert_eq!(old.bootstrap_target(&voters), None);
}
