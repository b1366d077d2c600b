//! Transactions v2 (KIP-890 part 2), on the transactional id's coordinating shard: EndTxn v5
//! bumps the producer's epoch at every decision (the markers carry the bumped epoch, so
//! they fence any late batch of the finished transaction) and answers the epoch to go on
//! with; Produce v12+ and TxnOffsetCommit v5 add their partition or group to the open
//! transaction implicitly, with no AddPartitionsToTxn/AddOffsetsToTxn round trip.
//!
//! The retry rules follow Kafka's coordinator: a v2 EndTxn retried after its answer was lost
//! carries the epoch before the bump, and is answered as it was the first time.

use super::Shard;
use super::transactions::{allocate_producer_id, check_coordinator, complete, current};
use crate::shard::now_ms;
use crate::txn::fault::{self, CrashPoint};
use crate::txn::{NO_PRODUCER_ID, TxnError, TxnMetadata, TxnState};
use std::rc::Rc;

/// EndTxn v5: (producer id, epoch) the producer continues with.
pub async fn end_txn(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<(i64, i16), TxnError> {
    check_coordinator(shard, transactional_id)?;
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let meta = current(&lease)?;
    let is_retry = check_end_txn_v2(&meta, producer_id, producer_epoch)?;
    let decide = match (meta.state, commit) {
        (TxnState::Ongoing, _) => true,
        (TxnState::Empty, false) => true,
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if is_retry => {
            return Ok(continue_with(&meta));
        }
        // A new abort right after a finished transaction: bumps the epoch (fences stragglers).
        // A retried abort of a committed one is not that: it asks the other outcome.
        (TxnState::CompleteCommit | TxnState::CompleteAbort, false) => !is_retry,
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            return Err(TxnError::Concurrent);
        }
        _ => false,
    };
    if !decide {
        return Err(TxnError::InvalidTxnState);
    }
    let next_producer_id = if meta.bump_exhausts_epoch() {
        allocate_producer_id(shard).await?
    } else {
        NO_PRODUCER_ID
    };
    lease
        .persist(meta.prepared_v2(commit, next_producer_id, now_ms()))
        .await?;
    fault::crash_if_armed(CrashPoint::AfterPrepare);
    if let Err(e) = complete(shard, &mut lease).await {
        tracing::warn!(id = %transactional_id, error = %e, "transaction markers not all written; retrying on the timer");
    }
    Ok(continue_with(&current(&lease)?))
}

/// Kafka's v2 validity table: whether the request is a retry of an EndTxn whose answer was
/// lost (its epoch is the one before the bump), or fenced.
fn check_end_txn_v2(meta: &TxnMetadata, producer_id: i64, epoch: i16) -> Result<bool, TxnError> {
    let retry_on_bump = i32::from(meta.producer_epoch) == i32::from(epoch) + 1;
    // The bump exhausted the epoch and completion moved the producer to a new id.
    let retry_on_overflow = meta.producer_id != producer_id
        && meta.last_producer_id == producer_id
        && meta.producer_epoch == 0
        && i32::from(meta.last_producer_epoch) == i32::from(epoch) + 1;
    if meta.producer_id != producer_id && !retry_on_overflow {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    let valid = match meta.state {
        TxnState::Ongoing | TxnState::Empty | TxnState::PrepareEpochFence => {
            epoch == meta.producer_epoch
        }
        // Never a live id's state (a forgotten id has no metadata at all).
        TxnState::Dead => false,
        TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
        TxnState::CompleteCommit | TxnState::CompleteAbort => {
            retry_on_bump || retry_on_overflow || epoch == meta.producer_epoch
        }
    };
    if !valid {
        return Err(TxnError::ProducerFenced);
    }
    Ok(retry_on_bump || retry_on_overflow)
}

/// The id and epoch a v2 producer uses next: after completion the (possibly new) current
/// ones; while the markers are still being retried, the id it will move to.
fn continue_with(meta: &TxnMetadata) -> (i64, i16) {
    if meta.next_producer_id != NO_PRODUCER_ID {
        (meta.next_producer_id, 0)
    } else {
        (meta.producer_id, meta.producer_epoch)
    }
}

/// Produce v12+ (transactions v2): adds the partitions to the producer's transaction,
/// opening one if none is open; each partition's verdict.
pub async fn add_partitions_implicitly(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[(String, i32)],
) -> Vec<Result<(), TxnError>> {
    if let Err(e) = check_coordinator(shard, transactional_id) {
        return vec![Err(e); partitions.len()];
    }
    let added = add_implicitly(
        shard,
        transactional_id,
        producer_id,
        producer_epoch,
        partitions,
        None,
    )
    .await;
    partitions.iter().map(|_| added).collect()
}

/// TxnOffsetCommit v5 (transactions v2): adds the group to the producer's transaction.
pub async fn add_group_implicitly(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group_id: &str,
) -> Result<(), TxnError> {
    add_implicitly(
        shard,
        transactional_id,
        producer_id,
        producer_epoch,
        &[],
        Some(group_id),
    )
    .await
}

async fn add_implicitly(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[(String, i32)],
    group: Option<&str>,
) -> Result<(), TxnError> {
    let mut lease = shard.txns.lease_queued(transactional_id).await?;
    let meta = current(&lease)?;
    meta.check_producer(producer_id, producer_epoch)?;
    if meta.state.is_preparing() {
        return Err(TxnError::Concurrent);
    }
    let known = partitions.iter().all(|p| meta.partitions.contains(p))
        && group.is_none_or(|g| meta.groups.contains(g));
    if meta.state == TxnState::Ongoing && known {
        return Ok(());
    }
    let next = meta.with_added(partitions, group, now_ms())?;
    lease.persist(next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed_at(epoch: i16, state: TxnState) -> TxnMetadata {
        let mut m = TxnMetadata::new("t".into(), 7, 60_000, 0);
        m.producer_epoch = epoch;
        m.state = state;
        m
    }

    #[test]
    fn retries_carry_the_epoch_before_the_bump_and_older_ones_are_fenced() {
        let done = completed_at(5, TxnState::CompleteCommit);
        assert_eq!(check_end_txn_v2(&done, 7, 4), Ok(true));
        assert_eq!(check_end_txn_v2(&done, 7, 5), Ok(false));
        assert_eq!(check_end_txn_v2(&done, 7, 3), Err(TxnError::ProducerFenced));
        assert_eq!(
            check_end_txn_v2(&done, 8, 5),
            Err(TxnError::InvalidProducerIdMapping)
        );
        let preparing = completed_at(5, TxnState::PrepareCommit);
        assert_eq!(check_end_txn_v2(&preparing, 7, 4), Ok(true));
        assert_eq!(
            check_end_txn_v2(&preparing, 7, 5),
            Err(TxnError::ProducerFenced)
        );
        let open = completed_at(5, TxnState::Ongoing);
        assert_eq!(check_end_txn_v2(&open, 7, 4), Err(TxnError::ProducerFenced));
    }

    #[test]
    fn a_retry_after_the_epoch_ran_out_is_recognised_under_the_old_id() {
        let mut moved = completed_at(0, TxnState::CompleteCommit);
        moved.producer_id = 99;
        moved.last_producer_id = 7;
        moved.last_producer_epoch = i16::MAX - 1;
        assert_eq!(check_end_txn_v2(&moved, 7, i16::MAX - 2), Ok(true));
        assert_eq!(continue_with(&moved), (99, 0));
        assert_eq!(
            check_end_txn_v2(&moved, 7, 3),
            Err(TxnError::InvalidProducerIdMapping)
        );
    }
}
