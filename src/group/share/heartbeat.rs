//! ShareGroupHeartbeat for one share group (KIP-932, v1): join with epoch 0 and a
//! client-chosen member id, heartbeat with the current epoch, leave with epoch -1. The
//! answer carries the member's assignment whenever it changed (null otherwise).
//!
//! Owns: the heartbeat's rules and errors. Must not: compute the assignment (`assignor`).

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ShareGroupHeartbeatResponse;
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};

use super::{
    MAX_SHARE_GROUP_MEMBERS, MAX_SHARE_MEMBER_ID_BYTES, Partitions, SHARE_HEARTBEAT_INTERVAL_MS,
    SHARE_SESSION_TIMEOUT_MS, ShareGroup, ShareMember,
};
use crate::group::consumer::{MAX_SUBSCRIBED_TOPICS, TopicsView};
use crate::group::wire::sb;

/// The epoch a member leaves the group with.
const LEAVE_EPOCH: i32 = -1;

/// A share group's session timeout and heartbeat interval.
#[derive(Debug, Clone, Copy)]
pub struct ShareTimeouts {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
}

impl Default for ShareTimeouts {
    fn default() -> Self {
        ShareTimeouts {
            session_timeout_ms: SHARE_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms: SHARE_HEARTBEAT_INTERVAL_MS,
        }
    }
}

/// One ShareGroupHeartbeat, decoded into what the group needs.
pub struct ShareHeartbeat<'a> {
    pub member_id: &'a str,
    pub member_epoch: i32,
    pub rack_id: Option<&'a str>,
    /// None: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: &'a str,
    pub client_host: &'a str,
}

fn refuse(code: ResponseError, message: &str) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(message)))
        .with_member_epoch(-1)
}

impl ShareGroup {
    pub fn heartbeat(
        &mut self,
        request: ShareHeartbeat<'_>,
        topics: &TopicsView,
        timeouts: ShareTimeouts,
        now: Instant,
    ) -> ShareGroupHeartbeatResponse {
        let member_id = request.member_id;
        if member_id.is_empty() || member_id.len() > MAX_SHARE_MEMBER_ID_BYTES {
            return refuse(
                ResponseError::InvalidRequest,
                "MemberId must be a non-empty id of at most 64 bytes",
            );
        }
        if let Some(names) = &request.subscribed_topic_names
            && names.len() > MAX_SUBSCRIBED_TOPICS
        {
            return refuse(ResponseError::InvalidRequest, "too many subscribed topics");
        }
        if request.member_epoch == LEAVE_EPOCH {
            self.remove_member(member_id);
            return ShareGroupHeartbeatResponse::default()
                .with_member_id(Some(sb(member_id)))
                .with_member_epoch(LEAVE_EPOCH)
                .with_heartbeat_interval_ms(timeouts.heartbeat_interval_ms);
        }
        let joining = request.member_epoch == 0;
        if joining {
            if let Err((code, message)) = self.join(&request, now) {
                return refuse(code, message);
            }
        } else {
            let Some(member) = self.members.get(member_id) else {
                return refuse(ResponseError::UnknownMemberId, "unknown member id");
            };
            if request.member_epoch != member.member_epoch {
                return refuse(
                    ResponseError::FencedMemberEpoch,
                    "the member epoch is not current",
                );
            }
        }
        let mut subscription_changed = false;
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline =
                now + Duration::from_millis(timeouts.session_timeout_ms.max(0) as u64);
            member.client_id = request.client_id.to_string();
            member.client_host = request.client_host.to_string();
            member.rack_id = request.rack_id.map(str::to_string);
            if let Some(names) = request.subscribed_topic_names {
                let names = names.into_iter().collect();
                subscription_changed = member.subscribed != names;
                member.subscribed = names;
            }
        }
        if subscription_changed {
            self.group_epoch += 1;
        }
        self.refresh_target(topics);
        let target = self.target_of(member_id);
        let group_epoch = self.group_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return refuse(ResponseError::UnknownMemberId, "unknown member id");
        };
        let changed = joining || member.assigned != target || member.member_epoch != group_epoch;
        let assignment = changed.then(|| to_wire(&target, topics));
        member.assigned = target;
        member.member_epoch = group_epoch;
        ShareGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(member_id)))
            .with_member_epoch(member.member_epoch)
            .with_heartbeat_interval_ms(timeouts.heartbeat_interval_ms)
            .with_assignment(assignment)
    }

    /// Epoch 0: a new member (or one rejoining with its id, which starts over).
    fn join(
        &mut self,
        request: &ShareHeartbeat<'_>,
        now: Instant,
    ) -> Result<(), (ResponseError, &'static str)> {
        let Some(names) = &request.subscribed_topic_names else {
            return Err((
                ResponseError::InvalidRequest,
                "SubscribedTopicNames must be set in the first request",
            ));
        };
        if names.is_empty() {
            return Err((
                ResponseError::InvalidRequest,
                "SubscribedTopicNames must not be empty",
            ));
        }
        if !self.members.contains_key(request.member_id) {
            if self.members.len() >= MAX_SHARE_GROUP_MEMBERS {
                return Err((
                    ResponseError::GroupMaxSizeReached,
                    "the share group has reached group.share.max.size members",
                ));
            }
            self.members.insert(
                request.member_id.to_string(),
                ShareMember {
                    member_id: request.member_id.to_string(),
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    member_epoch: 0,
                    // Subscribed as it joins: one new group epoch for the new member and
                    // its subscription, as Kafka's (a new group's first member gets 1).
                    subscribed: names.iter().cloned().collect(),
                    assigned: Partitions::new(),
                    session_deadline: now,
                },
            );
            self.group_epoch += 1;
        }
        Ok(())
    }
}

fn to_wire(p: &Partitions, topics: &TopicsView) -> Assignment {
    Assignment::default().with_topic_partitions(
        p.iter()
            .filter_map(|(t, ps)| {
                let (id, _) = topics.get(t)?;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.iter().copied().collect()),
                )
            })
            .collect(),
    )
}
