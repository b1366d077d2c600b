//! Sparse offset index of one segment (Kafka's `.index`): entries of 4-byte BE offset relative
//! to the segment base + 4-byte BE byte position of a batch start. Held in memory, mirrored to
//! disk; derived data, so a bad file is rebuilt from the log rather than trusted.

/// Bytes per on-disk entry.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    /// (relative offset of a batch's last offset, as Kafka keys them, byte position of that
    /// batch).
    entries: Vec<(u32, u32)>,
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
        if let Some((o, p)) = self.last() {
            assert!(
                relative_offset > o && position > p,
                "offset index must grow: ({o},{p}) then ({relative_offset},{position})"
            );
        }
        self.entries.push((relative_offset, position));
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
        let idx = self.entries.partition_point(|&(o, _)| o < relative_offset);
        self.entries.get(idx).copied()
    }

    /// The last entry with position <= `position` (a batch boundary at or before it).
    pub fn floor_position(&self, position: u32) -> Option<(u32, u32)> {
        let idx = self.entries.partition_point(|&(_, p)| p <= position);
        if idx == 0 {
            None
        } else {
            Some(self.entries[idx - 1])
        }
    }

    /// Drops entries at or past `position` (log truncation).
    pub fn truncate_to_position(&mut self, position: u32) {
        let idx = self.entries.partition_point(|&(_, p)| p < position);
        self.entries.truncate(idx);
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
    fn truncate_drops_entries_at_or_after_position() {
        let mut i = OffsetIndex::default();
        i.append(1, 100);
        i.append(5, 300);
        i.truncate_to_position(300);
        assert_eq!(i.entries(), &[(1, 100)]);
    }
}
