//! Behaviour tests of the partition log through its public API, against real files.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;

use super::batch::{BatchHeader, build_test_batch, validate_batches};
use super::error::StorageError;
use super::log::PartitionLog;
use super::state::{PartitionState, read_state, write_state};
use crate::config::{LogConfig, TimestampType};

const TOPIC: &str = "t";

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn batch(count: i32, value_len: usize, ts: i64) -> BytesMut {
    BytesMut::from(&build_test_batch(count, value_len, ts, None)[..])
}

fn pbatch(pid: i64, epoch: i16, seq: i32, count: i32) -> BytesMut {
    BytesMut::from(&build_test_batch(count, 8, 1000, Some((pid, epoch, seq)))[..])
}

async fn open(dir: &Path, config: LogConfig) -> Result<Rc<PartitionLog>, StorageError> {
    PartitionLog::open(dir, TOPIC, 0, config).await
}

/// Drops the handle without `close`, as a crash would. A crash also ends the log's
/// background seal tasks; in a test they would outlive the handle and race the reopen, so
/// they finish first. Nothing else is flushed or marked clean.
async fn crash(log: Rc<PartitionLog>) {
    log.wait_writer_idle().await;
    drop(log);
}

/// Every batch from the log start to the high watermark, CRC-checked, via `read`.
async fn read_all(log: &PartitionLog) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let slice = log.read(offset, 1000).await.unwrap();
        assert!(!slice.regions.is_empty(), "no data at {offset}");
        for r in &slice.regions {
            let bytes = r.read_to_vec().await.unwrap();
            let batches = validate_batches(&bytes).expect("served bytes are whole valid batches");
            for b in batches {
                out.push(b.header);
                offset = b.header.last_offset() + 1;
            }
        }
    }
    out
}

fn assert_gap_free(headers: &[BatchHeader], from: i64) {
    let mut next = from;
    for h in headers {
        assert_eq!(h.base_offset, next, "gap or overlap before {h:?}");
        next = h.last_offset() + 1;
    }
}

#[compio::test]
async fn offsets_are_monotonic_and_gap_free_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let mut expected = 0;
    for i in 0..120 {
        let count = 1 + (i % 4);
        let out = log
            .append(batch(count, 40, 1000 + i as i64), false, 0)
            .await
            .unwrap();
        assert_eq!(out.base_offset, expected);
        assert_eq!(out.last_offset, expected + count as i64 - 1);
        assert!(!out.duplicate);
        expected = out.last_offset + 1;
    }
    assert_eq!(log.log_end_offset(), expected);
    assert_eq!(log.high_watermark(), expected);
    assert!(log.segment_count() > 3, "rolled: {}", log.segment_count());
    let headers = read_all(&log).await;
    assert_gap_free(&headers, 0);
    assert_eq!(headers.len(), 120);
    // Kafka names, on disk.
    assert!(dir.path().join("t-0/00000000000000000000.log").exists());
    assert!(dir.path().join("t-0/00000000000000000000.index").exists());
    assert!(
        dir.path()
            .join("t-0/00000000000000000000.timeindex")
            .exists()
    );
    log.close().await.unwrap();
    assert!(
        read_state(&dir.path().join("t-0"))
            .await
            .unwrap()
            .unwrap()
            .clean_shutdown
    );

    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_end_offset(), expected);
    assert_gap_free(&read_all(&log).await, 0);
    let out = log.append(batch(2, 40, 5000), false, 0).await.unwrap();
    assert_eq!(out.base_offset, expected);
}

#[compio::test]
async fn every_offset_is_found_in_the_batch_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    for i in 0..60 {
        log.append(batch(1 + i % 5, 30, i as i64), false, 0)
            .await
            .unwrap();
    }
    let check = |log: Rc<PartitionLog>| async move {
        for o in 0..log.high_watermark() {
            let slice = log.read(o, 1).await.unwrap();
            let bytes = slice.regions[0].read_to_vec().await.unwrap();
            let h = validate_batches(&bytes).unwrap()[0].header;
            assert!(
                h.base_offset <= o && o <= h.last_offset(),
                "offset {o} in {h:?}"
            );
            assert_eq!(slice.total_bytes, bytes.len() as u64);
        }
    };
    check(Rc::clone(&log)).await;
    // Unclean reopen (no close): indexes rebuilt by recovery.
    crash(log).await;
    let log = open(dir.path(), small_config()).await.unwrap();
    check(Rc::clone(&log)).await;
    log.close().await.unwrap();
    // Clean reopen: indexes loaded from disk.
    let log = open(dir.path(), small_config()).await.unwrap();
    check(log).await;
}

