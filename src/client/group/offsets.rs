//! Committed offsets of a group: OffsetCommit and OffsetFetch against its coordinator, for
//! members (with a generation) and for simple consumers and admin tools (without one).
//!
//! Must not: find the coordinator or track membership; callers pass the coordinator node.

use crate::client::cluster::Client;
use crate::client::error::{ClientError, Result};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    },
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

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
