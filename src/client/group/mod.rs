//! Classic consumer-group membership (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) with a
//! range assignor run by the leader, committed offsets (OffsetCommit / OffsetFetch), and the
//! group admin calls (ListGroups / DescribeGroups / DeleteGroups).
//!
//! Files, one job each: `coordinator` (FindCoordinator), `member` (the join/sync state
//! machine and heartbeats), `assignor` (consumer protocol payloads, range assignment),
//! `offsets` (commit/fetch), `admin` (list/describe/delete). This file owns the shared
//! limits, the configuration and the error codes the state machine reacts to.
//!
//! Must not: fetch records or own positions; callers pair it with a `Consumer`.

mod admin;
mod assignor;
mod coordinator;
mod member;
mod offsets;
mod share;

pub use admin::{
    DescribedGroup, DescribedMember, ListedGroup, delete_group, describe_group, list_groups,
};
pub use assignor::range_assign;
pub use coordinator::find_coordinator;
pub use member::GroupMember;
pub use offsets::{commit_offsets, fetch_committed};
pub use share::{
    DescribedShareGroup, ShareMember, describe_share_group, share_group_start_offsets,
};

use kafka_protocol::ResponseError;
use std::time::Duration;

/// Default session timeout (Java `session.timeout.ms` since 3.0).
pub const SESSION_TIMEOUT_MS_DEFAULT: i32 = 45_000;
/// Default rebalance timeout (Java `max.poll.interval.ms`).
pub const REBALANCE_TIMEOUT_MS_DEFAULT: i32 = 60_000;
/// Default heartbeat interval (Java `heartbeat.interval.ms`).
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 3_000;
/// JoinGroup / SyncGroup rounds tried before giving up (coordinator moves, rebalances).
pub const JOIN_ATTEMPTS_MAX: u32 = 10;
/// Pause between retries of coordinator lookups.
pub const COORDINATOR_BACKOFF_MS: u64 = 200;
/// The assignor this client implements.
pub const RANGE_ASSIGNOR: &str = "range";

// The codes the join/sync state machine and coordinator lookups react to, named once from
// the protocol crate so the whole client speaks one vocabulary.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = ResponseError::CoordinatorLoadInProgress.code();
const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval: Duration,
}

impl GroupConfig {
    pub fn new(group_id: &str) -> GroupConfig {
        GroupConfig {
            group_id: group_id.to_string(),
            session_timeout_ms: SESSION_TIMEOUT_MS_DEFAULT,
            rebalance_timeout_ms: REBALANCE_TIMEOUT_MS_DEFAULT,
            heartbeat_interval: Duration::from_millis(HEARTBEAT_INTERVAL_MS_DEFAULT),
        }
    }
}

/// Outcome of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatStatus {
    Ok,
    /// The group is rebalancing (or forgot us): commit, then `rejoin`.
    RejoinNeeded,
}
