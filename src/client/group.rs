//! Classic consumer-group membership (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) with a
//! range assignor run by the leader, committed offsets (OffsetCommit / OffsetFetch), and the
//! group admin calls (ListGroups / DescribeGroups / DeleteGroups).
//!
//! Must not: fetch records or own positions; callers pair it with a `Consumer`.

use super::cluster::Client;
use super::connection::Connection;
use super::error::{ClientError, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
    consumer_protocol_assignment::TopicPartition as AssignedTopic,
    join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
    sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
/// Version of the consumer protocol subscription/assignment payloads we write.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;
/// The assignor this client implements.
pub const RANGE_ASSIGNOR: &str = "range";

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

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

/// This process's membership in one group.
pub struct GroupMember {
    config: GroupConfig,
    topics: Vec<String>,
    coordinator: i32,
    member_id: String,
    generation_id: i32,
    leader: bool,
    assignment: BTreeMap<String, Vec<i32>>,
    last_heartbeat: Instant,
}

/// Finds the coordinator node of `group_id` and registers its address with the client.
pub fn find_coordinator(client: &mut Client, group_id: &str) -> Result<i32> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let conn = client.any_connection()?;
        let version = conn.version_of::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group_id.to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let response = conn.call(&request)?;
        let (code, message, node, host, port) = if version >= 4 {
            let c = response.coordinators.first().ok_or_else(|| {
                ClientError::Invalid("FindCoordinator returned no coordinator".to_string())
            })?;
            (
                c.error_code,
                c.error_message.clone(),
                c.node_id.0,
                c.host.clone(),
                c.port,
            )
        } else {
            (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.clone(),
                response.port,
            )
        };
        if code == 0 {
            client.add_broker(node, format!("{}:{}", host.as_str(), port));
            return Ok(node);
        }
        let err = ClientError::from_code(
            code,
            format!("find coordinator of group `{group_id}`"),
            message.as_deref(),
        )
        .unwrap_or_else(|| ClientError::Invalid("unreachable".to_string()));
        if (code == COORDINATOR_NOT_AVAILABLE || code == COORDINATOR_LOAD_IN_PROGRESS)
            && attempt < JOIN_ATTEMPTS_MAX
        {
            std::thread::sleep(Duration::from_millis(COORDINATOR_BACKOFF_MS));
            continue;
        }
        return Err(err);
    }
}

/// Range assignment (Java `RangeAssignor`): per topic, partitions in order split into
/// contiguous ranges over members sorted by id; the first `n % m` members get one extra.
pub fn range_assign(
    members: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut result: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        subscribers.sort();
        if subscribers.is_empty() {
            continue;
        }
        let per = count / subscribers.len() as i32;
        let extra = count % subscribers.len() as i32;
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let n = per + i32::from((i as i32) < extra);
            if n > 0
                && let Some(entry) = result.get_mut(*member)
            {
                entry.insert(topic.clone(), (next..next + n).collect());
            }
            next += n;
        }
    }
    result
}

