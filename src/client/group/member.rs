//! One process's membership in a group: the JoinGroup / SyncGroup state machine (including
//! KIP-394 member ids, coordinator moves and concurrent rebalances), the leader's assignment
//! step, heartbeats, commits for this generation and LeaveGroup.
//!
//! Must not: encode consumer protocol payloads itself (`assignor` does) or fetch records.

use super::assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, range_assign,
};
use super::coordinator::find_coordinator;
use super::offsets::{commit_offsets, fetch_committed};
use super::{
    COORDINATOR_BACKOFF_MS, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, GroupConfig,
    HeartbeatStatus, ILLEGAL_GENERATION, JOIN_ATTEMPTS_MAX, MEMBER_ID_REQUIRED, NOT_COORDINATOR,
    RANGE_ASSIGNOR, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};
use crate::client::cluster::Client;
use crate::client::connection::Connection;
use crate::client::error::{ClientError, Result};
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
    join_group_request::JoinGroupRequestProtocol, join_group_response::JoinGroupResponseMember,
    leave_group_request::MemberIdentity, sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

    fn join_and_sync(&mut self, client: &mut Client) -> Result<()> {
        let group = self.config.group_id.clone();
        let metadata = encode_subscription(&self.topics)?;
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

    /// The leader's step: decode every member's subscription, look up partition counts,
    /// run the range assignor and encode each member's share.
    fn leader_assign(
        &self,
        client: &mut Client,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let subscriptions = members
            .iter()
            .map(decode_subscription)
            .collect::<Result<Vec<_>>>()?;
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
            out.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(topics)?),
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
