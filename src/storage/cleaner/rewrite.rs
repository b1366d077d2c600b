//! A cleaner pass's I/O: reading sealed segments batch by batch (`SegmentBatches`), building
//! the key → newest-offset map over the dirty range, and rewriting groups of segments into
//! `.cleaned` files that keep, per key, only the newest record (tombstones until
//! `delete.retention.ms` after their segment was last written), then swapping them in.
//! Each output group keeps its last batch (empty if need be) so its offset range ends where
//! the originals did, and each active producer keeps its last batch (Kafka's rule, for
//! idempotence state after a restart). Every batch read is CRC-checked: damage stops the
//! pass, it is never copied into a new file.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};

use super::super::batch::{BatchHeader, RECORD_BATCH_HEADER_BYTES, verify_crc};
use super::super::error::StorageError;
use super::super::log::PartitionLog;
use super::super::recompress::MAX_DECOMPRESSED_BATCH_BYTES;
use super::super::segment::{MAX_BATCH_BYTES_ON_DISK, Segment};
use super::swap::{self, CLEANED_SUFFIX};
use super::{
    CleanStats, CleaningPlan, CompactionSettings, FilterScratch, Filtered, IoThrottle,
    KeyOffsetMap, RecordView, filter_batch, key_hash, records_section, walk_records,
};

/// Read size when walking a segment for the cleaner.
pub const CLEANER_READ_CHUNK_BYTES: usize = 1024 * 1024;
/// Cleaned bytes gathered before one write to the `.cleaned` file.
pub const CLEANER_WRITE_CHUNK_BYTES: usize = 1024 * 1024;

/// Sequential reader of a sealed segment's batches, in chunks, each batch CRC-checked.
struct SegmentBatches<'a> {
    segment: &'a Segment,
    buf: Vec<u8>,
    buf_start: u64,
    position: u64,
    end: u64,
}

impl<'a> SegmentBatches<'a> {
    fn new(segment: &'a Segment) -> Self {
        SegmentBatches {
            segment,
            buf: Vec::new(),
            buf_start: 0,
            position: 0,
            end: segment.visible_bytes.get(),
        }
    }

    /// Makes the buffer hold `[position, position + need)`; returns bytes read from disk.
    async fn fill(&mut self, need: usize) -> Result<u64, StorageError> {
        let have_from = self.position.saturating_sub(self.buf_start) as usize;
        if self.position >= self.buf_start && have_from + need <= self.buf.len() {
            return Ok(0);
        }
        let len =
            (need.max(CLEANER_READ_CHUNK_BYTES) as u64).min(self.end - self.position) as usize;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(len, 0);
        let log = self.segment.files.log().await?;
        let BufResult(r, slice) = log.read_exact_at(buf.slice(0..len), self.position).await;
        self.buf = slice.into_inner();
        r.map_err(|e| StorageError::io(&self.segment.log_path, e))?;
        self.buf_start = self.position;
        Ok(len as u64)
    }

    /// The next batch: (header, its bytes, disk bytes read to get it), or `None` at the end.
    async fn next(&mut self) -> Result<Option<(BatchHeader, &[u8], u64)>, StorageError> {
        if self.position >= self.end {
            return Ok(None);
        }
        let corrupt =
            |pos: u64, why: String| StorageError::corrupt(&self.segment.log_path, pos, why);
        let remaining = self.end - self.position;
        if remaining < RECORD_BATCH_HEADER_BYTES as u64 {
            return Err(corrupt(self.position, "torn batch header".into()));
        }
        let mut read = self.fill(RECORD_BATCH_HEADER_BYTES).await?;
        let at = (self.position - self.buf_start) as usize;
        let header = BatchHeader::parse_stored_at(&self.buf[at..], self.position as usize)
            .map_err(|e| corrupt(self.position, e.to_string()))?;
        let size = header.size_bytes() as u64;
        if size > MAX_BATCH_BYTES_ON_DISK || size > remaining {
            return Err(corrupt(
                self.position,
                format!("batch of {size} bytes runs past the end"),
            ));
        }
        read += self.fill(size as usize).await?;
        let at = (self.position - self.buf_start) as usize;
        let bytes = &self.buf[at..at + size as usize];
        verify_crc(bytes, &header, self.position as usize)
            .map_err(|e| corrupt(self.position, e.to_string()))?;
        self.position += size;
        Ok(Some((header, bytes, read)))
    }
}

