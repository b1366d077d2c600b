//! The KIP-848 consumer group protocol's requests: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe.
//!
//! Owns: finding or creating the group for those requests and refusing ids that belong to
//! classic groups. Must not: hold the membership or assignment rules (they live in
//! `consumer`), or mix the two protocols in one group.

use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
};

use super::consumer;
use super::coordinator::{ClientInfo, GroupCoordinator, MAX_GROUPS_PER_SHARD};
use super::offset_log;
use super::state::GroupState;
use super::wire::sb;
use crate::config::group_config::GroupTimeouts;

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat: join, heartbeat, reconcile or leave (see `consumer`).
    pub fn consumer_heartbeat(
        &self,
        request: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
        topics: &consumer::TopicsView,
        timeouts: GroupTimeouts,
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
        if self.is_share_group(&group_id) {
            return refuse(ResponseError::GroupIdNotFound, "the group is a share group");
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
        group.consumer.timeouts = Some(timeouts);
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
    ) -> DescribedGroup {
        let groups = self.inner.groups.borrow();
        match groups.get(group_id) {
            Some(g) if g.members.is_empty() && g.state == GroupState::Empty => {
                g.consumer.describe(group_id, topics)
            }
            _ => DescribedGroup::default()
                .with_group_id(GroupId(sb(group_id)))
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(sb("no consumer-protocol group with this id"))),
        }
    }
}
