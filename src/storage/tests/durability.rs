//! Durability: group commit sharing fdatasyncs, durable acks waiting for rolled segments,
//! background flushes and the recovery point. (`durability = always` is decided above the log:
//! see `partition::tests`.)

use std::rc::Rc;

use bytes::BytesMut;

use super::support::{batch, crash, open, small_config};
use crate::config::LogConfig;
use crate::storage::log::PartitionLog;
use crate::storage::state::read_state;

/// Milliseconds since the Unix epoch, the clock `flush_if_due` is given.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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
    assert!(log.durable_offset() < log.written_end_offset());
    log.flush().await.unwrap();
    assert_eq!(log.durable_offset(), log.written_end_offset());
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
    assert_eq!(log.durable_offset(), log.written_end_offset());
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
    // The state file is rewritten at most every RECOVERY_POINT_PERSIST_MS (a new log has
    // none until then: its open writes nothing).
    let persisted = read_state(&part).await.unwrap();
    assert_eq!(persisted.map_or(0, |s| s.recovery_point), 0);
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
    log.flush_if_due(t0 + 500).await.unwrap();
    assert_eq!(log.durable_offset(), 5, "flush.ms = 1000 not yet due");
    log.flush_if_due(t0 + 5000).await.unwrap();
    assert_eq!(log.durable_offset(), 6, "flush.ms = 1000 due");
    assert_eq!(read_state(&part).await.unwrap().unwrap().recovery_point, 6);
}