impl GroupMember {
    /// Joins the group subscribed to `topics` and waits for this member's assignment.
    pub fn join(client: &mut Client, config: GroupConfig, topics: &[String]) -> Result<Self> {
        let coordinator = find_coordinator(client, &config.group_id)?;
        let mut member = GroupMember {
            config,
            topics: topics.to_vec(),
            coordinator,
            member_id: String::new(),
            generation_id: -1,
            leader: false,
            assignment: BTreeMap::new(),
            last_heartbeat: Instant::now(),
        };
        member.rejoin(client)?;
        Ok(member)
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    pub fn group_id(&self) -> &str {
        &self.config.group_id
    }

    /// Partitions assigned to this member, per topic.
    pub fn assignment(&self) -> &BTreeMap<String, Vec<i32>> {
        &self.assignment
    }

    fn coordinator_conn<'a>(&self, client: &'a mut Client) -> Result<&'a mut Connection> {
        client.broker_connection(self.coordinator)
    }

    /// Runs JoinGroup + SyncGroup until this member has an assignment for a stable
    /// generation, handling MEMBER_ID_REQUIRED, coordinator moves and concurrent rebalances.
    pub fn rejoin(&mut self, client: &mut Client) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.join_and_sync(client) {
                Ok(()) => {
                    self.last_heartbeat = Instant::now();
                    return Ok(());
                }
                Err(e) if attempt < JOIN_ATTEMPTS_MAX => match e.kafka_code() {
                    Some(NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE) => {
                        client.drop_connection(self.coordinator);
                        std::thread::sleep(Duration::from_millis(COORDINATOR_BACKOFF_MS));
                        self.coordinator = find_coordinator(client, &self.config.group_id)?;
                    }
                    Some(UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION) => {
                        self.member_id.clear();
                        self.generation_id = -1;
                    }
                    Some(REBALANCE_IN_PROGRESS | COORDINATOR_LOAD_IN_PROGRESS) => {}
                    _ if e.is_retriable() => {
                        client.drop_connection(self.coordinator);
                        std::thread::sleep(Duration::from_millis(COORDINATOR_BACKOFF_MS));
                    }
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    fn subscription_metadata(&self) -> Result<Bytes> {
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            self.topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&CONSUMER_PROTOCOL_VERSION.to_be_bytes());
        subscription
            .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
            .map_err(|e| ClientError::Invalid(format!("encode subscription: {e}")))?;
        Ok(buf.freeze())
    }

    fn join_and_sync(&mut self, client: &mut Client) -> Result<()> {
        let group = self.config.group_id.clone();
        let metadata = self.subscription_metadata()?;
        let mut join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_session_timeout_ms(self.config.session_timeout_ms)
            .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(RANGE_ASSIGNOR))
                    .with_metadata(metadata),
            ]);
        let mut response = self.coordinator_conn(client)?.call(&join)?;
        // KIP-394: first join returns MEMBER_ID_REQUIRED with our id; join again with it.
        if response.error_code == MEMBER_ID_REQUIRED {
            self.member_id = response.member_id.to_string();
            join = join.with_member_id(StrBytes::from_string(self.member_id.clone()));
            response = self.coordinator_conn(client)?.call(&join)?;
        }
        if let Some(err) =
            ClientError::from_code(response.error_code, format!("join group `{group}`"), None)
        {
            return Err(err);
        }
        self.member_id = response.member_id.to_string();
        self.generation_id = response.generation_id;
        self.leader = response.leader.as_str() == self.member_id;
        let protocol_name = response.protocol_name.clone();

        let assignments = if self.leader {
            self.leader_assign(client, &response.members)?
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(protocol_name)
            .with_assignments(assignments);
        let conn = self.coordinator_conn(client)?;
        let version = conn.version_of::<SyncGroupRequest>()?;
        // protocol_type/name exist from v5 only; encoding them earlier is an error.
        let sync = if version >= 5 {
            sync
        } else {
            sync.with_protocol_type(None).with_protocol_name(None)
        };
        let response = conn.call(&sync)?;
        if let Some(err) =
            ClientError::from_code(response.error_code, format!("sync group `{group}`"), None)
        {
            return Err(err);
        }
        self.assignment = decode_assignment(&response.assignment)?;
        Ok(())
    }

    fn leader_assign(
        &self,
        client: &mut Client,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions = Vec::with_capacity(members.len());
        for m in members {
            if m.metadata.len() < 2 {
                return Err(ClientError::Invalid(format!(
                    "member {} sent empty subscription metadata",
                    m.member_id.as_str()
                )));
            }
            let version = i16::from_be_bytes([m.metadata[0], m.metadata[1]]);
            let mut buf = m.metadata.slice(2..);
            // Newer members may write a newer version; its prefix is v0-compatible.
            let sub = ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)).map_err(
                |e| {
                    ClientError::Invalid(format!(
                        "member {} subscription: {e}",
                        m.member_id.as_str()
                    ))
                },
            )?;
            subscriptions.push((
                m.member_id.to_string(),
                sub.topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            ));
        }
        let mut counts = BTreeMap::new();
        for (_, topics) in &subscriptions {
            for t in topics {
                if !counts.contains_key(t) {
                    client.invalidate_topic(t);
                    let meta = client.topic(t, false)?;
                    counts.insert(t.clone(), meta.partitions.len() as i32);
                }
            }
        }
        let plan = range_assign(&subscriptions, &counts);
        let mut out = Vec::with_capacity(plan.len());
        for (member, topics) in plan {
            let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        AssignedTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t)))
                            .with_partitions(parts)
                    })
                    .collect(),
            );
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&CONSUMER_PROTOCOL_VERSION.to_be_bytes());
            assignment
                .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
                .map_err(|e| ClientError::Invalid(format!("encode assignment: {e}")))?;
            out.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(buf.freeze()),
            );
        }
        Ok(out)
    }

    /// Sends a heartbeat if `heartbeat_interval` has passed since the last one.
    pub fn maybe_heartbeat(&mut self, client: &mut Client) -> Result<HeartbeatStatus> {
        if self.last_heartbeat.elapsed() < self.config.heartbeat_interval {
            return Ok(HeartbeatStatus::Ok);
        }
        self.heartbeat(client)
    }

    pub fn heartbeat(&mut self, client: &mut Client) -> Result<HeartbeatStatus> {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.config.group_id.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let response = self.coordinator_conn(client)?.call(&request)?;
        self.last_heartbeat = Instant::now();
        match response.error_code {
            0 => Ok(HeartbeatStatus::Ok),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID | NOT_COORDINATOR => {
                Ok(HeartbeatStatus::RejoinNeeded)
            }
            code => Err(ClientError::from_code(
                code,
                format!("heartbeat in group `{}`", self.config.group_id),
                None,
            )
            .unwrap_or_else(|| ClientError::Invalid("unreachable".to_string()))),
        }
    }

    /// Commits `offsets` as (topic, partition, next offset to read) for this generation.
    pub fn commit(&mut self, client: &mut Client, offsets: &[(String, i32, i64)]) -> Result<()> {
        commit_offsets(
            client,
            self.coordinator,
            &self.config.group_id,
            self.generation_id,
            &self.member_id,
            offsets,
        )
    }

    /// Committed offsets of this member's assignment; `None` where nothing is committed.
    pub fn committed(&mut self, client: &mut Client) -> Result<Vec<(String, i32, Option<i64>)>> {
        let wanted: Vec<(String, Vec<i32>)> = self
            .assignment
            .iter()
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        fetch_committed(
            client,
            self.coordinator,
            &self.config.group_id,
            Some(&wanted),
        )
    }

    /// Leaves the group so the others rebalance without waiting for the session timeout.
    pub fn leave(self, client: &mut Client) -> Result<()> {
        let conn = client.broker_connection(self.coordinator)?;
        let version = conn.version_of::<LeaveGroupRequest>()?;
        let group = GroupId(StrBytes::from_string(self.config.group_id.clone()));
        let request = if version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group)
                .with_members(vec![
                    MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(self.member_id.clone())),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
        };
        let response = conn.call(&request)?;
        let code = if response.error_code != 0 {
            response.error_code
        } else {
            response
                .members
                .iter()
                .map(|m| m.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0)
        };
        match ClientError::from_code(
            code,
            format!("leave group `{}`", self.config.group_id),
            None,
        ) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn decode_assignment(raw: &Bytes) -> Result<BTreeMap<String, Vec<i32>>> {
    let mut out = BTreeMap::new();
    if raw.len() < 2 {
        // An empty assignment: this member got nothing (more members than partitions).
        return Ok(out);
    }
    let version = i16::from_be_bytes([raw[0], raw[1]]);
    let mut body = raw.slice(2..);
    let assignment = ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3))
        .map_err(|e| ClientError::Invalid(format!("decode group assignment: {e}")))?;
    for t in assignment.assigned_partitions {
        let mut parts = t.partitions;
        parts.sort_unstable();
        out.insert(t.topic.0.to_string(), parts);
    }
    Ok(out)
}

