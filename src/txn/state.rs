//! What the transaction coordinator knows of one transactional id (Kafka's
//! `TransactionMetadata`): the producer id and epoch it hands out, the transaction's state,
//! the partitions and consumer groups in it and when it started; the limits every request
//! is checked against; and the errors a request can end with, as Kafka codes.
//!
//! Owns: the state machine's legal moves (`TxnMetadata::check_producer`, the transitions).
//! Must not: do I/O or know about shards — the coordinator persists, the shard driver
//! writes markers.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

/// Kafka's `transaction.max.timeout.ms` default: a producer asking for a longer
/// `transaction.timeout.ms` is refused with INVALID_TRANSACTION_TIMEOUT.
pub const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;
/// Partitions one transaction may span (a guard against a runaway client; each one costs
/// a marker write at the end).
pub const MAX_PARTITIONS_PER_TRANSACTION: usize = 10_000;
/// Consumer groups one transaction may commit offsets for.
pub const MAX_GROUPS_PER_TRANSACTION: usize = 1_000;
/// Transactional ids one shard coordinates; more are refused with COORDINATOR_NOT_AVAILABLE.
pub const MAX_TRANSACTIONAL_IDS_PER_SHARD: usize = 100_000;
/// Longest transactional id accepted (it is stored in every record of the log).
pub const MAX_TRANSACTIONAL_ID_BYTES: usize = 4_096;
/// Offsets one transaction may commit for its groups (TxnOffsetCommit), all groups
/// together: they are part of the id's durable record until the transaction ends.
pub const MAX_OFFSETS_PER_TRANSACTION: usize = 1_000;
/// Kafka's `offset.metadata.max.bytes` default, for transactional commits too.
pub const MAX_TXN_OFFSET_METADATA_BYTES: usize = 4_096;
/// Longest consumer group id a transaction may name (AddOffsetsToTxn). With the other
/// limits this keeps one id's whole state inside `log::MAX_RECORD_PAYLOAD_BYTES`.
pub const MAX_GROUP_ID_BYTES: usize = 1_024;
/// Longest topic name Kafka allows (partitions come from existing topics).
const MAX_TOPIC_NAME_BYTES: usize = 249;
/// Bytes one id's record takes at most: every limit at once, with length prefixes.
pub const MAX_TXN_RECORD_BYTES: usize = 64
    + MAX_TRANSACTIONAL_ID_BYTES
    + MAX_PARTITIONS_PER_TRANSACTION * (2 + MAX_TOPIC_NAME_BYTES + 4)
    + MAX_GROUPS_PER_TRANSACTION * (2 + MAX_GROUP_ID_BYTES)
    + MAX_OFFSETS_PER_TRANSACTION
        * (2 + MAX_GROUP_ID_BYTES
            + 2
            + MAX_TOPIC_NAME_BYTES
            + 4
            + 8
            + 4
            + 2
            + MAX_TXN_OFFSET_METADATA_BYTES);