/// A background flush between two state-file writes syncs the data but leaves the active
/// segment's new index entries in memory (nothing reads the index files before a seal, a
/// close or recovery, and each of those writes or rebuilds them); the flush that rewrites
/// the state file writes them too. After a crash in between, every offset is found through
/// the indexes recovery rebuilt.
#[compio::test]
async fn background_flush_writes_index_entries_only_with_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 100,
        segment_bytes: 1 << 20,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone()).await.unwrap();
    // open() stamps the last flush and state write with the wall clock.
    let t0 = wall_clock_ms();
    for i in 0..8 {
        log.append(batch(2, 200, i), false, 0).await.unwrap();
    }
    let persisted = |log: &PartitionLog| {
        let active = log.active_segment();
        let offsets = active.offset_index.borrow().persisted;
        let times = active.time_index.borrow().persisted;
        (offsets, times)
    };
    assert!(log.active_segment().offset_index.borrow().len() >= 4);
    log.flush_if_due(t0 + 200).await.unwrap();
    assert_eq!(log.durable_offset(), 16, "flush.ms due: the data is synced");
    assert_eq!(
        persisted(&log),
        (0, 0),
        "state file not due: no index entry written"
    );
    // A crash here: recovery rebuilds the active segment's indexes from its batches.
    crash(log).await;
    let log = open(dir.path(), config).await.unwrap();
    for o in 0..16 {
        let slice = log.read(o, 1).await.unwrap();
        let bytes = slice.regions[0].read_to_vec().await.unwrap();
        let h = crate::storage::batch::validate_batches(&bytes).unwrap()[0].header;
        assert!(
            h.base_offset <= o && o <= h.last_offset(),
            "offset {o} in {h:?}"
        );
    }
    // Recovery wrote the rebuilt indexes; new entries again wait for the state flush.
    let t1 = wall_clock_ms();
    let rebuilt = persisted(&log);
    log.append(batch(2, 200, 9), false, 0).await.unwrap();
    log.flush_if_due(t1 + 200).await.unwrap();
    assert_eq!(log.durable_offset(), 18);
    assert_eq!(persisted(&log), rebuilt);
    log.append(batch(2, 200, 10), false, 0).await.unwrap();
    log.flush_if_due(t1 + 5000).await.unwrap();
    assert_eq!(log.durable_offset(), 20);
    let (offsets, times) = persisted(&log);
    assert_eq!(offsets, log.active_segment().offset_index.borrow().len());
    assert_eq!(times, log.active_segment().time_index.borrow().len());
    assert!(
        offsets > rebuilt.0 && times > rebuilt.1,
        "the state flush writes the new index entries"
    );
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
    log.writer.durable_requested.set(3);
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
    log.writer.durable_requested.set(0);
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
        // a seal started later must not count as a sync this ack waited for.
        let durable = {
            let log = log.clone();
            compio::runtime::spawn(async move {
                let acked = log.append(big(), true, 0).await.unwrap();
                let unsynced: Vec<i64> = log
                    .segments
                    .borrow()
                    .iter()
                    .filter(|s| s.base_offset <= acked.last_offset && s.is_dirty())
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
async fn a_segment_stays_dirty_until_its_sync_completes() {
    // A background flush's sync in flight must not make the data look durable to a group
    // commit that checks meanwhile: it would acknowledge before the fdatasync returned.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    log.append(batch(1, 100, 0), false, 0).await.unwrap();
    let segment = log.segments.borrow().back().cloned().unwrap();
    assert!(segment.is_dirty(), "a written segment is dirty");
    let mut sync = std::pin::pin!(segment.sync_log());
    assert!(
        futures_util::poll!(&mut sync).is_pending(),
        "the fdatasync is in flight on the ring"
    );
    assert!(segment.is_dirty(), "dirty while its sync is in flight");
    sync.await.unwrap();
    assert!(!segment.is_dirty(), "clean once the sync returned");
}

/// The syncfs path of the background flush (decision 0020): a log is durable up to what it
/// had written when the mark was taken, without an fdatasync of its own; what it wrote after
/// the mark stays due for the next flush.
#[compio::test]
async fn a_filesystem_sync_makes_the_log_durable_up_to_its_mark() {
    use crate::storage::filesystem_sync::FilesystemSync;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 100,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    log.append(batch(3, 10, 0), false, 0).await.unwrap();
    let filesystem =
        FilesystemSync::open(dir.path()).expect("a kernel whose syncfs reports errors");
    let syncs = log.fdatasync_count();
    let mark = log.filesystem_sync_mark(wall_clock_ms());
    // Written after the mark: the sync that follows may or may not carry it to the disk,
    // so it must not be taken for durable.
    log.append(batch(2, 10, 3), false, 0).await.unwrap();
    filesystem.sync().await.unwrap();
    let later = wall_clock_ms() + 10_000;
    log.flush_after_filesystem_sync(later, mark).await.unwrap();
    assert_eq!(log.fdatasync_count(), syncs, "no fdatasync of the log file");
    assert_eq!(
        log.durable_offset(),
        3,
        "durable up to the mark, not beyond"
    );
    let state = read_state(&dir.path().join("t-0")).await.unwrap().unwrap();
    assert_eq!(
        state.recovery_point, 3,
        "the recovery point follows the mark"
    );
    // The append after the mark is still unsynced: the next tick flushes it.
    assert!(log.background_flush_due(later + 100));
    log.flush_if_due(later + 100).await.unwrap();
    assert_eq!(log.fdatasync_count(), syncs + 1);
    assert_eq!(log.durable_offset(), 5);
}

/// Dirty pages of `dir/name` (the whole file), or `None` where the kernel has no cachestat.
fn dirty_file_pages(dir: &std::path::Path, name: &str) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir.join(name)).unwrap();
    let len = file.metadata().unwrap().len();
    crate::storage::page_cache::dirty_pages(file.as_raw_fd(), 0, len)
}

/// Session 22 (decision 0020 amended): a syncfs flush that persists the recovery point
/// writes the new index entries before the syncfs, which covers them, and the state file
/// after it without an fdatasync; the next syncfs covers that. A state write that finds the
/// previous one not yet covered fdatasyncs (both), so one slot is always on disk.
#[compio::test]
async fn a_filesystem_sync_flush_leaves_its_state_write_to_the_next_syncfs() {
    use crate::storage::filesystem_sync::FilesystemSync;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 100,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    let part = dir.path().join("t-0");
    for i in 0..4 {
        log.append(batch(2, 100, i * 2), false, 0).await.unwrap();
    }
    // The first state write creates the file whole (durably); later ones go in place.
    log.flush().await.unwrap();
    for i in 4..8 {
        log.append(batch(2, 100, i * 2), false, 0).await.unwrap();
    }
    let filesystem =
        FilesystemSync::open(dir.path()).expect("a kernel whose syncfs reports errors");
    let now = wall_clock_ms() + 10_000;
    let mut mark = log.filesystem_sync_mark(now);
    log.write_indexes_before_sync(&mut mark).await;
    let Some(index_dirty) = dirty_file_pages(&part, "00000000000000000000.index") else {
        return; // no cachestat on this kernel: nothing to observe
    };
    assert!(
        index_dirty > 0,
        "the index entries are written before the syncfs"
    );
    filesystem.sync().await.unwrap();
    log.flush_after_filesystem_sync(now, mark).await.unwrap();
    assert_eq!(
        dirty_file_pages(&part, "00000000000000000000.index"),
        Some(0),
        "the syncfs covered the index entries"
    );
    let state = read_state(&part).await.unwrap().unwrap();
    assert_eq!(
        state.recovery_point, 16,
        "the recovery point follows the mark"
    );
    assert_eq!(
        dirty_file_pages(&part, "partition.state"),
        Some(1),
        "the state write is left to the next syncfs (no fdatasync of its own)"
    );

    // The next tick's syncfs covers it; then a new in-place write may wait again.
    log.append(batch(2, 100, 16), false, 0).await.unwrap();
    let mark = log.filesystem_sync_mark(now + 100);
    filesystem.sync().await.unwrap();
    log.flush_after_filesystem_sync(now + 100, mark)
        .await
        .unwrap();
    assert_eq!(dirty_file_pages(&part, "partition.state"), Some(0));

    // Two ticks' flushes overlapping: the second's syncfs starts before the first's state
    // write, so it cannot cover it; the second state write then fdatasyncs (both).
    log.append(batch(2, 100, 18), false, 0).await.unwrap();
    let first = log.filesystem_sync_mark(now + 1_100);
    filesystem.sync().await.unwrap();
    log.append(batch(2, 100, 20), false, 0).await.unwrap();
    let second = log.filesystem_sync_mark(now + 2_100);
    filesystem.sync().await.unwrap();
    log.flush_after_filesystem_sync(now + 1_100, first)
        .await
        .unwrap();
    assert_eq!(dirty_file_pages(&part, "partition.state"), Some(1));
    log.flush_after_filesystem_sync(now + 2_100, second)
        .await
        .unwrap();
    assert_eq!(
        dirty_file_pages(&part, "partition.state"),
        Some(0),
        "a state write after an uncovered one is made durable"
    );
    let state = read_state(&part).await.unwrap().unwrap();
    assert_eq!(state.recovery_point, 22);
}

/// Decision 0026: with a background flush configured, write-back of a segment's written
/// bytes starts every `write_behind_bytes`, before any flush or sync, so the flush's
/// fdatasync finds little dirty. With `write_behind_bytes` = 0, or with `flush.ms` = -1 (no
/// background flush: the kernel's own write-back, as in Kafka), the pages stay dirty until
/// a sync (or the kernel's write-back, 30 s later by default).
#[compio::test]
async fn write_back_starts_every_write_behind_bytes_before_any_flush() {
    use crate::storage::page_cache::dirty_pages;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};
    const WRITE_BEHIND: u32 = 64 * 1024;
    let hour_ms = 3_600_000;
    for (write_behind_bytes, flush_ms, starts) in [
        (WRITE_BEHIND, hour_ms, true),
        (0, hour_ms, false),
        (WRITE_BEHIND, -1, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            write_behind_bytes,
            flush_ms,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config).await.unwrap();
        // 16 batches of 16 records of 1,000 bytes: about 260 KiB, four ranges' worth.
        // One range per segment runs at a time and a range due meanwhile waits for the next
        // append, so each append waits for the running range to end: on a loaded machine
        // the pool thread can be slower than the appends, and the last ranges would then
        // wait for appends that never come (seen once at load 12).
        let range_deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..16 {
            while log.active_segment().write_behind.in_flight() && Instant::now() < range_deadline {
                compio::time::sleep(Duration::from_millis(5)).await;
            }
            log.append(batch(16, 1000, i), false, 0).await.unwrap();
        }
        let path = dir.path().join("t-0").join("00000000000000000000.log");
        let file = std::fs::File::open(path).unwrap();
        let covered = u64::from(3 * WRITE_BEHIND);
        let dirty = || dirty_pages(file.as_raw_fd(), 0, covered);
        let Some(mut left) = dirty() else {
            // No cachestat on this kernel: nothing to observe.
            log.close().await.unwrap();
            return;
        };
        // The write-back runs on a pool thread: wait for it, with a bound far above what
        // it takes (a correctness check, not a speed one).
        let deadline = Instant::now() + Duration::from_secs(20);
        while starts && left > 0 && Instant::now() < deadline {
            compio::time::sleep(Duration::from_millis(20)).await;
            left = dirty().unwrap_or(0);
        }
        if starts {
            assert_eq!(
                left, 0,
                "write-back of the first {covered} bytes was started"
            );
        } else {
            assert!(
                left > 0,
                "write_behind_bytes {write_behind_bytes}, flush.ms {flush_ms}: nothing started"
            );
        }
        log.close().await.unwrap();
    }
}