#[compio::test]
async fn reads_end_on_batch_boundaries_within_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let one = batch(3, 100, 0);
    let size = one.len() as u32;
    for _ in 0..10 {
        log.append(batch(3, 100, 0), false, 0).await.unwrap();
    }
    // Smaller than one batch: the first batch anyway (KIP-74).
    let s = log.read(0, 10).await.unwrap();
    assert_eq!(s.total_bytes, size as u64);
    // 2.5 batches: two whole batches.
    let s = log.read(3, size * 5 / 2).await.unwrap();
    let bytes = s.regions[0].read_to_vec().await.unwrap();
    let v = validate_batches(&bytes).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].header.base_offset, 3);
    // Everything.
    let s = log.read(0, u32::MAX).await.unwrap();
    assert_eq!(s.total_bytes, size as u64 * 10);
    // At the high watermark: empty. Past the end or before the start: out of range.
    let s = log.read(30, 1000).await.unwrap();
    assert!(s.regions.is_empty());
    assert_eq!(s.high_watermark, 30);
    assert!(matches!(
        log.read(31, 1000).await,
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.read(31, 1000).await.unwrap_err().kafka_error_code(), 1);
    log.delete_records(6).await.unwrap();
    assert!(matches!(
        log.read(5, 1000).await,
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[compio::test]
async fn timestamp_lookup_finds_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    // Batch i has timestamps 1000*i .. 1000*i+1 (two records).
    for i in 0..50i64 {
        log.append(batch(2, 50, 1000 * i), false, 0).await.unwrap();
    }
    assert!(log.segment_count() > 1);
    for i in 0..50i64 {
        let got = log.offset_for_timestamp(1000 * i).await.unwrap();
        assert_eq!(got, Some((2 * i, 1000 * i)), "target {}", 1000 * i);
        // The second record of the batch, not the batch start.
        let got = log.offset_for_timestamp(1000 * i + 1).await.unwrap();
        assert_eq!(got, Some((2 * i + 1, 1000 * i + 1)));
        let got = log.offset_for_timestamp(1000 * i + 500).await.unwrap();
        if i < 49 {
            assert_eq!(got, Some((2 * (i + 1), 1000 * (i + 1))));
        } else {
            assert_eq!(got, None);
        }
    }
    assert_eq!(log.offset_for_timestamp(-5).await.unwrap(), Some((0, 0)));
    assert_eq!(log.max_timestamp(), (49_001, 99));
    // Survives a clean reopen (time index and sealed max timestamps from disk).
    log.close().await.unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(
        log.offset_for_timestamp(25_000).await.unwrap(),
        Some((50, 25_000))
    );
    assert_eq!(log.max_timestamp(), (49_001, 99));
}

#[compio::test]
async fn log_append_time_stamps_the_batch_and_keeps_crc_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    let out = log.append(batch(2, 10, 5), false, 777_000).await.unwrap();
    assert_eq!(out.log_append_time_ms, 777_000);
    let h = read_all(&log).await[0];
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 777_000);
}

