//! The cleaner's key → latest offset map (Kafka's `SkimpyOffsetMap`): for the dirty part of a
//! log, the offset of the newest record of each key. Keys are stored as 128-bit hashes, not
//! as bytes, so an entry has a fixed size and the map's memory is bounded by the dedupe
//! buffer (`cleaner_dedupe_buffer_bytes`). When it is full the pass cleans only up to where
//! the map reached. Must not read files.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

/// What one entry costs in memory: the 16-byte key hash, the 8-byte offset, and the hash
/// table's control byte and spare room (its load factor is at most 7/8), rounded up.
pub const OFFSET_MAP_ENTRY_BYTES: u64 = 32;
/// The fewest entries a map holds whatever the buffer: a pass must always make progress.
pub const MIN_OFFSET_MAP_ENTRIES: usize = 1024;

/// A 128-bit hash of a record key: two independent 64-bit SipHash values (fixed keys, so the
/// same across runs). A collision would drop a record whose key merely shares the hash; at
/// 128 bits that is as unlikely as Kafka's MD5-based map.
pub fn key_hash(key: &[u8]) -> u128 {
    let mut first = DefaultHasher::new();
    first.write(key);
    let mut second = DefaultHasher::new();
    second.write_u8(0x5a);
    second.write(key);
    (u128::from(first.finish()) << 64) | u128::from(second.finish())
}

pub struct KeyOffsetMap {
    latest: HashMap<u128, i64>,
    max_entries: usize,
}

impl KeyOffsetMap {
    /// A map that will hold at most `buffer_bytes / OFFSET_MAP_ENTRY_BYTES` keys (never fewer
    /// than `MIN_OFFSET_MAP_ENTRIES`). Memory grows with use, up to that bound.
    pub fn with_buffer_bytes(buffer_bytes: u64) -> KeyOffsetMap {
        let max_entries =
            usize::try_from(buffer_bytes / OFFSET_MAP_ENTRY_BYTES).unwrap_or(usize::MAX);
        KeyOffsetMap {
            latest: HashMap::new(),
            max_entries: max_entries.max(MIN_OFFSET_MAP_ENTRIES),
        }
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Whether `count` keys not yet in the map would fit (a batch is added whole or not at
    /// all, so the cleaned range always ends on a batch boundary).
    pub fn has_room_for(&self, count: usize) -> bool {
        self.latest.len().saturating_add(count) <= self.max_entries
    }

    /// Records `offset` as the newest for `key_hash` (offsets arrive in increasing order;
    /// an older one never replaces a newer). Returns false, changing nothing, when the key is
    /// new and the map is full.
    pub fn put(&mut self, key_hash: u128, offset: i64) -> bool {
        if let Some(existing) = self.latest.get_mut(&key_hash) {
            *existing = (*existing).max(offset);
            return true;
        }
        if self.latest.len() >= self.max_entries {
            return false;
        }
        self.latest.insert(key_hash, offset);
        true
    }

    /// The newest offset seen for the key, if any.
    pub fn get(&self, key_hash: u128) -> Option<i64> {
        self.latest.get(&key_hash).copied()
    }

    /// A record at `offset` with this key is superseded: a newer record of the key exists.
    pub fn is_superseded(&self, key_hash: u128, offset: i64) -> bool {
        self.get(key_hash).is_some_and(|latest| latest > offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_offset_wins_and_older_records_are_superseded() {
        let mut map = KeyOffsetMap::with_buffer_bytes(1 << 20);
        let (a, b) = (key_hash(b"a"), key_hash(b"b"));
        assert_ne!(a, b);
        assert!(map.put(a, 1));
        assert!(map.put(b, 2));
        assert!(map.put(a, 5));
        assert!(
            map.put(a, 3),
            "an older offset is accepted but does not win"
        );
        assert_eq!(map.get(a), Some(5));
        assert!(map.is_superseded(a, 1));
        assert!(!map.is_superseded(a, 5));
        assert!(!map.is_superseded(b, 2));
        assert!(
            !map.is_superseded(key_hash(b"c"), 0),
            "unknown keys are kept"
        );
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_known_ones() {
        let mut map = KeyOffsetMap::with_buffer_bytes(0);
        assert_eq!(map.max_entries(), MIN_OFFSET_MAP_ENTRIES);
        for i in 0..MIN_OFFSET_MAP_ENTRIES {
            assert!(map.put(key_hash(&i.to_be_bytes()), i as i64));
        }
        assert!(!map.has_room_for(1));
        assert!(!map.put(key_hash(b"new"), 99_999));
        assert_eq!(map.get(key_hash(b"new")), None);
        assert!(map.put(key_hash(&0usize.to_be_bytes()), 100_000));
        assert_eq!(map.get(key_hash(&0usize.to_be_bytes())), Some(100_000));
    }

    #[test]
    fn the_buffer_bounds_the_entries() {
        let map = KeyOffsetMap::with_buffer_bytes(64 * OFFSET_MAP_ENTRY_BYTES * 1024);
        assert_eq!(map.max_entries(), 64 * 1024);
    }
}
