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
//! Owns: group membership, rebalances, committed offsets and their files.
//! Must not: know about sockets, other shards or topics' existence — handlers do that.

pub mod consumer;
pub mod offset_log;
mod state;
#[cfg(test)]
mod tests;

pub use offset_log::{GroupOffsets, OffsetEntry, OffsetLogError};
pub use state::{GroupState, GroupTimings, MAX_MEMBERS_PER_GROUP, Pending};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::BrokerConfig;
use offset_log::LogRecord;
use state::{Group, GroupLog, JoinArgs, PendingWrite, join_error, sync_error};

/// Kafka's `offset.metadata.max.bytes`: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;
/// Kafka's longest legal topic name; longer names never reach the offsets log (whose
/// records are bounded by `offset_log::MAX_RECORD_PAYLOAD_BYTES`).
pub const MAX_TOPIC_NAME_BYTES: usize = 249;
/// Groups one shard keeps (with members or committed offsets). Creating more is refused
/// with COORDINATOR_NOT_AVAILABLE; a guard against clients inventing group ids in a loop.
pub const MAX_GROUPS_PER_SHARD: usize = 100_000;
/// Compact a group log when it is this many times larger than its live state...
pub const COMPACTION_RATIO: u64 = 4;
/// ...and at least this large (tiny logs are not worth a rewrite).
pub const COMPACTION_MIN_LOG_BYTES: u64 = 64 * 1024;
/// Kafka's group type name for the protocol served here (ListGroups v5).
pub const CLASSIC_GROUP_TYPE: &str = "classic";
/// Kafka's group type name for KIP-848 groups.
pub const CONSUMER_GROUP_TYPE: &str = "consumer";

/// Topics and their partitions asked for by OffsetFetch; `None` at the use site means all.
pub type TopicPartitions = Vec<(String, Vec<i32>)>;

/// A partition of an OffsetCommit: accepted for the log, or refused with an error code.
type PartitionOutcome = (i32, Result<(), i16>);

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

impl<T> Pending<T> {
    /// Waits for the answer; `on_cancel` answers if the coordinator dropped the request.
    pub async fn wait(self, on_cancel: T) -> T {
        match self {
            Pending::Ready(r) => r,
            Pending::Waiting(rx) => rx.await.unwrap_or(on_cancel),
        }
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn code(result: Result<(), ResponseError>) -> i16 {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

struct Inner {
    shard_id: usize,
    shard_count: usize,
    dir: PathBuf,
    timings: GroupTimings,
    offsets_retention_ms: i64,
    /// Maps the caller's `Instant` to wall-clock ms (commit timestamps, retention).
    clock_origin: Instant,
    wall_origin_ms: i64,
    groups: RefCell<HashMap<String, Group>>,
    /// fdatasyncs of group logs; fewer than commits when group commit batches them.
    log_flushes_total: Cell<u64>,
}

/// The consumer-group coordinator of one shard. Cheap to clone (shared `Rc`).
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Rc<Inner>,
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
            let mut group = Group::new(
                l.group_id.clone(),
                GroupLog {
                    path: l.path,
                    file: None,
                    durable_len_bytes: l.log_len_bytes,
                    pending: Vec::new(),
                    flushing: false,
                    needs_truncate: false,
                },
            );
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
                log_flushes_total: Cell::new(0),
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

    fn new_group(&self, group_id: &str) -> Option<Group> {
        let path = offset_log::log_path(&self.inner.dir, group_id)?;
        Some(Group::new(
            group_id.to_string(),
            GroupLog {
                path,
                file: None,
                durable_len_bytes: 0,
                pending: Vec::new(),
                flushing: false,
                needs_truncate: false,
            },
        ))
    }

    // ----- KIP-848: ConsumerGroupHeartbeat / ConsumerGroupDescribe ------------------------

    /// ConsumerGroupHeartbeat: join, heartbeat, reconcile or leave (see `consumer`).
    pub fn consumer_heartbeat(
        &self,
        request: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
        topics: &consumer::TopicsView,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let group_id = request.group_id.0.to_string();
        let refuse = |code: ResponseError, message: &str| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(sb(message)))
                .with_member_epoch(-1)
        };
        if group_id.is_empty() || offset_log::escape_group_id(&group_id).is_none() {
            return refuse(ResponseError::InvalidGroupId, "invalid group id");
        }
        let wall = self.wall_ms(now);
        let mut groups = self.inner.groups.borrow_mut();
        if !groups.contains_key(&group_id) {
            if request.member_epoch != 0 {
                return refuse(ResponseError::UnknownMemberId, "unknown group");
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                return refuse(ResponseError::CoordinatorNotAvailable, "too many groups");
            }
            let Some(group) = self.new_group(&group_id) else {
                return refuse(ResponseError::InvalidGroupId, "invalid group id");
            };
            groups.insert(group_id.clone(), group);
        }
        let Some(group) = groups.get_mut(&group_id) else {
            return refuse(ResponseError::CoordinatorNotAvailable, "group vanished");
        };
        if !group.members.is_empty() || group.state != GroupState::Empty {
            // Kafka's answer for a consumer-protocol member of a classic group.
            return refuse(
                ResponseError::GroupIdNotFound,
                "the group uses the classic protocol",
            );
        }
        let response = group.consumer.heartbeat(
            request,
            consumer::ClientIdentity {
                client_id: &client.client_id,
                client_host: &client.client_host,
            },
            topics,
            now,
        );
        if !group.consumer.has_members() {
            group.empty_since_ms = Some(wall);
        } else {
            group.empty_since_ms = None;
        }
        response
    }

