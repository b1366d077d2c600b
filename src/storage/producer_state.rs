//! Idempotent-producer state of one partition (Kafka's ProducerStateManager semantics): per
//! producer id, the epoch and the metadata of its last few batches, so retries are answered
//! with the original offsets, gaps are refused and older epochs are fenced. Persisted as a
//! `<offset:020>.snapshot` file at clean close and rebuilt from batch headers otherwise.
//! Must not touch the log files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::batch::{BatchHeader, add_sequence};
use super::error::StorageError;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5,
/// matching max.in.flight.requests.per.connection for idempotent producers).
pub const PRODUCER_BATCHES_RETAINED: usize = 5;
pub const SNAPSHOT_SUFFIX: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPR";
/// Version 2 adds each producer's open transaction and the aborted transactions.
const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_VERSION_WITHOUT_TRANSACTIONS: u16 = 1;
/// No transaction open (`ProducerEntry::current_txn_first_offset`).
pub const NO_OPEN_TRANSACTION: i64 = -1;
const SNAPSHOT_ABORTED_BYTES: usize = 8 * 4;
const SNAPSHOT_BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// One producer's state. `Copy` and fixed-size so staging it during an append allocates
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Oldest first; only the first `len` are valid.
    batches: [BatchMetadata; PRODUCER_BATCHES_RETAINED],
    len: u8,
    /// First offset of the producer's open transaction in this partition, or
    /// `NO_OPEN_TRANSACTION`: the last stable offset cannot pass it.
    pub current_txn_first_offset: i64,
}

/// One aborted transaction of a partition (Kafka's `AbortedTxn`): read_committed fetches
/// carry these so clients skip the aborted records themselves (zero-copy reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once this transaction ended.
    pub last_stable_offset: i64,
}

impl ProducerEntry {
    pub fn new(producer_id: i64, epoch: i16) -> ProducerEntry {
        ProducerEntry {
            producer_id,
            epoch,
            batches: [BatchMetadata::default(); PRODUCER_BATCHES_RETAINED],
            len: 0,
            current_txn_first_offset: NO_OPEN_TRANSACTION,
        }
    }
    pub fn batches(&self) -> &[BatchMetadata] {
        &self.batches[..self.len as usize]
    }
    pub fn last_batch(&self) -> Option<&BatchMetadata> {
        self.batches().last()
    }

    fn push(&mut self, m: BatchMetadata) {
        if self.len as usize == PRODUCER_BATCHES_RETAINED {
            self.batches.copy_within(1.., 0);
            self.batches[PRODUCER_BATCHES_RETAINED - 1] = m;
        } else {
            self.batches[self.len as usize] = m;
            self.len += 1;
        }
    }

    /// Records an appended batch (offsets already assigned).
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        if header.producer_epoch != self.epoch {
            self.epoch = header.producer_epoch;
            self.len = 0;
        }
        if header.is_control() {
            // A COMMIT or ABORT marker ends the producer's transaction here.
            self.current_txn_first_offset = NO_OPEN_TRANSACTION;
            return;
        }
        if header.is_transactional() && self.current_txn_first_offset == NO_OPEN_TRANSACTION {
            self.current_txn_first_offset = base_offset;
        }
        self.push(BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            base_offset,
            last_offset: base_offset + header.last_offset_delta as i64,
            max_timestamp: header.max_timestamp,
        });
    }
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate(BatchMetadata),
}

fn in_sequence(last: i32, next_first: i32) -> bool {
    next_first == add_sequence(last, 1)
}

