//! Behaviour of the partition layer against a real log: the durability decision, Kafka's
//! offsets, DeleteRecords' range and the traffic counted through the metrics handle.

use std::rc::Rc;

use bytes::BytesMut;

use super::{ACKS_ALL, DELETE_RECORDS_TO_HIGH_WATERMARK, Isolation, Partition, must_sync};
use crate::config::{Durability, LogConfig};
use crate::metrics::ShardMetrics;
use crate::storage::PartitionLog;
use crate::storage::batch::build_test_batch;

const ACKS_LEADER: i16 = 1;
const ACKS_NONE: i16 = 0;

fn batch(count: i32, value_len: usize, ts: i64) -> BytesMut {
    BytesMut::from(&build_test_batch(count, value_len, ts, None)[..])
}

fn producer_batch(pid: i64, seq: i32, count: i32) -> BytesMut {
    BytesMut::from(&build_test_batch(count, 8, 1000, Some((pid, 0, seq)))[..])
}

/// A partition over a fresh log in `dir`, and the shard metrics its handle belongs to.
async fn open(dir: &std::path::Path, config: LogConfig) -> (Partition, Rc<ShardMetrics>) {
    let log = PartitionLog::open(dir, "t", 0, config).await.unwrap();
    let metrics = Rc::new(ShardMetrics::new(0, true));
    let partition = Partition::new(log, metrics.partition("t", 0));
    (partition, metrics)
}

fn with_durability(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        ..LogConfig::default()
    }
}

#[test]
fn the_topic_durability_decides_which_acks_wait_for_the_sync() {
    for acks in [ACKS_ALL, ACKS_LEADER, ACKS_NONE] {
        assert_eq!(must_sync(Durability::AcksAll, acks), acks == ACKS_ALL);
        assert!(must_sync(Durability::Always, acks));
        assert!(!must_sync(Durability::None, acks));
    }
}

#[compio::test]
async fn durability_always_syncs_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), with_durability(Durability::Always)).await;
    let before = partition.log.fdatasync_count();
    partition
        .append(batch(1, 10, 0), 1, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    assert_eq!(partition.log.fdatasync_count(), before + 1);
    assert_eq!(partition.log.durable_offset(), 1);
    let mut lowered = partition.log.config();
    lowered.max_message_bytes = 50;
    partition.update_config(lowered);
    assert_eq!(
        partition
            .append(batch(1, 100, 0), 1, ACKS_LEADER, 0, || {})
            .await
            .unwrap_err()
            .kafka_error_code(),
        10
    );
}

#[compio::test]
async fn acks_all_waits_for_the_sync_and_acks_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), with_durability(Durability::AcksAll)).await;
    partition
        .append(batch(1, 10, 0), 1, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    assert_eq!(partition.log.durable_offset(), 0, "acks=1 is not synced");
    partition
        .append(batch(1, 10, 0), 1, ACKS_ALL, 0, || {})
        .await
        .unwrap();
    assert_eq!(
        partition.log.durable_offset(),
        2,
        "acks=all syncs what is written"
    );
}

#[compio::test]
async fn durability_none_never_waits_for_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), with_durability(Durability::None)).await;
    let before = partition.log.fdatasync_count();
    partition
        .append(batch(1, 10, 0), 1, ACKS_ALL, 0, || {})
        .await
        .unwrap();
    assert_eq!(partition.log.fdatasync_count(), before);
    assert_eq!(partition.log.durable_offset(), 0);
}

#[compio::test]
async fn on_one_node_the_high_watermark_and_lso_are_the_written_end() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), LogConfig::default()).await;
    assert_eq!(partition.high_watermark(), 0);
    partition
        .append(batch(3, 10, 0), 3, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    assert_eq!(partition.log_end_offset(), 3);
    assert_eq!(
        partition.high_watermark(),
        partition.log.written_end_offset()
    );
    assert_eq!(partition.high_watermark(), 3);
    assert_eq!(partition.last_stable_offset(), partition.high_watermark());
    let slice = partition
        .read(0, 1000, Isolation::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(
        (
            slice.high_watermark,
            slice.last_stable_offset,
            slice.log_start_offset
        ),
        (3, 3, 0)
    );
    assert_eq!(
        slice.bytes,
        slice.regions.iter().map(|r| r.len as usize).sum::<usize>()
    );
}

#[compio::test]
async fn waiting_for_the_high_watermark_completes_when_an_append_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), LogConfig::default()).await;
    let partition = Rc::new(partition);
    let waiter = partition.wait_for_high_watermark();
    let seen = Rc::clone(&partition);
    let task = compio::runtime::spawn(async move {
        waiter.await;
        seen.high_watermark()
    });
    partition
        .append(batch(1, 10, 0), 1, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    assert_eq!(task.await.unwrap(), 1);
}

async fn append_acks_all(partition: &Partition) {
    partition
        .append(batch(2, 100, 0), 2, ACKS_ALL, 0, || {})
        .await
        .unwrap();
}