#[compio::test]
async fn oversized_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 200,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    let e = log.append(batch(5, 100, 0), false, 0).await.unwrap_err();
    assert_eq!(e.kafka_error_code(), 10);
    assert_eq!(log.log_end_offset(), 0);
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
}

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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[compio::test]
async fn recovery_truncates_a_torn_last_batch_at_every_byte() {
    let src = tempfile::tempdir().unwrap();
    let log = open(src.path(), small_config()).await.unwrap();
    let mut last = None;
    for i in 0..12i64 {
        last = Some(log.append(batch(3, 20, i), false, 0).await.unwrap());
    }
    let last = last.unwrap();
    let segs = log.segment_base_offsets();
    crash(log).await; // no close: unclean
    let part = src.path().join("t-0");
    let seg_path = part.join(format!("{:020}.log", segs[segs.len() - 1]));
    let full = std::fs::metadata(&seg_path).unwrap().len();
    let last_size = build_test_batch(3, 20, 0, None).len() as u64;
    for cut in (full - last_size)..full {
        let trial = tempfile::tempdir().unwrap();
        let tpart = trial.path().join("t-0");
        copy_dir(&part, &tpart);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(tpart.join(seg_path.file_name().unwrap()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let log = open(trial.path(), small_config()).await.unwrap();
        assert_eq!(log.log_end_offset(), last.base_offset, "cut at {cut}");
        assert_eq!(log.high_watermark(), last.base_offset);
        let headers = read_all(&log).await;
        assert_gap_free(&headers, 0);
        assert_eq!(headers.len(), 11);
        assert!(
            log.read(last.base_offset, 100)
                .await
                .unwrap()
                .regions
                .is_empty()
        );
        // The log keeps working where it was cut.
        let out = log.append(batch(1, 5, 0), true, 0).await.unwrap();
        assert_eq!(out.base_offset, last.base_offset);
    }
}

#[compio::test]
async fn corruption_before_the_recovery_point_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let log = open(dir.path(), config.clone()).await.unwrap();
    for i in 0..10i64 {
        log.append(batch(2, 50, i), false, 0).await.unwrap();
    }
    log.flush().await.unwrap(); // recovery point = 20
    for i in 0..3i64 {
        log.append(batch(2, 50, i), false, 0).await.unwrap();
    }
    crash(log).await; // unclean
    let seg = dir.path().join("t-0/00000000000000000000.log");
    let size = build_test_batch(2, 50, 0, None).len() as u64;
    let mut bytes = std::fs::read(&seg).unwrap();
    let flip_at = size * 3 + 70; // inside the 4th batch's records
    bytes[flip_at as usize] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let err = match open(dir.path(), config.clone()).await {
        Ok(_) => panic!("open must fail on corruption before the recovery point"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains("00000000000000000000.log"), "{msg}");
    assert!(msg.contains(&format!("byte {}", size * 3)), "{msg}");
    assert!(matches!(err, StorageError::Corrupt { .. }));
    // The same flip after the recovery point is a torn tail: truncated, nothing after served.
    bytes[flip_at as usize] ^= 0x01;
    let after = size * 11 + 70;
    bytes[after as usize] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(dir.path(), config).await.unwrap();
    assert_eq!(log.log_end_offset(), 22);
    assert_gap_free(&read_all(&log).await, 0);
}

#[compio::test]
async fn idempotent_producer_duplicates_gaps_and_fencing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let a = log.append(pbatch(7, 0, 0, 3), false, 0).await.unwrap();
    let b = log.append(pbatch(7, 0, 3, 2), false, 0).await.unwrap();
    assert_eq!((a.base_offset, b.base_offset), (0, 3));
    // Retry of the first batch: original offsets, nothing appended.
    let dup = log.append(pbatch(7, 0, 0, 3), true, 0).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (0, 2));
    assert_eq!(log.log_end_offset(), 5);
    // Gap.
    let e = log.append(pbatch(7, 0, 9, 1), false, 0).await.unwrap_err();
    assert_eq!(e.kafka_error_code(), 45);
    // New epoch starts at 0; then the old epoch is fenced.
    log.append(pbatch(7, 1, 0, 1), false, 0).await.unwrap();
    let e = log.append(pbatch(7, 0, 5, 1), false, 0).await.unwrap_err();
    assert_eq!(e.kafka_error_code(), 47);
    // Non-idempotent batches are not tracked.
    log.append(batch(1, 5, 0), false, 0).await.unwrap();
    let infos = log.producer_states();
    assert_eq!(infos.len(), 1);
    assert_eq!((infos[0].producer_epoch, infos[0].last_sequence), (1, 0));
    let end = log.log_end_offset();

    // Clean close: snapshot.
    log.close().await.unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let dup = log.append(pbatch(7, 1, 0, 1), false, 0).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 5);
    log.append(pbatch(7, 1, 1, 1), false, 0).await.unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    // Unclean: rebuilt from the snapshot + batch headers after it.
    crash(log).await;
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    assert!(
        log.append(pbatch(7, 1, 1, 1), false, 0)
            .await
            .unwrap()
            .duplicate
    );
    assert_eq!(
        log.append(pbatch(7, 1, 5, 1), false, 0)
            .await
            .unwrap_err()
            .kafka_error_code(),
        45
    );
    // No snapshot at all: rebuilt from the whole log.
    crash(log).await;
    for e in std::fs::read_dir(dir.path().join("t-0")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    assert!(
        log.append(pbatch(7, 1, 1, 1), false, 0)
            .await
            .unwrap()
            .duplicate
    );
    assert_eq!(
        log.append(pbatch(7, 0, 2, 1), false, 0)
            .await
            .unwrap_err()
            .kafka_error_code(),
        47
    );
}

