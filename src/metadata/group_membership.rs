//! Replicated classic group membership (issue 17, decision 0024): the record a classic
//! group's coordinator writes when the group reaches Stable (Kafka's GroupMetadata record
//! in `__consumer_offsets`) or empties, so the broker that takes the group's coordinator
//! slot over loads it as Stable and its members keep their generation instead of
//! rebalancing. The bytes (member metadata of the chosen protocol, assignments) travel as
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A classic group's generation as its coordinator last stored it; no members: the group
/// emptied (nothing to load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMembership {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub members: Vec<MemberRecord>,
}

impl GroupMembership {
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