/// Checks `header` against the producer's current entry (`None`: producer unknown).
pub fn check_sequence(
    entry: Option<&ProducerEntry>,
    header: &BatchHeader,
) -> Result<SequenceCheck, StorageError> {
    let Some(e) = entry else {
        // Unknown producer (new, or its state expired with old segments): accept, like Kafka.
        return Ok(SequenceCheck::Append);
    };
    if header.producer_epoch < e.epoch {
        return Err(StorageError::InvalidProducerEpoch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            current_epoch: e.epoch,
        });
    }
    if header.is_control() {
        return Ok(SequenceCheck::Append);
    }
    let last = e.last_batch().map(|b| b.last_sequence).unwrap_or(-1);
    if header.producer_epoch > e.epoch {
        // A bumped epoch restarts sequences at 0.
        if header.base_sequence != 0 {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: header.producer_id,
                first_sequence: header.base_sequence,
                last_sequence: last,
            });
        }
        return Ok(SequenceCheck::Append);
    }
    let last_seq = header.last_sequence();
    if let Some(m) = e
        .batches()
        .iter()
        .find(|m| m.first_sequence == header.base_sequence && m.last_sequence == last_seq)
    {
        return Ok(SequenceCheck::Duplicate(*m));
    }
    match e.last_batch() {
        None => Ok(SequenceCheck::Append),
        Some(b) if in_sequence(b.last_sequence, header.base_sequence) => Ok(SequenceCheck::Append),
        Some(b) => Err(StorageError::OutOfOrderSequence {
            producer_id: header.producer_id,
            first_sequence: header.base_sequence,
            last_sequence: b.last_sequence,
        }),
    }
}

/// What DescribeProducers reports for one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStateInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: i64,
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset (-> producer id): the smallest bounds the LSO.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (`last_offset` ascending).
    aborted: Vec<AbortedTxn>,
}

impl ProducerStateManager {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    pub fn insert(&mut self, entry: ProducerEntry) {
        let before = self
            .producers
            .insert(entry.producer_id, entry)
            .map_or(NO_OPEN_TRANSACTION, |old| old.current_txn_first_offset);
        if before != entry.current_txn_first_offset {
            if before != NO_OPEN_TRANSACTION {
                self.ongoing.remove(&before);
            }
            if entry.current_txn_first_offset != NO_OPEN_TRANSACTION {
                self.ongoing
                    .insert(entry.current_txn_first_offset, entry.producer_id);
            }
        }
    }