#[compio::test]
async fn concurrent_durable_appends_share_fdatasyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let before = log.fdatasync_count();
    let appends = 200;
    let futures = (0..appends).map(|i| {
        let log = Rc::clone(&log);
        async move { log.append(batch(1, 100, i), true, 0).await.unwrap() }
    });
    let outs = futures_util::future::join_all(futures).await;
    let mut offsets: Vec<i64> = outs.iter().map(|o| o.base_offset).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..appends).collect::<Vec<_>>());
    let syncs = log.fdatasync_count() - before;
    assert!(syncs >= 1, "durable appends must sync");
    assert!(
        syncs <= 10,
        "{syncs} fdatasyncs for {appends} concurrent durable appends"
    );
    assert_eq!(log.durable_offset(), appends);
    // A lone durable append syncs by itself.
    let before = log.fdatasync_count();
    log.append(batch(1, 100, 0), true, 0).await.unwrap();
    assert_eq!(log.fdatasync_count() - before, 1);
    // Non-durable appends do not sync.
    let before = log.fdatasync_count();
    log.append(batch(1, 100, 0), false, 0).await.unwrap();
    assert_eq!(log.fdatasync_count(), before);
    assert!(log.durable_offset() < log.high_watermark());
    log.flush().await.unwrap();
    assert_eq!(log.durable_offset(), log.high_watermark());
}

#[compio::test]
async fn a_durable_append_waits_for_rolled_segments_to_sync() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 8 << 20,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    // acks=1 appends fill most of a segment, leaving megabytes of dirty pages...
    for i in 0..15 {
        log.append(batch(1, 512 << 10, i), false, 0).await.unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.fdatasync_count(), 0);
    // ...then a durable append rolls. The rolled segment's sync runs off the write path and
    // takes far longer than the new segment's, yet the append is acknowledged only after it.
    log.append(batch(1, 768 << 10, 15), true, 0).await.unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(
        log.fdatasync_count(),
        2,
        "rolled segment and active segment"
    );
    assert_eq!(log.durable_offset(), log.high_watermark());
}

#[compio::test]
async fn wait_for_append_completes_when_the_high_watermark_moves() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let waiter = log.wait_for_append();
    let l2 = Rc::clone(&log);
    let task = compio::runtime::spawn(async move {
        waiter.await;
        l2.high_watermark()
    });
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
    assert_eq!(task.await.unwrap(), 1);
}

