//! Share-partition state (KIP-932) on the partition's owning shard: for every share group
//! consuming this partition, which records are in flight and in what state
//! (`state::SharePartitionState`). ShareFetch acquires records here under a lock with a
//! deadline; ShareAcknowledge settles them; an expired lock releases them.
//!
//! Lock expiry is checked against the deadline whenever the share-partition is touched
//! (every acquire, acknowledge and metrics read), which is exact for every observer: a
//! record whose deadline has passed is never handed out as still locked, and a fetch that
//! waits re-checks on the shard timer.
//!
//! Durability: every acknowledgement is written to the partition's share-state log
//! (`durable`) and fdatasync'ed before it is answered; the log is read the first time a
//! share group touches the partition after a start.
//!
//! Owns: the share-partition states of this partition. Must not: know about the wire or
//! sessions (the handler checks those with the group coordinator first), or hold a borrow
//! across an `.await`.

pub mod durable;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Isolation, Partition};
use crate::config::group_config::{ShareGroupConfig, ShareOffsetReset};
use crate::storage::{FileRegion, StorageError};
use durable::ShareStateLog;
pub use state::{
    AckError, AcquiredRange, Grant, MAX_IN_FLIGHT_RECORDS, ShareCounts, SharePartitionState,
};

/// Share groups one partition keeps state for; more are refused (a guard against clients
/// inventing group ids in a loop).
pub const MAX_SHARE_GROUPS_PER_PARTITION: usize = 1_000;

/// Records a member acquired from this partition and the batches holding them.
#[derive(Debug, Default)]
pub struct ShareAcquired {
    pub regions: Vec<FileRegion>,
    pub ranges: Vec<AcquiredRange>,
}

/// One member's acquisition request for this partition.
pub struct ShareAcquire<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub config: ShareGroupConfig,
    pub max_records: usize,
    pub max_bytes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("this partition has state for too many share groups")]
    TooManyGroups,
    #[error("share-state log: {0}")]
    Io(#[from] std::io::Error),
}

/// The share-partition states of one partition, by group id, and their durable log
/// (opened, and its states restored, on first use).
#[derive(Default)]
pub struct SharePartitions {
    groups: std::cell::RefCell<HashMap<String, SharePartitionState>>,
    log: std::cell::RefCell<Option<Rc<ShareStateLog>>>,
}

fn delivery_limit(config: &ShareGroupConfig) -> u16 {
    config.delivery_count_limit.clamp(1, i32::from(u16::MAX)) as u16
}

impl Partition {
    /// The share-state log, opened (and its states restored) on first use.
    fn share_log(&self) -> Result<Rc<ShareStateLog>, ShareError> {
        if let Some(log) = self.shares.log.borrow().as_ref() {
            return Ok(Rc::clone(log));
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
        Ok(log)
    }

    /// Writes the group's current state (or its deletion) durably, then compacts the log
    /// if it has grown far past its live states.
    async fn persist_share_state(&self, group_id: &str) -> Result<(), ShareError> {
        let log = self.share_log()?;
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
        state.skip_to(self.log_start_offset());
        state.expire_locks(now, delivery_limit(config));
        Ok(f(state))
    }

    /// ShareFetch for one member: acquires available records (released ones first, then
    /// new ones) and returns them with the file regions of the batches holding them.
    pub async fn share_acquire(
        &self,
        request: &ShareAcquire<'_>,
        now: Instant,
    ) -> Result<ShareAcquired, ShareError> {
        let config = request.config;
        let readable_end = self.readable_end(&config);
        let from = self.with_share_state(request.group_id, &config, now, |s| {
            s.next_read_offset(readable_end)
        })?;
        let Some(from) = from else {
            return Ok(ShareAcquired::default());
        };
        let isolation = if config.read_committed {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let slice = self.read(from, request.max_bytes, isolation).await?;
        if slice.bytes == 0 {
            return Ok(ShareAcquired::default());
        }
        let member: Rc<str> = Rc::from(request.member_id);
        let lock = Duration::from_millis(config.record_lock_duration_ms.max(0) as u64);
        let grant = Grant {
            from,
            read_end: slice.next_offset,
            readable_end: self.readable_end(&config),
            max_records: request.max_records,
            lock_deadline: now + lock,
        };
        // The state may have moved while the read waited: `acquire` looks at each offset
        // again and takes only what is still available.
        let ranges = self.with_share_state(request.group_id, &config, now, |s| {
            s.acquire(&member, grant)
        })?;
        if ranges.is_empty() {
            return Ok(ShareAcquired::default());
        }
        Ok(ShareAcquired {
            regions: slice.regions,
            ranges,
        })
    }

    /// Applies acknowledgement batches (first offset, last offset, types) from a member
    /// and makes them durable before returning; Err with the first refusal (batches before
    /// it stay applied, as in Kafka).
    pub async fn share_acknowledge(
        &self,
        group_id: &str,
        member_id: &str,
        batches: &[(i64, i64, Vec<i8>)],
        config: &ShareGroupConfig,
        now: Instant,
    ) -> Result<Result<(), AckError>, ShareError> {
        let limit = delivery_limit(config);
        let (outcome, applied) = self.with_share_state(group_id, config, now, |s| {
            let mut applied = 0;
            for (first, last, types) in batches {
                if let Err(e) = s.acknowledge(member_id, *first, *last, types, limit) {
                    return (Err(e), applied);
                }
                applied += 1;
            }
            (Ok(()), applied)
        })?;
        if applied > 0 {
            self.persist_share_state(group_id).await?;
        }
        Ok(outcome)
    }

    /// Releases what a member holds here (its share session closed).
    pub fn share_release_member(&self, group_id: &str, member_id: &str, config: &ShareGroupConfig) {
        if let Some(s) = self.shares.groups.borrow_mut().get_mut(group_id) {
            s.release_member(member_id, delivery_limit(config));
        }
    }

    /// Drops a deleted share group's state, durably.
    pub async fn share_forget_group(&self, group_id: &str) -> Result<(), ShareError> {
        self.share_log()?;
        if self.shares.groups.borrow_mut().remove(group_id).is_none() {
            return Ok(());
        }
        self.persist_share_state(group_id).await
    }

    /// Counts of every share group's state here, for metrics and describe (reading the
    /// durable log first if nothing touched this partition's share state since the start).
    pub fn share_counts(&self) -> Result<Vec<(String, ShareCounts)>, ShareError> {
        self.share_log()?;
        let groups = self.shares.groups.borrow();
        let mut out: Vec<(String, ShareCounts)> = groups
            .iter()
            .map(|(g, s)| (g.clone(), s.counts()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
