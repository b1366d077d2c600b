//! Record → partition choice, compatible with the Java client and librdkafka's
//! `murmur2_random`: keyed records go to `toPositive(murmur2(key)) % partitions`; records
//! without a key go round-robin or stick to one partition per batch (KIP-480).
//!
//! Must not: look at cluster state beyond the partition count it is given.

use std::collections::HashMap;

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), returned as the same
/// signed 32-bit value Java returns.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through: 3 → 2 → 1.
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    debug_assert!(partition_count > 0);
    (murmur2(key) & 0x7fff_ffff) % partition_count.max(1)
}

/// What to do with records that have no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NullKeyStrategy {
    /// Each record goes to the next partition in turn.
    RoundRobin,
    /// All records go to one partition until the batch for it is sent (KIP-480 sticky).
    #[default]
    Sticky,
}

/// Chooses partitions; keeps per-topic round-robin / sticky state.
#[derive(Debug, Default)]
pub struct Partitioner {
    pub null_key: NullKeyStrategy,
    next_by_topic: HashMap<String, i32>,
}

impl Partitioner {
    pub fn new(null_key: NullKeyStrategy) -> Self {
        Partitioner {
            null_key,
            next_by_topic: HashMap::new(),
        }
    }

    /// Picks the partition for a record of `topic` with `key`.
    pub fn partition(&mut self, topic: &str, key: Option<&[u8]>, partition_count: i32) -> i32 {
        let count = partition_count.max(1);
        if let Some(key) = key {
            return partition_for_key(key, count);
        }
        let slot = self
            .next_by_topic
            .entry(topic.to_string())
            .or_insert_with(|| rand::random_range(0..count));
        let chosen = *slot % count;
        if self.null_key == NullKeyStrategy::RoundRobin {
            *slot = (chosen + 1) % count;
        }
        chosen
    }

    /// Tells the sticky strategy that the batch for `topic` was sent: move to the next partition.
    pub fn batch_sent(&mut self, topic: &str, partition_count: i32) {
        if self.null_key == NullKeyStrategy::Sticky
            && let Some(slot) = self.next_by_topic.get_mut(topic)
        {
            *slot = (*slot + 1) % partition_count.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Apache Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_java_client_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(
                murmur2(key),
                *want,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn keyed_partition_is_positive_hash_modulo_count() {
        // toPositive(-973932308) = 1173551340; 1173551340 % 3 = 0, % 10 = 0, % 7 = 4.
        assert_eq!(partition_for_key(b"21", 3), 1173551340 % 3);
        assert_eq!(partition_for_key(b"21", 7), 1173551340 % 7);
        assert_eq!(partition_for_key(b"abc", 10), 479470107 % 10);
        let mut p = Partitioner::new(NullKeyStrategy::RoundRobin);
        assert_eq!(
            p.partition("t", Some(b"foobar"), 5),
            (-790332482 & 0x7fffffff) % 5
        );
    }

    #[test]
    fn round_robin_visits_every_partition_in_turn() {
        let mut p = Partitioner::new(NullKeyStrategy::RoundRobin);
        let first = p.partition("t", None, 4);
        let seq: Vec<i32> = (0..4).map(|_| p.partition("t", None, 4)).collect();
        assert_eq!(seq, (1..=4).map(|i| (first + i) % 4).collect::<Vec<_>>());
    }

    #[test]
    fn sticky_keeps_partition_until_batch_sent() {
        let mut p = Partitioner::new(NullKeyStrategy::Sticky);
        let first = p.partition("t", None, 3);
        assert_eq!(p.partition("t", None, 3), first);
        p.batch_sent("t", 3);
        assert_eq!(p.partition("t", None, 3), (first + 1) % 3);
    }
}
