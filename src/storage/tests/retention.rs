//! Deleting data: retention by time and size, `segment.ms` rolls, DeleteRecords,
//! DeleteTopics and segments left below a persisted log start.

use super::support::{assert_gap_free, batch, crash, open, read_all, small_config};
use crate::config::LogConfig;

#[compio::test]
async fn retention_by_time_deletes_only_whole_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 10_000,
        ..small_config()
    };
    let log = open(dir.path(), config).await.unwrap();
    // Old data (timestamps 0..), then new data (timestamps 100_000..).
    for i in 0..40i64 {
        log.append(batch(1, 100, i), false, 0).await.unwrap();
    }
    let old_segments = log.segment_count();
    for i in 0..40i64 {
        log.append(batch(1, 100, 100_000 + i), false, 0)
            .await
            .unwrap();
    }
    let before = log.segment_count();
    let deleted = log.enforce_retention(105_000).await.unwrap();
    assert!(
        deleted >= old_segments - 1,
        "deleted {deleted} of {old_segments} old"
    );
    assert_eq!(log.segment_count(), before - deleted);
    // Log start moved to a segment base; every remaining batch is readable.
    let first_base = log.segment_base_offsets()[0];
    assert_eq!(log.log_start_offset(), first_base);
    let headers = read_all(&log).await;
    assert_gap_free(&headers, first_base);
    assert!(headers.iter().any(|h| h.max_timestamp < 100_000) || first_base >= 40);
    assert!(headers.iter().all(|h| h.base_offset >= first_base));
    // Everything expired: the active segment stays.
    let deleted = log.enforce_retention(1_000_000).await.unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(log.log_start_offset(), 100).await.is_ok());
    // Files of deleted segments are gone.
    assert!(!dir.path().join("t-0/00000000000000000000.log").exists());
}

#[compio::test]
async fn retention_by_size_keeps_the_newest_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 10_000,
        retention_ms: -1,
        ..small_config()
    };
    let log = open(dir.path(), config).await.unwrap();
    for i in 0..200i64 {
        log.append(batch(1, 100, i), false, 0).await.unwrap();
    }
    assert!(log.size_bytes() > 20_000);
    let deleted = log.enforce_retention(0).await.unwrap();
    assert!(deleted > 0);
    assert!(
        log.size_bytes() >= 10_000 - 4096,
        "kept {}",
        log.size_bytes()
    );
    assert!(
        log.size_bytes() <= 10_000 + 4096,
        "kept {}",
        log.size_bytes()
    );
    assert_eq!(log.enforce_retention(0).await.unwrap(), 0, "idempotent");
    assert_gap_free(&read_all(&log).await, log.log_start_offset());
}

#[compio::test]
async fn segment_ms_rolls_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    log.append(batch(1, 10, 0), false, 50).await.unwrap();
    log.enforce_retention(500).await.unwrap();
    assert_eq!(log.segment_count(), 1);
    log.enforce_retention(2000).await.unwrap();
    assert_eq!(log.segment_count(), 2);
    let out = log.append(batch(1, 10, 0), false, 2001).await.unwrap();
    assert_eq!(out.base_offset, 1);
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
}

#[compio::test]
async fn delete_records_advances_start_and_drops_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    for i in 0..100i64 {
        log.append(batch(1, 100, i), false, 0).await.unwrap();
    }
    let segs = log.segment_count();
    assert_eq!(log.delete_records(50).await.unwrap(), 50);
    assert_eq!(log.log_start_offset(), 50);
    assert!(log.segment_count() < segs);
    let headers = read_all(&log).await;
    assert_eq!(headers.last().unwrap().last_offset(), 99);
    assert!(headers[0].base_offset <= 50);
    assert!(log.delete_records(101).await.is_err());
    assert_eq!(
        log.delete_records(10).await.unwrap(),
        50,
        "never moves back"
    );
    // Persisted.
    crash(log).await;
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_start_offset(), 50);
    assert_eq!(log.delete_records(-1).await.unwrap(), 100);
    assert_eq!(log.read(100, 10).await.unwrap().total_bytes, 0);
}

#[compio::test]
async fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
    log.delete().await.unwrap();
    assert!(!dir.path().join("t-0").exists());
    assert!(log.append(batch(1, 10, 0), false, 0).await.is_err());
}

#[compio::test]
async fn segments_below_a_persisted_log_start_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    for i in 0..100i64 {
        log.append(batch(1, 100, i), false, 0).await.unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3);
    crash(log).await;
    // A crash after persisting the new log start but before unlinking the segments below it.
    let part = dir.path().join("t-0");
    let state = crate::storage::state::PartitionState {
        log_start_offset: bases[2] + 1,
        recovery_point: 0,
        written_end_offset: 0,
        clean_shutdown: false,
    };
    crate::storage::state::write_state(&part, &state)
        .await
        .unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_start_offset(), bases[2] + 1);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(!part.join(format!("{:020}.log", bases[0])).exists());
    assert!(!part.join(format!("{:020}.index", bases[1])).exists());
    assert_eq!(read_all(&log).await.last().unwrap().last_offset(), 99);
}
