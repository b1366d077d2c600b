//! Share-partition state (KIP-932) on the partition's owning shard: for every share group
//! consuming this partition, which records are in flight and in what state
//! (`state::SharePartitionState`). ShareFetch acquires records here under a lock with a
//! deadline; ShareAcknowledge settles them; an expired lock releases them.
//!
//! Lock expiry is checked against the deadline whenever the share-partition is touched
//! (every acquire, acknowledge and metrics read), which is exact for every observer: a
//! record whose deadline has passed is never handed out as still locked. A ShareFetch with
//! nothing to take waits (`share_readiness`) for an append, a change here
//! (`share_state_changed`) or the earliest lock deadline, whichever comes first; waiting
//! fetches of one group take records in arrival order (`share_fetch_turn`, `turns`).
//!
//! Durability: every acknowledgement and every release of a closing member's records is
//! written to the partition's share-state log (`durable`) and fdatasync'ed before it is
//! answered; expired locks are written by the next async step that finds them (a waiting
//! fetch's check, an acquisition, an acknowledgement), before records are acquired again.
//! Acquisitions are not written, as in Kafka, nor are RENEWs (KIP-1222), which only move a
//! held lock's deadline. The log is read the first time a share group touches the
//! partition after a start.
//!
//! Owns: the share-partition states of this partition. Must not: know about the wire or
//! sessions (the handler checks those with the group coordinator first), or hold a borrow
//! across an `.await`.

pub mod budget;
pub mod coalesce;
pub mod durable;
pub mod replicated;
pub mod state;
#[cfg(test)]
mod tests;
pub mod turns;

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Isolation, Partition};
use crate::config::group_config::{ShareGroupConfig, ShareOffsetReset};
use crate::storage::{Event, FileRegion, StorageError};
pub use budget::ShareFetchBudget;
use durable::ShareStateLog;
pub use state::{
    ACK_RENEW, AckError, AcquiredRange, DeadLetter, DlqCause, DlqIntent, Grant,
    MAX_IN_FLIGHT_RECORDS, ShareCounts, SharePartitionState,
};
use turns::{FetchTurns, TurnTicket};

/// Share groups one partition keeps state for; more are refused (a guard against clients
/// inventing group ids in a loop).
pub const MAX_SHARE_GROUPS_PER_PARTITION: usize = 1_000;

/// Bytes one read of a ShareFetch asks the log for (the first batch always whole); reads
/// repeat until the member's `max_records` are acquired or its `max_bytes` are spent.
pub const SHARE_READ_STEP_BYTES: u32 = 64 * 1024;

/// Records a member acquired from this partition and the batches holding them.
#[derive(Debug, Default)]
pub struct ShareAcquired {
    pub regions: Vec<FileRegion>,
    pub ranges: Vec<AcquiredRange>,
}

/// One member's acquisition request for this partition (what it may take is in the
/// fetch's `ShareFetchBudget`).
pub struct ShareAcquire<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub config: ShareGroupConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("this partition has state for too many share groups")]
    TooManyGroups,
    #[error("share-state log: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Replication(replicated::ReplicationError),
}

/// The share-partition states of one partition, by group id, and their durable log
/// (opened, and its states restored, on first use).
#[derive(Default)]
pub struct SharePartitions {
    groups: std::cell::RefCell<HashMap<String, SharePartitionState>>,
    log: std::cell::RefCell<Option<Rc<ShareStateLog>>>,
    /// Notified when records may have become available without an append: an
    /// acknowledgement (RELEASE, or a window that slid), a member's release, a deletion,
    /// the end of a waiting fetch's turn.
    changed: Rc<Event>,
    /// Waiting ShareFetches in arrival order, per group.
    turns: Rc<FetchTurns>,
    /// Groups whose state changed without being written (locks expired while touched by a
    /// synchronous step); bounded by the groups of this partition.
    unsaved: std::cell::RefCell<std::collections::HashSet<String>>,
    /// Groups whose dead-letter forwarding runs now (one forwarder per group and partition,
    /// so the group's dead-letter sequences are assigned in order); bounded by the groups.
    dead_lettering: Rc<SharePartitionsBusy>,
    /// Cluster mode, leading: states are written through the metadata log (`replicated`).
    replication: std::cell::RefCell<Option<Rc<replicated::Replication>>>,
}

