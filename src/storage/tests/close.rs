//! Clean shutdown under load: `close()` while appends are still in the writer's hands
//! (issue 19, point 5). Owns only these scenarios; the log's other behaviour is tested in
//! the other files of `storage::tests`. Must not depend on timing: each test reaches the interleaving by order of
//! polls on one thread, not by sleeping.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;

use crate::config::LogConfig;
use crate::storage::batch::build_test_batch;
use crate::storage::log::PartitionLog;

const TOPIC: &str = "t";

fn batch(count: i32, value_len: usize) -> BytesMut {
    BytesMut::from(&build_test_batch(count, value_len, 1000, None)[..])
}

/// Dispatches an acks=all append in a task of its own, then closes the log before the
/// writer task has run: on a shard this is a produce forwarded from another shard's
/// connection (not covered by this shard's connection drain) still being written when
/// shutdown closes the partition. The append was dispatched before the close, so it must
/// be written, synced and acknowledged, and the close must still mark the log clean.
///
/// `fill_bytes`: acks=1 data appended first, so that with a small `segment.bytes` the
/// durable append rolls the segment and its seal runs alongside the group commit.
async fn close_with_a_durable_append_in_flight(dir: &Path, config: LogConfig, fill_bytes: u64) {
    let log = PartitionLog::open(dir, TOPIC, 0, config.clone())
        .await
        .unwrap();
    while log.size_bytes() < fill_bytes {
        log.append(batch(1, 100), false, 0).await.unwrap();
    }
    let segments_before = log.segment_count();
    let rolls = fill_bytes > 0;
    let (dispatched_tx, dispatched_rx) = futures_channel::oneshot::channel::<()>();
    let appending = {
        let log = Rc::clone(&log);
        compio::runtime::spawn(async move {
            log.append_staged(batch(5, 100), true, 0, move || {
                let _ = dispatched_tx.send(());
            })
            .await
        })
    };
    dispatched_rx.await.unwrap();
    // The writer task is spawned but has not written yet: `close` marks the log closed
    // before any of its writes or its group commit run.
    log.close().await.expect("close with an append in flight");
    let outcome = appending
        .await
        .unwrap()
        .expect("an append dispatched before close is acknowledged");
    assert_eq!(outcome.last_offset - outcome.base_offset, 4);
    let segments_expected = segments_before + usize::from(rolls);
    assert_eq!(log.segment_count(), segments_expected);
    let end = log.log_end_offset();
    assert_eq!(log.durable_offset(), end);
    drop(log);

    let reopened = PartitionLog::open(dir, TOPIC, 0, config).await.unwrap();
    assert!(
        reopened.opened_clean(),
        "close marked the log clean, so the reopen skips recovery"
    );
    assert_eq!(reopened.log_end_offset(), end);
}

#[compio::test]
async fn close_waits_for_a_durable_append_being_written_and_marks_the_log_clean() {
    let dir = tempfile::tempdir().unwrap();
    close_with_a_durable_append_in_flight(dir.path(), LogConfig::default(), 0).await;
}

#[compio::test]
async fn close_waits_for_a_durable_append_that_rolled_and_marks_the_log_clean() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    // Fill the active segment so the durable append (about 600 bytes) rolls it: the rolled
    // segment's seal runs in its own task while the group commit waits for it.
    close_with_a_durable_append_in_flight(dir.path(), config, 3700).await;
}