/// OffsetCommit to `coordinator`. `generation_id` -1 and empty `member_id` commit as a
/// simple (non-member) consumer.
pub fn commit_offsets(
    client: &mut Client,
    coordinator: i32,
    group_id: &str,
    generation_id: i32,
    member_id: &str,
    offsets: &[(String, i32, i64)],
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (t, p, o) in offsets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let conn = client.broker_connection(coordinator)?;
    let version = conn.version_of::<OffsetCommitRequest>()?;
    // retention_time_ms exists in v2..=4 only; -1 = broker default.
    let request = if (2..=4).contains(&version) {
        request.with_retention_time_ms(-1)
    } else {
        request
    };
    let response = conn.call(&request)?;
    for t in &response.topics {
        for p in &t.partitions {
            if let Some(err) = ClientError::from_code(
                p.error_code,
                format!(
                    "commit offset of {}-{} for group `{group_id}`",
                    t.name.0.as_str(),
                    p.partition_index
                ),
                None,
            ) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// OffsetFetch from `coordinator` for (topic, partitions), or every committed partition
/// when `wanted` is `None`. An offset of `None` means nothing is committed.
pub fn fetch_committed(
    client: &mut Client,
    coordinator: i32,
    group_id: &str,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Result<Vec<(String, i32, Option<i64>)>> {
    let conn = client.broker_connection(coordinator)?;
    let version = conn.version_of::<OffsetFetchRequest>()?;
    let group = GroupId(StrBytes::from_string(group_id.to_string()));
    let request = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group)
                .with_topics(wanted.map(|w| {
                    w.iter()
                        .map(|(t, p)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(TopicName(StrBytes::from_string(t.clone())))
                                .with_partition_indexes(p.clone())
                        })
                        .collect()
                })),
        ])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(group)
            .with_topics(wanted.map(|w| {
                w.iter()
                    .map(|(t, p)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.clone())))
                            .with_partition_indexes(p.clone())
                    })
                    .collect()
            }))
    };
    let response = conn.call(&request)?;
    let context = format!("fetch committed offsets of group `{group_id}`");
    let mut out = Vec::new();
    if version >= 8 {
        for g in &response.groups {
            if let Some(err) = ClientError::from_code(g.error_code, context.clone(), None) {
                return Err(err);
            }
            for t in &g.topics {
                for p in &t.partitions {
                    if let Some(err) = ClientError::from_code(p.error_code, context.clone(), None) {
                        return Err(err);
                    }
                    let o = (p.committed_offset >= 0).then_some(p.committed_offset);
                    out.push((t.name.0.to_string(), p.partition_index, o));
                }
            }
        }
    } else {
        if let Some(err) = ClientError::from_code(response.error_code, context.clone(), None) {
            return Err(err);
        }
        for t in &response.topics {
            for p in &t.partitions {
                if let Some(err) = ClientError::from_code(p.error_code, context.clone(), None) {
                    return Err(err);
                }
                let o = (p.committed_offset >= 0).then_some(p.committed_offset);
                out.push((t.name.0.to_string(), p.partition_index, o));
            }
        }
    }
    Ok(out)
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

