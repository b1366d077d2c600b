//! Sparse offset index of one segment (Kafka's `.index`): entries of 4-byte BE offset relative
//! to the segment base + 4-byte BE byte position of a batch start. Held in memory, mirrored to
//! disk; derived data, so a bad file is rebuilt from the log rather than trusted.
//!
//! In memory only, one bit per entry says the entry's batch was appended by this process
//! directly after the previous entry's batch (no byte or offset gap between them) and holds
//! records (decision 0032): then a fetch learns that batch's first offset and the previous
//! batch's size without reading a header. Entries read from a file never carry the bit.

/// Bytes per on-disk entry.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    /// (relative offset of a batch's last offset, as Kafka keys them, byte position of that
    /// batch).
    entries: Vec<(u32, u32)>,
    /// Bit `i` set: entry `i`'s batch starts where entry `i - 1`'s ends, at the offset after
    /// it, and is not empty. Bits past `entries.len()` are always clear.
    follows_previous: Vec<u64>,
    /// The segment's first batch, at position 0 from the segment's base offset with
    /// records, ends at this relative offset (appended by this process): the "previous
    /// entry" of entry 0, which has no entry of its own.
    first_batch_last: Option<u32>,
    /// Entries already written to the file.
    pub(crate) persisted: usize,
}