/// Milliseconds since the Unix epoch, the clock `flush_if_due` is given.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[compio::test]
async fn flush_if_due_follows_flush_ms_and_flush_messages() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 1000,
        flush_messages: 5,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    let part = dir.path().join("t-0");
    // open() stamps the last flush with the wall clock; use times relative to it.
    let t0 = wall_clock_ms();
    let syncs_at_open = log.fdatasync_count();
    log.append(batch(2, 10, 0), false, 0).await.unwrap();
    log.flush_if_due(t0).await.unwrap();
    assert_eq!(log.durable_offset(), 0, "2 records: neither limit reached");
    assert_eq!(log.fdatasync_count(), syncs_at_open);
    log.append(batch(3, 10, 0), false, 0).await.unwrap(); // 5 unflushed records
    log.flush_if_due(t0).await.unwrap();
    assert_eq!(
        log.durable_offset(),
        5,
        "flush.messages = 5 reached: synced"
    );
    assert_eq!(log.fdatasync_count(), syncs_at_open + 1);
    // The state file is rewritten at most every RECOVERY_POINT_PERSIST_MS.
    assert_eq!(read_state(&part).await.unwrap().unwrap().recovery_point, 0);
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
    log.flush_if_due(t0 + 500).await.unwrap();
    assert_eq!(log.durable_offset(), 5, "flush.ms = 1000 not yet due");
    log.flush_if_due(t0 + 5000).await.unwrap();
    assert_eq!(log.durable_offset(), 6, "flush.ms = 1000 due");
    assert_eq!(read_state(&part).await.unwrap().unwrap().recovery_point, 6);
}

#[compio::test]
async fn background_flush_leaves_the_sync_to_a_pending_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 100,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    log.append(batch(3, 10, 0), false, 0).await.unwrap();
    let syncs = log.fdatasync_count();
    let later = wall_clock_ms() + 10_000;
    // As if a durable append of offsets 0..3 were waiting for the writer's group commit.
    log.durable_requested.set(3);
    log.flush_if_due(later).await.unwrap();
    assert_eq!(
        log.fdatasync_count(),
        syncs,
        "no second fdatasync beside the group commit"
    );
    assert_eq!(
        log.durable_offset(),
        0,
        "nothing was synced by the background flush"
    );
    // With no durable append pending, the background flush syncs the data itself.
    log.durable_requested.set(0);
    log.flush_if_due(later + 1_000).await.unwrap();
    assert_eq!(log.fdatasync_count(), syncs + 1);
    assert_eq!(log.durable_offset(), 3);
}

/// A durable acknowledgement must not come before every segment holding its data is synced,
/// including a segment rolled while the writer's group commit was waiting for an earlier
/// seal: that segment's own seal is still queued behind the writer then, so the group
/// commit cannot leave it to the seal.
#[compio::test]
async fn a_durable_ack_waits_for_the_sync_of_a_segment_rolled_mid_commit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 8 * 1024 * 1024,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    // Several batches in one append: 7 MB, so each append below rolls the segment.
    let big = || {
        let mut b = BytesMut::new();
        for _ in 0..7 {
            b.extend_from_slice(&batch(1, 1_000_000, 0));
        }
        b
    };
    for round in 0..5 {
        // Written, not synced: the next roll's seal has 7 MB to fdatasync.
        log.append(big(), false, 0).await.unwrap();
        // Rolls (queueing that slow seal) and asks for durability: its group commit waits
        // for the seal, and meanwhile the next append rolls the segment holding this one.
        // The check runs in the acknowledged task itself, before anything else can run:
        // a seal started later clears the segment's dirty flag as its own sync begins.
        let durable = {
            let log = log.clone();
            compio::runtime::spawn(async move {
                let acked = log.append(big(), true, 0).await.unwrap();
                let unsynced: Vec<i64> = log
                    .segments
                    .borrow()
                    .iter()
                    .filter(|s| s.base_offset <= acked.last_offset && s.dirty.get())
                    .map(|s| s.base_offset)
                    .collect();
                (acked.last_offset, unsynced)
            })
        };
        let rolling = {
            let log = log.clone();
            compio::runtime::spawn(async move { log.append(big(), false, 0).await })
        };
        let (last_offset, unsynced) = durable.await.unwrap();
        assert!(
            unsynced.is_empty(),
            "round {round}: offset {last_offset} acknowledged as durable while segments \
             {unsynced:?} held unsynced data"
        );
        rolling.await.unwrap().unwrap();
    }
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
async fn crash_during_roll_leaves_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let one = build_test_batch(1, 100, 0, None).len() as u64;
    while log.segment_count() < 3 {
        log.append(batch(1, 100, 0), false, 0).await.unwrap();
    }
    let bases = log.segment_base_offsets();
    crash(log).await;
    let part = dir.path().join("t-0");
    // The middle segment lost its last batch (never written), the newest one is empty.
    let mid = part.join(format!("{:020}.log", bases[1]));
    let len = std::fs::metadata(&mid).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&mid)
        .unwrap()
        .set_len(len - one)
        .unwrap();
    let last = part.join(format!("{:020}.log", bases[2]));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(0)
        .unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_end_offset(), bases[2] - 1);
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    assert!(!last.exists());
    assert_gap_free(&read_all(&log).await, 0);
    let out = log.append(batch(1, 100, 0), false, 0).await.unwrap();
    assert_eq!(out.base_offset, bases[2] - 1);
}

