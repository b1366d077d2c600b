//! Replicated group membership (issue 17, decision 0024): the record a group's coordinator
//! writes when a classic group reaches Stable (Kafka's GroupMetadata record in
//! `__consumer_offsets`) or empties, and when a KIP-848 group's epochs, members or
//! assignments change (Kafka's ConsumerGroupMetadata, ConsumerGroupMemberMetadata,
//! ConsumerGroupTargetAssignment* and ConsumerGroupCurrentMemberAssignment records, here
//! one whole-group record), so the broker that takes the group's coordinator slot over
//! loads it and its members keep their generation or member epoch instead of rebalancing.
//! The classic bytes (member metadata of the chosen protocol, assignments) travel as
//! base64 in the JSON record.
//! Must not: know the group state machine (the group coordinator builds and loads these).

use super::MetadataError;
use super::replicated::ClusterState;
use serde::{Deserialize, Serialize};

/// Largest encoded membership of one group a record may carry (members' metadata and
/// assignments, base64 in JSON). A larger group is not replicated: it works on its
/// coordinator, and a coordinator move is a rebalance for it, as before this record.
pub const MAX_GROUP_MEMBERSHIP_BYTES: usize = 1024 * 1024;

/// Room the record's other fields (group id, coordinator, JSON framing) take.
const RECORD_OVERHEAD_BYTES: usize = 64 * 1024;
const _: () = assert!(
    MAX_GROUP_MEMBERSHIP_BYTES + RECORD_OVERHEAD_BYTES <= super::replicated::MAX_RECORD_BYTES
);

/// One member of a Stable generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// The member's metadata for the group's protocol, base64.
    pub metadata: String,
    /// What the leader assigned it, base64.
    pub assignment: String,
}

/// A group's membership as its coordinator last stored it: a classic group's generation
/// (`members`), or a KIP-848 group's (`consumer`); neither: the group emptied (nothing to
/// load).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupMembership {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub members: Vec<MemberRecord>,
    /// A KIP-848 (`group.protocol=consumer`) group's state; absent in records written
    /// before such groups were stored, and for classic groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerMembership>,
}

/// topic name -> partitions, in order.
pub type TopicPartitionsRecord = Vec<(String, Vec<i32>)>;

/// A KIP-848 group as Kafka's coordinator keeps it in `__consumer_offsets`: the group epoch
/// (ConsumerGroupMetadata), the target assignment and its epoch
/// (ConsumerGroupTargetAssignmentMember / -Metadata), the partition counts it was computed
/// with (ConsumerGroupPartitionMetadata) and each member (ConsumerGroupMemberMetadata,
/// ConsumerGroupCurrentMemberAssignment).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerMembership {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// Subscribed topic -> its partition count when the target was computed.
    pub topics_seen: Vec<(String, i32)>,
    pub members: Vec<ConsumerMemberRecord>,
}

/// One KIP-848 member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerMemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub subscribed: Vec<String>,
    pub rebalance_timeout_ms: u64,
    /// What the member has been told to own.
    pub assigned: TopicPartitionsRecord,
    /// Told to give these up, not yet confirmed.
    pub pending_revocation: TopicPartitionsRecord,
    /// What the assignor wants it to own.
    pub target: TopicPartitionsRecord,
}

impl GroupMembership {
    /// Nothing to load: no classic and no KIP-848 members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// The JSON size the record's membership takes (what `MAX_GROUP_MEMBERSHIP_BYTES`
    /// bounds).
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }
}

/// Every group's last stored membership, as a snapshot image carries it.
pub type GroupMembershipsImage = Vec<(String, GroupMembership)>;

/// Whether a `GroupMembership` record may be applied: bounded, and proposed by the broker
/// that coordinates the group in the state it is applied to, under the slot's current
/// epoch (a coordinator that lost the slot and got it back writes under a new epoch, so a
/// record taken before the move is refused). The same answer on every node.
pub fn check_record(
    cluster: Option<&ClusterState>,
    group: &str,
    coordinator: i32,
    coordinator_epoch: i32,
    membership: &GroupMembership,
) -> Result<(), MetadataError> {
    if group.is_empty() {
        return Err(MetadataError::InvalidOffsets(group.to_string()));
    }
    let bytes = membership.encoded_len();
    if bytes > MAX_GROUP_MEMBERSHIP_BYTES {
        return Err(MetadataError::MembershipTooLarge {
            group: group.to_string(),
            bytes,
            limit: MAX_GROUP_MEMBERSHIP_BYTES,
        });
    }
    let current = cluster.and_then(|c| c.coordinator_with_epoch(group));
    if current != Some((coordinator, coordinator_epoch)) {
        return Err(MetadataError::NotCoordinator {
            group: group.to_string(),
            proposer: coordinator,
            current: current.map(|c| c.0),
        });
    }
    Ok(())
}