/// Decision 0026, session 22: as write-behind goes on, the pages of the partition's log
/// more than `drop_behind_bytes` behind its written end are dropped from the page cache,
/// across segments (the newest stay cached for consumers); with `drop_behind_bytes` = 0
/// they stay until the kernel reclaims them.
#[compio::test]
async fn pages_behind_the_drop_behind_window_leave_the_page_cache() {
    use crate::config::DROP_BEHIND_MIN_BYTES;
    use crate::storage::page_cache::cached_pages;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};
    const SEGMENT: u64 = 512 * 1024;
    for drop_behind_bytes in [DROP_BEHIND_MIN_BYTES, 0] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: SEGMENT,
            write_behind_bytes: 64 * 1024,
            drop_behind_bytes,
            flush_ms: 3_600_000,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config).await.unwrap();
        // About 16 KiB a batch. First 900 KiB, less than the window: two segments, nothing
        // due; a durable append then makes them clean (the kernel skips dirty pages).
        for i in 0..56 {
            log.append(batch(16, 1000, i), false, 0).await.unwrap();
        }
        log.append(batch(16, 1000, 56), true, 0).await.unwrap();
        let first = dir.path().join("t-0").join("00000000000000000000.log");
        let file = std::fs::File::open(&first).unwrap();
        let cached = || cached_pages(file.as_raw_fd(), 0, SEGMENT);
        let Some(before) = cached() else {
            // No cachestat on this kernel: nothing to observe.
            log.close().await.unwrap();
            return;
        };
        assert!(
            before > 0,
            "the first segment was written through the page cache"
        );
        // Then 1.5 MiB more: the window's start passes the whole first segment.
        for i in 57..153 {
            log.append(batch(16, 1000, i), false, 0).await.unwrap();
        }
        // The drop runs on a pool thread: wait for it, with a bound far above what it
        // takes (a correctness check, not a speed one).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut left = cached().unwrap_or(0);
        while drop_behind_bytes > 0 && left > 0 && Instant::now() < deadline {
            compio::time::sleep(Duration::from_millis(20)).await;
            left = cached().unwrap_or(0);
        }
        if drop_behind_bytes > 0 {
            assert_eq!(left, 0, "the first segment's pages were dropped");
        } else {
            assert!(
                left * 2 > before,
                "off: {left} of {before} pages still cached"
            );
        }
        // The newest bytes stay cached (the window), whatever the setting.
        let active = log.active_segment();
        let newest = std::fs::File::open(&active.log_path).unwrap();
        let end = active.visible_bytes.get();
        let tail = cached_pages(newest.as_raw_fd(), end - 64 * 1024, 64 * 1024).unwrap_or(0);
        assert!(tail > 0, "the newest 64 KiB are cached");
        log.close().await.unwrap();
    }
}