/// Which records of a group survive.
struct KeepRule<'a> {
    map: &'a KeyOffsetMap,
    map_end: i64,
    producer_last_offsets: &'a HashSet<i64>,
    index_interval_bytes: u32,
    segment_bytes: u64,
    tombstones_expire_before: i64,
}

impl KeepRule<'_> {
    fn keep(&self, record: &RecordView, tombstones_expired: bool) -> bool {
        let Some(key) = record.key else { return true };
        if record.offset >= self.map_end {
            return true;
        }
        let superseded = self.map.is_superseded(key_hash(key), record.offset);
        let expired_tombstone = record.is_tombstone && tombstones_expired;
        !(superseded || expired_tombstone)
    }
}

/// One batch read from a segment of the group.
struct BatchInGroup<'b> {
    header: &'b BatchHeader,
    bytes: &'b [u8],
    /// The segment's last batch.
    is_tail: bool,
    tombstones_expired: bool,
}

/// The cleaned bytes of the group being written.
#[derive(Default)]
struct GroupOutput {
    /// Bytes not yet written to the `.cleaned` file.
    pending: Vec<u8>,
    /// Bytes already written (the file position of `pending`).
    written: u64,
    /// The latest segment's last batch, emptied of its records: written only if the group
    /// ends with that segment.
    held_back: Vec<u8>,
    scratch: FilterScratch,
    /// A record was removed.
    changed: bool,
}

impl GroupOutput {
    fn len(&self) -> u64 {
        self.written + self.pending.len() as u64 + self.held_back.len() as u64
    }

    /// `segment` may join the group: its size before cleaning bounds what it adds.
    fn has_room_for(&self, segment: &Segment, group_base: i64, segment_bytes: u64) -> bool {
        self.len() + segment.size_bytes.get() <= segment_bytes
            && segment.next_offset.get() - group_base <= i64::from(i32::MAX)
    }

    /// Filters one batch into the output (or holds back an emptied segment tail).
    fn add(
        &mut self,
        partition: &str,
        batch: BatchInGroup<'_>,
        rule: &KeepRule<'_>,
        cleaned: &Segment,
        stats: &mut CleanStats,
    ) {
        let header = batch.header;
        let producer_tail =
            header.has_producer_id() && rule.producer_last_offsets.contains(&header.last_offset());
        let start = self.pending.len();
        let plain_data = !header.is_control() && !header.is_transactional();
        if header.record_count == 0 && plain_data && !producer_tail {
            // Emptied by an earlier pass: needed only as a group's last batch.
            if batch.is_tail {
                self.held_back = batch.bytes.to_vec();
            } else {
                self.changed = true;
            }
            return;
        }
        let outcome = if header.is_control()
            || header.is_transactional()
            || header.base_offset >= rule.map_end
        {
            Filtered::KeepWhole
        } else {
            let keep = |r: &RecordView| rule.keep(r, batch.tombstones_expired);
            let limit = MAX_DECOMPRESSED_BATCH_BYTES;
            let retain_empty = producer_tail || batch.is_tail;
            let scratch = &mut self.scratch;
            filter_batch(batch.bytes, header, limit, retain_empty, scratch, keep, &mut self.pending)
                .unwrap_or_else(|why| {
                    tracing::warn!(partition, offset = header.base_offset, %why, "cleaner keeps a batch it cannot read");
                    Filtered::KeepWhole
                })
        };
        let kept = match outcome {
            Filtered::KeepWhole => {
                self.pending.extend_from_slice(batch.bytes);
                header.record_count
            }
            Filtered::Dropped => 0,
            Filtered::Rewritten { records_kept } => records_kept,
        };
        if kept < header.record_count {
            self.changed = true;
            stats.records_removed += (header.record_count - kept) as u64;
        }
        if let Filtered::Rewritten { records_kept: 0 } = outcome
            && !producer_tail
        {
            // Only there to end the offset range: moved aside until the group's end is known.
            self.held_back = self.pending.split_off(start);
            return;
        }
        if self.pending.len() > start {
            self.record(cleaned, start, rule.index_interval_bytes);
        }
    }