/// Groups known to every broker in the cluster, sorted by id.
pub fn list_groups(client: &mut Client) -> Result<Vec<ListedGroup>> {
    let nodes: Vec<i32> = client.brokers().keys().copied().collect();
    let mut out = Vec::new();
    for node in nodes {
        let response = client
            .broker_connection(node)?
            .call(&ListGroupsRequest::default())?;
        if let Some(err) = ClientError::from_code(response.error_code, "list groups", None) {
            return Err(err);
        }
        out.extend(response.groups.iter().map(|g| ListedGroup {
            group_id: g.group_id.0.to_string(),
            protocol_type: g.protocol_type.to_string(),
            state: g.group_state.to_string(),
        }));
    }
    out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    out.dedup_by(|a, b| a.group_id == b.group_id);
    Ok(out)
}

/// A member as DescribeGroups reports it, with its decoded assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub assignment: BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

/// Describes one group (asks its coordinator).
pub fn describe_group(client: &mut Client, group_id: &str) -> Result<DescribedGroup> {
    let coordinator = find_coordinator(client, group_id)?;
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group_id.to_string()))]);
    let response = client.broker_connection(coordinator)?.call(&request)?;
    let g = response
        .groups
        .first()
        .ok_or_else(|| ClientError::Invalid(format!("DescribeGroups omitted `{group_id}`")))?;
    if let Some(err) = ClientError::from_code(
        g.error_code,
        format!("describe group `{group_id}`"),
        g.error_message.as_deref(),
    ) {
        return Err(err);
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    Ok(DescribedGroup {
        group_id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members: g
            .members
            .iter()
            .map(|m| DescribedMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    BTreeMap::new()
                },
            })
            .collect(),
    })
}

/// Deletes one (empty) group.
pub fn delete_group(client: &mut Client, group_id: &str) -> Result<()> {
    let coordinator = find_coordinator(client, group_id)?;
    let request = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_string(group_id.to_string()))]);
    let response = client.broker_connection(coordinator)?.call(&request)?;
    for r in &response.results {
        if let Some(err) =
            ClientError::from_code(r.error_code, format!("delete group `{group_id}`"), None)
        {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_assignor_gives_leading_members_the_extra_partitions() {
        let counts = BTreeMap::from([("t".to_string(), 5)]);
        let plan = range_assign(&members(&[("b", &["t"]), ("a", &["t"])]), &counts);
        assert_eq!(plan["a"]["t"], vec![0, 1, 2]);
        assert_eq!(plan["b"]["t"], vec![3, 4]);
    }

    #[test]
    fn range_assignor_leaves_surplus_members_empty_and_respects_subscriptions() {
        let counts = BTreeMap::from([("t".to_string(), 1), ("u".to_string(), 2)]);
        let plan = range_assign(&members(&[("a", &["t", "u"]), ("b", &["t"])]), &counts);
        assert_eq!(plan["a"]["t"], vec![0]);
        assert!(!plan["b"].contains_key("t"));
        assert_eq!(plan["a"]["u"], vec![0, 1]);
        assert!(!plan["b"].contains_key("u"));
    }

    #[test]
    fn assignment_round_trips_through_the_consumer_protocol_encoding() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![2, 0]),
        ]);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&0i16.to_be_bytes());
        assignment.encode(&mut buf, 0).expect("encode");
        let decoded = decode_assignment(&buf.freeze()).expect("decode");
        assert_eq!(decoded["t"], vec![0, 2]);
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
    }
}
