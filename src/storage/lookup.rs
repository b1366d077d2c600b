//! Finding batches in one segment for reads: the batch holding an offset, the last batch
//! boundary before a byte limit, the first batch matching a predicate. Positions come from
//! the in-memory offset index. An entry whose batch this process appended directly after
//! the previous entry's answers from memory (decision 0032); any other entry is confirmed by
//! reading the one batch header (61 bytes) it points at, and batch headers are walked only
//! where no entry is close enough. An entry that does not check out is never trusted. Must
//! not change the log's bytes.

use compio::buf::BufResult;
use compio::io::AsyncReadAtExt;

use super::batch::{BatchHeader, RECORD_BATCH_HEADER_BYTES};
use super::error::StorageError;
use super::offset_index::OffsetIndex;
use super::segment::{
    LOOKUP_SCAN_CHUNK_BYTES, LOOKUP_WALK_CHUNK_BYTES, MAX_BATCH_BYTES_ON_DISK,
    RECOVERY_SCAN_CHUNK_BYTES, Segment,
};

/// What a fetch needs of the batch holding its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub base_offset: i64,
    pub last_offset: i64,
    pub position: u64,
    pub size_bytes: u64,
    /// False for a batch left without records by compaction (a fetch reads on past it).
    pub has_records: bool,
}

impl BatchSpan {
    fn of(header: &BatchHeader, position: u64) -> BatchSpan {
        BatchSpan {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            position,
            size_bytes: header.size_bytes() as u64,
            has_records: header.record_count > 0,
        }
    }
}

impl Segment {
    /// The batch at offset index entry `i` from memory, when its bits prove it (it follows
    /// the previous entry's batch, and the next entry's follows it or it is the last batch).
    /// Only batches with records carry the bit. It may not be visible yet.
    fn batch_from_index(&self, i: usize) -> Option<BatchSpan> {
        let index = self.offset_index.borrow();
        let (first_rel, position, size) = index.batch_at(i, self.last_batch())?;
        let (last_rel, _) = index.entries()[i];
        Some(BatchSpan {
            base_offset: self.base_offset + i64::from(first_rel),
            last_offset: self.base_offset + i64::from(last_rel),
            position: u64::from(position),
            size_bytes: size,
            has_records: true,
        })
    }

    /// The segment's first batch from memory, when it holds relative offset `rel` and
    /// this process appended it (it has no entry: entry 0 or the segment's end sizes it).
    fn first_batch_from_index(&self, rel: u32) -> Option<BatchSpan> {
        let (last_rel, size) = self
            .offset_index
            .borrow()
            .first_batch(rel, self.last_batch())?;
        Some(BatchSpan {
            base_offset: self.base_offset,
            last_offset: self.base_offset + i64::from(last_rel),
            position: 0,
            size_bytes: size,
            has_records: true,
        })
    }