impl OffsetIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn size_bytes(&self) -> usize {
        self.entries.len() * OFFSET_INDEX_ENTRY_BYTES
    }
    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }
    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    /// Appends an entry; both fields must grow strictly (asserted: a violation is a bug).
    pub fn append(&mut self, relative_offset: u32, position: u32) {
        self.append_following(relative_offset, position, false);
    }

    /// `append`, saying whether the entry's batch directly follows the previous entry's
    /// (the caller has proved it: see `follows_previous`); for the first entry, the
    /// segment's first batch noted by `set_first_batch`.
    pub fn append_following(&mut self, relative_offset: u32, position: u32, follows: bool) {
        if let Some((o, p)) = self.last() {
            assert!(
                relative_offset > o && position > p,
                "offset index must grow: ({o},{p}) then ({relative_offset},{position})"
            );
        }
        let i = self.entries.len();
        self.entries.push((relative_offset, position));
        if follows && (i > 0 || self.first_batch_last.is_some()) {
            // Entries loaded from a file carry no bits, so the words up to this entry's
            // may all be missing (a restarted segment with more than 64 entries).
            if self.follows_previous.len() <= i / 64 {
                self.follows_previous.resize(i / 64 + 1, 0);
            }
            self.follows_previous[i / 64] |= 1 << (i % 64);
        }
    }

    /// Notes the segment's first batch (see `first_batch_last`); before any entry.
    pub fn set_first_batch(&mut self, last_relative_offset: u32) {
        if self.entries.is_empty() {
            self.first_batch_last = Some(last_relative_offset);
        }
    }

    /// The batch an entry appended now would follow: the last entry's, or the segment's
    /// first batch while there is none, as (relative last offset, position).
    pub fn previous_for_next(&self) -> Option<(u32, u32)> {
        match self.last() {
            Some(last) => Some(last),
            None => self.first_batch_last.map(|rel| (rel, 0)),
        }
    }

    /// The segment's first batch (at position 0, from relative offset 0) from memory when
    /// it holds `relative_offset`: (relative last offset, bytes), sized by entry 0
    /// following it or by `tail` when it is the only batch.
    pub fn first_batch(
        &self,
        relative_offset: u32,
        tail: Option<(u64, u64)>,
    ) -> Option<(u32, u64)> {
        let last = self.first_batch_last?;
        if relative_offset > last {
            return None;
        }
        let size = if self.follows_previous(0) {
            u64::from(self.entries[0].1)
        } else {
            match tail {
                Some((0, size)) if self.entries.is_empty() => size,
                _ => return None,
            }
        };
        Some((last, size))
    }

    /// Entry `i`'s batch directly follows entry `i - 1`'s, at the next offset, with records.
    pub fn follows_previous(&self, i: usize) -> bool {
        i < self.entries.len()
            && self
                .follows_previous
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The batch at entry `i` from memory alone: (relative first offset, position, bytes).
    /// Known when it follows entry `i - 1` (first offset) and either entry `i + 1` follows
    /// it (size) or it is the segment's last batch, `tail` = (its position, its size).
    pub fn batch_at(&self, i: usize, tail: Option<(u64, u64)>) -> Option<(u32, u32, u64)> {
        if !self.follows_previous(i) {
            return None;
        }
        let (_, position) = self.entries[i];
        let previous_rel = match i.checked_sub(1) {
            Some(p) => self.entries[p].0,
            None => self.first_batch_last?,
        };
        let size = if self.follows_previous(i + 1) {
            u64::from(self.entries[i + 1].1 - position)
        } else {
            match tail {
                Some((p, size)) if i + 1 == self.entries.len() && p == u64::from(position) => size,
                _ => return None,
            }
        };
        Some((previous_rel + 1, position, size))
    }

    /// The last entry whose offset is <= `relative_offset`: where a scan for it starts.
    /// (0, 0) when the target precedes every entry (the segment's first batch is at 0).
    pub fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        let idx = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if idx == 0 {
            (0, 0)
        } else {
            self.entries[idx - 1]
        }
    }

    /// The first entry whose offset is >= `relative_offset`: the first indexed batch that
    /// can hold it (entries are keyed by a batch's last offset).
    pub fn ceiling(&self, relative_offset: u32) -> Option<(u32, u32)> {
        self.ceiling_index(relative_offset)
            .map(|idx| self.entries[idx])
    }

    /// `ceiling` as an entry number.
    pub fn ceiling_index(&self, relative_offset: u32) -> Option<usize> {
        let idx = self.entries.partition_point(|&(o, _)| o < relative_offset);
        (idx < self.entries.len()).then_some(idx)
    }

    /// The last entry with position <= `position` (a batch boundary at or before it).
    pub fn floor_position(&self, position: u32) -> Option<(u32, u32)> {
        self.floor_position_index(position)
            .map(|idx| self.entries[idx])
    }

    /// `floor_position` as an entry number.
    pub fn floor_position_index(&self, position: u32) -> Option<usize> {
        self.entries
            .partition_point(|&(_, p)| p <= position)
            .checked_sub(1)
    }

    /// Drops entries at or past `position` (log truncation), and their bits: an entry
    /// appended later in their place proves its own.
    pub fn truncate_to_position(&mut self, position: u32) {
        let idx = self.entries.partition_point(|&(_, p)| p < position);
        self.entries.truncate(idx);
        if position == 0 {
            self.first_batch_last = None;
        }
        self.follows_previous.truncate(idx.div_ceil(64));
        if let Some(w) = self.follows_previous.get_mut(idx / 64) {
            *w &= (1u64 << (idx % 64)) - 1;
        }
        self.persisted = self.persisted.min(idx);
    }

    pub fn encode_from(&self, from: usize, out: &mut Vec<u8>) {
        for &(o, p) in &self.entries[from..] {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
    }

    /// Parses an index file; `None` if it is inconsistent with a log of `log_size_bytes`
    /// (caller then rebuilds it).
    pub fn decode(buf: &[u8], log_size_bytes: u64) -> Option<OffsetIndex> {
        if !buf.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in buf.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let o = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let p = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if p as u64 >= log_size_bytes {
                return None;
            }
            if let Some((lo, lp)) = index.last()
                && (o <= lo || p <= lp)
            {
                return None;
            }
            index.entries.push((o, p));
        }
        index.persisted = index.entries.len();
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry() {
        let mut i = OffsetIndex::default();
        i.append(10, 4000);
        i.append(20, 8000);
        assert_eq!(i.lookup(0), (0, 0));
        assert_eq!(i.lookup(9), (0, 0));
        assert_eq!(i.lookup(10), (10, 4000));
        assert_eq!(i.lookup(19), (10, 4000));
        assert_eq!(i.lookup(25), (20, 8000));
        assert_eq!(i.floor_position(7999), Some((10, 4000)));
        assert_eq!(i.floor_position(10), None);
        assert_eq!(i.ceiling(0), Some((10, 4000)));
        assert_eq!(i.ceiling(10), Some((10, 4000)));
        assert_eq!(i.ceiling(11), Some((20, 8000)));
        assert_eq!(i.ceiling(21), None);
    }

    #[test]
    fn decode_round_trips_and_rejects_garbage() {
        let mut i = OffsetIndex::default();
        i.append(1, 100);
        i.append(5, 300);
        let mut buf = Vec::new();
        i.encode_from(0, &mut buf);
        let d = OffsetIndex::decode(&buf, 1000).unwrap();
        assert_eq!(d.entries(), i.entries());
        assert!(
            OffsetIndex::decode(&buf, 300).is_none(),
            "position past log end"
        );
        assert!(
            OffsetIndex::decode(&buf[..7], 1000).is_none(),
            "partial entry"
        );
        let mut swapped = buf[8..].to_vec();
        swapped.extend_from_slice(&buf[..8]);
        assert!(
            OffsetIndex::decode(&swapped, 1000).is_none(),
            "not increasing"
        );
    }

    #[test]
    fn adjacency_bits_name_batches_and_die_with_their_entries() {
        let mut i = OffsetIndex::default();
        // Entries 0..70 at positions 100, 200, ...: every one but 0 and 65 follows.
        for n in 0..70u32 {
            i.append_following(n * 10 + 9, (n + 1) * 100, n != 65);
        }
        assert!(
            !i.follows_previous(0),
            "no first batch noted: entry 0 follows nothing"
        );
        assert_eq!(i.first_batch(0, Some((0, 100))), None);
        assert_eq!(i.batch_at(1, None), Some((10, 200, 100)));
        assert_eq!(
            i.batch_at(64, None),
            None,
            "entry 65 does not follow it: size unknown"
        );
        assert_eq!(i.batch_at(65, None), None);
        assert_eq!(
            i.batch_at(69, None),
            None,
            "the tail needs the segment's end"
        );
        assert_eq!(i.batch_at(69, Some((7000, 42))), Some((690, 7000, 42)));
        assert_eq!(i.batch_at(69, Some((6900, 42))), None, "not the last batch");
        i.truncate_to_position(6500);
        assert_eq!(i.len(), 64);
        // Re-appended in place of the dropped ones, entries carry only their own bits.
        i.append(700, 6600);
        i.append(800, 6700);
        assert!(!i.follows_previous(64) && !i.follows_previous(65));
        assert_eq!(
            i.batch_at(63, Some((6400, 100))),
            None,
            "no longer the last batch"
        );
        let mut buf = Vec::new();
        i.encode_from(0, &mut buf);
        let mut d = OffsetIndex::decode(&buf, 10_000).unwrap();
        assert!(
            (0..d.len()).all(|n| !d.follows_previous(n)),
            "a file proves nothing"
        );
        // Appended after a reopen past the 64th entry: the bit words of the loaded entries
        // are missing, not only the last one (a restarted replica panicked here).
        let loaded = d.len();
        assert!(loaded > 64);
        d.append_following(900, 6800, true);
        assert!(d.follows_previous(loaded));
        assert!((0..loaded).all(|n| !d.follows_previous(n)));
    }

    #[test]
    fn the_first_batch_is_entry_0s_previous() {
        let mut i = OffsetIndex::default();
        i.set_first_batch(4);
        assert_eq!(
            i.first_batch(3, Some((0, 90))),
            Some((4, 90)),
            "the only batch"
        );
        assert_eq!(i.first_batch(5, Some((0, 90))), None, "past it");
        i.append_following(9, 90, true);
        i.append_following(19, 300, true);
        assert_eq!(i.first_batch(4, None), Some((4, 90)));
        assert_eq!(i.batch_at(0, None), Some((5, 90, 210)));
        i.truncate_to_position(0);
        assert_eq!(i.first_batch(0, Some((0, 90))), None, "gone with the bytes");
        i.append_following(9, 90, true);
        assert!(!i.follows_previous(0), "nothing to follow");
    }

    #[test]
    fn truncate_drops_entries_at_or_after_position() {
        let mut i = OffsetIndex::default();
        i.append(1, 100);
        i.append(5, 300);
        i.truncate_to_position(300);
        assert_eq!(i.entries(), &[(1, 100)]);
    }
}
