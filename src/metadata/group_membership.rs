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
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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
    /// A share group's state (KIP-932, decision 0028): present while the group exists,
    /// members or not, as Kafka keeps a share group's records until it is deleted; absent
    /// in records of other groups and before format level 4 (`format_level`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareMembership>,
    /// Where this snapshot stands among the group's records (`StoredMemberships::apply`
    /// keeps the newest); unset in records written before records were numbered.
    #[serde(default)]
    pub version: MembershipVersion,
}

/// The order of one group's membership snapshots, as its coordinator took them: the slot
/// epoch it wrote under, the metadata log index it had applied then, and a counter of its
/// shard's proposals. Compared in that order, it grows with every snapshot a coordinator
/// takes: the epoch only grows (a record of an older one is refused at apply), the applied
/// index only grows within a process and a restarted coordinator starts above every index
/// its previous process saw (it proposes only after its `CatchUp` record, appended after
/// everything that process had applied), and the counter breaks ties within a process.
/// Kafka needs no such number: its coordinator appends one group's records to one
/// partition in order; here concurrent proposals of one group may commit in either order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct MembershipVersion {
    pub coordinator_epoch: i32,
    pub applied_index: u64,
    /// From 1; 0: not numbered (an older build's record, applied in log order as then).
    pub sequence: u64,
}

impl MembershipVersion {
    pub fn is_set(&self) -> bool {
        self.sequence > 0
    }
}

/// topic name -> partitions, in order.
pub type TopicPartitionsRecord = Vec<(String, Vec<i32>)>;

/// A group's topic -> partitions map as a record carries it (topics and partitions in order).
pub fn partitions_to_record(partitions: &BTreeMap<String, BTreeSet<i32>>) -> TopicPartitionsRecord {
    partitions
        .iter()
        .map(|(topic, ps)| (topic.clone(), ps.iter().copied().collect()))
        .collect()
}

/// The map back from a record; a topic with no partitions is left out.
pub fn partitions_from_record(record: &TopicPartitionsRecord) -> BTreeMap<String, BTreeSet<i32>> {
    let mut out = BTreeMap::<String, BTreeSet<i32>>::new();
    for (topic, ps) in record {
        if !ps.is_empty() {
            out.entry(topic.clone())
                .or_default()
                .extend(ps.iter().copied());
        }
    }
    out
}

/// A KIP-848 group as Kafka's coordinator keeps it in `__consumer_offsets`: the group epoch
/// (ConsumerGroupMetadata), the target assignment and its epoch
/// (ConsumerGroupTargetAssignmentMember / -Metadata), the partition counts it was computed
/// with (ConsumerGroupPartitionMetadata) and each member (ConsumerGroupMemberMetadata,
/// ConsumerGroupCurrentMemberAssignment).
pub type ConsumerMembership = EpochMembership<ConsumerMemberRecord>;

/// What a KIP-848 consumer group and a KIP-932 share group store alike: the group epoch,
/// the target assignment's epoch, the partition counts it was computed with, and the
/// members (of the group type's record `M`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpochMembership<M> {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// Subscribed topic -> its partition count when the target was computed.
    pub topics_seen: Vec<(String, i32)>,
    pub members: Vec<M>,
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

/// A share group as Kafka's coordinator keeps it in `__consumer_offsets`: the group epoch
/// (ShareGroupMetadata), the target assignment and its epoch (ShareGroupTargetAssignment*),
/// the partition counts it was computed with, and each member (ShareGroupMemberMetadata,
/// ShareGroupCurrentMemberAssignment).
pub type ShareMembership = EpochMembership<ShareMemberRecord>;

/// One share-group member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShareMemberRecord {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed: Vec<String>,
    /// What the member was last told it is assigned.
    pub assigned: TopicPartitionsRecord,
    /// What the assignor gives it.
    pub target: TopicPartitionsRecord,
}

impl GroupMembership {
    /// Nothing to load: no classic and no KIP-848 members, and no share group (which
    /// exists, Empty, without members until it is deleted).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
            && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
            && self.share.is_none()
    }

    /// The JSON size the record's membership takes (what `MAX_GROUP_MEMBERSHIP_BYTES`
    /// bounds).
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }
}

/// Every group's last stored membership, as a snapshot image carries it (with the
/// tombstones of emptied groups).
pub type GroupMembershipsImage = Vec<(String, GroupMembership)>;