    /// First offset of the oldest open transaction (the LSO's bound), if any is open.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Records an ABORT marker at `marker_offset` for a transaction that began at
    /// `first_offset` (markers arrive in offset order, so the list stays sorted).
    pub fn record_abort(&mut self, producer_id: i64, first_offset: i64, marker_offset: i64) {
        let last_stable_offset = self.first_unstable_offset().unwrap_or(marker_offset + 1);
        self.aborted.push(AbortedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
            last_stable_offset,
        });
    }

    /// Aborted transactions overlapping `[from_offset, to_offset)`: their marker at or past
    /// `from_offset` and their first record before `to_offset` (Kafka's fetch rule).
    pub fn aborted_in(&self, from_offset: i64, to_offset: i64) -> Vec<AbortedTxn> {
        let start = self
            .aborted
            .partition_point(|a| a.last_offset < from_offset);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to_offset)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions whose marker is below the log start (retention,
    /// DeleteRecords): no fetch can reach them any more.
    pub fn trim_aborted_before(&mut self, log_start_offset: i64) {
        let gone = self
            .aborted
            .partition_point(|a| a.last_offset < log_start_offset);
        self.aborted.drain(..gone);
    }
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
        self.aborted.clear();
    }

    /// Replays a batch read back from the log (no checks: the log is the truth). For a
    /// control batch that ended an open transaction, returns that transaction's first
    /// offset (the caller reads the marker's type and records an abort).
    pub fn replay(&mut self, header: &BatchHeader) -> Option<i64> {
        if !header.has_producer_id() {
            return None;
        }
        let mut e = self
            .producers
            .get(&header.producer_id)
            .copied()
            .unwrap_or_else(|| ProducerEntry::new(header.producer_id, header.producer_epoch));
        let open = e.current_txn_first_offset;
        e.record(header, header.base_offset);
        self.insert(e);
        (header.is_control() && open != NO_OPEN_TRANSACTION).then_some(open)
    }

    /// The last offset of each producer's newest batch: the cleaner keeps those batches (as
    /// Kafka does) so producer state can be rebuilt from the log.
    pub fn last_batch_offsets(&self) -> impl Iterator<Item = i64> + '_ {
        self.producers
            .values()
            .filter_map(|e| e.last_batch().map(|b| b.last_offset))
    }

    /// Forgets batches at or after `offset` (log truncation) by dropping producers whose
    /// newest batch is past it; they are re-learned from later appends.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, e| {
            e.last_batch().is_none_or(|b| b.last_offset < offset)
                && e.current_txn_first_offset < offset
        });
        self.ongoing.retain(|first, _| *first < offset);
        self.aborted.retain(|a| a.last_offset < offset);
    }

    pub fn infos(&self) -> Vec<ProducerStateInfo> {
        let mut v: Vec<ProducerStateInfo> = self
            .producers
            .values()
            .map(|e| ProducerStateInfo {
                producer_id: e.producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.last_batch().map(|b| b.last_sequence).unwrap_or(-1),
                last_timestamp: e.last_batch().map(|b| b.max_timestamp).unwrap_or(-1),
                coordinator_epoch: -1,
                current_txn_start_offset: e.current_txn_first_offset,
            })
            .collect();
        v.sort_by_key(|i| i.producer_id);
        v
    }

    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(
            10 + self.producers.len() * (11 + PRODUCER_BATCHES_RETAINED * SNAPSHOT_BATCH_BYTES),
        );
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for e in self.producers.values() {
            b.extend_from_slice(&e.producer_id.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.push(e.len);
            b.extend_from_slice(&e.current_txn_first_offset.to_be_bytes());
            for m in e.batches() {
                b.extend_from_slice(&m.first_sequence.to_be_bytes());
                b.extend_from_slice(&m.last_sequence.to_be_bytes());
                b.extend_from_slice(&m.base_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
                b.extend_from_slice(&m.max_timestamp.to_be_bytes());
            }
        }
        b.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for a in &self.aborted {
            for v in [
                a.producer_id,
                a.first_offset,
                a.last_offset,
                a.last_stable_offset,
            ] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    pub fn decode_snapshot(buf: &[u8], path: &Path) -> Result<ProducerStateManager, StorageError> {
        let bad = |pos: usize, why: &str| StorageError::corrupt(path, pos as u64, why);
        if buf.len() < 14 {
            return Err(bad(0, "producer snapshot too short"));
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(bad(body.len(), "producer snapshot CRC mismatch"));
        }
        let version = u16::from_be_bytes([body[4], body[5]]);
        if &body[0..4] != SNAPSHOT_MAGIC
            || (version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_WITHOUT_TRANSACTIONS)
        {
            return Err(bad(0, "producer snapshot magic/version mismatch"));
        }
        let with_transactions = version == SNAPSHOT_VERSION;
        let mut pos = 6usize;
        let take = |pos: &mut usize, n: usize| -> Result<&[u8], StorageError> {
            let s = body
                .get(*pos..*pos + n)
                .ok_or_else(|| bad(*pos, "producer snapshot truncated"))?;
            *pos += n;
            Ok(s)
        };
        let i64_of = |s: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            i64::from_be_bytes(a)
        };
        let i32_of = |s: &[u8]| i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
        let count = i32_of(take(&mut pos, 4)?) as u32;
        let mut m = ProducerStateManager::default();
        for _ in 0..count {
            let pid = i64_of(take(&mut pos, 8)?);
            let e2 = take(&mut pos, 2)?;
            let epoch = i16::from_be_bytes([e2[0], e2[1]]);
            let len = take(&mut pos, 1)?[0] as usize;
            if len > PRODUCER_BATCHES_RETAINED {
                return Err(bad(pos, "producer snapshot batch count too large"));
            }
            let mut e = ProducerEntry::new(pid, epoch);
            if with_transactions {
                e.current_txn_first_offset = i64_of(take(&mut pos, 8)?);
            }
            for _ in 0..len {
                let s = take(&mut pos, SNAPSHOT_BATCH_BYTES)?;
                e.push(BatchMetadata {
                    first_sequence: i32_of(&s[0..4]),
                    last_sequence: i32_of(&s[4..8]),
                    base_offset: i64_of(&s[8..16]),
                    last_offset: i64_of(&s[16..24]),
                    max_timestamp: i64_of(&s[24..32]),
                });
            }
            m.insert(e);
        }
        if with_transactions {
            let aborted = i32_of(take(&mut pos, 4)?) as u32;
            for _ in 0..aborted {
                let s = take(&mut pos, SNAPSHOT_ABORTED_BYTES)?;
                m.aborted.push(AbortedTxn {
                    producer_id: i64_of(&s[0..8]),
                    first_offset: i64_of(&s[8..16]),
                    last_offset: i64_of(&s[16..24]),
                    last_stable_offset: i64_of(&s[24..32]),
                });
            }
        }
        if pos != body.len() {
            return Err(bad(pos, "producer snapshot has trailing bytes"));
        }
        Ok(m)
    }
}

/// `<offset:020>.snapshot`.
pub fn snapshot_file_name(offset: i64) -> String {
    format!("{offset:020}.{SNAPSHOT_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{build_test_batch, validate_batches};

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        let b = build_test_batch(count, 4, 0, Some((pid, epoch, seq)));
        validate_batches(&b).unwrap()[0].header
    }

    #[test]
    fn duplicate_gap_and_fencing() {
        let mut e = ProducerEntry::new(1, 0);
        let h0 = header(1, 0, 0, 2);
        assert_eq!(
            check_sequence(Some(&e), &h0).unwrap(),
            SequenceCheck::Append
        );
        e.record(&h0, 100);
        let h1 = header(1, 0, 2, 3);
        assert_eq!(
            check_sequence(Some(&e), &h1).unwrap(),
            SequenceCheck::Append
        );
        e.record(&h1, 102);
        match check_sequence(Some(&e), &h0).unwrap() {
            SequenceCheck::Duplicate(m) => assert_eq!((m.base_offset, m.last_offset), (100, 101)),
            other => panic!("expected duplicate, got {other:?}"),
        }
        let gap = header(1, 0, 9, 1);
        assert!(matches!(
            check_sequence(Some(&e), &gap),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        let bumped = header(1, 1, 0, 1);
        assert_eq!(
            check_sequence(Some(&e), &bumped).unwrap(),
            SequenceCheck::Append
        );
        e.record(&bumped, 105);
        let fenced = header(1, 0, 5, 1);
        assert!(matches!(
            check_sequence(Some(&e), &fenced),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn only_last_five_batches_are_remembered() {
        let mut e = ProducerEntry::new(1, 0);
        for i in 0..7 {
            e.record(&header(1, 0, i, 1), i as i64);
        }
        assert_eq!(e.batches().len(), PRODUCER_BATCHES_RETAINED);
        assert_eq!(e.batches()[0].first_sequence, 2);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut e = ProducerEntry::new(1, 0);
        e.record(&header(1, 0, i32::MAX - 1, 2), 0);
        assert_eq!(e.last_batch().unwrap().last_sequence, i32::MAX);
        assert_eq!(
            check_sequence(Some(&e), &header(1, 0, 0, 1)).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn snapshot_round_trips() {
        let mut m = ProducerStateManager::default();
        let mut h = header(4, 2, 0, 3);
        h.base_offset = 10;
        m.replay(&h);
        let b = m.encode_snapshot();
        let p = Path::new("s");
        let d = ProducerStateManager::decode_snapshot(&b, p).unwrap();
        assert_eq!(d.get(4), m.get(4));
        let mut c = b.clone();
        c[8] ^= 1;
        assert!(ProducerStateManager::decode_snapshot(&c, p).is_err());
    }
}