impl SharePartitions {
    /// Everything this partition's share state is, moved to the object succeeding this
    /// one as the same leader (`Partition::successor`); this one keeps nothing.
    pub(super) fn hand_over(&self) -> SharePartitions {
        SharePartitions {
            groups: std::cell::RefCell::new(self.groups.take()),
            log: std::cell::RefCell::new(self.log.take()),
            changed: Rc::clone(&self.changed),
            turns: Rc::clone(&self.turns),
            unsaved: std::cell::RefCell::new(self.unsaved.take()),
            dead_lettering: Rc::clone(&self.dead_lettering),
            replication: std::cell::RefCell::new(self.replication.take()),
        }
    }
}

/// The next step of a group's dead-letter forwarding on this partition (KIP-1191).
#[derive(Debug)]
pub enum DeadLetterStep {
    /// Nothing waits for the dead-letter topic.
    Idle,
    /// Records wait and no append is in progress: a new intent needs the dead-letter
    /// producer's next sequence on the dead-letter partition.
    NeedSequence,
    /// This intent is durable: append its records (again, after a crash) with its sequence.
    Append(DlqIntent, Vec<DeadLetter>),
}

/// A claim on a group's dead-letter forwarding here; dropping it lets the next one start.
pub struct DeadLetterClaim {
    busy: Rc<SharePartitionsBusy>,
    group_id: String,
}

type SharePartitionsBusy = std::cell::RefCell<std::collections::HashSet<String>>;

impl Drop for DeadLetterClaim {
    fn drop(&mut self) {
        self.busy.borrow_mut().remove(&self.group_id);
    }
}

/// A ShareFetch's place in this partition's queue of its group's fetches. Only the oldest
/// acquires; dropping the turn (the fetch answered or abandoned) starts the next one's.
pub struct ShareTurn {
    turns: Rc<FetchTurns>,
    changed: Rc<Event>,
    group_id: String,
    ticket: TurnTicket,
}

impl ShareTurn {
    /// Whether this fetch is the group's oldest waiting here (may acquire now).
    pub fn is_mine(&self) -> bool {
        self.turns.is_head(&self.group_id, self.ticket)
    }
}

impl Drop for ShareTurn {
    fn drop(&mut self) {
        if self.turns.leave(&self.group_id, self.ticket) {
            self.changed.notify();
        }
    }
}

/// What a waiting ShareFetch needs to know about one share-partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareReadiness {
    /// Some record could be acquired now.
    pub acquirable: bool,
    /// The earliest deadline of a lock held here (None: no record acquired).
    pub next_lock_expiry: Option<Instant>,
}

/// Records in acquired runs.
pub fn records_in(ranges: &[AcquiredRange]) -> usize {
    ranges
        .iter()
        .map(|r| (r.last_offset - r.first_offset + 1).max(0) as usize)
        .sum()
}

fn delivery_limit(config: &ShareGroupConfig) -> u16 {
    config.delivery_count_limit.clamp(1, i32::from(u16::MAX)) as u16
}

/// How long an acquisition (or a renewal) locks a record.
fn lock_duration(config: &ShareGroupConfig) -> Duration {
    Duration::from_millis(config.record_lock_duration_ms.max(0) as u64)
}

impl Partition {
    /// The share-state log, opened (and its states restored) on first use; None in cluster
    /// mode's leader, whose states come from the metadata log (`replicated`).
    fn share_log(&self) -> Result<Option<Rc<ShareStateLog>>, ShareError> {
        if self.share_replicated()?.is_some() {
            return Ok(None);
        }
        if let Some(log) = self.shares.log.borrow().as_ref() {
            return Ok(Some(Rc::clone(log)));
        }
        let (log, saved) = ShareStateLog::open(self.log.dir())?;
        let log = Rc::new(log);
        let mut groups = self.shares.groups.borrow_mut();
        for (group, state) in saved {
            groups.insert(
                group,
                SharePartitionState::restore(&state, MAX_IN_FLIGHT_RECORDS),
            );
        }
        *self.shares.log.borrow_mut() = Some(Rc::clone(&log));
        Ok(Some(log))
    }

    /// Writes the group's current state (or its deletion) durably, then compacts the log
    /// if it has grown far past its live states.
    async fn persist_share_state(&self, group_id: &str) -> Result<(), ShareError> {
        if let Some(replication) = self.share_replicated()? {
            return self.replicate_share_state(&replication, group_id).await;
        }
        let Some(log) = self.share_log()? else {
            return Ok(());
        };
        self.shares.unsaved.borrow_mut().remove(group_id);
        log.write(|buf| {
            let before = buf.len();
            durable::encode(buf, group_id, self.shares.groups.borrow().get(group_id));
            vec![(group_id.to_string(), (buf.len() - before) as u64)]
        })
        .await?;
        if log.wants_compaction() {
            log.compact(|buf| {
                for (group, state) in self.shares.groups.borrow().iter() {
                    durable::encode(buf, group, Some(state));
                }
            })
            .await?;
        }
        Ok(())
    }