/// Emptied groups whose last record (an empty membership) one shard remembers, so that an
/// older snapshot of the group committing after it is still recognised as older. Beyond
/// this the oldest is forgotten: an older snapshot would have to commit after this many
/// groups emptied since, while a proposal gives up after seconds. A tombstone is a few
/// dozen bytes.
pub const MAX_MEMBERSHIP_TOMBSTONES: usize = 10_000;

/// What applying a membership record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipApplied {
    /// It is the group's stored membership now (or, empty, its tombstone).
    Stored,
    /// A newer snapshot of the group was applied before it: it is ignored. Its proposer is
    /// not told an error: the newer snapshot was taken after it, so it includes what this
    /// one stored.
    Superseded { stored: MembershipVersion },
}

/// Every group's last applied membership on one shard (every node keeps the same, applying
/// the same records in log order), newest by `MembershipVersion` rather than by log order.
#[derive(Debug, Default)]
pub struct StoredMemberships {
    groups: HashMap<String, GroupMembership>,
    /// Emptied groups' versions in the order they were applied (some may have been
    /// replaced since): bounds the tombstones kept in `groups`.
    tombstones: VecDeque<(String, MembershipVersion)>,
}

impl StoredMemberships {
    /// `group`'s membership to load, if it has members.
    pub fn get(&self, group: &str) -> Option<&GroupMembership> {
        self.groups.get(group).filter(|m| !m.is_empty())
    }

    /// The groups that have something to load (members, or a share group), with it.
    pub fn groups_to_load(&self) -> impl Iterator<Item = (&String, &GroupMembership)> {
        self.groups.iter().filter(|(_, m)| !m.is_empty())
    }

    /// Applies a committed record of `group` (every node, in log order): it replaces the
    /// stored membership unless that one is newer. An empty membership leaves a tombstone
    /// with its version (an unnumbered one forgets the group, as before numbering).
    pub fn apply(&mut self, group: &str, membership: GroupMembership) -> MembershipApplied {
        let version = membership.version;
        if let Some(stored) = self.groups.get(group)
            && version.is_set()
            && version < stored.version
        {
            return MembershipApplied::Superseded {
                stored: stored.version,
            };
        }
        if membership.is_empty() && !version.is_set() {
            self.groups.remove(group);
            return MembershipApplied::Stored;
        }
        if membership.is_empty() {
            self.tombstones.push_back((group.to_string(), version));
        }
        self.groups.insert(group.to_string(), membership);
        self.forget_old_tombstones();
        MembershipApplied::Stored
    }

    fn forget_old_tombstones(&mut self) {
        while self.tombstones.len() > MAX_MEMBERSHIP_TOMBSTONES {
            let Some((group, version)) = self.tombstones.pop_front() else {
                return;
            };
            if self
                .groups
                .get(&group)
                .is_some_and(|m| m.is_empty() && m.version == version)
            {
                self.groups.remove(&group);
            }
        }
    }

