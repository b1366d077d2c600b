//! Opening a partition directory: loading segments, validating them, truncating a torn tail
//! and rebuilding derived data (indexes, producer state). The rules:
//! * clean shutdown flag set: trust the files; cheap checks only (index sanity, first batch
//!   offset, a header walk of each segment's tail);
//! * otherwise every batch from the recovery point onward is re-validated (length, magic,
//!   CRC-32C, gap-free offsets): in the segment holding it, from the last indexed batch below
//!   it (`revalidate.rs`; the synced prefix is CRC-checked by its first read instead, as a
//!   sealed segment is), and every later segment whole. A bad batch at or after the
//!   recovery point is a torn tail: the log is truncated there and any later segments are
//!   removed. They can
//!   hold only unsynced appends: a rolled segment is synced off the write path, but its seal
//!   persists its end as the recovery point before any later durable acknowledgement
//!   (`PartitionLog::start_seal`), so a tear past the recovery point means nothing after it
//!   was acknowledged as durable (Kafka's log recovery drops the later segments the same
//!   way). A bad batch before the recovery point, or in any segment but the last with data
//!   when the state file is unreadable, is corruption and fails the open with the file and
//!   byte position.
//!
//! Must not serve or silently drop data it could not validate.

use std::path::Path;
use std::rc::Rc;

use super::control::{CONTROL_TYPE_ABORT, control_record_type};
use super::error::StorageError;
use super::log::PartitionLog;
use super::producer_state::{ProducerStateManager, SNAPSHOT_SUFFIX, snapshot_file_name};
use super::revalidate::{RevalidationBounds, batch_follows, revalidate};
use super::segment::{LOG_SUFFIX, RECOVERY_SCAN_CHUNK_BYTES, Segment};
use super::state::{
    PartitionState, read_exact_at, read_small_file, read_state, write_file_atomically,
};
use crate::config::LogConfig;

/// How many producer snapshots are kept (newest first); older ones are deleted.
pub const PRODUCER_SNAPSHOTS_RETAINED: usize = 2;
/// A flush that persists the recovery point also writes a producer snapshot once the active
/// segment grew by this much since the last one, so the producer-state replay after a crash
/// reads at most about this much of the log (`PartitionLog::snapshot_producers_if_due`).
pub const PRODUCER_SNAPSHOT_INTERVAL_BYTES: u64 = 1024 * 1024;