    fn readable_end(&self, config: &ShareGroupConfig) -> i64 {
        if config.read_committed {
            self.last_stable_offset()
        } else {
            self.high_watermark()
        }
    }

    /// Runs `f` on the group's share-partition state, creating it at the offset
    /// `share.auto.offset.reset` names, after releasing expired locks.
    fn with_share_state<R>(
        &self,
        group_id: &str,
        config: &ShareGroupConfig,
        now: Instant,
        f: impl FnOnce(&mut SharePartitionState) -> R,
    ) -> Result<R, ShareError> {
        self.share_log()?;
        let mut groups = self.shares.groups.borrow_mut();
        if !groups.contains_key(group_id) {
            if groups.len() >= MAX_SHARE_GROUPS_PER_PARTITION {
                return Err(ShareError::TooManyGroups);
            }
            let start = match config.auto_offset_reset {
                ShareOffsetReset::Latest => self.high_watermark(),
                ShareOffsetReset::Earliest => self.log_start_offset(),
            };
            groups.insert(
                group_id.to_string(),
                SharePartitionState::new(start, MAX_IN_FLIGHT_RECORDS),
            );
        }
        let Some(state) = groups.get_mut(group_id) else {
            return Err(ShareError::TooManyGroups);
        };
        state.set_dead_letter(config.dead_letter);
        state.skip_to(self.log_start_offset());
        if state.expire_locks(now, delivery_limit(config)) > 0 {
            // Written by the next async step here (`save_released`): the delivery counts
            // of expired locks must survive a crash.
            self.shares
                .unsaved
                .borrow_mut()
                .insert(group_id.to_string());
        }
        Ok(f(state))
    }

    /// ShareFetch for one member: acquires available records (released ones first, then
    /// new ones) and returns them with the file regions of the batches holding them. Reads
    /// batch after batch until the fetch's budget of records is spent, its bytes are read
    /// (the first batch always whole) or nothing more is available, so one round trip
    /// carries a full answer rather than one read's worth.
    pub async fn share_acquire(
        &self,
        request: &ShareAcquire<'_>,
        budget: &ShareFetchBudget,
        now: Instant,
    ) -> Result<ShareAcquired, ShareError> {
        let config = request.config;
        let isolation = if config.read_committed {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let member: Rc<str> = Rc::from(request.member_id);
        let lock = lock_duration(&config);
        let mut acquired = ShareAcquired::default();
        // Locks that expired before this acquisition are written first: what this member
        // now acquires again must come back after a crash with the count it had.
        self.with_share_state(request.group_id, &config, now, |_| ())?;
        self.share_save_released(request.group_id).await?;
        // Where the previous read ended: a later read never starts below it, so no batch
        // is handed out twice in one answer.
        let mut read_past = i64::MIN;
        while budget.records_left() > 0 && budget.bytes_left() > 0 {
            let readable_end = self.readable_end(&config);
            let from = self.with_share_state(request.group_id, &config, now, |s| {
                s.next_read_offset(readable_end)
            })?;
            let Some(from) = from.filter(|&f| f >= read_past) else {
                break;
            };
            // Read in steps, not the whole budget at once: the answer carries every batch
            // read, and a read far past the records the budget lets this member take
            // would ship batches it cannot use (megabytes per round trip for 500 records).
            let step = budget.bytes_left().min(u64::from(SHARE_READ_STEP_BYTES)) as u32;
            let slice = self.read(from, step, isolation).await?;
            if slice.bytes == 0 {
                break;
            }
            let mut grant = Grant {
                from,
                read_end: slice.next_offset,
                readable_end: self.readable_end(&config),
                max_records: 0,
                lock_deadline: now + lock,
            };
            // The state may have moved while the read waited: `acquire` looks at each
            // offset again and takes only what is still available. The records are claimed
            // from the budget and the unused part given back with no await in between.
            let ranges = self.with_share_state(request.group_id, &config, now, |s| {
                grant.max_records = budget.take_records();
                let ranges = s.acquire(&member, grant);
                budget.give_back_records(grant.max_records.saturating_sub(records_in(&ranges)));
                ranges
            })?;
            if ranges.is_empty() {
                break;
            }
            budget.spend_bytes(slice.bytes as u64);
            read_past = slice.next_offset;
            acquired.regions.extend(slice.regions);
            acquired.ranges.extend(ranges);
        }
        Ok(acquired)
    }

    /// A place for a ShareFetch of `group_id` at the back of this partition's queue of the
    /// group's fetches (None: the queue is full).
    pub fn share_fetch_turn(&self, group_id: &str) -> Option<ShareTurn> {
        let ticket = self.shares.turns.join(group_id)?;
        Some(ShareTurn {
            turns: Rc::clone(&self.shares.turns),
            changed: Rc::clone(&self.shares.changed),
            group_id: group_id.to_string(),
            ticket,
        })
    }

    /// ShareFetches of `group_id` waiting their turn here (for metrics).
    pub fn share_fetches_waiting(&self, group_id: &str) -> usize {
        self.shares.turns.waiting(group_id)
    }

    /// Whether a ShareFetch of `group_id` could acquire something here now and, if not,
    /// the earliest acquisition-lock deadline (its expiry may make records available).
    pub fn share_readiness(
        &self,
        group_id: &str,
        config: &ShareGroupConfig,
        now: Instant,
    ) -> Result<ShareReadiness, ShareError> {
        let readable_end = self.readable_end(config);
        self.with_share_state(group_id, config, now, |s| ShareReadiness {
            acquirable: s.next_read_offset(readable_end).is_some(),
            next_lock_expiry: s.earliest_lock_deadline(),
        })
    }

    /// Completes at the next acknowledgement, release or group deletion on this partition:
    /// with an append (`wait_for_high_watermark`) and a lock's expiry, what may make records
    /// available to a waiting ShareFetch. Owns its state, so it can be raced against a timer.
    pub fn share_state_changed(&self) -> impl Future<Output = ()> + 'static {
        self.shares.changed.listen()
    }

