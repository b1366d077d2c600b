//! Cluster mode's share-partition state as the metadata log carries it (issue 17,
//! decision 0025): a `MetadataRecord::ShareState` holds one share group's whole state on one
//! partition (start offset, in-flight records' states and delivery counts, the dead-letter
//! intent) in the share-state log's frame format (`partition::share::durable::encode`,
//! base64 in the JSON record), written by the partition's leader; this is the check every
//! node runs when it applies one. The states live on each node's shard owning the
//! partition (`shard::share_state`), which every node fills from the same applied records,
//! so the node elected leader after a failover starts from them.
//! Must not: hold the states (the shards do) or decide record states (the leader did).

use super::MetadataError;
use super::replicated::{ClusterState, MAX_RECORD_BYTES};
use crate::partition::share::durable::{self, MAX_FRAME_BYTES};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// The record's JSON around the state: topic and group names (JSON-escaped, 6 bytes per
/// byte at worst; a group id is at most 64 KiB in the frame), field names, numbers.
const RECORD_OVERHEAD_BYTES: usize = (249 + 64 * 1024) * 6 + 1024;
const _: () = assert!(MAX_FRAME_BYTES.div_ceil(3) * 4 + RECORD_OVERHEAD_BYTES <= MAX_RECORD_BYTES);

/// One group's state on one partition in a snapshot image: the frame in base64 and the
/// leader epoch it was written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStateEntry {
    pub topic: String,
    pub partition: i32,
    pub group: String,
    pub leader_epoch: i32,
    pub state: String,
}

/// Every share-partition state of the cluster, for a snapshot image (sorted).
pub type ShareStatesImage = Vec<ShareStateEntry>;

/// Every reset share group's state epoch (`share_state_reset`), for a snapshot image.
pub type ShareStateEpochsImage = Vec<(String, i64)>;

/// A frame as a record carries it.
pub fn encode(frame: &[u8]) -> String {
    BASE64.encode(frame)
}

/// The frame `encode` wrote, if it is one whole, valid share-state frame.
pub fn decode(encoded: &str) -> Option<Vec<u8>> {
    if encoded.len() > MAX_FRAME_BYTES.div_ceil(3) * 4 {
        return None;
    }
    let frame = BASE64.decode(encoded).ok()?;
    durable::decode_frame(&frame)?;
    Some(frame)
}

/// What an applied `ShareState` record hands the partition's owning shard.
#[derive(Debug, Clone)]
pub struct ShareStateChange {
    pub topic: String,
    pub partition: i32,
    pub group: String,
    pub leader_epoch: i32,
    /// The group's state epoch the leader wrote in (`share_state_reset`): refused by the
    /// shard if the group was reset since.
    pub state_epoch: i64,
    /// The frame (a deleted group's is a tombstone: `durable::decode_frame` says None).
    pub frame: Vec<u8>,
}

/// A `MetadataRecord::ShareState`: one group's state on one partition after a change,
/// proposed by the partition's leader (`leader`, in `leader_epoch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStateRecord {
    pub topic: String,
    pub partition: i32,
    pub group: String,
    pub leader: i32,
    pub leader_epoch: i32,
    /// The group's state epoch when the leader encoded the state (the index of the group's
    /// last reset, `share_state_reset`; 0 before any, and in records written before resets
    /// went through this log).
    #[serde(default)]
    pub state_epoch: i64,
    /// The frame, `encode`d.
    pub state: String,
}

impl ShareStateRecord {
    /// Whether the record may be applied: a valid frame of the group it names, written by
    /// the partition's current leader in its current leader epoch. A deposed leader's write
    /// (an older epoch, or another broker) is refused with FENCED_LEADER_EPOCH /
    /// NOT_LEADER_OR_FOLLOWER, the same on every node: leadership changes only through
    /// records of this log, so a new leader has applied every state written before it led.
    pub fn check(&self, cluster: Option<&ClusterState>) -> Result<ShareStateChange, MetadataError> {
        let (topic, partition, group) = (&self.topic, self.partition, &self.group);
        let refuse = |error: ResponseError, message: String| MetadataError::PartitionChange {
            code: error.code(),
            message,
        };
        let frame = decode(&self.state)
            .filter(|f| durable::decode_frame(f).is_some_and(|(named, _)| named == *group))
            .ok_or_else(|| {
                refuse(
                    ResponseError::InvalidRequest,
                    format!("share state of {group} on {topic}-{partition} is not its frame"),
                )
            })?;
        let exists = cluster.is_some_and(|c| !c.replicas(topic, partition).is_empty());
        let Some(cluster) = cluster.filter(|_| exists) else {
            return Err(refuse(
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            ));
        };
        let current_epoch = cluster.leader_epoch(topic, partition);
        if self.leader_epoch != current_epoch {
            return Err(refuse(
                ResponseError::FencedLeaderEpoch,
                format!(
                    "share state of {topic}-{partition} written in leader epoch {}, current \
                     {current_epoch}",
                    self.leader_epoch
                ),
            ));
        }
        if cluster.leader(topic, partition) != Some(self.leader) {
            return Err(refuse(
                ResponseError::NotLeaderOrFollower,
                format!("broker {} does not lead {topic}-{partition}", self.leader),
            ));
        }
        Ok(ShareStateChange {
            topic: topic.clone(),
            partition,
            group: group.clone(),
            leader_epoch: self.leader_epoch,
            state_epoch: self.state_epoch,
            frame,
        })
    }
}

#[cfg(test)]
#[path = "share_state_tests.rs"]
mod tests;
