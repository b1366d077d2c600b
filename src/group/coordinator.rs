//! The consumer-group coordinator of one shard: its struct, how it opens the groups this
//! shard owns, its timers and metrics, and the limits every protocol shares.
//!
//! The request handlers live in sibling files as further `impl GroupCoordinator` blocks,
//! one per protocol (`classic`, `consumer_protocol`, `offsets`, `admin`), and the durable
//! writer in `offset_log_writer`.
//!
//! Owns: the shard's group table (`Inner::groups`) and the clock mapping. Must not: answer
//! protocol requests itself, or hold the `groups` borrow across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::offset_log::{self, OffsetLogError};
use super::share::ShareGroup;
use super::state::{Group, GroupLog, GroupState, GroupTimings};
use crate::config::BrokerConfig;

/// Groups one shard keeps (with members or committed offsets). Creating more is refused
/// with COORDINATOR_NOT_AVAILABLE; a guard against clients inventing group ids in a loop.
pub const MAX_GROUPS_PER_SHARD: usize = 100_000;
/// Kafka's group type name for the protocol served here (ListGroups v5).
pub const CLASSIC_GROUP_TYPE: &str = "classic";
/// Kafka's group type name for KIP-848 groups.
pub const CONSUMER_GROUP_TYPE: &str = "consumer";
/// Kafka's group type name for KIP-932 share groups.
pub const SHARE_GROUP_TYPE: &str = "share";

/// Who sent a JoinGroup (shown by DescribeGroups).
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("cannot load committed offsets of shard {shard}: {source}")]
    Load {
        shard: usize,
        #[source]
        source: OffsetLogError,
    },
}

/// Same function as `shard::placement::shard_for_group` (FNV-1a 32 mod shard count);
/// duplicated so this module builds on its own — the merge should call placement directly.
pub fn owner_shard(group_id: &str, shard_count: usize) -> usize {
    crate::shard::placement::shard_for_group(group_id, shard_count)
}

pub(super) struct Inner {
    pub(super) shard_id: usize,
    pub(super) shard_count: usize,
    pub(super) dir: PathBuf,
    pub(super) timings: GroupTimings,
    pub(super) offsets_retention_ms: i64,
    /// Maps the caller's `Instant` to wall-clock ms (commit timestamps, retention).
    pub(super) clock_origin: Instant,
    pub(super) wall_origin_ms: i64,
    pub(super) groups: RefCell<HashMap<String, Group>>,
    /// Share groups (KIP-932): membership and sessions; their records' state lives with
    /// the partitions (`partition::share`).
    pub(super) share_groups: RefCell<HashMap<String, ShareGroup>>,
    /// Cluster mode: share sessions of groups another broker coordinates, opened here to
    /// fetch from partitions this broker leads (decision 0025).
    pub(super) leader_share_sessions: RefCell<HashMap<String, super::share::ShareSessions>>,
    /// fdatasyncs of group logs; fewer than commits when group commit batches them.
    pub(super) log_flushes_total: Cell<u64>,
    /// Cluster mode: the metadata log the offsets go through instead of the group files.
    pub(super) replicator: RefCell<Option<Rc<dyn super::replicated::OffsetsReplicator>>>,
    /// Cluster mode: each classic group's membership as last stored in the metadata log
    /// (`membership`), loaded by the broker that takes the group over.
    pub(super) stored_memberships: RefCell<crate::metadata::group_membership::StoredMemberships>,
    /// Cluster mode: the last `MembershipVersion::sequence` this shard proposed.
    pub(super) membership_sequence: Cell<u64>,
    /// Cluster mode: verification guards of transactions' offsets (decision 0022).
    pub(super) txn_guards: RefCell<super::txn_guard::TxnGuards>,
}

/// The consumer-group coordinator of one shard. Cheap to clone (shared `Rc`).
#[derive(Clone)]
pub struct GroupCoordinator {
    pub(super) inner: Rc<Inner>,
}