    /// Every stored membership and tombstone, by group, for a snapshot image.
    pub fn image(&self) -> GroupMembershipsImage {
        let mut out: GroupMembershipsImage = self
            .groups
            .iter()
            .map(|(g, m)| (g.clone(), m.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Exactly the memberships of a snapshot image; its tombstones are kept oldest first.
    pub fn install(&mut self, image: HashMap<String, GroupMembership>) {
        let mut tombstones: Vec<(String, MembershipVersion)> = image
            .iter()
            .filter(|(_, m)| m.is_empty())
            .map(|(g, m)| (g.clone(), m.version))
            .collect();
        tombstones.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        self.groups = image;
        self.tombstones = tombstones.into();
        self.forget_old_tombstones();
    }
}

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
    // A numbered snapshot says which epoch it was taken under: the record's.
    let numbered_elsewhere =
        membership.version.is_set() && membership.version.coordinator_epoch != coordinator_epoch;
    if current != Some((coordinator, coordinator_epoch)) || numbered_elsewhere {
        return Err(MetadataError::NotCoordinator {
            group: group.to_string(),
            proposer: coordinator,
            current: current.map(|c| c.0),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(generation: i32, epoch: i32, index: u64, sequence: u64) -> GroupMembership {
        let mut membership = crate::metadata::replicated::tests::membership(generation, "");
        membership.members[0].assignment = format!("gen{generation}");
        membership.version = MembershipVersion {
            coordinator_epoch: epoch,
            applied_index: index,
            sequence,
        };
        membership
    }

    fn emptied(epoch: i32, index: u64, sequence: u64) -> GroupMembership {
        GroupMembership {
            members: Vec::new(),
            ..snapshot(0, epoch, index, sequence)
        }
    }

    fn generation(stored: &StoredMemberships, group: &str) -> Option<i32> {
        stored.get(group).map(|m| m.generation)
    }

    #[test]
    fn two_snapshots_committed_in_reversed_order_keep_the_newer() {
        let mut stored = StoredMemberships::default();
        assert_eq!(
            stored.apply("g", snapshot(5, 1, 40, 2)),
            MembershipApplied::Stored
        );
        assert_eq!(
            stored.apply("g", snapshot(4, 1, 40, 1)),
            MembershipApplied::Superseded {
                stored: snapshot(5, 1, 40, 2).version
            }
        );
        assert_eq!(generation(&stored, "g"), Some(5));
        // A later applied index outranks the counter (a restarted coordinator's counter
        // starts again at 1), and a later slot epoch outranks both.
        stored.apply("g", snapshot(6, 1, 41, 1));
        assert_eq!(generation(&stored, "g"), Some(6));
        stored.apply("g", snapshot(7, 2, 3, 1));
        assert_eq!(generation(&stored, "g"), Some(7));
        stored.apply("g", snapshot(8, 1, 99, 9));
        assert_eq!(generation(&stored, "g"), Some(7));
        // Other groups are not ordered against this one.
        stored.apply("h", snapshot(1, 1, 1, 1));
        assert_eq!(generation(&stored, "h"), Some(1));
    }

    #[test]
    fn an_emptied_group_is_not_brought_back_by_an_older_snapshot() {
        let mut stored = StoredMemberships::default();
        stored.apply("g", snapshot(3, 1, 10, 1));
        stored.apply("g", emptied(1, 10, 3));
        assert_eq!(stored.get("g"), None, "emptied: nothing to load");
        assert_eq!(stored.groups_to_load().count(), 0);
        assert!(matches!(
            stored.apply("g", snapshot(4, 1, 10, 2)),
            MembershipApplied::Superseded { .. }
        ));
        assert_eq!(stored.get("g"), None);
        // The tombstone travels in the image, so a node installing it refuses the same.
        let image: HashMap<String, GroupMembership> = stored.image().into_iter().collect();
        let mut installed = StoredMemberships::default();
        installed.install(image);
        assert!(matches!(
            installed.apply("g", snapshot(4, 1, 10, 2)),
            MembershipApplied::Superseded { .. }
        ));
        assert_eq!(
            installed.apply("g", snapshot(5, 1, 11, 1)),
            MembershipApplied::Stored
        );
        assert_eq!(generation(&installed, "g"), Some(5));
    }

    #[test]
    fn unnumbered_records_apply_in_log_order_as_before() {
        let mut stored = StoredMemberships::default();
        stored.apply("g", snapshot(5, 1, 0, 0));
        stored.apply("g", snapshot(4, 1, 0, 0));
        assert_eq!(generation(&stored, "g"), Some(4));
        stored.apply("g", emptied(1, 0, 0));
        assert!(stored.image().is_empty(), "forgotten, no tombstone");
    }

    #[test]
    fn tombstones_are_bounded_oldest_first() {
        let mut stored = StoredMemberships::default();
        let groups = MAX_MEMBERSHIP_TOMBSTONES as u64 + 2;
        for i in 1..=groups {
            stored.apply(&format!("g{i}"), emptied(1, i, i));
        }
        let kept = stored.image();
        assert_eq!(kept.len(), MAX_MEMBERSHIP_TOMBSTONES);
        assert!(!kept.iter().any(|(g, _)| g == "g1" || g == "g2"));
        assert!(kept.iter().any(|(g, _)| *g == format!("g{groups}")));
    }

    #[test]
    fn a_numbered_record_must_carry_its_records_epoch() {
        let mut cluster = ClusterState::default();
        cluster.brokers.insert(
            1,
            crate::metadata::registration::RegisteredBroker {
                id: 1,
                host: "h".into(),
                port: 1,
                fenced: false,
                epoch: 0,
                endpoints: Vec::new(),
                format_levels: Default::default(),
                incarnation: None,
            },
        );
        let (broker, epoch) = cluster.coordinator_with_epoch("g").expect("a coordinator");
        let ok = check_record(
            Some(&cluster),
            "g",
            broker,
            epoch,
            &snapshot(1, epoch, 1, 1),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let other = check_record(
            Some(&cluster),
            "g",
            broker,
            epoch,
            &snapshot(1, epoch + 1, 1, 1),
        );
        assert!(other.is_err(), "{other:?}");
    }
}