/// Decision 0012, session 19: with followers in the ISR a leader's append is part of a
/// replication round (its acks=all answer waits for followers that fetch only what is
/// written), so it is written inline under `replica_write_inline_max_bytes`, as a follower's
/// copy is; alone in the ISR, or with that setting at 0, it goes through io_uring
/// (`write_inline_max_bytes`, 0 by default), as on one node.
#[compio::test]
async fn a_leader_with_in_sync_followers_writes_its_appends_inline() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), LogConfig::default()).await;
    let set = super::replicas::ReplicaSet::new(&[2, 3], &[2, 3], 0, 2, 0, 0, 1_000);
    let partition = partition.with_replicas(set);
    append_acks_all(&partition).await;
    assert_eq!(
        partition.log.inline_write_count(),
        1,
        "in-sync followers: inline"
    );
    partition.replicas().unwrap().set_in_sync(&[], 1);
    append_acks_all(&partition).await;
    assert_eq!(
        partition.log.inline_write_count(),
        1,
        "alone in the ISR: io_uring"
    );
    partition.replicas().unwrap().set_in_sync(&[2], 2);
    let mut off = partition.log.config();
    off.replica_write_inline_max_bytes = 0;
    partition.update_config(off);
    append_acks_all(&partition).await;
    assert_eq!(
        partition.log.inline_write_count(),
        1,
        "setting at 0: io_uring"
    );
    assert_eq!(partition.log_end_offset(), 6);
}

#[compio::test]
async fn delete_records_stops_at_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), LogConfig::default()).await;
    partition
        .append(batch(5, 10, 0), 5, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    let past = partition.delete_records(6).await.unwrap_err();
    assert_eq!(past.kafka_error_code(), 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(
        partition
            .delete_records(-2)
            .await
            .unwrap_err()
            .kafka_error_code(),
        1
    );
    assert_eq!(partition.delete_records(2).await.unwrap(), 2);
    assert_eq!(
        partition
            .delete_records(DELETE_RECORDS_TO_HIGH_WATERMARK)
            .await
            .unwrap(),
        5
    );
    assert_eq!(partition.log_start_offset(), 5);
}

#[compio::test]
async fn traffic_is_counted_once_and_a_duplicate_is_not_counted_again() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, metrics) = open(dir.path(), LogConfig::default()).await;
    let first = producer_batch(7, 0, 2);
    let bytes = first.len() as u64;
    let retry = first.clone();
    partition
        .append(first, 2, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    let again = partition
        .append(retry, 2, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    assert!(again.duplicate);
    let slice = partition
        .read(0, 1000, Isolation::ReadUncommitted)
        .await
        .unwrap();
    partition.publish_storage_metrics();
    let snapshot = metrics.snapshot();
    let counted = &snapshot.partitions[0];
    assert_eq!((counted.bytes_in, counted.records_in), (bytes, 2));
    assert_eq!(
        (counted.bytes_out, counted.records_out),
        (slice.bytes as u64, 2)
    );
    assert_eq!((counted.log_start_offset, counted.log_end_offset), (0, 2));
}

/// Issue 17's high-watermark checkpoint rules on one partition: a restored high watermark
/// never passes the log end; a follower's learned one neither, and never goes back; a
/// deposed leader keeps its own as the follower it becomes.
#[compio::test]
async fn high_watermarks_are_restored_learned_and_kept_across_a_demotion() {
    let dir = tempfile::tempdir().unwrap();
    let (partition, _) = open(dir.path(), LogConfig::default()).await;
    partition
        .append(batch(10, 8, 0), 10, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    assert_eq!(partition.restored_high_watermark(7), 7);
    assert_eq!(
        partition.restored_high_watermark(25),
        10,
        "records a checkpoint counted may be gone after a crash"
    );

    partition.restore_follower_high_watermark(4);
    assert_eq!(partition.follower_high_watermark(), 4);
    partition.note_leader_high_watermark(8);
    assert_eq!(partition.follower_high_watermark(), 8);
    partition.note_leader_high_watermark(30);
    assert_eq!(
        partition.follower_high_watermark(),
        10,
        "not past its own log end"
    );
    partition.note_leader_high_watermark(-1);
    assert_eq!(partition.follower_high_watermark(), 10, "never back");

    // A leader (fresh: never a follower) with two in-sync followers that both hold 6 of
    // its 10 records: demoted, it keeps 6 as its follower high watermark.
    let dir = tempfile::tempdir().unwrap();
    let (fresh, _) = open(dir.path(), LogConfig::default()).await;
    fresh
        .append(batch(10, 8, 0), 10, ACKS_LEADER, 0, || {})
        .await
        .unwrap();
    let set = super::replicas::ReplicaSet::new(&[2, 3], &[2, 3], 0, 2, 0, 0, 1_000);
    let leader = fresh.successor(Some(set));
    let set = leader.replicas().unwrap();
    set.record_fetch(2, 6, 0, 10, 1);
    set.record_fetch(3, 6, 0, 10, 1);
    assert_eq!(leader.high_watermark(), 6);
    assert_eq!(leader.follower_high_watermark(), -1);
    let follower = leader.demoted();
    assert!(leader.replicas().unwrap().deposed());
    assert_eq!(follower.follower_high_watermark(), 6);
}
