//! Group admin calls: ListGroups (every broker), DescribeGroups and DeleteGroups (the
//! group's coordinator). Used by `sluice group` and tests.
//!
//! Must not: join a group or commit offsets.

use super::assignor::decode_assignment;
use super::coordinator::find_coordinator;
use crate::client::cluster::Client;
use crate::client::error::{ClientError, Result};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// `classic`, `consumer` or `share` (ListGroups v5+; `classic` from older brokers).
    pub group_type: String,
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
            group_type: if g.group_type.is_empty() {
                "classic".to_string()
            } else {
                g.group_type.to_string()
            },
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
