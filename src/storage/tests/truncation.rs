//! A follower's truncation to its leader's log (KIP-101): batches from the cut on are
//! gone, the log takes appends at its new end, producer state and the leader-epoch cache
//! forget what was cut, and all of it holds across a reopen and across a crash.

use super::support::{batch, crash, open, pbatch, read_all, small_config};

#[compio::test]
async fn truncation_drops_the_tail_and_survives_reopen_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    log.become_leader(1).await.unwrap();
    for i in 0..40 {
        log.append(batch(2, 200, 1000 + i), false, 0).await.unwrap();
    }
    log.become_leader(2).await.unwrap();
    let mut seq = 0;
    for _ in 0..10 {
        log.append(pbatch(7, 0, seq, 2), false, 0).await.unwrap();
        seq += 2;
    }
    assert_eq!(log.log_end_offset(), 100);
    assert!(log.segment_count() > 2, "the cut crosses segments");
    assert_eq!(log.end_offset_for_epoch(1), (1, 80));
    // Cut inside epoch 1: epoch 2 and the producer's batches go.
    let log = log.truncate_to(61).await.unwrap();
    assert_eq!(log.log_end_offset(), 60, "cut at a batch boundary");
    assert_eq!(log.latest_cached_epoch(), 1);
    assert_eq!(log.end_offset_for_epoch(1), (1, 60));
    let headers = read_all(&log).await;
    assert_eq!(headers.last().map(|h| h.last_offset()), Some(59));
    assert!(
        log.producer_states().is_empty(),
        "the producer's batches were cut"
    );
    // Appends go on at the new end; a reopen after a clean close keeps it all.
    log.append(batch(1, 40, 5000), false, 0).await.unwrap();
    log.close().await.unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_end_offset(), 61);
    assert_eq!(log.latest_cached_epoch(), 1);
    // A crash right after another truncation recovers to the truncated log.
    let log = log.truncate_to(20).await.unwrap();
    crash(log).await;
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(read_all(&log).await.len(), 10);
}

/// A follower behind its leader's log start (Kafka's `truncateFullyAndStartAt`): the reset
/// log is empty at the new start, takes the leader's batches from there, and keeps all of
/// it across a reopen; a crash right after the reset recovers the same empty log.
#[compio::test]
async fn a_reset_log_starts_over_empty_at_the_leaders_log_start() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), small_config()).await.unwrap();
    let follower = open(follower_dir.path(), small_config()).await.unwrap();
    leader.become_leader(3).await.unwrap();
    follower.become_leader(1).await.unwrap();
    let mut seq = 0;
    for i in 0..30 {
        follower
            .append(batch(2, 200, 1000 + i), false, 0)
            .await
            .unwrap();
        leader.append(pbatch(9, 0, seq, 2), false, 0).await.unwrap();
        seq += 2;
    }
    leader.delete_records(40).await.unwrap();
    let leader_start = leader.log_start_offset();
    assert!(leader_start > 0, "the leader dropped its first segments");
    let follower = follower.reset_to(leader_start).await.unwrap();
    assert_eq!(follower.log_start_offset(), leader_start);
    assert_eq!(follower.log_end_offset(), leader_start);
    assert!(
        read_all(&follower).await.is_empty(),
        "nothing of the old log is left"
    );
    assert!(follower.producer_states().is_empty());
    assert_eq!(
        follower.latest_cached_epoch(),
        0,
        "no epoch of the old log is left"
    );
    assert_eq!(
        follower.end_offset_for_epoch(1),
        (-1, -1),
        "epoch 1 is unknown now"
    );
    let crashed_dir = tempfile::tempdir().unwrap();
    let crashed = open(crashed_dir.path(), small_config()).await.unwrap();
    crashed.append(batch(2, 200, 1), false, 0).await.unwrap();
    crash(crashed.reset_to(leader_start).await.unwrap()).await;
    let crashed = open(crashed_dir.path(), small_config()).await.unwrap();
    assert_eq!(crashed.log_start_offset(), leader_start);
    assert_eq!(crashed.log_end_offset(), leader_start);

    // The leader's batches from its log start land as they are.
    let slice = leader.read(leader_start, u32::MAX).await.unwrap();
    let mut fetched = bytes::BytesMut::new();
    for r in &slice.regions {
        fetched.extend_from_slice(&r.read_to_vec().await.unwrap());
    }
    let end = follower.append_replicated(fetched, 0).await.unwrap();
    assert_eq!(end, leader.log_end_offset());
    assert_eq!(follower.latest_cached_epoch(), 3);
    assert_eq!(
        follower.producer_states().len(),
        1,
        "the leader's producer came along"
    );
    follower.close().await.unwrap();
    let follower = open(follower_dir.path(), small_config()).await.unwrap();
    assert_eq!(follower.log_start_offset(), leader_start);
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    let headers = read_all(&follower).await;
    assert_eq!(headers.first().map(|h| h.base_offset), Some(leader_start));
}