    /// Applies acknowledgement batches (first offset, last offset, types) from a member
    /// and makes them durable before returning; Err with the first refusal (batches before
    /// it stay applied, as in Kafka). RENEW restarts the locks of records the member holds
    /// for the group's lock duration from `now`.
    ///
    /// Renewals alone are not written, as in Kafka: a lock's deadline is not durable state
    /// (acquisitions are not written either; after a restart every record not settled is
    /// available again), and a renewal changes nothing else. So a batch of only RENEWs
    /// neither syncs the log nor wakes waiting fetches (it makes nothing available).
    pub async fn share_acknowledge(
        &self,
        group_id: &str,
        member_id: &str,
        batches: &[(i64, i64, Vec<i8>)],
        config: &ShareGroupConfig,
        now: Instant,
    ) -> Result<Result<(), AckError>, ShareError> {
        let limit = delivery_limit(config);
        let renew_deadline = now + lock_duration(config);
        let (outcome, settled) = self.with_share_state(group_id, config, now, |s| {
            let mut settled = false;
            for (first, last, types) in batches {
                if let Err(e) =
                    s.acknowledge(member_id, *first, *last, types, limit, renew_deadline)
                {
                    return (Err(e), settled);
                }
                settled |= types.iter().any(|t| *t != ACK_RENEW);
            }
            (Ok(()), settled)
        })?;
        if settled || self.shares.unsaved.borrow().contains(group_id) {
            self.shares.changed.notify();
            self.persist_share_state(group_id).await?;
        }
        Ok(outcome)
    }

    /// Releases what a member holds here (its share session closed), durably: the released
    /// records' delivery counts survive a crash.
    pub async fn share_release_member(
        &self,
        group_id: &str,
        member_id: &str,
        config: &ShareGroupConfig,
    ) -> Result<(), ShareError> {
        let released = match self.shares.groups.borrow_mut().get_mut(group_id) {
            Some(s) => {
                s.set_dead_letter(config.dead_letter);
                s.release_member(member_id, delivery_limit(config))
            }
            None => 0,
        };
        if released == 0 {
            return Ok(());
        }
        self.shares.changed.notify();
        self.persist_share_state(group_id).await
    }

    /// Writes the group's state if locks expired here since it was last written (a waiting
    /// ShareFetch's check or an acquisition found them), so a crash keeps their delivery
    /// counts.
    pub async fn share_save_released(&self, group_id: &str) -> Result<(), ShareError> {
        if !self.shares.unsaved.borrow().contains(group_id) {
            return Ok(());
        }
        self.persist_share_state(group_id).await
    }

    /// Claims the group's dead-letter forwarding here (None: one runs already).
    pub fn share_dead_letter_claim(&self, group_id: &str) -> Option<DeadLetterClaim> {
        if !self
            .shares
            .dead_lettering
            .borrow_mut()
            .insert(group_id.to_string())
        {
            return None;
        }
        Some(DeadLetterClaim {
            busy: Rc::clone(&self.shares.dead_lettering),
            group_id: group_id.to_string(),
        })
    }