    /// ConsumerGroupDescribe for one group: GROUP_ID_NOT_FOUND for unknown or classic groups.
    pub fn consumer_group_describe(
        &self,
        group_id: &str,
        topics: &consumer::TopicsView,
    ) -> kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
        let groups = self.inner.groups.borrow();
        match groups.get(group_id) {
            Some(g) if g.members.is_empty() && g.state == GroupState::Empty => {
                g.consumer.describe(group_id, topics)
            }
            _ => {
                kafka_protocol::messages::consumer_group_describe_response::DescribedGroup::default(
                )
                .with_group_id(GroupId(sb(group_id)))
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(sb("no consumer-protocol group with this id")))
            }
        }
    }

    // ----- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ----------------------------------

    /// JoinGroup. The answer is often `Waiting`: it arrives when the join phase completes.
    pub fn join_group(
        &self,
        request: JoinGroupRequest,
        client: &ClientInfo,
        version: i16,
        now: Instant,
    ) -> Pending<JoinGroupResponse> {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        if group_id.is_empty() || offset_log::escape_group_id(&group_id).is_none() {
            return Pending::Ready(join_error(ResponseError::InvalidGroupId, &member_id));
        }
        let t = &self.inner.timings;
        if request.session_timeout_ms < t.min_session_timeout_ms
            || request.session_timeout_ms > t.max_session_timeout_ms
        {
            return Pending::Ready(join_error(ResponseError::InvalidSessionTimeout, &member_id));
        }
        let session_timeout = Duration::from_millis(request.session_timeout_ms as u64);
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance_timeout = if version >= 1 && request.rebalance_timeout_ms > 0 {
            Duration::from_millis(request.rebalance_timeout_ms as u64)
        } else {
            session_timeout
        };
        let args = JoinArgs {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            session_timeout,
            rebalance_timeout,
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            version,
        };
        let wall = self.wall_ms(now);
        let mut groups = self.inner.groups.borrow_mut();
        if !groups.contains_key(&group_id) {
            if !member_id.is_empty() {
                return Pending::Ready(join_error(ResponseError::UnknownMemberId, &member_id));
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                tracing::warn!(group = %group_id, "refusing a new group: {MAX_GROUPS_PER_SHARD} groups on this shard");
                return Pending::Ready(join_error(
                    ResponseError::CoordinatorNotAvailable,
                    &member_id,
                ));
            }
            let Some(group) = self.new_group(&group_id) else {
                return Pending::Ready(join_error(ResponseError::InvalidGroupId, &member_id));
            };
            groups.insert(group_id.clone(), group);
        }
        let Some(group) = groups.get_mut(&group_id) else {
            return Pending::Ready(join_error(
                ResponseError::CoordinatorNotAvailable,
                &member_id,
            ));
        };
        if group.consumer.has_members() {
            return Pending::Ready(join_error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        group.join(args, now, &self.inner.timings, wall)
    }

    /// JoinGroup, waiting for the answer.
    pub async fn join(
        &self,
        request: JoinGroupRequest,
        client: ClientInfo,
        version: i16,
        now: Instant,
    ) -> JoinGroupResponse {
        let member_id = request.member_id.to_string();
        let cancelled = join_error(ResponseError::CoordinatorNotAvailable, &member_id);
        self.join_group(request, &client, version, now)
            .wait(cancelled)
            .await
    }

    /// SyncGroup. Followers wait (`Waiting`) until the leader sends the assignments.
    pub fn sync_group(
        &self,
        request: SyncGroupRequest,
        version: i16,
        now: Instant,
    ) -> Pending<SyncGroupResponse> {
        let group_id = request.group_id.0.to_string();
        let mut groups = self.inner.groups.borrow_mut();
        let Some(group) = groups.get_mut(&group_id) else {
            return Pending::Ready(sync_error(ResponseError::UnknownMemberId));
        };
        let assignments = request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect();
        group.sync(
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
            version,
            now,
        )
    }

    /// SyncGroup, waiting for the answer.
    pub async fn sync(
        &self,
        request: SyncGroupRequest,
        version: i16,
        now: Instant,
    ) -> SyncGroupResponse {
        self.sync_group(request, version, now)
            .wait(sync_error(ResponseError::CoordinatorNotAvailable))
            .await
    }

    pub fn heartbeat(&self, request: HeartbeatRequest, now: Instant) -> HeartbeatResponse {
        let group_id = request.group_id.0.to_string();
        let mut groups = self.inner.groups.borrow_mut();
        let result = match groups.get_mut(&group_id) {
            None => Err(ResponseError::UnknownMemberId),
            Some(group) => group.heartbeat(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
                now,
            ),
        };
        HeartbeatResponse::default().with_error_code(code(result))
    }

    /// LeaveGroup: v0–v2 name one member; v3+ a batch (by member id or instance id).
    pub fn leave_group(
        &self,
        request: LeaveGroupRequest,
        version: i16,
        now: Instant,
    ) -> LeaveGroupResponse {
        let group_id = request.group_id.0.to_string();
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let wall = self.wall_ms(now);
        let timings = self.inner.timings;
        let mut groups = self.inner.groups.borrow_mut();
        let results: Vec<(String, Option<String>, i16)> = leaving
            .into_iter()
            .map(|(member_id, instance)| {
                let result = match groups.get_mut(&group_id) {
                    None => Err(ResponseError::UnknownMemberId),
                    Some(g) => g.leave(&member_id, instance.as_deref(), now, &timings, wall),
                };
                (member_id, instance, code(result))
            })
            .collect();
        if version >= 3 {
            LeaveGroupResponse::default()
                .with_error_code(0)
                .with_members(
                    results
                        .into_iter()
                        .map(|(member_id, instance, error_code)| {
                            MemberResponse::default()
                                .with_member_id(sb(&member_id))
                                .with_group_instance_id(instance.as_deref().map(sb))
                                .with_error_code(error_code)
                        })
                        .collect(),
                )
        } else {
            let error_code = results.first().map(|r| r.2).unwrap_or(0);
            LeaveGroupResponse::default().with_error_code(error_code)
        }
    }

    // ----- offsets --------------------------------------------------------------------------

    /// Queues records on a group's log and makes sure a flush task runs. Must be called with
    /// the groups borrow held; the flush task only starts running after the caller yields.
    fn enqueue(
        &self,
        group: &mut Group,
        records: Vec<LogRecord>,
    ) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        group.log.pending.push(PendingWrite {
            records,
            done: Some(tx),
        });
        if !group.log.flushing {
            group.log.flushing = true;
            let inner = self.clone();
            let group_id = group.id.clone();
            compio::runtime::spawn(async move { inner.flush_loop(group_id).await }).detach();
        }
        rx
    }

    /// The single writer of one group's log: writes everything queued, fdatasyncs, then
    /// applies the records in memory and acknowledges them; repeats until the queue is empty.
    async fn flush_loop(self, group_id: String) {
        loop {
            let job = {
                let mut groups = self.inner.groups.borrow_mut();
                let Some(g) = groups.get_mut(&group_id) else {
                    return;
                };
                if g.log.pending.is_empty() {
                    g.log.flushing = false;
                    // Idle logs hold no file descriptor: thousands of groups must not
                    // exhaust RLIMIT_NOFILE. Re-opening costs far less than the fsync.
                    g.log.file = None;
                    if g.is_removable() {
                        groups.remove(&group_id);
                    }
                    return;
                }
                let batch = std::mem::take(&mut g.log.pending);
                let mut bytes = Vec::new();
                for write in &batch {
                    for record in &write.records {
                        offset_log::encode_record(&mut bytes, &group_id, record);
                    }
                }
                (
                    batch,
                    bytes,
                    g.log.file.clone(),
                    g.log.path.clone(),
                    g.log.durable_len_bytes,
                    g.log.needs_truncate,
                )
            };
            let (batch, bytes, file, path, position, truncate) = job;
            let written = bytes.len() as u64;
            let result = async {
                let file = match file {
                    Some(f) => f,
                    None => Rc::new(offset_log::open_for_append(&path, position == 0).await?),
                };
                offset_log::append_durably(&file, position, bytes, truncate).await?;
                Ok::<_, std::io::Error>(file)
            }
            .await;
            {
                let mut groups = self.inner.groups.borrow_mut();
                let Some(g) = groups.get_mut(&group_id) else {
                    return;
                };
                match result {
                    Ok(file) => {
                        let flushes = &self.inner.log_flushes_total;
                        flushes.set(flushes.get() + 1);
                        g.log.file = Some(file);
                        g.log.durable_len_bytes = position + written;
                        g.log.needs_truncate = false;
                        for write in batch {
                            for record in &write.records {
                                record.apply(&mut g.offsets);
                            }
                            if let Some(done) = write.done {
                                let _ = done.send(Ok(()));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(group = %group_id, file = %path.display(), error = %e, "offsets log write failed");
                        g.log.file = None;
                        g.log.needs_truncate = true;
                        let message = format!("offsets log {}: {e}", path.display());
                        for write in batch {
                            if let Some(done) = write.done {
                                let _ = done.send(Err(message.clone()));
                            }
                        }
                    }
                }
            }
            self.maybe_compact(&group_id).await;
        }
    }

    /// Called by the flush task only (it is the log's single writer).
    async fn maybe_compact(&self, group_id: &str) {
        enum Plan {
            Remove(PathBuf),
            Snapshot(PathBuf, Vec<u8>),
        }
        let plan = {
            let groups = self.inner.groups.borrow();
            let Some(g) = groups.get(group_id) else {
                return;
            };
            let log_len = g.log.durable_len_bytes;
            if g.offsets.is_empty() {
                (log_len > 0).then(|| Plan::Remove(g.log.path.clone()))
            } else if log_len >= COMPACTION_MIN_LOG_BYTES
                && log_len > COMPACTION_RATIO * live_bytes(group_id, &g.offsets)
            {
                Some(Plan::Snapshot(
                    g.log.path.clone(),
                    offset_log::encode_snapshot(group_id, &g.offsets),
                ))
            } else {
                None
            }
        };
        match plan {
            None => {}
            Some(Plan::Remove(path)) => {
                let result = offset_log::remove_log(&path);
                let mut groups = self.inner.groups.borrow_mut();
                if let Some(g) = groups.get_mut(group_id) {
                    match result {
                        Ok(()) => {
                            g.log.file = None;
                            g.log.durable_len_bytes = 0;
                            g.log.needs_truncate = false;
                        }
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "cannot remove empty offsets log")
                        }
                    }
                }
            }
            Some(Plan::Snapshot(path, snapshot)) => {
                let len = snapshot.len() as u64;
                let result = offset_log::replace_with_snapshot(&path, snapshot).await;
                let mut groups = self.inner.groups.borrow_mut();
                match result {
                    Ok(file) => {
                        if let Some(g) = groups.get_mut(group_id) {
                            g.log.file = Some(Rc::new(file));
                            g.log.durable_len_bytes = len;
                            g.log.needs_truncate = false;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "offsets log compaction failed; keeping the log");
                    }
                }
            }
        }
    }

    /// OffsetCommit (v2–v9). Acknowledged only after the records are fdatasync'ed.
    pub async fn offset_commit(
        &self,
        request: OffsetCommitRequest,
        now: Instant,
    ) -> OffsetCommitResponse {
        let group_id = request.group_id.0.to_string();
        let wall = self.wall_ms(now);
        // Per topic: (partition, accepted | error code).
        let mut outcome: Vec<(TopicName, Vec<PartitionOutcome>)> = Vec::new();
        let mut records = Vec::new();
        let ack = {
            let mut groups = self.inner.groups.borrow_mut();
            let check = if group_id.is_empty() {
                Err(ResponseError::InvalidGroupId)
            } else if let Some(g) = groups.get_mut(&group_id) {
                g.check_commit(
                    &request.member_id,
                    request.group_instance_id.as_deref(),
                    request.generation_id_or_member_epoch,
                    now,
                )
            } else if request.generation_id_or_member_epoch < 0 {
                // A standalone consumer (no group management) may commit to a new group.
                if groups.len() >= MAX_GROUPS_PER_SHARD {
                    tracing::warn!(group = %group_id, "refusing a new group: {MAX_GROUPS_PER_SHARD} groups on this shard");
                    Err(ResponseError::CoordinatorNotAvailable)
                } else if let Some(g) = self.new_group(&group_id) {
                    groups.insert(group_id.clone(), g);
                    Ok(())
                } else {
                    Err(ResponseError::InvalidGroupId)
                }
            } else {
                Err(ResponseError::IllegalGeneration)
            };
            for topic in request.topics {
                let name = topic.name.0.to_string();
                let mut parts = Vec::new();
                for p in topic.partitions {
                    let result = match &check {
                        Err(e) => Err(e.code()),
                        Ok(()) => {
                            let metadata = p
                                .committed_metadata
                                .map(|m| m.to_string())
                                .unwrap_or_default();
                            if name.is_empty() || name.len() > MAX_TOPIC_NAME_BYTES {
                                Err(ResponseError::InvalidTopicException.code())
                            } else if metadata.len() > MAX_OFFSET_METADATA_BYTES {
                                Err(ResponseError::OffsetMetadataTooLarge.code())
                            } else {
                                records.push(LogRecord::Commit {
                                    topic: name.clone(),
                                    partition: p.partition_index,
                                    entry: OffsetEntry {
                                        offset: p.committed_offset,
                                        leader_epoch: p.committed_leader_epoch,
                                        metadata,
                                        commit_ms: wall,
                                    },
                                });
                                Ok(())
                            }
                        }
                    };
                    parts.push((p.partition_index, result));
                }
                outcome.push((topic.name, parts));
            }
            match (&check, groups.get_mut(&group_id)) {
                (Ok(()), Some(g)) if !records.is_empty() => Some(self.enqueue(g, records)),
                _ => None,
            }
        };
        let durable = match ack {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(r) => r,
                Err(_) => Err("offsets log writer stopped".to_string()),
            },
        };
        if let Err(e) = &durable {
            tracing::warn!(group = %group_id, error = %e, "offset commit not durable");
        }
        let topics = outcome
            .into_iter()
            .map(|(name, parts)| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(partition, result)| {
                                let error_code = match (result, &durable) {
                                    (Err(c), _) => c,
                                    (Ok(()), Ok(())) => 0,
                                    (Ok(()), Err(_)) => {
                                        ResponseError::CoordinatorNotAvailable.code()
                                    }
                                };
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(partition)
                                    .with_error_code(error_code)
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// Committed offsets of one group, in the v8+ shape. `topics: None` means all.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<TopicPartitions>,
    ) -> OffsetFetchResponseGroup {
        let groups = self.inner.groups.borrow();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        let entry = |e: Option<&OffsetEntry>, partition: i32| match e {
            Some(e) => OffsetFetchResponsePartitions::default()
                .with_partition_index(partition)
                .with_committed_offset(e.offset)
                .with_committed_leader_epoch(e.leader_epoch)
                .with_metadata(Some(sb(&e.metadata))),
            None => OffsetFetchResponsePartitions::default()
                .with_partition_index(partition)
                .with_committed_offset(-1)
                .with_committed_leader_epoch(-1)
                .with_metadata(Some(StrBytes::default())),
        };
        let topics: Vec<OffsetFetchResponseTopics> = match topics {
            None => offsets
                .into_iter()
                .flat_map(|o| o.iter())
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(parts.iter().map(|(p, e)| entry(Some(e), *p)).collect())
                })
                .collect(),
            Some(wanted) => wanted
                .into_iter()
                .map(|(topic, partitions)| {
                    let committed = offsets.and_then(|o| o.get(&topic));
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(sb(&topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| entry(committed.and_then(|c| c.get(&p)), p))
                                .collect(),
                        )
                })
                .collect(),
        };
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(sb(group_id)))
            .with_topics(topics)
            .with_error_code(0)
    }

    /// OffsetFetch when every group in it lives on this shard (tests, single shard).
    pub fn offset_fetch(&self, request: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let groups = offset_fetch_wanted(request, version)
            .into_iter()
            .map(|(g, topics)| self.fetch_offsets(&g, topics))
            .collect();
        offset_fetch_response(groups, version)
    }

    /// OffsetDelete: partitions of topics the group's members subscribe to are refused with
    /// GROUP_SUBSCRIBED_TO_TOPIC (a non-consumer group with members: NON_EMPTY_GROUP); the
    /// rest are deleted durably (tombstones fdatasync'ed) before answering.
    pub async fn offset_delete(
        &self,
        request: OffsetDeleteRequest,
        now: Instant,
    ) -> OffsetDeleteResponse {
        let group_id = request.group_id.0.to_string();
        let wall = self.wall_ms(now);
        // Per requested partition: Ok = delete (if committed), Err = refused with a code.
        let mut decisions: Vec<(TopicName, Vec<(i32, i16)>)> = Vec::new();
        let (top_error, rx) = {
            let mut groups = self.inner.groups.borrow_mut();
            match groups.get_mut(&group_id) {
                None => (ResponseError::GroupIdNotFound.code(), None),
                Some(g) => {
                    // Kafka: a non-empty group may only drop offsets of topics it does not
                    // consume; a non-consumer group that has members may drop none.
                    let subscribed = g.subscribed_topics();
                    if g.has_members() && subscribed.is_none() {
                        (ResponseError::NonEmptyGroup.code(), None)
                    } else {
                        let mut records = Vec::new();
                        for t in &request.topics {
                            let topic = t.name.0.as_str();
                            let refused = subscribed.as_ref().is_some_and(|s| s.contains(topic));
                            let mut parts = Vec::new();
                            for p in &t.partitions {
                                if refused {
                                    parts.push((
                                        p.partition_index,
                                        ResponseError::GroupSubscribedToTopic.code(),
                                    ));
                                    continue;
                                }
                                let committed = g
                                    .offsets
                                    .get(topic)
                                    .is_some_and(|ps| ps.contains_key(&p.partition_index));
                                if committed {
                                    records.push(LogRecord::DeletePartition {
                                        topic: topic.to_string(),
                                        partition: p.partition_index,
                                        at_ms: wall,
                                    });
                                }
                                parts.push((p.partition_index, 0));
                            }
                            decisions.push((t.name.clone(), parts));
                        }
                        let rx = (!records.is_empty()).then(|| self.enqueue(g, records));
                        (0, rx)
                    }
                }
            }
        };
        if top_error != 0 {
            return OffsetDeleteResponse::default().with_error_code(top_error);
        }
        let durable = match rx {
            None => true,
            Some(rx) => matches!(rx.await, Ok(Ok(()))),
        };
        let topics = decisions
            .into_iter()
            .map(|(name, parts)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(partition, code)| {
                                let code = if code == 0 && !durable {
                                    ResponseError::CoordinatorNotAvailable.code()
                                } else {
                                    code
                                };
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(partition)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetDeleteResponse::default()
            .with_error_code(0)
            .with_topics(topics)
    }

    /// Deletes offsets of Empty groups older than `offsets_retention_ms` (KIP-211: counted
    /// from the later of the commit and the moment the group became empty). Returns how
    /// many offsets were removed.
    pub async fn expire_offsets(&self, now: Instant) -> usize {
        let wall = self.wall_ms(now);
        let retention = self.inner.offsets_retention_ms;
        let mut waits = Vec::new();
        let mut expired_total = 0;
        {
            let mut groups = self.inner.groups.borrow_mut();
            for g in groups.values_mut() {
                if g.state != GroupState::Empty || g.has_members() {
                    continue;
                }
                let base_ms = g.empty_since_ms.unwrap_or(i64::MIN);
                let records: Vec<LogRecord> = g
                    .offsets
                    .iter()
                    .flat_map(|(topic, parts)| {
                        parts
                            .iter()
                            .filter(|(_, e)| {
                                e.commit_ms.max(base_ms).saturating_add(retention) <= wall
                            })
                            .map(|(p, _)| LogRecord::DeletePartition {
                                topic: topic.clone(),
                                partition: *p,
                                at_ms: wall,
                            })
                    })
                    .collect();
                if records.is_empty() {
                    continue;
                }
                expired_total += records.len();
                waits.push(self.enqueue(g, records));
            }
        }
        for rx in waits {
            if let Ok(Err(e)) = rx.await {
                tracing::warn!(error = %e, "offset expiry not written; retried next time");
            }
        }
        expired_total
    }

    // ----- admin ----------------------------------------------------------------------------

    /// The groups of this shard for ListGroups (the handler concatenates all shards).
    pub fn list_groups(&self, request: &ListGroupsRequest) -> Vec<ListedGroup> {
        let states: Vec<String> = request
            .states_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let types: Vec<String> = request
            .types_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let groups = self.inner.groups.borrow();
        let mut listed: Vec<ListedGroup> = groups
            .values()
            .map(|g| {
                if g.consumer.has_members() {
                    (g, CONSUMER_GROUP_TYPE, g.consumer.state_name(), "consumer")
                } else {
                    let protocol = g.protocol_type.as_deref().unwrap_or("");
                    (g, CLASSIC_GROUP_TYPE, g.state.name(), protocol)
                }
            })
            .filter(|(_, kind, _, _)| types.is_empty() || types.iter().any(|t| t == kind))
            .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
            .map(|(g, kind, state, protocol)| {
                ListedGroup::default()
                    .with_group_id(GroupId(sb(&g.id)))
                    .with_protocol_type(sb(protocol))
                    .with_group_state(sb(state))
                    .with_group_type(sb(kind))
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
        listed
    }

    /// One group for DescribeGroups. Unknown groups are "Dead" with no error, as in Kafka.
    pub fn describe_group(&self, group_id: &str, version: i16) -> DescribedGroup {
        let groups = self.inner.groups.borrow();
        let described = DescribedGroup::default()
            .with_error_code(0)
            .with_group_id(GroupId(sb(group_id)));
        let Some(g) = groups.get(group_id) else {
            return described.with_group_state(sb(GroupState::Dead.name()));
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let members = g
            .member_list()
            .into_iter()
            .map(|m| {
                let metadata = if stable {
                    m.protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default()
                } else {
                    Bytes::new()
                };
                DescribedGroupMember::default()
                    .with_member_id(sb(&m.member_id))
                    .with_group_instance_id(if version >= 4 {
                        m.group_instance_id.as_deref().map(sb)
                    } else {
                        None
                    })
                    .with_client_id(sb(&m.client_id))
                    .with_client_host(sb(&m.client_host))
                    .with_member_metadata(metadata)
                    .with_member_assignment(if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    })
            })
            .collect();
        let protocol_data = match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => protocol,
            _ => String::new(),
        };
        described
            .with_group_state(sb(g.state.name()))
            .with_protocol_type(sb(g.protocol_type.as_deref().unwrap_or("")))
            .with_protocol_data(sb(&protocol_data))
            .with_members(members)
    }

    /// DeleteGroups for one group: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, or its offsets are
    /// durably deleted and the group forgotten.
    pub async fn delete_group(&self, group_id: &str, now: Instant) -> i16 {
        let wall = self.wall_ms(now);
        let rx = {
            let mut groups = self.inner.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                return ResponseError::GroupIdNotFound.code();
            };
            if g.has_members() || g.state != GroupState::Empty {
                return ResponseError::NonEmptyGroup.code();
            }
            if g.offsets.is_empty() && g.log.pending.is_empty() && !g.log.flushing {
                groups.remove(group_id);
                return 0;
            }
            self.enqueue(g, vec![LogRecord::DeleteGroup { at_ms: wall }])
        };
        match rx.await {
            Ok(Ok(())) => {
                let mut groups = self.inner.groups.borrow_mut();
                if groups.get(group_id).is_some_and(|g| g.is_removable()) {
                    groups.remove(group_id);
                }
                0
            }
            _ => ResponseError::CoordinatorNotAvailable.code(),
        }
    }

    // ----- timers and metrics -------------------------------------------------------------

    /// Session expiry, rebalance timeouts and the initial rebalance delay. Call every ~100 ms.
    pub fn tick(&self, now: Instant) {
        let wall = self.wall_ms(now);
        let timings = self.inner.timings;
        let mut groups = self.inner.groups.borrow_mut();
        for g in groups.values_mut() {
            g.tick(now, &timings, wall);
        }
        groups.retain(|_, g| !g.is_removable());
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

/// Bytes a snapshot of `offsets` takes (frame headers included), without building it.
fn live_bytes(group_id: &str, offsets: &GroupOffsets) -> u64 {
    let fixed = (offset_log::FRAME_HEADER_BYTES + 1 + 8 + 2 + 2 + 4 + 8 + 4 + 4) as u64;
    offsets
        .iter()
        .map(|(topic, parts)| {
            parts
                .values()
                .map(|e| fixed + (group_id.len() + topic.len() + e.metadata.len()) as u64)
                .sum::<u64>()
        })
        .sum()
}

/// The (group, topics) pairs an OffsetFetch asks for, from either the v1–v7 single-group
/// form or the v8+ batched form. `None` topics means "all committed".
pub fn offset_fetch_wanted(
    request: &OffsetFetchRequest,
    version: i16,
) -> Vec<(String, Option<TopicPartitions>)> {
    if version >= 8 {
        request
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                (g.group_id.0.to_string(), topics)
            })
            .collect()
    } else {
        let topics = request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        vec![(request.group_id.0.to_string(), topics)]
    }
}

/// Builds the OffsetFetch answer in the request's version from per-group results.
pub fn offset_fetch_response(
    groups: Vec<OffsetFetchResponseGroup>,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let Some(group) = groups.into_iter().next() else {
        return OffsetFetchResponse::default();
    };
    let topics = group
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(p.metadata)
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.error_code = group.error_code;
    }
    response
}

