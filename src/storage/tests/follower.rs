//! A follower's append: the leader's batches land as the leader stored them (offsets,
//! leader epochs and bytes kept), re-fetched batches are skipped, a partial trailing batch
//! waits for the next fetch, and an overlap or a corrupt batch is refused.

use super::support::{batch, open, pbatch, read_all, small_config};
use bytes::BytesMut;

/// The leader's log from `offset` as one fetch answer would carry it (at most `max_bytes`,
/// whole batches), plus `extra` bytes of the next batch to stand for a cut answer.
async fn fetched(leader: &crate::storage::PartitionLog, offset: i64, max_bytes: u32) -> BytesMut {
    let slice = leader.read(offset, max_bytes).await.unwrap();
    let mut out = BytesMut::new();
    for r in &slice.regions {
        out.extend_from_slice(&r.read_to_vec().await.unwrap());
    }
    out
}

/// Both ways a follower's append reaches the file: inline on the shard's thread (the
/// default, `replica_write_inline_max_bytes`) and through io_uring (0).
#[compio::test]
async fn a_follower_log_is_the_leaders_byte_for_byte() {
    follower_copies_the_leader(small_config()).await;
    follower_copies_the_leader(crate::config::LogConfig {
        replica_write_inline_max_bytes: 0,
        ..small_config()
    })
    .await;
}

async fn follower_copies_the_leader(follower_config: crate::config::LogConfig) {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), small_config()).await.unwrap();
    let follower = open(follower_dir.path(), follower_config).await.unwrap();
    let mut seq = 0;
    for i in 0..60 {
        let b = if i % 3 == 0 {
            seq += 2;
            pbatch(7, 0, seq - 2, 2)
        } else {
            batch(1 + (i % 3), 40, 1000 + i as i64)
        };
        leader.append(b, false, 0).await.unwrap();
    }
    let mut offset = 0;
    let mut rounds = 0;
    while offset < leader.written_end_offset() {
        let mut payload = fetched(&leader, offset, 600).await;
        // Half of the next answer too, as a fetch cut at its byte limit would carry.
        let next = fetched(&leader, offset, 1200).await;
        if next.len() > payload.len() + 30 {
            payload.extend_from_slice(&next[payload.len()..payload.len() + 30]);
        }
        let end = follower.append_replicated(payload, 0).await.unwrap();
        assert!(end > offset, "no progress at {offset}");
        // The same answer again (the follower lost it): nothing changes.
        let again = fetched(&leader, offset, 600).await;
        assert_eq!(follower.append_replicated(again, 0).await.unwrap(), end);
        offset = end;
        rounds += 1;
    }
    assert!(rounds > 3, "several fetches: {rounds}");
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(read_all(&follower).await, read_all(&leader).await);
    assert_eq!(follower.segment_count(), leader.segment_count());
    let leader_bytes = fetched(&leader, 0, u32::MAX).await;
    let follower_bytes = fetched(&follower, 0, u32::MAX).await;
    assert_eq!(leader_bytes, follower_bytes);
    // The idempotent producer's state came along: its next batch in sequence is taken and a
    // retry of its last one is a duplicate with the leader's offsets.
    let retry = follower
        .append(pbatch(7, 0, seq - 2, 2), false, 0)
        .await
        .unwrap();
    assert!(retry.duplicate);
    let original = leader
        .append(pbatch(7, 0, seq - 2, 2), false, 0)
        .await
        .unwrap();
    assert_eq!(retry.base_offset, original.base_offset);
    follower.close().await.unwrap();
    leader.close().await.unwrap();
}

#[compio::test]
async fn an_overlap_or_a_corrupt_batch_is_refused() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path(), small_config()).await.unwrap();
    let follower = open(follower_dir.path(), small_config()).await.unwrap();
    leader.append(batch(3, 10, 1), false, 0).await.unwrap();
    follower.append(batch(2, 10, 1), false, 0).await.unwrap();
    // The follower has offsets 0..2 of another history; the leader's 0..3 overlaps them.
    let payload = fetched(&leader, 0, 1000).await;
    assert!(follower.append_replicated(payload, 0).await.is_err());
    assert_eq!(follower.log_end_offset(), 2);

    let empty_dir = tempfile::tempdir().unwrap();
    let empty = open(empty_dir.path(), small_config()).await.unwrap();
    let mut corrupt = fetched(&leader, 0, 1000).await;
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(empty.append_replicated(corrupt, 0).await.is_err());
    assert_eq!(empty.log_end_offset(), 0);
}
