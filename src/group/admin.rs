//! The group admin requests: ListGroups, DescribeGroups and DeleteGroups, for the groups of
//! this shard (the handlers combine shards).
//!
//! Owns: how a group looks to operators (state names, group type, member metadata) and
//! when a group may be deleted. Must not: change membership (only DeleteGroups drops an
//! already-empty group) or write files except through `enqueue`.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest};

use super::coordinator::{CLASSIC_GROUP_TYPE, CONSUMER_GROUP_TYPE, GroupCoordinator};
use super::offset_log::LogRecord;
use super::state::GroupState;
use super::wire::sb;

impl GroupCoordinator {
    /// The groups of this shard for ListGroups (the handler concatenates all shards). In
    /// cluster mode groups taken over and not loaded yet are loaded first.
    pub fn list_groups(&self, request: &ListGroupsRequest, now: Instant) -> Vec<ListedGroup> {
        self.take_over_stored(now);
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
            // Cluster mode: every broker holds every group's offsets; each lists only the
            // groups it coordinates, as Kafka's brokers do (clients merge the answers).
            .filter(|(g, _, _, _)| self.check_coordinator(&g.id).is_ok())
            .map(|(g, kind, state, protocol)| {
                ListedGroup::default()
                    .with_group_id(GroupId(sb(&g.id)))
                    .with_protocol_type(sb(protocol))
                    .with_group_state(sb(state))
                    .with_group_type(sb(kind))
            })
            .collect();
        drop(groups);
        listed.extend(self.list_share_groups(&states, &types));
        listed.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
        listed
    }

    /// One group for DescribeGroups. Unknown groups are "Dead" with no error, as in Kafka.
    /// In cluster mode a group taken over and not loaded yet is loaded first, and a broker
    /// that does not coordinate the group answers NOT_COORDINATOR.
    pub fn describe_group(&self, group_id: &str, version: i16, now: Instant) -> DescribedGroup {
        self.take_over_for_read(group_id, now);
        let groups = self.inner.groups.borrow();
        let described = DescribedGroup::default()
            .with_error_code(0)
            .with_group_id(GroupId(sb(group_id)));
        // Cluster mode: only the coordinator describes a group, as Kafka's brokers do (the
        // others hold its offsets, and a broker that lost its slot holds nothing more).
        if let Err(e) = self.check_coordinator(group_id) {
            return described.with_error_code(e.code());
        }
        let Some(g) = groups.get(group_id) else {
            // KIP-1043: v6+ reports an unknown group as an error instead of a Dead group.
            if version >= 6 {
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(&format!("Group {group_id} not found."))));
            }
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
        if let Some(code) = self.delete_share_group(group_id, now).await {
            return code;
        }
        if let Err(e) = self.check_coordinator(group_id) {
            return e.code();
        }
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
            Ok(Err(e)) => e.code,
            Err(_) => ResponseError::CoordinatorNotAvailable.code(),
        }
    }
}
