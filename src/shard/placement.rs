//! Placement: which shard owns a partition or a consumer group.
//!
//! The mapping is a pure function of the name and the shard count, so every shard computes
//! the same answer without asking anyone, and a restart with the same core count puts every
//! partition back where it was:
//!
//! * partition `p` of topic `t` → `(fnv1a32(t) + p) mod shards` — consecutive partitions of
//!   one topic land on consecutive shards, so a topic with at least as many partitions as
//!   cores spreads evenly;
//! * group `g` → `fnv1a32(g) mod shards`.
//!
//! Changing the core count moves partitions between shards; that is safe because ownership
//! is only a run-time notion (the data directory layout does not depend on it).

/// 32-bit FNV-1a: tiny, stable across releases and platforms (unlike `DefaultHasher`).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

pub fn shard_for_partition(topic: &str, partition: i32, shard_count: usize) -> usize {
    debug_assert!(shard_count > 0);
    let base = u64::from(fnv1a32(topic.as_bytes()));
    let p = u64::from(partition.max(0) as u32);
    ((base + p) % shard_count.max(1) as u64) as usize
}

pub fn shard_for_group(group_id: &str, shard_count: usize) -> usize {
    (u64::from(fnv1a32(group_id.as_bytes())) % shard_count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn consecutive_partitions_spread_over_shards() {
        let shards = 4;
        let owners: Vec<usize> = (0..8)
            .map(|p| shard_for_partition("orders", p, shards))
            .collect();
        for s in 0..shards {
            assert_eq!(owners.iter().filter(|&&o| o == s).count(), 2);
        }
    }

    #[test]
    fn placement_is_stable_and_in_range() {
        for p in 0..100 {
            let a = shard_for_partition("t", p, 3);
            assert!(a < 3);
            assert_eq!(a, shard_for_partition("t", p, 3));
        }
        assert_eq!(shard_for_partition("t", 5, 1), 0);
        assert!(shard_for_group("g", 2) < 2);
    }
}
