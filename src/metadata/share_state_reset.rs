//! Cluster mode's share-group admin through the metadata log (issue 17, decision 0025):
//! AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups of a share group are
//! proposed by the group's coordinator as one `MetadataRecord::ShareStateReset` each (a
//! partition restarted at a start offset, a topic's or the whole group's states dropped),
//! applied on every node to the states the partition-owning shards hold and to the
//! in-memory state of whichever broker leads the partitions. As Kafka's share coordinator
//! does with InitializeShareGroupState / DeleteShareGroupState, a reset gives the group a
//! new **state epoch**, here the metadata-log index it is applied at (the same on every
//! node, and larger than every epoch before it); a leader's `ShareState` record written
//! from the state before (an older epoch) is refused at apply with FENCED_STATE_EPOCH, so
//! an acknowledgement in flight across the reset cannot bring the old state back.
//! This file is the record and the check every node runs; `shard::share_state_reset`
//! applies it. Must not: hold states or decide whether the group may be reset (its
//! coordinator checked it is a share group without members).

use super::MetadataError;
use super::replicated::ClusterState;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// Longest group id a reset record carries (the record's JSON stays far below
/// `MAX_RECORD_BYTES`; Kafka's clients send ids of tens of bytes).
pub const MAX_RESET_GROUP_ID_BYTES: usize = 64 * 1024;

/// What one reset changes on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetScope {
    /// AlterShareGroupOffsets: the group's state on the partition restarts at
    /// `start_offset` with nothing in flight.
    Partition {
        topic: String,
        partition: i32,
        start_offset: i64,
    },
    /// DeleteShareGroupOffsets: the group's state on every partition of the topic goes.
    Topic { topic: String },
    /// DeleteGroups: the group's state on every partition goes.
    Group,
}

/// A `MetadataRecord::ShareStateReset`, proposed by the group's coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStateResetRecord {
    pub group: String,
    pub coordinator: i32,
    pub scope: ResetScope,
}

/// An applied reset, for the shards: `state_epoch` is the index it was applied at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStateReset {
    pub group: String,
    pub scope: ResetScope,
    pub state_epoch: i64,
}

impl ShareStateResetRecord {
    /// Whether the reset may be applied at log `index`: a group id within bounds, proposed
    /// by the group's current coordinator (NOT_COORDINATOR otherwise, as offsets are), on a
    /// topic and partition that exist (UNKNOWN_TOPIC_OR_PARTITION) at a start offset that
    /// is not negative (INVALID_REQUEST). The same outcome on every node.
    pub fn check(
        &self,
        cluster: Option<&ClusterState>,
        index: u64,
    ) -> Result<ShareStateReset, MetadataError> {
        let refuse = |error: ResponseError, message: String| MetadataError::PartitionChange {
            code: error.code(),
            message,
        };
        let group = &self.group;
        if group.is_empty() || group.len() > MAX_RESET_GROUP_ID_BYTES {
            return Err(refuse(
                ResponseError::InvalidGroupId,
                format!("a share-state reset of a group id of {} bytes", group.len()),
            ));
        }
        let current = cluster.and_then(|c| c.coordinator(group));
        if current != Some(self.coordinator) {
            return Err(MetadataError::NotCoordinator {
                group: group.clone(),
                proposer: self.coordinator,
                current,
            });
        }
        let exists = |topic: &str, partition: i32| {
            cluster.is_some_and(|c| !c.replicas(topic, partition).is_empty())
        };
        match &self.scope {
            ResetScope::Partition {
                topic,
                partition,
                start_offset,
            } => {
                if !exists(topic, *partition) {
                    return Err(refuse(
                        ResponseError::UnknownTopicOrPartition,
                        format!("{topic}-{partition} does not exist"),
                    ));
                }
                if *start_offset < 0 {
                    return Err(refuse(
                        ResponseError::InvalidRequest,
                        format!("start offset {start_offset} of {group} on {topic}-{partition}"),
                    ));
                }
            }
            ResetScope::Topic { topic } if !exists(topic, 0) => {
                return Err(refuse(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {topic} does not exist"),
                ));
            }
            ResetScope::Topic { .. } | ResetScope::Group => {}
        }
        Ok(ShareStateReset {
            group: group.clone(),
            scope: self.scope.clone(),
            // Log indexes grow with every record: a later reset always has a larger epoch
            // (an index past i64::MAX would take 2^63 records).
            state_epoch: i64::try_from(index).unwrap_or(i64::MAX),
        })
    }
}

impl ShareStateReset {
    /// Whether this reset touches the group's state on (topic, partition).
    pub fn covers(&self, topic: &str, partition: i32) -> bool {
        match &self.scope {
            ResetScope::Partition {
                topic: t,
                partition: p,
                ..
            } => t == topic && *p == partition,
            ResetScope::Topic { topic: t } => t == topic,
            ResetScope::Group => true,
        }
    }
}