const _: () = assert!(MAX_TXN_RECORD_BYTES <= super::log::MAX_RECORD_PAYLOAD_BYTES as usize);
/// The coordinator epoch written into markers: one coordinator per id on a single node,
/// never moved, so its epoch never changes.
pub const COORDINATOR_EPOCH: i32 = 0;
/// No producer id / epoch (Kafka's -1).
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionState`. `Dead` is only ever a log record (an expired id's
/// tombstone): replay and the coordinator drop the id instead of keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Has a producer id, no transaction open.
    Empty,
    /// Partitions or groups added: a transaction is open.
    Ongoing,
    /// EndTxn(commit) accepted and durable; markers being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence accepted and durable; markers being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// A new producer incarnation fenced the open transaction; it is being aborted.
    PrepareEpochFence,
    /// The id expired (`transactional.id.expiration.ms`): forgotten.
    Dead,
}

impl TxnState {
    pub fn code(self) -> u8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::PrepareEpochFence => 6,
            TxnState::Dead => 7,
        }
    }

    pub fn from_code(code: u8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::PrepareEpochFence,
            7 => TxnState::Dead,
            _ => return None,
        })
    }

    /// Kafka's state name (DescribeTransactions, ListTransactions, the CLI).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }

    /// Markers are being written: the outcome is decided and durable but not yet visible.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

/// Why a transactional request was refused, as the Kafka error it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("transaction.timeout.ms out of range")]
    InvalidTimeout,
    #[error("another request for this transactional id is in progress")]
    Concurrent,
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("a newer producer with this transactional id fenced this one")]
    ProducerFenced,
    #[error("the request is not valid in the transaction's current state")]
    InvalidTxnState,
    #[error("the coordinator cannot serve this transactional id now")]
    CoordinatorNotAvailable,
    #[error("another broker coordinates this transactional id")]
    NotCoordinator,
    #[error("the transaction spans too many partitions or groups")]
    TooLarge,
    #[error("a partition of the request does not exist")]
    UnknownTopicOrPartition,
    #[error("the transactional id is invalid")]
    InvalidRequest,
}

impl TxnError {
    /// The Kafka error code. PRODUCER_FENCED became its own code in KIP-588; request
    /// versions before `fenced_since_version` answer INVALID_PRODUCER_EPOCH instead, as Kafka
    /// does for clients that predate it.
    pub fn code(self, version: i16, fenced_since_version: i16) -> i16 {
        let e = match self {
            TxnError::InvalidTimeout => ResponseError::InvalidTransactionTimeout,
            TxnError::Concurrent => ResponseError::ConcurrentTransactions,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::ProducerFenced if version < fenced_since_version => {
                ResponseError::InvalidProducerEpoch
            }
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            TxnError::NotCoordinator => ResponseError::NotCoordinator,
            TxnError::TooLarge => ResponseError::InvalidRequest,
            TxnError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            TxnError::InvalidRequest => ResponseError::InvalidRequest,
        };
        e.code()
    }
}

/// An offset a transaction commits for a consumer group (TxnOffsetCommit): durable with
/// the transaction, written to the group's offsets log only when it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnGroupOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// The transaction's offsets by (group, topic, partition); the last commit of a partition wins.
pub type TxnOffsets = BTreeMap<(String, String, i32), TxnGroupOffset>;

/// A transactional id's durable state; every change is written whole to the log before it
/// is acted on or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The id and epoch before the last bump: a producer retrying an InitProducerId whose
    /// answer it lost (or fenced by a timeout) still recognises itself (KIP-360).
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    /// Transactions v2 (KIP-890): the producer id the producer continues with once the
    /// deciding transaction completes, allocated when its epoch bump exhausted the epochs
    /// (NO_PRODUCER_ID otherwise). Durable, so a restart mid-completion hands out the same.
    pub next_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    pub offsets: TxnOffsets,
    /// Wall-clock start of the open transaction (-1 when none is open).
    pub start_ms: i64,
    pub update_ms: i64,
}

/// Checks a requested `transaction.timeout.ms`.
pub fn check_timeout(timeout_ms: i32) -> Result<(), TxnError> {
    if timeout_ms <= 0 || timeout_ms > MAX_TRANSACTION_TIMEOUT_MS {
        return Err(TxnError::InvalidTimeout);
    }
    Ok(())
}

/// Checks a transactional id's shape before anything is stored under it.
pub fn check_transactional_id(transactional_id: &str) -> Result<(), TxnError> {
    if transactional_id.is_empty() || transactional_id.len() > MAX_TRANSACTIONAL_ID_BYTES {
        return Err(TxnError::InvalidRequest);
    }
    Ok(())
}

impl TxnMetadata {
    /// A new id's first state: `producer_id` at epoch 0, nothing open.
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id,
            producer_epoch: 0,
            last_producer_id: NO_PRODUCER_ID,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            next_producer_id: NO_PRODUCER_ID,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: TxnOffsets::new(),
            start_ms: -1,
            update_ms: now_ms,
        }
    }

    /// A request from `producer_id`/`producer_epoch` is the current producer's.
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// InitProducerId with an existing id and epoch (KIP-360): allowed for the current
    /// producer and for the one just before the last bump (a retry, or a producer whose
    /// transaction the coordinator aborted on timeout); anything else is a zombie.
    pub fn check_reinit(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        let current = producer_id == self.producer_id && producer_epoch == self.producer_epoch;
        let previous =
            producer_id == self.last_producer_id && producer_epoch == self.last_producer_epoch;
        let previous_same_id =
            producer_id == self.producer_id && producer_epoch == self.last_producer_epoch;
        if current || previous || previous_same_id {
            Ok(())
        } else if producer_id != self.producer_id && producer_id != self.last_producer_id {
            Err(TxnError::InvalidProducerIdMapping)
        } else {
            Err(TxnError::ProducerFenced)
        }
    }

    /// Whether the next epoch still fits; otherwise a new producer id is needed.
    pub fn can_bump_epoch(&self) -> bool {
        self.producer_epoch < i16::MAX - 1
    }

    /// The epoch bumped by one (fencing every holder of the older one).
    pub fn bumped(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.last_producer_id = self.producer_id;
        next.last_producer_epoch = self.producer_epoch;
        next.producer_epoch = self.producer_epoch + 1;
        next.update_ms = now_ms;
        next
    }

    /// A fresh producer id at epoch 0, remembering the old one (epoch exhausted).
    pub fn with_new_producer_id(&self, producer_id: i64, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.last_producer_id = self.producer_id;
        next.last_producer_epoch = self.producer_epoch;
        next.producer_id = producer_id;
        next.producer_epoch = 0;
        next.update_ms = now_ms;
        next
    }

    /// Transactions v2's EndTxn (KIP-890): the decision, with the epoch bumped by one so the
    /// markers (written with it) fence every batch of the older epoch, and the producer goes
    /// on with the new epoch. `next_producer_id` is the id to continue with when the bumped
    /// epoch is exhausted (else NO_PRODUCER_ID). An abort with nothing added (allowed in v2)
    /// starts its transaction now.
    pub fn prepared_v2(&self, commit: bool, next_producer_id: i64, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        next.last_producer_id = self.producer_id;
        next.last_producer_epoch = self.producer_epoch;
        next.producer_epoch = self.producer_epoch.saturating_add(1);
        next.next_producer_id = next_producer_id;
        if next.start_ms < 0 {
            next.start_ms = now_ms;
        }
        next.update_ms = now_ms;
        next
    }

    /// Whether bumping the epoch once more (transactions v2's EndTxn) exhausts it, so the
    /// producer must continue with a new producer id.
    pub fn bump_exhausts_epoch(&self) -> bool {
        self.producer_epoch.saturating_add(1) >= i16::MAX - 1
    }

    /// The state once its markers are written: Complete*, nothing open; a producer whose
    /// v2 bump exhausted the epoch continues with its next producer id at epoch 0.
    pub fn completed(&self, now_ms: i64) -> TxnMetadata {
        let mut next = if self.next_producer_id != NO_PRODUCER_ID {
            let mut moved = self.with_new_producer_id(self.next_producer_id, now_ms);
            moved.next_producer_id = NO_PRODUCER_ID;
            moved
        } else {
            self.clone()
        };
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        next.partitions.clear();
        next.groups.clear();
        next.offsets.clear();
        next.start_ms = -1;
        next.update_ms = now_ms;
        next
    }

    /// Adds partitions or a group to the transaction (opening it if none is open).
    pub fn with_added(
        &self,
        partitions: &[(String, i32)],
        group: Option<&str>,
        now_ms: i64,
    ) -> Result<TxnMetadata, TxnError> {
        match self.state {
            TxnState::Empty
            | TxnState::Ongoing
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {}
            _ => return Err(TxnError::Concurrent),
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            if g.is_empty() || g.len() > MAX_GROUP_ID_BYTES {
                return Err(TxnError::InvalidRequest);
            }
            next.groups.insert(g.to_string());
        }
        if partitions
            .iter()
            .any(|(t, _)| t.is_empty() || t.len() > MAX_TOPIC_NAME_BYTES)
        {
            return Err(TxnError::InvalidRequest);
        }
        if next.partitions.len() > MAX_PARTITIONS_PER_TRANSACTION
            || next.groups.len() > MAX_GROUPS_PER_TRANSACTION
        {
            return Err(TxnError::TooLarge);
        }
        next.update_ms = now_ms;
        Ok(next)
    }

    /// TxnOffsetCommit: the group must be in the open transaction (AddOffsetsToTxn first).
    pub fn with_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, i32, TxnGroupOffset)>,
        now_ms: i64,
    ) -> Result<TxnMetadata, TxnError> {
        if self.state != TxnState::Ongoing || !self.groups.contains(group) {
            return Err(TxnError::InvalidTxnState);
        }
        let mut next = self.clone();
        for (topic, partition, offset) in offsets {
            if topic.is_empty()
                || topic.len() > MAX_TOPIC_NAME_BYTES
                || offset.metadata.len() > MAX_TXN_OFFSET_METADATA_BYTES
            {
                return Err(TxnError::InvalidRequest);
            }
            next.offsets
                .insert((group.to_string(), topic, partition), offset);
        }
        if next.offsets.len() > MAX_OFFSETS_PER_TRANSACTION {
            return Err(TxnError::TooLarge);
        }
        next.update_ms = now_ms;
        Ok(next)
    }

    /// The offsets this transaction commits for `group`.
    pub fn offsets_of(&self, group: &str) -> Vec<(String, i32, TxnGroupOffset)> {
        self.offsets
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), o)| (t.clone(), *p, o.clone()))
            .collect()
    }

    /// Whether the open transaction is past its timeout at `now_ms`.
    /// Whether this id may be forgotten: nothing open or deciding, untouched for
    /// `expiration_ms` (Kafka's `transactional.id.expiration.ms`).
    pub fn is_idle_past(&self, expiration_ms: i64, now_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && now_ms.saturating_sub(self.update_ms) > expiration_ms
    }

    /// The tombstone that forgets this id.
    pub fn dead(&self, now_ms: i64) -> TxnMetadata {
        let mut next = TxnMetadata::new(
            self.transactional_id.clone(),
            self.producer_id,
            self.timeout_ms,
            now_ms,
        );
        next.state = TxnState::Dead;
        next
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> TxnMetadata {
        TxnMetadata::new("t".into(), 7, 60_000, 0)
    }

    #[test]
    fn timeout_is_bounded() {
        assert_eq!(check_timeout(0), Err(TxnError::InvalidTimeout));
        assert_eq!(
            check_timeout(MAX_TRANSACTION_TIMEOUT_MS + 1),
            Err(TxnError::InvalidTimeout)
        );
        assert_eq!(check_timeout(60_000), Ok(()));
    }

    #[test]
    fn older_epochs_are_fenced_and_other_ids_unmapped() {
        let m = meta().bumped(1);
        assert_eq!(m.check_producer(7, 1), Ok(()));
        assert_eq!(m.check_producer(7, 0), Err(TxnError::ProducerFenced));
        assert_eq!(
            m.check_producer(8, 1),
            Err(TxnError::InvalidProducerIdMapping)
        );
        // KIP-360: the producer just before the bump may re-initialise; older ones may not.
        let m2 = m.bumped(2);
        assert_eq!(m2.check_reinit(7, 1), Ok(()));
        assert_eq!(m2.check_reinit(7, 0), Err(TxnError::ProducerFenced));
    }

    #[test]
    fn a_v2_decision_bumps_the_epoch_and_an_exhausted_one_moves_to_the_next_id() {
        let open = meta().with_added(&[("a".into(), 0)], None, 1).expect("add");
        let prepared = open.prepared_v2(true, NO_PRODUCER_ID, 2);
        assert_eq!(
            (
                prepared.state,
                prepared.producer_epoch,
                prepared.last_producer_epoch
            ),
            (TxnState::PrepareCommit, 1, 0)
        );
        let done = prepared.completed(3);
        assert_eq!((done.producer_id, done.producer_epoch), (7, 1));

        let mut worn = open.clone();
        worn.producer_epoch = i16::MAX - 2;
        assert!(worn.bump_exhausts_epoch() && !open.bump_exhausts_epoch());
        let done = worn.prepared_v2(false, 99, 4).completed(5);
        assert_eq!(
            (done.producer_id, done.producer_epoch, done.next_producer_id),
            (99, 0, NO_PRODUCER_ID)
        );
        assert_eq!(
            (done.last_producer_id, done.last_producer_epoch),
            (7, i16::MAX - 1)
        );
        assert_eq!(done.state, TxnState::CompleteAbort);
    }

    #[test]
    fn adding_opens_and_completing_closes_the_transaction() {
        let m = meta()
            .with_added(&[("a".into(), 0)], None, 10)
            .expect("add");
        assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, 10));
        assert!(m.is_expired(10 + 60_001) && !m.is_expired(10 + 60_000));
        let mut prepared = m.clone();
        prepared.state = TxnState::PrepareCommit;
        assert_eq!(
            prepared.with_added(&[], None, 11),
            Err(TxnError::Concurrent)
        );
        let done = prepared.completed(12);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty() && done.start_ms == -1);
    }
}
