//! Classic consumer groups and committed offsets: Kafka's group coordinator for one shard.
//!
//! A group lives on exactly one shard (`owner_shard`, the same function as
//! `shard::placement::shard_for_group`); that shard's `GroupCoordinator` holds its members,
//! runs its rebalances and persists its offsets. The coordinator is `!Send`: state sits in a
//! `RefCell` that is never borrowed across an `.await`.
//!
//! Time is an argument: every request takes `now: Instant`, and the shard calls
//! `tick(now)` about every 100 ms (session expiry, rebalance timeouts, initial delay) and
//! `expire_offsets(now)` now and then (offset retention). Requests that must wait for other
//! members (JoinGroup, SyncGroup) come back as `Pending::Waiting(oneshot)`.
//!
//! Durability: committed offsets go to one log per group (see `offset_log`), written by one
//! flush task per group that batches every commit queued while the previous write was in
//! flight (group commit) and fdatasyncs before any of them is acknowledged or becomes
//! visible to OffsetFetch. A log more than `COMPACTION_RATIO` times its live state is
//! replaced by a snapshot.
//!
//! Where things are (one file per protocol, all `impl GroupCoordinator` blocks on the struct
//! of `coordinator`):
//! - `coordinator`: the struct, opening a shard's groups, timers, metrics and limits;
//! - `classic`: JoinGroup / SyncGroup / Heartbeat / LeaveGroup (state machine in `state`);
//! - `consumer_protocol`: KIP-848 ConsumerGroupHeartbeat / ConsumerGroupDescribe (per-group
//!   logic in `consumer`);
//! - `offsets`: OffsetCommit / OffsetFetch / OffsetDelete and retention;
//! - `offset_log_writer`: the single writer of each group's offsets log and its compaction
//!   (the file format is `offset_log`);
//! - `replicated`: cluster mode, where the records go through the metadata Raft log instead
//!   of the group's file (decision 0018); `membership`: cluster mode's stored classic
//!   membership, loaded by the broker that takes a group over (decision 0024);
//! - `txn_offsets`: TxnOffsetCommit offsets held until their transaction completes;
//!   `txn_offsets_cluster`: cluster mode's, replicated and ended by the transaction's marker
//!   at the group's coordinator (decision 0022); `txn_guard`: their verification guards
//!   (a proposal verified before the marker cannot land after it);
//! - `share_protocol`: KIP-932 share groups — ShareGroupHeartbeat / ShareGroupDescribe and
//!   share sessions (per-group logic in `share`; records' state is `partition::share`);
//!   `share_membership`: cluster mode's stored share groups (decision 0028);
//! - `resign`: cluster mode, unloading the groups whose coordinator slot moved away;
//! - `admin`: ListGroups / DescribeGroups / DeleteGroups; `find_coordinator`: FindCoordinator.
//!
//! Owns: group membership, rebalances, committed offsets and their files.
//! Must not: know about sockets, other shards or topics' existence — handlers do that.
//! This file only declares modules and re-exports the public paths the rest of the broker
//! uses; it holds no logic, so no sibling imports from it.

mod admin;
mod classic;
pub mod consumer;
mod consumer_protocol;
mod coordinator;
mod find_coordinator;
mod membership;
pub mod offset_log;
mod offset_log_writer;
mod offsets;
mod replicated;
mod resign;
pub mod share;
mod share_membership;
mod share_protocol;
mod state;
#[cfg(test)]
mod tests;
mod txn_guard;
mod txn_offsets;
mod txn_offsets_cluster;
mod wire;

pub use coordinator::{
    CLASSIC_GROUP_TYPE, CONSUMER_GROUP_TYPE, ClientInfo, GroupCoordinator, GroupError,
    MAX_GROUPS_PER_SHARD, SHARE_GROUP_TYPE, owner_shard,
};
pub use find_coordinator::{CoordinatorKeyType, find_coordinator};
pub use membership::MEMBERSHIP_COMMIT_WAIT_MS;
pub use offset_log::{GroupOffsets, OffsetEntry, OffsetLogError};
pub use offset_log_writer::{COMPACTION_MIN_LOG_BYTES, COMPACTION_RATIO, WriteError};
pub use offsets::{
    MAX_OFFSET_METADATA_BYTES, MAX_TOPIC_NAME_BYTES, TopicPartitions, offset_fetch_response,
    offset_fetch_wanted,
};
pub use replicated::{OffsetsReplicator, WriteOrigin};
pub use state::{GroupState, GroupTimings, MAX_MEMBERS_PER_GROUP, Pending};
pub use txn_offsets::{MAX_PENDING_TXN_OFFSETS_PER_PRODUCER, TxnCommitter, TxnOffset};
pub use txn_offsets_cluster::MAX_PENDING_TXN_OFFSETS_PER_GROUP;
