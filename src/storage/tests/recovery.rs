//! Reopening after a crash: torn tails truncated, corruption refused, rolls and seals
//! interrupted at any point, producer snapshots and rebuilt indexes.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;

use super::support::{assert_gap_free, batch, crash, open, pbatch, read_all, small_config};
use crate::config::LogConfig;
use crate::storage::batch::{build_test_batch, validate_batches};
use crate::storage::error::StorageError;
use crate::storage::log::PartitionLog;
use crate::storage::state::{PartitionState, write_state};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
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
                written_end_offset: 0,
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
        assert_eq!(log.written_end_offset(), last.base_offset);
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

/// A log with one large active segment and an index entry every few batches: `synced`
/// batches flushed (the recovery point at their end), then `unsynced` more, then a crash.
async fn crash_with_a_long_active_segment(
    synced: i64,
    unsynced: i64,
) -> (tempfile::TempDir, LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone()).await.unwrap();
    for i in 0..synced {
        log.append(batch(2, 50, i * 10), false, 0).await.unwrap();
    }
    log.flush().await.unwrap(); // recovery point = 2 * synced
    for i in synced..synced + unsynced {
        log.append(batch(2, 50, i * 10), false, 0).await.unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    crash(log).await; // unclean
    (dir, config)
}

#[compio::test]
async fn an_unclean_open_rereads_the_active_segment_from_the_recovery_point_only() {
    let (dir, config) = crash_with_a_long_active_segment(30, 3).await;
    let seg = dir.path().join("t-0/00000000000000000000.log");
    let size = build_test_batch(2, 50, 0, None).len() as u64;
    let mut bytes = std::fs::read(&seg).unwrap();
    // Damage inside the 4th batch: synced, below the recovery point (60), with index
    // entries between it and the recovery point. The open does not re-read it (Kafka
    // trusts data below its recovery point too)...
    let flip_at = (size * 3 + 70) as usize;
    bytes[flip_at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(dir.path(), config.clone())
        .await
        .expect("the synced prefix is not re-validated by the open");
    assert_eq!(log.log_end_offset(), 66);
    // ...but the first read checks it: damage is refused, never served.
    match log.read(6, 1 << 20).await {
        Err(e @ StorageError::Corrupt { .. }) => {
            assert!(e.to_string().contains(&format!("byte {}", size * 3)), "{e}")
        }
        Err(e) => panic!("expected a corruption error, got {e}"),
        Ok(_) => panic!("damaged data below the recovery point was served"),
    }
    drop(log);
    // A tear after the recovery point is still found and truncated, and the log goes on.
    bytes[flip_at] ^= 0x01;
    bytes[(size * 31 + 70) as usize] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(dir.path(), config).await.unwrap();
    assert_eq!(log.log_end_offset(), 62);
    assert_gap_free(&read_all(&log).await, 0);
    let out = log.append(batch(1, 5, 0), true, 0).await.unwrap();
    assert_eq!(out.base_offset, 62);
}

#[compio::test]
async fn a_recovery_from_the_recovery_point_rebuilds_what_a_full_one_does() {
    let (dir, config) = crash_with_a_long_active_segment(40, 7).await;
    let part = dir.path().join("t-0");
    // The same crash, recovered from the segment start: no index files to resume from.
    let full = tempfile::tempdir().unwrap();
    let full_part = full.path().join("t-0");
    copy_dir(&part, &full_part);
    std::fs::remove_file(full_part.join("00000000000000000000.index")).unwrap();
    std::fs::remove_file(full_part.join("00000000000000000000.timeindex")).unwrap();
    let bounded = open(dir.path(), config.clone()).await.unwrap();
    let whole = open(full.path(), config).await.unwrap();
    assert_eq!(bounded.log_end_offset(), 94);
    assert_eq!(whole.log_end_offset(), 94);
    for suffix in ["index", "timeindex"] {
        let name = format!("00000000000000000000.{suffix}");
        let rebuilt = std::fs::read(part.join(&name)).unwrap();
        assert!(!rebuilt.is_empty());
        assert_eq!(
            rebuilt,
            std::fs::read(full_part.join(&name)).unwrap(),
            "{name}"
        );
    }
    for t in (0..480).step_by(7) {
        assert_eq!(
            bounded.offset_for_timestamp(t).await.unwrap(),
            whole.offset_for_timestamp(t).await.unwrap(),
            "time {t}"
        );
    }
    assert_eq!(
        bounded.read(0, 1 << 20).await.unwrap().regions[0]
            .read_to_vec()
            .await
            .unwrap(),
        whole.read(0, 1 << 20).await.unwrap().regions[0]
            .read_to_vec()
            .await
            .unwrap()
    );
}

#[compio::test]
async fn flushes_snapshot_producers_every_interval_so_replay_after_a_crash_is_bounded() {
    use crate::storage::recovery::PRODUCER_SNAPSHOT_INTERVAL_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default(); // one segment: no roll takes a snapshot
    let log = open(dir.path(), config.clone()).await.unwrap();
    let snapshots = || {
        let mut found: Vec<String> = std::fs::read_dir(dir.path().join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        found.sort();
        found
    };
    // Batches of 16 records of 4 KiB from one idempotent producer.
    let big = |seq: i32| BytesMut::from(&build_test_batch(16, 4096, 1000, Some((7, 0, seq)))[..]);
    let one = build_test_batch(16, 4096, 1000, Some((7, 0, 0))).len() as u64;
    let mut seq = 0;
    let below = PRODUCER_SNAPSHOT_INTERVAL_BYTES / one;
    for _ in 0..below {
        log.append(big(seq), false, 0).await.unwrap();
        seq += 16;
    }
    log.flush().await.unwrap();
    assert!(snapshots().is_empty(), "not yet an interval of log");
    for _ in 0..2 {
        log.append(big(seq), false, 0).await.unwrap();
        seq += 16;
    }
    log.flush().await.unwrap();
    let end = log.log_end_offset();
    assert_eq!(snapshots(), vec![format!("{end:020}.snapshot")]);
    let last = log.append(big(seq), false, 0).await.unwrap();
    crash(log).await;
    let log = open(dir.path(), config).await.unwrap();
    // Producer state came back from the snapshot plus the batch after it.
    let dup = log.append(big(seq), false, 0).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, last.base_offset);
}

#[compio::test]
async fn an_index_entry_not_at_its_batch_makes_the_unclean_open_scan_the_whole_segment() {
    let (dir, config) = crash_with_a_long_active_segment(40, 7).await;
    let part = dir.path().join("t-0");
    let index = part.join("00000000000000000000.index");
    let good = std::fs::read(&index).unwrap();
    assert!(good.len() >= 16, "entries below the recovery point");
    // Every entry's position one byte off: still growing and inside the log, so the file
    // decodes, but no entry points at a batch.
    let mut shifted = good.clone();
    for entry in shifted.chunks_exact_mut(8) {
        let p = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]) + 1;
        entry[4..8].copy_from_slice(&p.to_be_bytes());
    }
    std::fs::write(&index, &shifted).unwrap();
    let log = open(dir.path(), config).await.unwrap();
    assert_eq!(log.log_end_offset(), 94);
    assert_gap_free(&read_all(&log).await, 0);
    // Rebuilt from the log: the entries written before the crash, then the tail's.
    let rebuilt = std::fs::read(&index).unwrap();
    assert!(rebuilt.len() > good.len() && rebuilt.starts_with(&good));
    for o in 0..94 {
        let s = log.read(o, 1).await.unwrap();
        let h = validate_batches(&s.regions[0].read_to_vec().await.unwrap()).unwrap()[0].header;
        assert!(h.base_offset <= o && o <= h.last_offset(), "offset {o}");
    }
}