    /// Whether records of the group wait for their dead-letter append here.
    pub fn share_has_dead_letters(&self, group_id: &str) -> bool {
        self.shares
            .groups
            .borrow()
            .get(group_id)
            .is_some_and(|s| s.dlq_intent().is_some() || s.has_dead_letters())
    }

    /// The group's next dead-letter step here. With `next_sequence` and no intent in
    /// progress, makes a new intent of the waiting records and writes it durably before
    /// returning it: the append may only be made once a crash cannot lose its sequence.
    pub async fn share_dead_letter_step(
        &self,
        group_id: &str,
        next_sequence: Option<i32>,
    ) -> Result<DeadLetterStep, ShareError> {
        self.share_log()?;
        let (step, created) = {
            let mut groups = self.shares.groups.borrow_mut();
            let Some(state) = groups.get_mut(group_id) else {
                return Ok(DeadLetterStep::Idle);
            };
            let had_intent = state.dlq_intent().is_some();
            if !had_intent && !state.has_dead_letters() {
                return Ok(DeadLetterStep::Idle);
            }
            if !had_intent && next_sequence.is_none() {
                return Ok(DeadLetterStep::NeedSequence);
            }
            let sequence = next_sequence.unwrap_or(0);
            match state.dead_letter_intent(|| sequence) {
                Some((intent, letters)) => (DeadLetterStep::Append(intent, letters), !had_intent),
                None => (DeadLetterStep::Idle, false),
            }
        };
        if created && let Err(e) = self.persist_share_state(group_id).await {
            // Not known to be durable: the append must not be made with it.
            if let Some(state) = self.shares.groups.borrow_mut().get_mut(group_id) {
                state.restore_intent(None);
            }
            return Err(e);
        }
        Ok(step)
    }

    /// The intent's dead-letter append is durable (or its target refused it for good): its
    /// records become archived, durably, and the window may slide past them.
    pub async fn share_dead_letter_done(&self, group_id: &str) -> Result<(), ShareError> {
        match self.shares.groups.borrow_mut().get_mut(group_id) {
            Some(state) => state.finish_dead_letter_intent(),
            None => return Ok(()),
        }
        self.shares.changed.notify();
        self.persist_share_state(group_id).await
    }

    /// Drops a deleted share group's state, durably.
    pub async fn share_forget_group(&self, group_id: &str) -> Result<(), ShareError> {
        self.share_log()?;
        if self.shares.groups.borrow_mut().remove(group_id).is_none() {
            return Ok(());
        }
        self.shares.changed.notify();
        self.persist_share_state(group_id).await
    }

    /// AlterShareGroupOffsets: restarts the group's share-partition at `start_offset`
    /// (nothing in flight), durably. The caller checked the group has no members.
    pub async fn share_set_start_offset(
        &self,
        group_id: &str,
        start_offset: i64,
    ) -> Result<(), ShareError> {
        self.share_log()?;
        {
            let mut groups = self.shares.groups.borrow_mut();
            if !groups.contains_key(group_id) && groups.len() >= MAX_SHARE_GROUPS_PER_PARTITION {
                return Err(ShareError::TooManyGroups);
            }
            groups.insert(
                group_id.to_string(),
                SharePartitionState::new(start_offset, MAX_IN_FLIGHT_RECORDS),
            );
        }
        self.shares.changed.notify();
        self.persist_share_state(group_id).await
    }

    /// Counts of every share group's state here, for describe (reading the durable log
    /// first if nothing touched this partition's share state since the start).
    pub fn share_counts(&self) -> Result<Vec<(String, ShareCounts)>, ShareError> {
        self.share_log()?;
        Ok(self.share_counts_in_memory())
    }

    /// `share_counts` without loading anything: the groups whose state this partition holds
    /// in memory (used since the start, or replicated). For the metrics' walks over every
    /// partition, which must not open a share-state file per partition: on a broker of
    /// 100,000 partitions that was ~0.3 CPU-s of synchronous opens on the shards after each
    /// start (perf/RESULTS.md, session 34). A group restored from disk shows in the metrics
    /// once a consumer or an admin request has touched the partition since the start.
    pub fn share_counts_in_memory(&self) -> Vec<(String, ShareCounts)> {
        let groups = self.shares.groups.borrow();
        let mut out: Vec<(String, ShareCounts)> = groups
            .iter()
            .map(|(g, s)| (g.clone(), s.counts()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
