//! Reading the log: Fetch as file regions for zero-copy sends (`read`), ListOffsets by
//! timestamp (`offset_for_timestamp`, `max_timestamp`). Never serves past the written
//! end, and data trusted from disk is CRC-checked once before its first read. Must not
//! change offsets, the write queue or the files.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use compio::buf::{BufResult, IntoInner, IoBuf};

use super::batch::{BatchHeader, first_record_at_or_after, offset_of_max_timestamp};
use super::error::StorageError;
use super::log::PartitionLog;
use super::segment::Segment;
use super::state::read_exact_at;

/// Segments holding nothing but an empty batch (left by compaction) a read skips past at
/// most, so one fetch cannot walk the whole log.
pub const MAX_EMPTY_SEGMENTS_PER_READ: usize = 64;

/// A byte range of a segment file, for zero-copy fetch (`splice` from `fd`). `Send + Sync`
/// so it can travel from the partition's shard to the connection's; cloning keeps the fd open
/// even if retention deletes the segment meanwhile.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub fd: Arc<OwnedFd>,
    pub path: Arc<Path>,
    pub position: u64,
    pub len: u32,
}

impl FileRegion {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Every page of the region is in the page cache and none probed is still being read,
    /// so reading it does not wait on the disk (`page_cache::readable_without_io`).
    pub fn is_readable_without_io(&self) -> bool {
        super::page_cache::readable_without_io(self.raw_fd(), self.position, u64::from(self.len))
    }