    /// `find_batch` for a fetch: from memory when the index proves the batch holding
    /// `offset` (a fetch over 1,000 partitions paid a header read per partition per
    /// request), else by reading.
    pub async fn find_batch_span(&self, offset: i64) -> Result<Option<BatchSpan>, StorageError> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        // The segment's first batch when it holds `offset`; else the first entry at or past
        // `offset`, following the entry before it, holds every offset after that entry's.
        let first = self.first_batch_from_index(rel);
        let ceiling = self.offset_index.borrow().ceiling_index(rel);
        if let Some(span) = first.or_else(|| ceiling.and_then(|i| self.batch_from_index(i)))
            && span.base_offset <= offset
            && span.position + span.size_bytes <= self.visible_bytes.get()
        {
            return Ok(Some(span));
        }
        Ok(self
            .find_batch(offset)
            .await?
            .map(|(h, position)| BatchSpan::of(&h, position)))
    }

    /// The batch header at `position`, read alone: a fetch over 1,000 partitions pays one
    /// lookup per partition per request, and reading (and zeroing) a 16 KiB chunk for each
    /// was a third of that fetch's CPU. `None` when the bytes there are not a plausible
    /// whole batch ending at or before `end`.
    async fn header_at(
        &self,
        position: u64,
        end: u64,
    ) -> Result<Option<BatchHeader>, StorageError> {
        if position + RECORD_BATCH_HEADER_BYTES as u64 > end {
            return Ok(None);
        }
        self.lookup_reads.set(self.lookup_reads.get() + 1);
        let log = self.files.log().await?;
        let buf = [0u8; RECORD_BATCH_HEADER_BYTES];
        let BufResult(r, buf) = log.read_exact_at(buf, position).await;
        r.map_err(|e| StorageError::io(&self.log_path, e))?;
        let Ok(header) = BatchHeader::parse_stored_at(&buf, position as usize) else {
            return Ok(None);
        };
        let size = header.size_bytes() as u64;
        if size > MAX_BATCH_BYTES_ON_DISK || position + size > end {
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// The batch holding `offset`, searching visible bytes only: (header, position).
    pub async fn find_batch(
        &self,
        offset: i64,
    ) -> Result<Option<(BatchHeader, u64)>, StorageError> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let end = self.visible_bytes.get();
        // Entries are keyed by a batch's last offset, and every batch longer than the index
        // interval has one: the first entry at or past `offset` names the batch holding it
        // whenever that batch starts at or before `offset` (offsets grow with position, so
        // no other batch can hold it). One header read, no walk.
        let ceiling = self.offset_index.borrow().ceiling(rel);
        if let Some((entry_rel, position)) = ceiling
            && let Some(header) = self.header_at(u64::from(position), end).await?
            && header.last_offset() == self.base_offset + i64::from(entry_rel)
            && header.base_offset <= offset
        {
            return Ok(Some((header, u64::from(position))));
        }
        self.walk_to_batch(offset, rel, end).await
    }

    /// `find_batch` by walking batch headers from the index entry at or before `offset`
    /// (the entry checked first; a bad one rebuilds the index from the log).
    async fn walk_to_batch(
        &self,
        offset: i64,
        rel: u32,
        end: u64,
    ) -> Result<Option<(BatchHeader, u64)>, StorageError> {
        self.lookup_reads.set(self.lookup_reads.get() + 1);
        let (entry_rel, start) = self.offset_index.borrow().lookup(rel);
        let start = u64::from(start);
        if start > 0 {
            // An index read from disk is trusted only as far as each entry checks out: the
            // batch at the entry's position must end at the entry's offset.
            let expected_last = self.base_offset + i64::from(entry_rel);
            let mut entry_ok: Option<bool> = None;
            let mut found = None;
            let scan = self
                .scan(start, end, false, LOOKUP_WALK_CHUNK_BYTES, |h, p| {
                    if entry_ok.is_none() {
                        entry_ok = Some(h.last_offset() == expected_last);
                        if entry_ok == Some(false) {
                            return Ok(false);
                        }
                    }
                    if h.last_offset() >= offset {
                        found = Some((*h, p));
                        Ok(false)
                    } else {
                        Ok(true)
                    }
                })
                .await?;
            if scan.invalid.is_none() && entry_ok != Some(false) {
                return Ok(found);
            }
            tracing::warn!(
                index = %self.index_path.display(),
                position = start,
                "offset index entry does not point at its batch; rebuilding the index from the log"
            );
            self.rebuild_offset_index().await?;
        }
        let (_, start) = self.offset_index.borrow().lookup(rel);
        self.find_from(u64::from(start), end, |h| h.last_offset() >= offset)
            .await
    }

    /// Rebuilds the sparse offset index from the batch headers in the log (no CRC work)
    /// and rewrites the index files.
    async fn rebuild_offset_index(&self) -> Result<(), StorageError> {
        let interval = u64::from(crate::config::DEFAULT_INDEX_INTERVAL_BYTES);
        let mut index = OffsetIndex::default();
        let mut since_entry = 0u64;
        let base = self.base_offset;
        let scan = self
            .scan(
                0,
                self.visible_bytes.get(),
                false,
                RECOVERY_SCAN_CHUNK_BYTES,
                |h, p| {
                    if since_entry > interval {
                        index.append((h.last_offset() - base) as u32, p as u32);
                        since_entry = 0;
                    }
                    since_entry += h.size_bytes() as u64;
                    Ok(true)
                },
            )
            .await?;
        if let Some((position, reason)) = scan.invalid {
            return Err(StorageError::corrupt(&self.log_path, position, reason));
        }
        *self.offset_index.borrow_mut() = index;
        self.rewrite_indexes().await
    }

    /// The first batch at or after `start` whose header satisfies `pred`.
    pub async fn find_from(
        &self,
        start: u64,
        end: u64,
        mut pred: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<Option<(BatchHeader, u64)>, StorageError> {
        let mut found = None;
        let scan = self
            .scan(start, end, false, LOOKUP_SCAN_CHUNK_BYTES, |h, p| {
                if pred(h) {
                    found = Some((*h, p));
                    Ok(false)
                } else {
                    Ok(true)
                }
            })
            .await?;
        if let Some((pos, why)) = scan.invalid {
            return Err(StorageError::corrupt(&self.log_path, pos, why));
        }
        Ok(found)
    }

    /// The last batch boundary in `from..=limit` (a position just past a whole batch, never
    /// past what is visible), and the offset one past the last record before it.
    /// `from` must itself be a batch boundary and `next_offset_at_from` the offset there.
    pub async fn boundary_at_or_before(
        &self,
        from: u64,
        limit: u64,
        next_offset_at_from: i64,
        written_end_offset: i64,
    ) -> Result<(u64, i64), StorageError> {
        let visible = self.visible_bytes.get();
        if visible <= limit {
            return Ok((visible, self.next_offset.get().min(written_end_offset)));
        }
        let mut start = from;
        // `limit < visible`, a 32-bit segment position.
        let floor = self
            .offset_index
            .borrow()
            .floor_position_index(limit as u32);
        // From memory: the batch at the entry at or before the limit runs past it (the
        // next entry's batch starts past the limit and directly follows it, or it is the
        // last batch), so the boundary is where it starts: `from` itself when the first
        // batch alone fills the limit. Whether that batch is visible yet does not matter.
        if let Some(span) = floor.and_then(|i| self.batch_from_index(i))
            && span.position >= from
            && span.position + span.size_bytes > limit
        {
            return Ok((span.position, span.base_offset));
        }
        let floor = floor.map(|i| self.offset_index.borrow().entries()[i]);
        if let Some((entry_rel, p)) = floor
            && u64::from(p) > from
        {
            let p = u64::from(p);
            match self.header_at(p, visible).await? {
                // The usual case when batches are longer than the index interval: the batch
                // at the entry runs past the limit, so the boundary is where it starts.
                Some(h) if h.last_offset() == self.base_offset + i64::from(entry_rel) => {
                    if p + h.size_bytes() as u64 > limit {
                        return Ok((p, h.base_offset));
                    }
                    start = p;
                }
                _ => tracing::warn!(
                    index = %self.index_path.display(),
                    position = p,
                    "offset index entry does not point at its batch; scanning from a known boundary"
                ),
            }
        }
        self.walk_to_boundary(from, start, limit, next_offset_at_from)
            .await
    }

    /// `boundary_at_or_before` by walking batch headers from `start` (`from` or a checked
    /// index position).
    async fn walk_to_boundary(
        &self,
        from: u64,
        mut start: u64,
        limit: u64,
        next_offset_at_from: i64,
    ) -> Result<(u64, i64), StorageError> {
        self.lookup_reads.set(self.lookup_reads.get() + 1);
        let visible = self.visible_bytes.get();
        loop {
            let mut boundary = start;
            let mut next_offset = next_offset_at_from;
            let mut first = true;
            let scan = self
                .scan(start, visible, false, LOOKUP_WALK_CHUNK_BYTES, |h, p| {
                    // Starting from an index position, the offset there is only known once
                    // the first header is read.
                    if first && start != from {
                        next_offset = h.base_offset;
                    }
                    first = false;
                    let e = p + h.size_bytes() as u64;
                    if e <= limit {
                        boundary = e;
                        next_offset = h.last_offset() + 1;
                        Ok(true)
                    } else {
                        Ok(false)
                    }
                })
                .await?;
            match scan.invalid {
                None => return Ok((boundary, next_offset)),
                // A damaged index entry pointed into the middle of a batch: walk from the
                // known boundary instead.
                Some(_) if start != from => {
                    tracing::warn!(
                        index = %self.index_path.display(),
                        position = start,
                        "offset index entry does not point at a batch; scanning from a known boundary"
                    );
                    start = from;
                }
                Some((pos, why)) => return Err(StorageError::corrupt(&self.log_path, pos, why)),
            }
        }
    }
}