/// Wall-clock milliseconds (also used by the log's disk-full backoff).
pub(super) fn wall_clock_ms() -> i64 {
    now_ms()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Files of one suffix named `<offset:020>.<suffix>`, sorted by offset.
fn list_offsets(dir: &Path, suffix: &str) -> Result<Vec<i64>, StorageError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(suffix).and_then(|s| s.strip_suffix('.')) else {
            continue;
        };
        if stem.len() == 20
            && let Ok(o) = stem.parse::<i64>()
        {
            out.push(o);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl PartitionLog {
    /// Opens or creates `<data_dir>/<topic>-<partition>/` and runs recovery.
    pub async fn open(
        data_dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let name = format!("{topic}-{partition}");
        let dir = data_dir.join(&name);
        super::state::create_dir_durably(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let log = Rc::new_cyclic(|weak| PartitionLog::new_in(weak.clone(), dir, name, config));
        log.recover().await?;
        Ok(log)
    }

    /// Creates a new partition's log (CreateTopics, CreatePartitions): only its directory
    /// is made, with no fsync and no file in it; the first segment's files are created by
    /// the first append and the directories made durable by the first data sync
    /// (`dir_unsynced`). What a crash can leave (no directory, or an empty one) is what
    /// `open` recovers to an empty log. A directory already there (a leftover, or not a
    /// directory at all) goes through `open` and its recovery.
    pub async fn create(
        data_dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let name = format!("{topic}-{partition}");
        let dir = data_dir.join(&name);
        if let Err(e) = std::fs::create_dir(&dir) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
            ) {
                return Self::open(data_dir, topic, partition, config).await;
            }
            return Err(StorageError::io(&dir, e));
        }
        let log = Rc::new_cyclic(|weak| PartitionLog::new_in(weak.clone(), dir, name, config));
        log.dir_unsynced.set(true);
        let segment = Segment::create_lazily(&log.dir, 0);
        log.segments.borrow_mut().push_back(segment);
        let now = now_ms();
        log.flush.last_flush_ms.set(now);
        log.flush.last_state_persist_ms.set(now);
        Ok(log)
    }

    pub(super) async fn recover(&self) -> Result<(), StorageError> {
        // Phases of an unclean open are timed for its log line: a restart after a crash is
        // time delayed records and clients wait (issue 18).
        let began = std::time::Instant::now();
        let (state, state_trusted) = read_state_or_distrust(&self.dir).await?;
        remove_temp_files(&self.dir).await?;
        self.open_cleaner().await?;
        let clean = state.is_some_and(|s| s.clean_shutdown);
        self.opened_clean.set(clean);
        let recovery_point = state.map(|s| s.recovery_point).unwrap_or(0);
        let state_log_start = state.map(|s| s.log_start_offset).unwrap_or(0);
        self.load_segment_files(state_log_start).await?;
        if state.is_none() && !self.segments.borrow()[0].files.log_created() {
            // A log that never took data (no state, no segment file): nothing to scan.
            self.opened_clean.set(true);
        }
        let full_from = self
            .validate_segments(clean, recovery_point, state_trusted)
            .await?;
        let validated = began.elapsed();
        self.remove_empty_rolled_segments().await?;
        let segments = self.check_gap_free()?;
        let log_end = self.set_recovered_offsets(&segments, state_log_start);
        // Everything recovered is synced now (the scan touched it; sync what may be dirty).
        if !clean {
            for s in &segments[full_from.min(segments.len() - 1)..] {
                if s.files.log_created() {
                    s.sync_log().await?;
                }
            }
        }
        let synced = began.elapsed();
        self.offsets.durable_offset.set(log_end);
        self.offsets.recovery_point.set(log_end);
        self.flush.last_flush_ms.set(now_ms());
        self.flush
            .last_state_persist_ms
            .set(self.flush.last_flush_ms.get());
        self.rebuild_producer_state().await?;
        let producers_rebuilt = began.elapsed();
        self.load_epochs().await?;
        if !self.opened_clean.get() {
            tracing::info!(
                partition = %self.name,
                recovery_point,
                log_end,
                validate_ms = validated.as_millis() as u64,
                sync_ms = (synced - validated).as_millis() as u64,
                producers_ms = (producers_rebuilt - synced).as_millis() as u64,
                total_ms = began.elapsed().as_millis() as u64,
                "partition recovered after an unclean shutdown"
            );
        }
        // From the first change on, a crash is an unclean shutdown: a clean mark on disk is
        // cleared before it (`mark_unclean`), so an idle partition's open writes nothing.
        // After recovery the state file already says unclean (or is absent); the recovery
        // point it holds may lag, which only makes a later recovery scan more.
        self.marked_unclean.set(!clean);
        // Segments wholly below the log start (a crash between persisting a new log start
        // and unlinking them) are finished off now.
        let stale: Vec<Rc<Segment>> = {
            let segs = self.segments.borrow();
            let log_start = self.offsets.log_start_offset.get();
            segs.iter()
                .take(segs.len().saturating_sub(1))
                .take_while(|s| s.next_offset.get() <= log_start)
                .cloned()
                .collect()
        };
        self.drop_segments(&stale).await
    }

    /// Opens every `*.log` file in the directory as a segment, or creates the first one at
    /// the persisted log start when there is none.
    async fn load_segment_files(&self, state_log_start: i64) -> Result<(), StorageError> {
        let dir = &self.dir;
        let bases = list_offsets(dir, LOG_SUFFIX)?;
        if bases.is_empty() {
            // Created on first use, as for a new partition (`create`).
            let seg = Segment::create_lazily(dir, state_log_start.max(0));
            self.segments.borrow_mut().push_back(seg);
            self.dir_unsynced.set(true);
        } else {
            for &b in &bases {
                let seg = Segment::open(dir, b).await?;
                self.segments.borrow_mut().push_back(seg);
            }
        }
        Ok(())
    }

    /// Checks every segment: cheaply before the recovery point (all of them after a clean
    /// shutdown), batch by batch from the segment holding it. A torn tail is truncated and
    /// the segments after it removed. Returns the index of the first fully re-validated
    /// segment (the segment count after a clean shutdown).
    async fn validate_segments(
        &self,
        clean: bool,
        recovery_point: i64,
        state_trusted: bool,
    ) -> Result<usize, StorageError> {
        let interval = self.config.borrow().index_interval_bytes;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        // First segment that gets the full CRC re-validation.
        let full_from = if clean {
            segments.len()
        } else {
            segments
                .iter()
                .rposition(|s| s.base_offset <= recovery_point)
                .unwrap_or(0)
        };
        for (i, seg) in segments.iter().enumerate() {
            if i < full_from {
                self.load_trusted(seg, interval).await?;
                continue;
            }
            let later = &segments[i + 1..];
            // Only the segment holding the recovery point has a synced prefix to skip.
            let from_recovery_point = i == full_from && state_trusted;
            let bounds = RevalidationBounds {
                recovery_point,
                state_trusted,
                from_recovery_point,
            };
            if revalidate(seg, later, bounds, interval).await? {
                // Later segments (empty, or holding only unsynced appends) would now leave a
                // gap: remove them.
                let removed: Vec<Rc<Segment>> = self.segments.borrow_mut().drain(i + 1..).collect();
                for s in removed {
                    remove_segment_files(&s).await?;
                }
                super::state::sync_dir(&self.dir).await?;
                break;
            }
        }
        Ok(full_from)
    }

    /// A crash right after a roll leaves empty segment files whose base is past the data
    /// that reached the previous segment: they hold nothing, so drop them.
    async fn remove_empty_rolled_segments(&self) -> Result<(), StorageError> {
        loop {
            let stale = {
                let segs = self.segments.borrow();
                let n = segs.len();
                if n > 1
                    && segs[n - 1].is_empty()
                    && segs[n - 1].base_offset != segs[n - 2].next_offset.get()
                {
                    segs.back().cloned()
                } else {
                    None
                }
            };
            let Some(stale) = stale else { return Ok(()) };
            tracing::warn!(file = %stale.log_path.display(), "removing empty segment left by a crash during a roll");
            self.segments.borrow_mut().pop_back();
            remove_segment_files(&stale).await?;
            super::state::sync_dir(&self.dir).await?;
        }
    }

    /// Offsets must be gap-free across segments. Returns the segments, oldest first.
    fn check_gap_free(&self) -> Result<Vec<Rc<Segment>>, StorageError> {
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for pair in segments.windows(2) {
            if pair[0].next_offset.get() != pair[1].base_offset {
                return Err(StorageError::corrupt(
                    &pair[1].log_path,
                    0,
                    format!(
                        "segment starts at offset {} but the previous one ends at {}",
                        pair[1].base_offset,
                        pair[0].next_offset.get()
                    ),
                ));
            }
        }
        Ok(segments)
    }

    /// Sets the log end, written end and log start from the recovered segments; returns
    /// the log end.
    fn set_recovered_offsets(&self, segments: &[Rc<Segment>], state_log_start: i64) -> i64 {
        let first = &segments[0];
        let last = &segments[segments.len() - 1];
        let log_end = last.next_offset.get();
        self.offsets.next_offset.set(log_end);
        self.offsets.written_end_offset.set(log_end);
        self.writer.durable_requested.set(log_end);
        self.offsets
            .log_start_offset
            .set(state_log_start.max(first.base_offset).min(log_end));
        if !last.is_empty() {
            last.first_append_ms.set(now_ms());
        }
        log_end
    }

    /// Cheap checks for a segment whose contents are trusted (clean shutdown, or before the
    /// recovery point): index files sane, first batch at the segment base, and the tail after
    /// the last index entry walks to exactly the end of the file.
    pub(super) async fn load_trusted(
        &self,
        seg: &Rc<Segment>,
        interval: u32,
    ) -> Result<(), StorageError> {
        let file_size = seg.size_bytes.get();
        if file_size == 0 {
            seg.reset_bookkeeping();
            return Ok(());
        }
        let loaded = seg.load_indexes().await? && !seg.time_index.borrow().is_empty();
        let (tail_rel, tail_pos) = if loaded {
            seg.offset_index.borrow().last().unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        let index = seg.offset_index.borrow().clone();
        let time_index = seg.time_index.borrow().clone();
        seg.reset_bookkeeping();
        if loaded {
            *seg.offset_index.borrow_mut() = index;
            *seg.time_index.borrow_mut() = time_index;
            if let Some((ts, rel)) = seg.time_index.borrow().last() {
                seg.max_timestamp.set(ts);
                seg.offset_of_max_timestamp
                    .set(seg.base_offset + rel as i64);
            }
            // Check the first batch's offset before trusting the rest.
            let first = seg.find_from(0, file_size, |_| true).await?;
            match first {
                Some((h, _)) if h.base_offset >= seg.base_offset => {}
                Some((h, _)) => {
                    return Err(StorageError::corrupt(
                        &seg.log_path,
                        0,
                        format!(
                            "first batch has offset {}, expected {}",
                            h.base_offset, seg.base_offset
                        ),
                    ));
                }
                None => return Err(StorageError::corrupt(&seg.log_path, 0, "no batch")),
            }
        }
        seg.size_bytes.set(tail_pos as u64);
        let mut first_in_tail = true;
        let expected_last = seg.base_offset + tail_rel as i64;
        let scan = seg
            .scan(
                tail_pos as u64,
                file_size,
                false,
                RECOVERY_SCAN_CHUNK_BYTES,
                |h, pos| {
                    if first_in_tail {
                        first_in_tail = false;
                        if tail_pos == 0 && h.base_offset < seg.base_offset {
                            return Err(format!(
                                "first batch has offset {}, expected {}",
                                h.base_offset, seg.base_offset
                            ));
                        }
                        if tail_pos > 0 && h.last_offset() != expected_last {
                            return Err(format!(
                                "index entry says offset {expected_last} but the batch ends at {}",
                                h.last_offset()
                            ));
                        }
                        seg.next_offset.set(h.base_offset);
                    } else {
                        batch_follows(seg, h.base_offset)?;
                    }
                    seg.record_batch(h, pos, interval);
                    Ok(true)
                },
            )
            .await?;
        if let Some((position, reason)) = scan.invalid {
            return Err(StorageError::corrupt(&seg.log_path, position, reason));
        }
        seg.visible_bytes.set(seg.size_bytes.get());
        if !loaded {
            seg.rewrite_indexes().await?;
        }
        Ok(())
    }

    /// Loads the newest usable producer snapshot and replays batch headers after it.
    pub(super) async fn rebuild_producer_state(&self) -> Result<(), StorageError> {
        let log_end = self.offsets.next_offset.get();
        let mut snapshots = list_offsets(&self.dir, SNAPSHOT_SUFFIX)?;
        let mut from = self.segments.borrow()[0].base_offset;
        let mut manager = ProducerStateManager::default();
        while let Some(offset) = snapshots.pop() {
            let path = self.dir.join(snapshot_file_name(offset));
            if offset > log_end {
                // Taken before a truncation: describes batches that are gone.
                let _ = compio::fs::remove_file(&path).await;
                continue;
            }
            let Some(raw) = read_small_file(&path).await? else {
                continue;
            };
            match ProducerStateManager::decode_snapshot(&raw, &path) {
                Ok(m) => {
                    manager = m;
                    from = offset;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable producer snapshot");
                }
            }
        }
        if from < log_end {
            let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
            for seg in segments {
                if seg.next_offset.get() <= from {
                    continue;
                }
                let start = if seg.base_offset >= from {
                    0
                } else {
                    let rel = (from - seg.base_offset) as u32;
                    seg.offset_index.borrow().lookup(rel).1 as u64
                };
                let end = seg.size_bytes.get();
                // Markers that ended a transaction: (producer, first offset, header, position).
                let mut ended = Vec::new();
                let scan = seg
                    .scan(
                        start,
                        end,
                        false,
                        RECOVERY_SCAN_CHUNK_BYTES,
                        |h, position| {
                            if h.base_offset >= from
                                && let Some(first) = manager.replay(h)
                            {
                                ended.push((h.producer_id, first, *h, position));
                            }
                            Ok(true)
                        },
                    )
                    .await?;
                if let Some((position, reason)) = scan.invalid {
                    return Err(StorageError::corrupt(&seg.log_path, position, reason));
                }
                // Which markers were aborts is in the record key: read those few batches.
                for (producer_id, first, h, position) in ended {
                    let log = seg.files.log().await?;
                    let bytes =
                        read_exact_at(&log, &seg.log_path, position, h.size_bytes()).await?;
                    if control_record_type(&bytes) == Some(CONTROL_TYPE_ABORT) {
                        manager.record_abort(producer_id, first, h.base_offset);
                    }
                }
            }
        }
        *self.producers.borrow_mut() = manager;
        Ok(())
    }
}

/// The state file, and whether its recovery point can be trusted to cover every sealed
/// segment (see the torn-tail rule in the module comment).
async fn read_state_or_distrust(
    dir: &Path,
) -> Result<(Option<PartitionState>, bool), StorageError> {
    match read_state(dir).await {
        Ok(s) => Ok((s, true)),
        Err(e @ StorageError::Corrupt { .. }) => {
            // The state file is replaced atomically, so this is media damage: distrust it
            // and re-validate the whole log instead.
            tracing::warn!(error = %e, "state file unreadable; full recovery");
            Ok((None, false))
        }
        Err(e) => Err(e),
    }
}

/// Writes `<log_end:020>.snapshot` and deletes all but the newest few.
pub(super) async fn write_producer_snapshot(
    dir: &Path,
    offset: i64,
    bytes: Vec<u8>,
) -> Result<(), StorageError> {
    write_file_atomically(dir, &snapshot_file_name(offset), bytes).await?;
    let snapshots = list_offsets(dir, SNAPSHOT_SUFFIX)?;
    if snapshots.len() > PRODUCER_SNAPSHOTS_RETAINED {
        for o in &snapshots[..snapshots.len() - PRODUCER_SNAPSHOTS_RETAINED] {
            let path = dir.join(snapshot_file_name(*o));
            match compio::fs::remove_file(&path).await {
                Ok(()) => {}
                // A seal and a flush may write snapshots at the same time and prune the
                // same old one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
    }
    Ok(())
}

/// Removes `*.tmp` leftovers of atomic writes interrupted by a crash.
async fn remove_temp_files(dir: &Path) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| StorageError::io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == "tmp") {
            compio::fs::remove_file(&path)
                .await
                .map_err(|e| StorageError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Unlinks a segment's three files (missing index files are fine).
pub(super) async fn remove_segment_files(seg: &Segment) -> Result<(), StorageError> {
    // Its cached pages are freed in the background, not in the shard's last close
    // (`storage::evict`).
    let held = super::evict::hold(&[&seg.log_path]);
    let mut removed = Ok(());
    for path in [&seg.log_path, &seg.index_path, &seg.time_index_path] {
        match compio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                removed = Err(StorageError::io(path, e));
                break;
            }
        }
    }
    super::evict::release_later(held).await;
    removed
}
