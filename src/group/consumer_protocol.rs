//! The KIP-848 consumer group protocol's requests: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe.
//!
//! Owns: finding or creating the group for those requests and refusing ids that belong to
//! classic groups; in cluster mode, answering a heartbeat only once the membership record
//! it changed has committed (decision 0024). Must not: hold the membership or assignment
//! rules (they live in `consumer`), or mix the two protocols in one group.

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
    /// ConsumerGroupHeartbeat: join, heartbeat, reconcile or leave (see `consumer`). In
    /// cluster mode a heartbeat that changed what the metadata log keeps of the group
    /// (epochs, members, assignments) is answered once that record has committed, as
    /// Kafka answers once its records are appended: the next coordinator then knows every
    /// member epoch a member was told. A failed write answers the error Kafka would
    /// (COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR); the member retries with the epoch
    /// it has, which the group still accepts (its previous epoch).
    pub async fn consumer_heartbeat(
        &self,
        request: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
        topics: &consumer::TopicsView,
        timeouts: GroupTimeouts,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let response = self.consumer_heartbeat_now(request, client, topics, timeouts, now);
        if response.error_code != 0 {
            return response;
        }
        let group_id = request.group_id.0.as_str();
        match self.store_membership_now(group_id).await {
            Ok(()) => response,
            Err(code) => {
                // The answer is not sent: an assignment it carried must go out again.
                let mut groups = self.inner.groups.borrow_mut();
                if let (Some(g), Some(member_id)) =
                    (groups.get_mut(group_id), response.member_id.as_deref())
                {
                    g.consumer.resend_assignment(member_id);
                }
                refuse(code, "the group's membership could not be stored")
            }
        }
    }

    /// The heartbeat's work on the group, before any write.
    fn consumer_heartbeat_now(
        &self,
        request: &ConsumerGroupHeartbeatRequest,
        client: &ClientInfo,
        topics: &consumer::TopicsView,
        timeouts: GroupTimeouts,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let group_id = request.group_id.0.to_string();
        if group_id.is_empty() || offset_log::escape_group_id(&group_id).is_none() {
            return refuse(ResponseError::InvalidGroupId, "invalid group id");
        }
        if self.is_share_group(&group_id) {
            return refuse(ResponseError::GroupIdNotFound, "the group is a share group");
        }
        let wall = self.wall_ms(now);
        let mut groups = self.inner.groups.borrow_mut();
        // Cluster mode: NOT_COORDINATOR elsewhere; a group taken over loads its stored
        // members first, so they keep their member epochs (decision 0024).
        let epoch = match self.take_over(&mut groups, &group_id, now) {
            Ok(epoch) => epoch,
            Err(e) => return refuse(e, "this broker does not coordinate the group"),
        };
        if !groups.contains_key(&group_id) {
            if request.member_epoch != 0 {
                return refuse(ResponseError::UnknownMemberId, "unknown group");
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                return refuse(ResponseError::CoordinatorNotAvailable, "too many groups");
            }
            let Some(mut group) = self.new_group(&group_id) else {
                return refuse(ResponseError::InvalidGroupId, "invalid group id");
            };
            group.coordinator_epoch = epoch;
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
    /// In cluster mode a group taken over and not loaded yet is loaded first, and a broker
    /// that does not coordinate the group answers NOT_COORDINATOR (as ShareGroupDescribe).
    pub fn consumer_group_describe(
        &self,
        group_id: &str,
        topics: &consumer::TopicsView,
        now: Instant,
    ) -> DescribedGroup {
        self.take_over_for_read(group_id, now);
        if let Err(e) = self.check_coordinator(group_id) {
            return DescribedGroup::default()
                .with_group_id(GroupId(sb(group_id)))
                .with_error_code(e.code())
                .with_error_message(Some(sb("this broker does not coordinate the group")));
        }
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

/// A refused ConsumerGroupHeartbeat.
fn refuse(code: ResponseError, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(sb(message)))
        .with_member_epoch(-1)
}
