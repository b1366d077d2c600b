//! Share-group admin calls (KIP-932): ShareGroupDescribe (members and their assignments) and
//! DescribeShareGroupOffsets (each partition's share-partition start offset), both asked of
//! the group's coordinator. Used by `sluice group describe`.
//!
//! Must not: join a share group or acknowledge records.

use super::coordinator::find_coordinator;
use crate::client::cluster::Client;
use crate::client::error::{ClientError, Result};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, GroupId, ShareGroupDescribeRequest,
    describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// A share-group member and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub assignment: BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareGroup {
    pub group_id: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ShareMember>,
}

/// Describes one share group.
pub fn describe_share_group(client: &mut Client, group_id: &str) -> Result<DescribedShareGroup> {
    let coordinator = find_coordinator(client, group_id)?;
    let request = ShareGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group_id.to_string()))]);
    let response = client.broker_connection(coordinator)?.call(&request)?;
    let g = response
        .groups
        .first()
        .ok_or_else(|| ClientError::Invalid(format!("ShareGroupDescribe omitted `{group_id}`")))?;
    if let Some(err) = ClientError::from_code(
        g.error_code,
        format!("describe share group `{group_id}`"),
        g.error_message.as_deref(),
    ) {
        return Err(err);
    }
    Ok(DescribedShareGroup {
        group_id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        group_epoch: g.group_epoch,
        assignment_epoch: g.assignment_epoch,
        members: g
            .members
            .iter()
            .map(|m| ShareMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                member_epoch: m.member_epoch,
                assignment: m
                    .assignment
                    .topic_partitions
                    .iter()
                    .map(|t| {
                        let mut partitions = t.partitions.clone();
                        partitions.sort_unstable();
                        (t.topic_name.0.to_string(), partitions)
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// (topic, partition, start offset) of every partition the share group has state for.
pub fn share_group_start_offsets(
    client: &mut Client,
    group_id: &str,
) -> Result<Vec<(String, i32, i64)>> {
    let coordinator = find_coordinator(client, group_id)?;
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
            .with_topics(None),
    ]);
    let response = client.broker_connection(coordinator)?.call(&request)?;
    let g = response.groups.first().ok_or_else(|| {
        ClientError::Invalid(format!("DescribeShareGroupOffsets omitted `{group_id}`"))
    })?;
    if let Some(err) = ClientError::from_code(
        g.error_code,
        format!("describe share group offsets `{group_id}`"),
        g.error_message.as_deref(),
    ) {
        return Err(err);
    }
    let mut out = Vec::new();
    for t in &g.topics {
        for p in &t.partitions {
            if p.error_code == 0 {
                out.push((
                    t.topic_name.0.to_string(),
                    p.partition_index,
                    p.start_offset,
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}