/// Appends across three segments without durability, then "crashes" (no close) with the
/// middle segment missing its last batch, as if its seal never finished: the state file's
/// recovery point is the middle segment's base.
/// `recovery_point_at` of `None` leaves an unreadable state file instead.
async fn crash_with_a_torn_middle_segment(
    recovery_point_at: impl Fn(&[i64]) -> Option<i64>,
) -> (
    tempfile::TempDir,
    Vec<i64>,
    Result<Rc<PartitionLog>, StorageError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let one = build_test_batch(1, 100, 0, None).len() as u64;
    while log.segment_count() < 3 {
        log.append(batch(1, 100, 0), false, 0).await.unwrap();
    }
    log.append(batch(1, 100, 0), false, 0).await.unwrap();
    let bases = log.segment_base_offsets();
    crash(log).await;
    let part = dir.path().join("t-0");
    match recovery_point_at(&bases) {
        Some(recovery_point) => write_state(
            &part,
            &PartitionState {
                log_start_offset: 0,
                recovery_point,
                high_watermark: 0,
                clean_shutdown: false,
            },
        )
        .await
        .unwrap(),
        None => std::fs::write(part.join("partition.state"), b"garbage").unwrap(),
    }
    let mid = part.join(format!("{:020}.log", bases[1]));
    let len = std::fs::metadata(&mid).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&mid).unwrap();
    file.set_len(len - one / 2).unwrap();
    let reopened = open(dir.path(), small_config()).await;
    (dir, bases, reopened)
}

#[compio::test]
async fn a_tear_past_the_recovery_point_drops_the_unsynced_segments_after_it() {
    let (dir, bases, reopened) = crash_with_a_torn_middle_segment(|bases| Some(bases[1])).await;
    let log = reopened.expect("a torn unsynced tail is recovered, not refused");
    assert_eq!(log.log_end_offset(), bases[2] - 1, "cut at the torn batch");
    assert_eq!(log.segment_base_offsets(), bases[..2].to_vec());
    let last = dir.path().join("t-0").join(format!("{:020}.log", bases[2]));
    assert!(
        !last.exists(),
        "the later segment's unsynced appends are gone"
    );
    assert_gap_free(&read_all(&log).await, 0);
    let out = log.append(batch(1, 100, 0), false, 0).await.unwrap();
    assert_eq!(out.base_offset, bases[2] - 1);
}

#[compio::test]
async fn a_tear_before_the_recovery_point_fails_the_open() {
    // The middle segment's seal finished (recovery point at its end): a bad batch in it is
    // damage to synced data, not a tear.
    let (_dir, _bases, reopened) = crash_with_a_torn_middle_segment(|bases| Some(bases[2])).await;
    match reopened {
        Err(e @ StorageError::Corrupt { .. }) => assert!(e.to_string().contains(".log")),
        Err(e) => panic!("expected a corruption error, got {e}"),
        Ok(_) => panic!("a tear before the recovery point must fail the open"),
    }
}

#[compio::test]
async fn with_an_unreadable_state_file_only_the_last_segment_may_be_torn() {
    let (_dir, _bases, reopened) = crash_with_a_torn_middle_segment(|_| None).await;
    assert!(
        matches!(reopened, Err(StorageError::Corrupt { .. })),
        "nothing says the middle segment was unsealed: refuse, do not drop later segments"
    );
}

