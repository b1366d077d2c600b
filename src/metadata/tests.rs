//! Unit tests of the metadata writer: topic name rules, persistence, producer ids.

use super::*;

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(validate_topic_name("orders.v1_eu-west").is_ok());
    assert!(validate_topic_name("").is_err());
    assert!(validate_topic_name("..").is_err());
    assert!(validate_topic_name("a b").is_err());
    assert!(validate_topic_name(&"x".repeat(250)).is_err());
}

#[test]
fn writer_persists_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
    let mut overrides = BTreeMap::new();
    overrides.insert("retention.ms".to_string(), "1000".to_string());
    let t = writer
        .create_topic("orders", 3, 1, overrides, false)
        .unwrap();
    assert_eq!(view.load().topic("orders").unwrap().partitions, 3);
    assert!(matches!(
        writer.create_topic("orders", 1, 1, BTreeMap::new(), false),
        Err(MetadataError::TopicExists(_))
    ));
    writer.create_partitions("orders", 5, false).unwrap();
    let cluster_id = view.load().cluster_id.clone();
    drop(writer);

    let (_writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
    let snap = view.load();
    let reloaded = snap.topic("orders").unwrap();
    assert_eq!(reloaded.partitions, 5);
    assert_eq!(reloaded.id, t.id);
    assert_eq!(reloaded.config.retention_ms, 1000);
    assert_eq!(snap.cluster_id, cluster_id);
    assert_eq!(snap.topic_by_id(&t.id).unwrap().name, "orders");
}

#[test]
fn producer_ids_are_never_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
    let first = writer.allocate_producer_id().unwrap();
    let second = writer.allocate_producer_id().unwrap();
    assert_eq!(second, first + 1);
    drop(writer);
    let (writer, _) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
    assert!(writer.allocate_producer_id().unwrap() > second);
}

#[test]
fn validate_only_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
    writer
        .create_topic("t", 1, 1, BTreeMap::new(), true)
        .unwrap();
    assert!(view.load().topic("t").is_none());
    assert!(matches!(
        writer.create_topic("t", 1, 3, BTreeMap::new(), false),
        Err(MetadataError::InvalidReplicationFactor(3))
    ));
    let mut bad = BTreeMap::new();
    bad.insert("retention.ms".to_string(), "soon".to_string());
    assert!(matches!(
        writer.create_topic("t", 1, 1, bad, false),
        Err(MetadataError::InvalidConfig(_))
    ));
}
