//! Transactional offset commits (KIP-98, KIP-447): TxnOffsetCommit offsets wait per
//! producer id in the group, invisible to OffsetFetch, until the transaction coordinator
//! completes the transaction: a COMMIT writes them to the group's offsets log (durably, like
//! an OffsetCommit) and makes them visible, an ABORT drops them. While any are pending for
//! a partition, OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it.
//!
//! Owns: the pending offsets and their completion. Must not: decide a transaction's outcome
//! (the coordinator does) or hold the `groups` borrow across an `.await`.

use std::time::Instant;

use kafka_protocol::ResponseError;

use super::coordinator::{GroupCoordinator, MAX_GROUPS_PER_SHARD};
use super::offset_log::{LogRecord, OffsetEntry};
use super::offsets::{MAX_OFFSET_METADATA_BYTES, MAX_TOPIC_NAME_BYTES};
use super::replicated::WriteOrigin;
use super::state::PendingTxnOffset;

/// Pending offsets one producer may hold in one group (a transaction larger than this is a
/// runaway client; Kafka bounds it by the partitions a transaction may hold).
pub const MAX_PENDING_TXN_OFFSETS_PER_PRODUCER: usize = 10_000;

/// One offset of a TxnOffsetCommit request.
#[derive(Clone, Debug)]
pub struct TxnOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Who sent a TxnOffsetCommit (KIP-447: v3+ carry the member's generation to fence zombies).
#[derive(Clone, Debug)]
pub struct TxnCommitter {
    pub producer_id: i64,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

impl GroupCoordinator {
    /// TxnOffsetCommit on the group's shard: checks the member (when it names a generation)
    /// and holds the offsets for the producer's transaction. Returns each offset's error
    /// code (0 = held), in request order.
    pub fn txn_offset_commit(
        &self,
        group_id: &str,
        committer: &TxnCommitter,
        offsets: Vec<TxnOffset>,
        now: Instant,
    ) -> Vec<i16> {
        let wall = self.wall_ms(now);
        let mut groups = self.inner.groups.borrow_mut();
        let check = if group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else if let Some(g) = groups.get_mut(group_id) {
            if committer.generation_id >= 0 {
                g.check_commit(
                    &committer.member_id,
                    committer.group_instance_id.as_deref(),
                    committer.generation_id,
                    now,
                )
            } else {
                Ok(())
            }
        } else if groups.len() >= MAX_GROUPS_PER_SHARD {
            Err(ResponseError::CoordinatorNotAvailable)
        } else if let Some(g) = self.new_group(group_id) {
            groups.insert(group_id.to_string(), g);
            Ok(())
        } else {
            Err(ResponseError::InvalidGroupId)
        };
        let Some(g) = groups.get_mut(group_id) else {
            let code = check.err().unwrap_or(ResponseError::InvalidGroupId).code();
            return offsets.iter().map(|_| code).collect();
        };
        let pending = g
            .pending_txn_offsets
            .entry(committer.producer_id)
            .or_default();
        let codes = offsets
            .into_iter()
            .map(|o| {
                if let Some(code) = offset_refusal(check, &o) {
                    return code;
                }
                let entry = OffsetEntry {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                    commit_ms: wall,
                };
                let held = pending.len();
                match pending
                    .iter_mut()
                    .find(|p| p.topic == o.topic && p.partition == o.partition)
                {
                    Some(p) => p.entry = entry,
                    None if held >= MAX_PENDING_TXN_OFFSETS_PER_PRODUCER => {
                        return ResponseError::InvalidRequest.code();
                    }
                    None => pending.push(PendingTxnOffset {
                        topic: o.topic,
                        partition: o.partition,
                        entry,
                    }),
                }
                0
            })
            .collect();
        if pending.is_empty() {
            g.pending_txn_offsets.remove(&committer.producer_id);
        }
        codes
    }

    /// The transaction coordinator's marker for this group: `commit` writes `offsets` (the
    /// transaction's, from its durable record) to the offsets log and makes them visible;
    /// abort drops them. Either way the producer's pending marks go. Err when the write
    /// failed (the coordinator retries).
    pub async fn complete_txn_offsets(
        &self,
        group_id: &str,
        producer_id: i64,
        commit: bool,
        offsets: Vec<TxnOffset>,
    ) -> Result<(), String> {
        let ack = {
            let mut groups = self.inner.groups.borrow_mut();
            if let Some(g) = groups.get_mut(group_id) {
                g.pending_txn_offsets.remove(&producer_id);
            }
            if !commit || offsets.is_empty() {
                return Ok(());
            }
            if !groups.contains_key(group_id) {
                if groups.len() >= MAX_GROUPS_PER_SHARD {
                    return Err(format!("{MAX_GROUPS_PER_SHARD} groups on this shard"));
                }
                let Some(g) = self.new_group(group_id) else {
                    return Err(format!("group id {group_id:?} cannot name a log"));
                };
                groups.insert(group_id.to_string(), g);
            }
            let Some(g) = groups.get_mut(group_id) else {
                return Err("group vanished".to_string());
            };
            let commit_ms = self.wall_ms(Instant::now());
            let records = offsets
                .into_iter()
                .map(|o| LogRecord::Commit {
                    topic: o.topic,
                    partition: o.partition,
                    entry: OffsetEntry {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_ms,
                    },
                })
                .collect();
            // The transaction coordinator may run on another broker than the group's.
            self.enqueue_as(g, records, WriteOrigin::TxnMarker)
        };
        match ack.await {
            Ok(result) => result.map_err(|e| e.message),
            Err(_) => Err("offsets log writer stopped".to_string()),
        }
    }

    /// Whether a transaction holds an uncommitted offset for this partition of the group
    /// (OffsetFetch `require_stable`: UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let groups = self.inner.groups.borrow();
        groups.get(group_id).is_some_and(|g| {
            g.pending_txn_offsets
                .values()
                .flatten()
                .any(|p| p.topic == topic && p.partition == partition)
        })
    }
}

/// Why one offset of a TxnOffsetCommit is refused before it is held (the group check's
/// error, a bad topic name, metadata too large), a single node's and a cluster's alike.
pub(super) fn offset_refusal(check: Result<(), ResponseError>, o: &TxnOffset) -> Option<i16> {
    if let Err(e) = check {
        return Some(e.code());
    }
    if o.topic.is_empty() || o.topic.len() > MAX_TOPIC_NAME_BYTES {
        return Some(ResponseError::InvalidTopicException.code());
    }
    if o.metadata.len() > MAX_OFFSET_METADATA_BYTES {
        return Some(ResponseError::OffsetMetadataTooLarge.code());
    }
    None
}