/// Issue 19 (session 34): the shard's maintenance tick looks only at the logs that told it
/// of flush work. A log tells its hook when its first write after a clean state is queued,
/// stays watched while records or its recovery point are unsynced, is let go once a flush
/// made everything durable and persisted, tells again at its next write, and a truncation's
/// reopened log keeps the hook and tells it.
#[compio::test]
async fn a_log_tells_its_flush_watch_once_per_stretch_of_unsynced_writes() {
    use std::cell::Cell;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 100,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config).await.unwrap();
    let told = Rc::new(Cell::new(0));
    let counter = Rc::clone(&told);
    log.watch_flushes(Rc::new(move |_| counter.set(counter.get() + 1)));
    assert_eq!(
        told.get(),
        1,
        "told at install: the open may have left work"
    );
    assert!(!log.keep_flush_watch(), "an empty log has nothing to flush");
    log.append(batch(3, 10, 0), false, 0).await.unwrap();
    log.append(batch(2, 10, 3), false, 0).await.unwrap();
    assert_eq!(told.get(), 2, "told at the first write only");
    assert!(log.keep_flush_watch(), "records not synced yet");
    assert!(log.keep_flush_watch(), "asking again does not let it go");
    let later = wall_clock_ms() + 10_000;
    log.flush_if_due(later).await.unwrap();
    assert_eq!(log.durable_offset(), 5);
    assert!(
        !log.keep_flush_watch(),
        "synced, recovery point persisted: let go"
    );
    log.append(batch(1, 10, 5), false, 0).await.unwrap();
    assert_eq!(told.get(), 3, "a write after being let go tells again");
    log.become_leader(1).await.unwrap();
    let log = log.truncate_to(3).await.unwrap();
    assert_eq!(
        told.get(),
        4,
        "the reopened log keeps the hook and tells it"
    );
    let watched_after_reopen = log.keep_flush_watch();
    log.append(batch(1, 10, 6), false, 0).await.unwrap();
    let expected = if watched_after_reopen { 4 } else { 5 };
    assert_eq!(
        told.get(),
        expected,
        "told once per stretch on the new log too"
    );
    assert!(log.keep_flush_watch(), "its write is not synced yet");
}
