//! Sparse time index of one segment (Kafka's `.timeindex`): entries of 8-byte BE timestamp +
//! 4-byte BE relative offset. An entry (T, O) means: every batch before offset O has a max
//! timestamp <= T, and T is the largest timestamp seen up to and including O's batch.
//! Timestamps strictly grow across entries. Derived data: rebuilt from the log when bad.

pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
    pub(crate) persisted: usize,
}

impl TimeIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn size_bytes(&self) -> usize {
        self.entries.len() * TIME_INDEX_ENTRY_BYTES
    }
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }
    pub fn entries(&self) -> &[(i64, u32)] {
        &self.entries
    }

    /// Appends (timestamp, relative offset) if the timestamp is a new maximum.
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        match self.last() {
            Some((t, o)) if timestamp <= t || relative_offset <= o => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// Relative offset to start scanning from for the first batch with max timestamp >=
    /// `target`: the last entry with timestamp strictly below the target (0 if none).
    pub fn lookup(&self, target: i64) -> u32 {
        let idx = self.entries.partition_point(|&(t, _)| t < target);
        if idx == 0 { 0 } else { self.entries[idx - 1].1 }
    }

    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let idx = self.entries.partition_point(|&(_, o)| o < relative_offset);
        self.entries.truncate(idx);
        self.persisted = self.persisted.min(idx);
    }

    pub fn encode_from(&self, from: usize, out: &mut Vec<u8>) {
        for &(t, o) in &self.entries[from..] {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
    }

    /// Parses a time index file; `None` if inconsistent (caller rebuilds).
    /// `max_relative_offset` is the largest relative offset in the segment.
    pub fn decode(buf: &[u8], max_relative_offset: u32) -> Option<TimeIndex> {
        if !buf.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for c in buf.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let t = i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let o = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if o > max_relative_offset {
                return None;
            }
            if let Some((lt, lo)) = index.last()
                && (t <= lt || o <= lo)
            {
                return None;
            }
            index.entries.push((t, o));
        }
        index.persisted = index.entries.len();
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_strictly_smaller_timestamps() {
        let mut t = TimeIndex::default();
        t.maybe_append(100, 0);
        t.maybe_append(100, 5); // not a new maximum: ignored
        t.maybe_append(200, 10);
        t.maybe_append(300, 20);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(50), 0);
        assert_eq!(t.lookup(200), 0);
        assert_eq!(t.lookup(201), 10);
        assert_eq!(t.lookup(10_000), 20);
    }

    #[test]
    fn decode_round_trips() {
        let mut t = TimeIndex::default();
        t.maybe_append(100, 1);
        t.maybe_append(200, 3);
        let mut buf = Vec::new();
        t.encode_from(0, &mut buf);
        assert_eq!(TimeIndex::decode(&buf, 3).unwrap().entries(), t.entries());
        assert!(TimeIndex::decode(&buf, 2).is_none());
        assert!(TimeIndex::decode(&buf[..11], 3).is_none());
    }
}