impl GroupCoordinator {
    /// Loads the committed offsets of every group this shard owns from
    /// `<data_dir>/__consumer_offsets/` (all groups' files are scanned by name; only owned
    /// ones are read, so a changed shard count needs no migration).
    pub fn open(
        data_dir: &Path,
        shard_id: usize,
        shard_count: usize,
        config: &BrokerConfig,
    ) -> Result<Self, GroupError> {
        let dir = offset_log::offsets_dir(data_dir);
        let loaded = offset_log::load_owned(&dir, |g| owner_shard(g, shard_count) == shard_id)
            .map_err(|source| GroupError::Load {
                shard: shard_id,
                source,
            })?;
        let mut groups = HashMap::new();
        for l in loaded {
            let mut group = Group::new(l.group_id.clone(), GroupLog::idle(l.path, l.log_len_bytes));
            group.offsets = l.offsets;
            groups.insert(l.group_id, group);
        }
        let wall_origin_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Ok(GroupCoordinator {
            inner: Rc::new(Inner {
                shard_id,
                shard_count,
                dir,
                timings: GroupTimings {
                    initial_rebalance_delay: Duration::from_millis(
                        config.group_initial_rebalance_delay_ms,
                    ),
                    min_session_timeout_ms: config.group_min_session_timeout_ms,
                    max_session_timeout_ms: config.group_max_session_timeout_ms,
                },
                offsets_retention_ms: config.offsets_retention_ms,
                clock_origin: Instant::now(),
                wall_origin_ms,
                groups: RefCell::new(groups),
                share_groups: RefCell::new(HashMap::new()),
                leader_share_sessions: RefCell::new(HashMap::new()),
                log_flushes_total: Cell::new(0),
                replicator: RefCell::new(None),
                stored_memberships: RefCell::new(Default::default()),
                membership_sequence: Cell::new(0),
                txn_guards: RefCell::new(Default::default()),
            }),
        })
    }

    pub fn shard_id(&self) -> usize {
        self.inner.shard_id
    }

    /// Whether `group_id` belongs to this shard.
    pub fn owns(&self, group_id: &str) -> bool {
        owner_shard(group_id, self.inner.shard_count) == self.inner.shard_id
    }

    /// Wall-clock milliseconds corresponding to `now`.
    pub fn wall_ms(&self, now: Instant) -> i64 {
        let i = &self.inner;
        match now.checked_duration_since(i.clock_origin) {
            Some(d) => i.wall_origin_ms + d.as_millis() as i64,
            None => i.wall_origin_ms - i.clock_origin.duration_since(now).as_millis() as i64,
        }
    }

    /// A fresh group with no log file yet; None when the id cannot name a file.
    pub(super) fn new_group(&self, group_id: &str) -> Option<Group> {
        let path = offset_log::log_path(&self.inner.dir, group_id)?;
        Some(Group::new(group_id.to_string(), GroupLog::idle(path, 0)))
    }

    // ----- timers and metrics -------------------------------------------------------------

    /// Session expiry, rebalance timeouts and the initial rebalance delay. Call every ~100 ms.
    pub fn tick(&self, now: Instant) {
        let wall = self.wall_ms(now);
        let timings = self.inner.timings;
        // Cluster mode: groups whose slot moved away are let go of first (their timers
        // must not fire here), then groups whose slot moved here are loaded now, not at
        // their first request (decision 0024).
        self.unload_resigned(now);
        self.take_over_stored(now);
        let mut groups = self.inner.groups.borrow_mut();
        for g in groups.values_mut() {
            g.tick(now, &timings, wall);
        }
        groups.retain(|_, g| !g.is_forgettable(wall));
        drop(groups);
        self.store_memberships(None);
        self.tick_share_groups(now);
        self.store_share_memberships();
    }

    /// Completed rebalances per group since this shard started (for metrics).
    pub fn rebalance_counts(&self) -> Vec<(String, u64)> {
        let groups = self.inner.groups.borrow();
        let mut counts: Vec<(String, u64)> = groups
            .values()
            .map(|g| {
                let total = g.rebalances_total + g.consumer.rebalances_total;
                (g.id.clone(), total)
            })
            .collect();
        counts.sort();
        counts
    }

    /// Every committed offset this shard holds, as (group, topic, partition, offset), for
    /// the consumer-lag metric. Copies; callers run it now and then, not per request.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let groups = self.inner.groups.borrow();
        let mut out = Vec::new();
        for g in groups.values() {
            for (topic, partitions) in &g.offsets {
                for (p, entry) in partitions {
                    out.push((g.id.clone(), topic.clone(), *p, entry.offset));
                }
            }
        }
        out
    }

    /// Group-log appends (each one fdatasync) since this shard started (for metrics).
    pub fn log_flushes_total(&self) -> u64 {
        self.inner.log_flushes_total.get()
    }

    /// State and generation of a group (None if unknown): for tests and the admin API.
    pub fn group_state(&self, group_id: &str) -> Option<(GroupState, i32)> {
        let groups = self.inner.groups.borrow();
        groups.get(group_id).map(|g| (g.state, g.generation))
    }

    /// Bytes of a group's offsets log (None if unknown): for tests and metrics.
    pub fn log_len_bytes(&self, group_id: &str) -> Option<u64> {
        let groups = self.inner.groups.borrow();
        groups.get(group_id).map(|g| g.log.durable_len_bytes)
    }
}