/// FindCoordinator (v0–v6): this broker coordinates every group and transaction id (the
/// owning shard is reached internally), so the answer is always this node.
pub fn find_coordinator(
    request: &FindCoordinatorRequest,
    version: i16,
    node_id: i32,
    host: &str,
    port: i32,
) -> FindCoordinatorResponse {
    const KEY_TYPE_GROUP: i8 = 0;
    const KEY_TYPE_TRANSACTION: i8 = 1;
    let check = |key: &str| -> i16 {
        let key_type = if version >= 1 {
            request.key_type
        } else {
            KEY_TYPE_GROUP
        };
        if key_type != KEY_TYPE_GROUP && key_type != KEY_TYPE_TRANSACTION {
            return ResponseError::InvalidRequest.code();
        }
        if key.is_empty() {
            return ResponseError::InvalidRequest.code();
        }
        0
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let error_code = check(key);
                let c = Coordinator::default()
                    .with_key(key.clone())
                    .with_error_code(error_code);
                if error_code == 0 {
                    c.with_node_id(BrokerId(node_id))
                        .with_host(sb(host))
                        .with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let error_code = check(&request.key);
    if error_code != 0 {
        return FindCoordinatorResponse::default()
            .with_error_code(error_code)
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_error_code(0)
        .with_node_id(BrokerId(node_id))
        .with_host(sb(host))
        .with_port(port)
}
