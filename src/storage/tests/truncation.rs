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