    /// Indexes the batch at `pending[start..]`.
    fn record(&self, cleaned: &Segment, start: usize, index_interval_bytes: u32) {
        match BatchHeader::parse_stored_at(&self.pending[start..], 0) {
            Ok(h) => cleaned.record_batch(&h, self.written + start as u64, index_interval_bytes),
            Err(e) => unreachable!("the cleaner wrote a batch it cannot parse: {e}"),
        }
    }

    /// The group ends here: its held-back tail goes at the end.
    fn keep_held_back(&mut self, cleaned: &Segment, index_interval_bytes: u32) {
        if self.held_back.is_empty() {
            return;
        }
        let start = self.pending.len();
        let tail = std::mem::take(&mut self.held_back);
        self.pending.extend_from_slice(&tail);
        self.record(cleaned, start, index_interval_bytes);
    }
}

fn modified(path: &std::path::Path) -> Result<SystemTime, StorageError> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| StorageError::io(path, e))
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PartitionLog {
    /// Adds the keys of the dirty range to `map`, batch by batch, until the range ends or the
    /// map is full. Returns one past the last offset mapped (`None`: not even one batch fit).
    pub(super) async fn build_offset_map(
        &self,
        plan: &CleaningPlan,
        map: &mut KeyOffsetMap,
        throttle: &mut IoThrottle,
        stats: &mut CleanStats,
    ) -> Result<Option<i64>, StorageError> {
        let mut end = plan.first_dirty_offset;
        let mut plain = Vec::new();
        for segment in &plan.segments[plan.first_dirty_index..] {
            let mut batches = SegmentBatches::new(segment);
            while let Some((header, bytes, read)) = batches.next().await? {
                self.check_cleaning_goes_on(throttle)?;
                stats.bytes_read += read;
                if header.last_offset() < plan.first_dirty_offset {
                    continue;
                }
                if header.is_control() || header.is_transactional() {
                    end = header.last_offset() + 1;
                    continue;
                }
                if !map.has_room_for(header.record_count.max(0) as usize) {
                    if map.is_empty() {
                        tracing::warn!(partition = %self.name, records = header.record_count, "cleaner dedupe buffer too small for one batch; not cleaning");
                        return Ok(None);
                    }
                    return Ok(Some(end));
                }
                match records_section(bytes, &header, MAX_DECOMPRESSED_BATCH_BYTES, &mut plain) {
                    Ok(section) => {
                        let walked = walk_records(section, &header, |record, _| {
                            if let Some(key) = record.key {
                                map.put(key_hash(key), record.offset);
                            }
                        });
                        if let Err(why) = walked {
                            tracing::warn!(partition = %self.name, offset = header.base_offset, why, "cleaner keeps a batch it cannot read");
                        }
                    }
                    Err(why) => {
                        tracing::warn!(partition = %self.name, offset = header.base_offset, %why, "cleaner keeps a batch it cannot read")
                    }
                }
                end = header.last_offset() + 1;
                throttle.pace(read).await;
            }
            end = end.max(segment.next_offset.get());
        }
        Ok(Some(end))
    }

    /// Rewrites the segments of the cleanable prefix that start below `map_end`. Consecutive
    /// segments go into one cleaned segment while what is written so far plus the next
    /// segment's size stays within `segment.bytes` (Kafka groups by the original sizes; the
    /// sizes after cleaning merge the small segments cleaning leaves). Each group is swapped
    /// in as one segment.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn rewrite_cleanable(
        &self,
        plan: &CleaningPlan,
        settings: &CompactionSettings,
        map: &KeyOffsetMap,
        map_end: i64,
        now_ms: i64,
        throttle: &mut IoThrottle,
        stats: &mut CleanStats,
    ) -> Result<(), StorageError> {
        let count = plan
            .segments
            .iter()
            .take_while(|s| s.base_offset < map_end)
            .count();
        let segments = &plan.segments[..count];
        let producer_last_offsets: HashSet<i64> =
            self.producers.borrow().last_batch_offsets().collect();
        let rule = KeepRule {
            map,
            map_end,
            producer_last_offsets: &producer_last_offsets,
            index_interval_bytes: settings.index_interval_bytes,
            segment_bytes: settings.segment_bytes,
            tombstones_expire_before: now_ms.saturating_sub(settings.delete_retention_ms),
        };
        let mut start = 0;
        while start < segments.len() {
            start += self
                .rewrite_group(&segments[start..], &rule, throttle, stats)
                .await?;
        }
        Ok(())
    }

    /// Cleans a group of segments from the front of `segments` into one; returns how many it
    /// took (at least one).
    async fn rewrite_group(
        &self,
        segments: &[Rc<Segment>],
        rule: &KeepRule<'_>,
        throttle: &mut IoThrottle,
        stats: &mut CleanStats,
    ) -> Result<usize, StorageError> {
        let base = segments[0].base_offset;
        let cleaned = Segment::create_suffixed(&self.dir, base, CLEANED_SUFFIX).await?;
        let filled = self
            .fill_cleaned(segments, &cleaned, rule, throttle, stats)
            .await;
        let (taken, replaces) = match filled {
            Ok(filled) => filled,
            Err(e) => {
                drop(cleaned);
                swap::discard_cleaned(&self.dir, base).await?;
                return Err(e);
            }
        };
        let group = &segments[..taken];
        let finished = if replaces {
            self.finish_cleaned(&cleaned, group).await
        } else {
            Ok(false)
        };
        let new_size = cleaned.size_bytes.get();
        drop(cleaned);
        match finished {
            Ok(true) => {}
            other => {
                swap::discard_cleaned(&self.dir, base).await?;
                return other.map(|_| taken);
            }
        }
        swap::promote_to_swap(&self.dir, base).await?;
        let pause = throttle.budget().swap_pause;
        if !pause.is_zero() {
            tracing::warn!(partition = %self.name, base, ?pause, "cleaner pausing before its swap (test hook)");
            throttle.sleep_unless_stopped(pause).await;
        }
        let old_size: u64 = group.iter().map(|s| s.size_bytes.get()).sum();
        if self.swap_in(group).await? {
            stats.segments_rewritten += group.len() as u64;
            stats.bytes_reclaimed += old_size.saturating_sub(new_size);
        }
        Ok(taken)
    }

    /// Syncs the cleaned files and gives the log the newest modification time of the
    /// segments it replaces (tombstone expiry counts from it, as Kafka's does).
    async fn finish_cleaned(
        &self,
        cleaned: &Segment,
        group: &[Rc<Segment>],
    ) -> Result<bool, StorageError> {
        cleaned.seal_time_index();
        cleaned.persist_indexes().await?;
        cleaned.sync_log().await?;
        cleaned.sync_indexes().await?;
        let mut newest = UNIX_EPOCH;
        for s in group {
            newest = newest.max(modified(&s.log_path)?);
        }
        std::fs::File::options()
            .write(true)
            .open(&cleaned.log_path)
            .and_then(|f| f.set_modified(newest))
            .map_err(|e| StorageError::io(&cleaned.log_path, e))?;
        Ok(true)
    }

    /// Writes the surviving batches of a group taken from the front of `segments` into
    /// `cleaned`. Returns how many segments the group took and whether the result replaces
    /// them: something was removed, or several segments become one (fewer files to keep
    /// open). A single segment with nothing to remove is left as it is.
    ///
    /// A segment's last batch is held back while it is undecided whether the group goes on:
    /// a group keeps its last batch (emptied if need be) so the cleaned segment's offset
    /// range ends where its originals did; inside a group it needs no such place.
    async fn fill_cleaned(
        &self,
        segments: &[Rc<Segment>],
        cleaned: &Segment,
        rule: &KeepRule<'_>,
        throttle: &mut IoThrottle,
        stats: &mut CleanStats,
    ) -> Result<(usize, bool), StorageError> {
        let mut out = GroupOutput::default();
        let group_base = segments[0].base_offset;
        let mut taken = 0;
        for segment in segments {
            if taken > 0 && !out.has_room_for(segment, group_base, rule.segment_bytes) {
                break;
            }
            // Going on: the previous segment's held-back tail needs no place.
            out.held_back.clear();
            taken += 1;
            let tombstones_expired =
                millis(modified(&segment.log_path)?) < rule.tombstones_expire_before;
            let tail_offset = segment.next_offset.get() - 1;
            let mut batches = SegmentBatches::new(segment);
            while let Some((header, bytes, read)) = batches.next().await? {
                self.check_cleaning_goes_on(throttle)?;
                stats.bytes_read += read;
                let is_tail = header.last_offset() == tail_offset;
                let batch = BatchInGroup {
                    header: &header,
                    bytes,
                    is_tail,
                    tombstones_expired,
                };
                out.add(&self.name, batch, rule, cleaned, stats);
                let mut io_bytes = read;
                if out.pending.len() >= CLEANER_WRITE_CHUNK_BYTES {
                    io_bytes += out.pending.len() as u64;
                    let pending = std::mem::take(&mut out.pending);
                    out.pending = self
                        .write_out(cleaned, pending, &mut out.written, stats)
                        .await?;
                }
                throttle.pace(io_bytes).await;
            }
        }
        out.keep_held_back(cleaned, rule.index_interval_bytes);
        let replaces = out.changed || taken > 1;
        if replaces {
            let pending = std::mem::take(&mut out.pending);
            self.write_out(cleaned, pending, &mut out.written, stats)
                .await?;
        }
        Ok((taken, replaces))
    }

    async fn write_out(
        &self,
        cleaned: &Segment,
        out: Vec<u8>,
        position: &mut u64,
        stats: &mut CleanStats,
    ) -> Result<Vec<u8>, StorageError> {
        let len = out.len() as u64;
        if len == 0 {
            return Ok(out);
        }
        let mut file = cleaned.files.log().await?;
        let BufResult(r, mut out) = file.write_all_at(out, *position).await;
        r.map_err(|e| StorageError::io(&cleaned.log_path, e))?;
        cleaned.visible_bytes.set(*position + len);
        *position += len;
        stats.bytes_written += len;
        out.clear();
        Ok(out)
    }

    /// Replaces `group` in the log with the `.swap` segment, unless retention or DeleteRecords
    /// removed any of it meanwhile or the log closed (then the swap is discarded). Returns
    /// whether it was swapped in.
    async fn swap_in(&self, group: &[Rc<Segment>]) -> Result<bool, StorageError> {
        let base = group[0].base_offset;
        let _guard = self.cleaner.swap_lock.lock().await;
        let at = {
            let segs = self.segments.borrow();
            segs.iter()
                .position(|s| Rc::ptr_eq(s, &group[0]))
                .filter(|&i| {
                    i + group.len() < segs.len()
                        && group
                            .iter()
                            .zip(segs.range(i..))
                            .all(|(g, s)| Rc::ptr_eq(g, s))
                })
        };
        let Some(at) = at.filter(|_| self.check_online().is_ok()) else {
            swap::discard_swap(&self.dir, base).await?;
            return Ok(false);
        };
        let replaced: Vec<&Segment> = group.iter().map(|s| s.as_ref()).collect();
        // Readers still holding a replaced segment keep its open descriptor; a reopen by
        // name would find the cleaned file, so it is refused from here on.
        for old in &replaced {
            old.files.retire();
        }
        swap::install_swap(&self.dir, base, &replaced).await?;
        let segment = Segment::open(&self.dir, base).await?;
        let interval = self.config.borrow().index_interval_bytes;
        self.load_trusted(&segment, interval).await?;
        // Every batch in it was CRC-checked when read or computed when written.
        segment.crc_verified_bytes.set(segment.size_bytes.get());
        assert_eq!(
            segment.next_offset.get(),
            group[group.len() - 1].next_offset.get(),
            "a cleaned segment keeps its offset range"
        );
        let mut segs = self.segments.borrow_mut();
        for _ in 0..group.len() {
            segs.remove(at);
        }
        segs.insert(at, segment);
        Ok(true)
    }
}