    /// Copies the region into memory through io_uring (tests, tools, non-splice fallbacks).
    pub async fn read_to_vec(&self) -> Result<Vec<u8>, StorageError> {
        let len = self.len as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let op = compio::driver::op::ReadAt::new(
                Arc::clone(&self.fd),
                self.position + done as u64,
                buf.slice(done..len),
            );
            let BufResult(r, slice) = compio::runtime::submit(op).await.into_inner();
            buf = slice.into_inner();
            let n = r.map_err(|e| StorageError::io(self.path.as_ref(), e))?;
            if n == 0 {
                return Err(StorageError::io(
                    self.path.as_ref(),
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            done += n;
        }
        Ok(buf)
    }
}

impl AsFd for FileRegion {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub regions: Vec<FileRegion>,
    pub written_end_offset: i64,
    pub log_start_offset: i64,
    pub total_bytes: u64,
    /// Records in the returned batches (offsets they span), for the records-out counter.
    pub record_count: u64,
    /// One past the last offset the returned batches span (the fetch offset when empty).
    pub next_offset: i64,
}

impl PartitionLog {
    /// ListOffsets MAX_TIMESTAMP over the whole log: (max timestamp, offset of the first
    /// record carrying it), as Kafka answers since KAFKA-16310; (-1, -1) if no batch carries
    /// a timestamp. Segments track only which batch holds their max; the record is found
    /// here, by reading that one batch, so appends never walk records for it.
    pub async fn max_timestamp(&self) -> Result<(i64, i64), StorageError> {
        self.check_online()?;
        let mut best: Option<Rc<Segment>> = None;
        for s in self.segments.borrow().iter() {
            if s.max_timestamp.get() > best.as_ref().map_or(-1, |b| b.max_timestamp.get())
                && s.offset_of_max_timestamp.get() < self.offsets.written_end_offset.get()
            {
                best = Some(Rc::clone(s));
            }
        }
        let Some(segment) = best else {
            return Ok((-1, -1));
        };
        let (timestamp, batch_offset) = (
            segment.max_timestamp.get(),
            segment.offset_of_max_timestamp.get(),
        );
        let end = segment.visible_bytes.get();
        let rel = u32::try_from(batch_offset - segment.base_offset).unwrap_or(0);
        let (_, hint) = segment.offset_index.borrow().lookup(rel);
        let holds_max = |h: &BatchHeader| h.max_timestamp == timestamp;
        // The hint can point past the batch (segments sealed by older versions stored the
        // segment's last offset): then look from the segment's start, once, and remember.
        let found = match segment.find_from(hint as u64, end, holds_max).await? {
            Some(found) => Some(found),
            None => segment.find_from(0, end, holds_max).await?,
        };
        let Some((header, position)) = found else {
            return Ok((timestamp, batch_offset));
        };
        segment.offset_of_max_timestamp.set(header.last_offset());
        let log = segment.files.log().await?;
        let bytes = read_exact_at(&log, &segment.log_path, position, header.size_bytes()).await?;
        let offset = offset_of_max_timestamp(&bytes, &header).unwrap_or(header.last_offset());
        Ok((timestamp, offset))
    }

    /// File regions for a fetch at `fetch_offset`: starts at the batch holding it, ends on a
    /// batch boundary, never past the written end, at most `max_bytes` except that the
    /// first batch is always whole (KIP-74). Reads one segment, except that a segment left
    /// holding only an empty batch by compaction is served together with what follows (as
    /// Kafka skips segments with nothing to read): clients such as librdkafka give up after
    /// a run of answers without records.
    pub async fn read(&self, fetch_offset: i64, max_bytes: u32) -> Result<ReadSlice, StorageError> {
        self.read_until(fetch_offset, max_bytes, i64::MAX).await
    }

    /// `read`, also never past `end_offset` (read_committed: the last stable offset, which
    /// is always a batch boundary: a transaction's first batch, or the high watermark).
    pub async fn read_until(
        &self,
        fetch_offset: i64,
        max_bytes: u32,
        end_offset: i64,
    ) -> Result<ReadSlice, StorageError> {
        let (mut slice, mut after_empty) = self
            .read_segment(fetch_offset, max_bytes, end_offset)
            .await?;
        let mut hops = 0;
        while let Some(next_offset) = after_empty {
            let remaining = max_bytes.saturating_sub(slice.total_bytes as u32);
            hops += 1;
            if remaining == 0 || hops > MAX_EMPTY_SEGMENTS_PER_READ {
                break;
            }
            let (more, next) = self
                .read_segment(next_offset, remaining, end_offset)
                .await?;
            slice.regions.extend(more.regions);
            slice.total_bytes += more.total_bytes;
            slice.record_count += more.record_count;
            if more.total_bytes > 0 {
                slice.next_offset = more.next_offset;
            }
            after_empty = next;
        }
        Ok(slice)
    }

    /// `read_until` within one segment; also returns the offset after the region when the
    /// region is a single batch without records and more data follows below `end_offset`.
    async fn read_segment(
        &self,
        fetch_offset: i64,
        max_bytes: u32,
        end_offset: i64,
    ) -> Result<(ReadSlice, Option<i64>), StorageError> {
        self.check_online()?;
        let written_end = self.offsets.written_end_offset.get();
        let log_start = self.offsets.log_start_offset.get();
        let empty = ReadSlice {
            regions: Vec::new(),
            written_end_offset: written_end,
            log_start_offset: log_start,
            total_bytes: 0,
            record_count: 0,
            next_offset: fetch_offset,
        };
        if fetch_offset < log_start || fetch_offset > self.offsets.next_offset.get() {
            return Err(StorageError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: log_start,
                log_end_offset: self.offsets.next_offset.get(),
            });
        }
        if fetch_offset >= written_end.min(end_offset) {
            return Ok((empty, None));
        }
        let Some(segment) = self.segment_for(fetch_offset) else {
            return Ok((empty, None));
        };
        let Some(first) = segment.find_batch_span(fetch_offset).await? else {
            return Ok((empty, None));
        };
        let position = first.position;
        let first_end = position + first.size_bytes;
        let mut limit = (position + max_bytes as u64).max(first_end);
        if end_offset < written_end && end_offset < segment.next_offset.get() {
            // The bound falls in this segment: stop at the batch that starts there.
            if let Some(bound) = segment.find_batch_span(end_offset).await? {
                limit = limit.min(bound.position);
            }
            if limit < first_end {
                return Ok((empty, None));
            }
        }
        let (end, next_offset) = segment
            .boundary_at_or_before(first_end, limit, first.last_offset + 1, written_end)
            .await?;
        // Data trusted from disk (clean shutdown, or before the recovery point) is CRC-checked
        // once before its first read; damage takes the partition offline, never to a client.
        if let Err(e) = segment.verify_before_serving(end).await {
            // Only damage takes it offline; a failed read (say, no descriptor left for a
            // moment) fails this fetch alone.
            if matches!(e, StorageError::Corrupt { .. }) {
                self.go_offline(&e);
            }
            return Err(e);
        }
        let len = end - position;
        let only_an_empty_batch = !first.has_records && end == first_end;
        let after_empty = (only_an_empty_batch && next_offset < written_end.min(end_offset))
            .then_some(next_offset);
        let fd = segment.files.shared_log_fd().await?;
        let slice = ReadSlice {
            regions: vec![FileRegion {
                fd,
                path: Arc::clone(&segment.files.shared_log_path),
                position,
                len: len as u32,
            }],
            written_end_offset: written_end,
            log_start_offset: self.offsets.log_start_offset.get(),
            total_bytes: len,
            record_count: (next_offset - first.base_offset).max(0) as u64,
            next_offset,
        };
        Ok((slice, after_empty))
    }

    /// ListOffsets by time: the first batch whose max timestamp is >= `timestamp_ms`, as
    /// (offset, timestamp). Batch granularity: records are never decoded here.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        self.check_online()?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().iter().cloned().collect();
        for segment in segments {
            if segment.max_timestamp.get() < timestamp_ms {
                continue;
            }
            let rel = segment.time_index.borrow().lookup(timestamp_ms);
            let (_, start) = segment.offset_index.borrow().lookup(rel);
            let end = segment.visible_bytes.get();
            let log_start = self.offsets.log_start_offset.get();
            let found = segment
                .find_from(start as u64, end, |h| {
                    h.max_timestamp >= timestamp_ms && h.last_offset() >= log_start
                })
                .await?;
            if let Some((h, position)) = found {
                // Record granularity when the batch is plain (Kafka answers with the record).
                let log = segment.files.log().await?;
                let bytes =
                    read_exact_at(&log, &segment.log_path, position, h.size_bytes()).await?;
                let (offset, ts) = first_record_at_or_after(&bytes, &h, timestamp_ms, log_start)
                    .unwrap_or((h.base_offset.max(log_start), h.max_timestamp));
                if offset < self.offsets.written_end_offset.get() {
                    return Ok(Some((offset, ts)));
                }
                return Ok(None);
            }
        }
        Ok(None)
    }
}