#[compio::test]
async fn a_seal_persists_the_rolled_segment_end_as_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    while log.segment_count() < 3 {
        log.append(batch(1, 100, 0), false, 0).await.unwrap();
    }
    // A durable append waits for every seal.
    log.append(batch(1, 10, 0), true, 0).await.unwrap();
    let bases = log.segment_base_offsets();
    let state = read_state(&dir.path().join("t-0")).await.unwrap().unwrap();
    assert_eq!(
        state.recovery_point, bases[2],
        "the last rolled segment's end"
    );
}

#[compio::test]
async fn producer_snapshots_at_roll_bound_replay_and_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let mut seq = 0;
    while log.segment_count() < 4 {
        log.append(pbatch(3, 0, seq, 2), false, 0).await.unwrap();
        seq += 2;
    }
    // Snapshots are written by the seals, off the write path.
    log.wait_writer_idle().await;
    let snapshots = || {
        std::fs::read_dir(dir.path().join("t-0"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "snapshot")
            })
            .count()
    };
    assert_eq!(snapshots(), 2, "one per roll, newest two kept");
    crash(log).await; // crash
    let log = open(dir.path(), small_config()).await.unwrap();
    let dup = log
        .append(pbatch(3, 0, seq - 2, 2), false, 0)
        .await
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(
        log.append(pbatch(3, 0, seq + 4, 1), false, 0)
            .await
            .unwrap_err()
            .kafka_error_code(),
        45
    );
    assert!(
        !log.append(pbatch(3, 0, seq, 1), false, 0)
            .await
            .unwrap()
            .duplicate
    );
}

/// Fetch results cross shards (connection shard != partition shard): regions must be `Send`.
#[test]
fn file_regions_can_cross_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<super::log::FileRegion>();
    assert_send::<super::log::ReadSlice>();
    assert_send::<super::log::AppendOutcome>();
    assert_send::<StorageError>();
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
    let state = super::state::PartitionState {
        log_start_offset: bases[2] + 1,
        recovery_point: 0,
        high_watermark: 0,
        clean_shutdown: false,
    };
    super::state::write_state(&part, &state).await.unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_start_offset(), bases[2] + 1);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert!(!part.join(format!("{:020}.log", bases[0])).exists());
    assert!(!part.join(format!("{:020}.index", bases[1])).exists());
    assert_eq!(read_all(&log).await.last().unwrap().last_offset(), 99);
}

#[compio::test]
async fn missing_or_garbled_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    for i in 0..80i64 {
        log.append(batch(1 + (i % 3) as i32, 60, i * 10), false, 0)
            .await
            .unwrap();
    }
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    let mut by_time = Vec::new();
    for t in (0..800).step_by(7) {
        by_time.push(log.offset_for_timestamp(t).await.unwrap());
    }
    log.close().await.unwrap();
    let part = dir.path().join("t-0");
    let index0 = part.join(format!("{:020}.index", bases[0]));
    let len = std::fs::metadata(&index0).unwrap().len();
    assert!(len > 0 && len.is_multiple_of(8));
    std::fs::write(&index0, vec![0xff; len as usize - 3]).unwrap();
    std::fs::remove_file(part.join(format!("{:020}.timeindex", bases[1]))).unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(log.log_end_offset(), end);
    for o in 0..end {
        let s = log.read(o, 1).await.unwrap();
        let h = validate_batches(&s.regions[0].read_to_vec().await.unwrap()).unwrap()[0].header;
        assert!(h.base_offset <= o && o <= h.last_offset());
    }
    assert_eq!(
        std::fs::metadata(&index0).unwrap().len(),
        len,
        "rebuilt identically"
    );
    for (i, t) in (0..800).step_by(7).enumerate() {
        assert_eq!(
            log.offset_for_timestamp(t).await.unwrap(),
            by_time[i],
            "time {t}"
        );
    }
}

#[compio::test]
async fn durability_always_syncs_every_append() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability: crate::config::Durability::Always,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    let before = log.fdatasync_count();
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
    assert_eq!(log.fdatasync_count(), before + 1);
    assert_eq!(log.durable_offset(), 1);
    let mut lowered = log.config();
    lowered.max_message_bytes = 50;
    log.update_config(lowered);
    assert_eq!(
        log.append(batch(1, 100, 0), false, 0)
            .await
            .unwrap_err()
            .kafka_error_code(),
        10
    );
}
