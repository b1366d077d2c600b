//! Kafka's leader-epoch cache (`LeaderEpochFileCache`, KIP-101/279) and its
//! `leader-epoch-checkpoint` file: for each leader epoch of the partition, the first offset
//! appended in it. A new leader adds its epoch at its log end; a follower adds the epoch of
//! the first fetched batch carrying a newer one. OffsetForLeaderEpoch answers from it, and a
//! follower truncates its divergent tail with it. The file is Kafka's text format
//! ("0\n<count>\n<epoch> <offset>\n..."), replaced atomically; it changes once per leader
//! change, never per append.
//! Must not: read or write log data.

use super::error::StorageError;
use super::log::PartitionLog;
use super::state::{read_small_file, write_file_atomically};

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// Epochs one partition remembers; the oldest are dropped past it (a truncation never
/// reaches back that far in practice: each entry is one leader change).
pub const MAX_LEADER_EPOCH_ENTRIES: usize = 1024;

/// (epoch, start offset) pairs, both strictly increasing, after an implicit epoch 0 from the
/// log start: a partition that never failed over has no entry and no file (creating one
/// costs nothing, and single-node logs never have one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn latest_epoch(&self) -> i32 {
        self.entries.last().map_or(0, |e| e.0)
    }

    /// Records that `epoch` starts at `start_offset`; an epoch not newer than the latest
    /// changes nothing. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch <= self.latest_epoch() {
            return false;
        }
        // An older epoch that started at or after this offset never held a record here.
        self.entries.retain(|e| e.1 < start_offset);
        self.entries.push((epoch, start_offset));
        if self.entries.len() > MAX_LEADER_EPOCH_ENTRIES {
            self.entries.remove(0);
        }
        true
    }

    /// Where `epoch` (or the newest epoch before it) started; `None` for the implicit epoch
    /// 0, which starts at the log start.
    pub fn start_offset_of(&self, epoch: i32) -> Option<i64> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.0 <= epoch)
            .map(|e| e.1)
    }

    /// Kafka's `endOffsetFor`: the largest epoch at most `requested` and the offset where
    /// it ended (the start of the next epoch, or `log_end` for the latest).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        if requested < 0 {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if requested == self.latest_epoch() {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.0 > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.0 <= requested) {
            Some(floor) => (floor.0, higher.1),
            None => (requested, higher.1),
        }
    }

    /// Forgets epochs starting at or after `offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.1 < offset);
        before != self.entries.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("0\n{}\n", self.entries.len());
        for (epoch, offset) in &self.entries {
            out.push_str(&format!("{epoch} {offset}\n"));
        }
        out.into_bytes()
    }

    /// A damaged file yields an empty cache (the follower then truncates to what its
    /// leader says of the oldest epoch): never a failed open.
    pub fn decode(bytes: &[u8]) -> LeaderEpochCache {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines();
        let mut cache = LeaderEpochCache::default();
        if lines.next() != Some("0") {
            return cache;
        }
        let _count = lines.next();
        for line in lines.take(MAX_LEADER_EPOCH_ENTRIES) {
            let mut parts = line.split_whitespace();
            let (Some(Ok(epoch)), Some(Ok(offset))) = (
                parts.next().map(str::parse::<i32>),
                parts.next().map(str::parse::<i64>),
            ) else {
                return LeaderEpochCache::default();
            };
            if !cache.assign(epoch, offset) {
                return LeaderEpochCache::default();
            }
        }
        cache
    }
}

impl PartitionLog {
    /// The leader epoch new appends are stamped with.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// The newest epoch of this log's batches (0 when it never failed over).
    pub fn latest_cached_epoch(&self) -> i32 {
        self.epochs.borrow().latest_epoch()
    }

    /// This node leads from now on in `epoch`: appends carry it and the cache starts it at
    /// the log end (persisted before the first append of the epoch can be acknowledged).
    pub async fn become_leader(&self, epoch: i32) -> Result<(), StorageError> {
        self.leader_epoch.set(epoch);
        let changed = self
            .epochs
            .borrow_mut()
            .assign(epoch, self.offsets.next_offset.get());
        if changed {
            self.persist_epochs().await?;
        }
        Ok(())
    }

    /// Where the epoch this log is led in started (Kafka's `leaderEpochStartOffset`): a
    /// follower joins the ISR only once it holds everything before it (it has every record
    /// of the earlier epochs this leader kept, some of which may have been acknowledged by
    /// the previous leader beyond the high watermark this one knows).
    pub fn leader_epoch_start_offset(&self) -> i64 {
        self.epochs
            .borrow()
            .start_offset_of(self.leader_epoch.get())
            .unwrap_or_else(|| self.log_start_offset())
    }

    /// OffsetForLeaderEpoch's answer for `requested` on this log.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.epochs
            .borrow()
            .end_offset_for(requested, self.offsets.next_offset.get())
    }

    pub(super) async fn persist_epochs(&self) -> Result<(), StorageError> {
        let bytes = self.epochs.borrow().encode();
        write_file_atomically(&self.dir, LEADER_EPOCH_CHECKPOINT, bytes).await
    }

    /// At open: the checkpoint, without epochs past the recovered log end.
    pub(super) async fn load_epochs(&self) -> Result<(), StorageError> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut cache = read_small_file(&path)
            .await?
            .map(|raw| LeaderEpochCache::decode(&raw))
            .unwrap_or_default();
        let truncated = cache.truncate_from_end(self.offsets.next_offset.get());
        self.leader_epoch.set(cache.latest_epoch().max(0));
        *self.epochs.borrow_mut() = cache;
        if truncated {
            self.persist_epochs().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let mut c = LeaderEpochCache::default();
        assert_eq!(c.end_offset_for(0, 10), (0, 10), "epoch 0 is implicit");
        assert!(c.assign(1, 0));
        assert!(c.assign(3, 40));
        assert!(!c.assign(2, 50), "older than the latest");
        assert_eq!(c.end_offset_for(3, 90), (3, 90));
        assert_eq!(
            c.start_offset_of(0),
            None,
            "epoch 0 starts at the log start"
        );
        assert_eq!(c.start_offset_of(1), Some(0));
        assert_eq!(c.start_offset_of(2), Some(0), "no epoch 2: epoch 1 goes on");
        assert_eq!(c.start_offset_of(3), Some(40));
        assert_eq!(c.start_offset_of(7), Some(40));
        assert_eq!(c.end_offset_for(1, 90), (1, 40));
        assert_eq!(c.end_offset_for(2, 90), (1, 40), "the floor epoch");
        assert_eq!(c.end_offset_for(0, 90), (0, 0), "older than any");
        assert_eq!(c.end_offset_for(4, 90), (-1, -1), "newer than any");
        let round = LeaderEpochCache::decode(&c.encode());
        assert_eq!(round, c);
        assert!(c.truncate_from_end(40));
        assert_eq!(c.latest_epoch(), 1);
        assert!(c.truncate_from_end(0));
        assert_eq!(c.end_offset_for(0, 7), (0, 7));
        assert_eq!(
            LeaderEpochCache::decode(b"garbage"),
            LeaderEpochCache::default()
        );
    }
}
