//! Cluster mode: share-partition state through the metadata log (issue 17, decision 0025).
//! Every node keeps, on the shard owning each partition, the last applied state of every
//! share group on it (`ShareStateStore`, filled by the apply loop from `ShareState` records
//! and snapshot images, at most `MAX_SHARE_STATES_PER_SHARD`); a partition this node leads
//! is given a `ClusterShareStates` replicator (`lead`), which loads those states on first
//! use and proposes each change as a record fenced by the partition's leader epoch.
//! Must not: decide record states (partition/share does) or talk Raft (the
//! `ClusterHandle` does).

use super::Shard;
use crate::cluster::ClusterHandle;
use crate::metadata::replicated::MetadataRecord;
use crate::metadata::share_state::{
    self, ShareStateChange, ShareStateEntry, ShareStateEpochsImage, ShareStateRecord,
    ShareStatesImage,
};
use crate::partition::Partition;
use crate::partition::share::durable;
use crate::partition::share::replicated::{ReplicationError, ShareStateReplicator};
use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Share-partition states (group x partition) one shard keeps. Past it a new state is
/// refused at apply (GROUP_MAX_SIZE_REACHED to its leader); states already held still
/// change. With `MAX_SHARE_GROUPS_PER_PARTITION` (1,000) it bounds the memory of clients
/// inventing group ids over many partitions; each state is one frame of at most 64 KiB,
/// typically under 100 bytes.
pub const MAX_SHARE_STATES_PER_SHARD: usize = 100_000;

/// Share groups whose state epoch (their last reset's log index, `share_state_reset`) one
/// shard remembers. Every shard holds the same epochs (every reset is applied on all of
/// them), so past it the smallest epoch is forgotten, the same one everywhere: a write
/// of that group encoded before its reset could then only land if it stayed in flight
/// across this many later resets of other groups.
pub const MAX_STATE_EPOCH_GROUPS_PER_SHARD: usize = 10_000;

/// One group's applied state on a partition: its frame and the leader epoch it was
/// written in.
struct Stored {
    leader_epoch: i32,
    frame: Rc<[u8]>,
}

/// The applied share-partition states of the partitions this shard owns, on every node.
#[derive(Default)]
pub struct ShareStateStore {
    by_partition: RefCell<HashMap<(String, i32), BTreeMap<String, Stored>>>,
    count: Cell<usize>,
    /// Each reset group's state epoch (kept after its states are deleted: the epoch is
    /// what fences a write encoded before the deletion).
    state_epochs: RefCell<HashMap<String, i64>>,
}

impl ShareStateStore {
    /// Applies one state (a tombstone removes it); Err when it was written in a state
    /// epoch older than the group's (FENCED_STATE_EPOCH: the group was reset since, as
    /// Kafka's share coordinator refuses such a write) or a new one is past the limit.
    fn apply(&self, change: ShareStateChange) -> Result<(), (ResponseError, String)> {
        let current = self.state_epoch(&change.group);
        if change.state_epoch < current {
            return Err((
                ResponseError::FencedStateEpoch,
                format!(
                    "share state of {} on {}-{} written in state epoch {}, current {current}",
                    change.group, change.topic, change.partition, change.state_epoch
                ),
            ));
        }
        self.put(change)
            .map_err(|full| (ResponseError::GroupMaxSizeReached, full))
    }

    /// The group's state epoch: the index of its last reset, 0 if none.
    pub fn state_epoch(&self, group: &str) -> i64 {
        self.state_epochs.borrow().get(group).copied().unwrap_or(0)
    }

    /// Stores one state (a tombstone removes it); Err when a new one is past the limit.
    fn put(&self, change: ShareStateChange) -> Result<(), String> {
        let deleted = matches!(durable::decode_frame(&change.frame), Some((_, None)));
        let mut all = self.by_partition.borrow_mut();
        let key = (change.topic, change.partition);
        if deleted {
            if let Some(groups) = all.get_mut(&key)
                && groups.remove(&change.group).is_some()
            {
                self.count.set(self.count.get().saturating_sub(1));
                if groups.is_empty() {
                    all.remove(&key);
                }
            }
            return Ok(());
        }
        let groups = all.entry(key).or_default();
        if !groups.contains_key(&change.group) {
            if self.count.get() >= MAX_SHARE_STATES_PER_SHARD {
                return Err(format!(
                    "this broker's shard holds {MAX_SHARE_STATES_PER_SHARD} share-partition states"
                ));
            }
            self.count.set(self.count.get() + 1);
        }
        let stored = Stored {
            leader_epoch: change.leader_epoch,
            frame: change.frame.into(),
        };
        groups.insert(change.group, stored);
        Ok(())
    }

    /// The groups' frames on one partition.
    fn of(&self, topic: &str, partition: i32) -> Vec<(String, Vec<u8>)> {
        let all = self.by_partition.borrow();
        all.get(&(topic.to_string(), partition))
            .map(|groups| {
                groups
                    .iter()
                    .map(|(g, s)| (g.clone(), s.frame.to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A deleted topic's states go with it.
    pub fn forget_topic(&self, topic: &str) {
        let mut all = self.by_partition.borrow_mut();
        let before: usize = all.values().map(BTreeMap::len).sum();
        all.retain(|(t, _), _| t != topic);
        let after: usize = all.values().map(BTreeMap::len).sum();
        self.count
            .set(self.count.get().saturating_sub(before - after));
    }

    fn entries(&self) -> Vec<ShareStateEntry> {
        let all = self.by_partition.borrow();
        let mut out = Vec::with_capacity(self.count.get());
        for ((topic, partition), groups) in all.iter() {
            for (group, stored) in groups {
                out.push(ShareStateEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    group: group.clone(),
                    leader_epoch: stored.leader_epoch,
                    state: share_state::encode(&stored.frame),
                });
            }
        }
        out
    }

    fn replace(&self, entries: Vec<ShareStateChange>, epochs: ShareStateEpochsImage) {
        self.by_partition.borrow_mut().clear();
        self.count.set(0);
        self.state_epochs.borrow_mut().clear();
        for (group, epoch) in epochs {
            self.raise_state_epoch(group, epoch);
        }
        for change in entries {
            if let Err(e) = self.put(change) {
                tracing::error!(error = %e, "snapshot share state not installed");
            }
        }
    }
}

/// Cluster mode: `led`, which this node now leads, reads and writes its share states
/// through the metadata log (called on the partition's owning shard as it takes the
/// leadership, before it serves).
pub(super) fn lead(s: &Rc<Shard>, topic: &str, partition: i32, led: &Partition) {
    let Some(cluster) = s.cluster.clone() else {
        return;
    };
    led.share_replicate_through(Rc::new(ClusterShareStates {
        shard: Rc::downgrade(s),
        cluster,
        topic: topic.to_string(),
        partition,
    }));
}

struct ClusterShareStates {
    /// Weak: the partition (held by the shard's table) holds this.
    shard: std::rc::Weak<Shard>,
    cluster: Arc<ClusterHandle>,
    topic: String,
    partition: i32,
}

impl ShareStateReplicator for ClusterShareStates {
    fn load(&self) -> Result<Vec<(String, Vec<u8>)>, ReplicationError> {
        // A restarted node replaying the log may not have applied the newest states yet:
        // the client is sent to look for the leader again until it has.
        let shard = self
            .shard
            .upgrade()
            .filter(|_| self.cluster.caught_up_since_start.load(Ordering::Acquire));
        let Some(shard) = shard else {
            return Err(ReplicationError {
                code: ResponseError::NotLeaderOrFollower.code(),
                message: "still replaying the metadata log".into(),
            });
        };
        Ok(shard.share_states.of(&self.topic, self.partition))
    }

    fn replicate(
        &self,
        group_id: &str,
        leader_epoch: i32,
        frame: Vec<u8>,
    ) -> LocalBoxFuture<'static, Result<(), ReplicationError>> {
        let cluster = self.cluster.clone();
        // Read as the state is encoded (both with no await between): a reset applied on
        // this shard replaces the leader's state and raises the epoch together, so the
        // epoch is the one the encoded state derives from.
        let state_epoch = self
            .shard
            .upgrade()
            .map_or(0, |s| s.share_states.state_epoch(group_id));
        let record = MetadataRecord::ShareState(ShareStateRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            group: group_id.to_string(),
            leader: cluster.node_id,
            leader_epoch,
            state_epoch,
            state: share_state::encode(&frame),
        });
        Box::pin(async move {
            super::txn_state::propose_through_leader_changes(&cluster, record)
                .await
                .map_err(|(code, message)| ReplicationError { code, message })
        })
    }
}

/// An applied `ShareState` record: the partition's owning shard keeps the state.
pub(super) async fn apply(
    shard: &Rc<Shard>,
    change: ShareStateChange,
) -> Result<(), (i16, String)> {
    let owner = shard.owner_of_partition(&change.topic, change.partition);
    let applied = shard
        .invoke_on(owner, move |s| async move { s.share_states.apply(change) })
        .await;
    match applied {
        Ok(Ok(())) => Ok(()),
        Ok(Err((error, message))) => Err((error.code(), message)),
        Err(gone) => Err((ResponseError::UnknownServerError.code(), gone.to_string())),
    }
}

/// Every shard's share states, for a snapshot image at the index just applied (the apply
/// loop is their only writer).
pub(super) async fn gather(shard: &Rc<Shard>) -> ShareStatesImage {
    let per_shard = shard
        .invoke_on_all(|s| async move { s.share_states.entries() })
        .await;
    let mut image: ShareStatesImage = per_shard.into_iter().flatten().flatten().collect();
    image.sort_by(|a, b| (&a.topic, a.partition, &a.group).cmp(&(&b.topic, b.partition, &b.group)));
    image
}

/// The groups' state epochs, for a snapshot image (every shard holds the same; this is
/// shard 0, where the apply loop runs).
pub(super) fn gather_epochs(shard: &Shard) -> ShareStateEpochsImage {
    let mut epochs: ShareStateEpochsImage = shard
        .share_states
        .state_epochs
        .borrow()
        .iter()
        .map(|(g, e)| (g.clone(), *e))
        .collect();
    epochs.sort();
    epochs
}

/// A snapshot image was installed: each shard's partitions get exactly the image's
/// states, and every shard the image's state epochs.
pub(super) async fn install(
    shard: &Rc<Shard>,
    image: ShareStatesImage,
    epochs: ShareStateEpochsImage,
) {
    let mut per_shard: Vec<Vec<ShareStateChange>> =
        (0..shard.count()).map(|_| Vec::new()).collect();
    for entry in image {
        let Some(frame) = share_state::decode(&entry.state) else {
            tracing::error!(topic = %entry.topic, partition = entry.partition,
                group = %entry.group, "undecodable share state in a snapshot skipped");
            continue;
        };
        let owner = shard.owner_of_partition(&entry.topic, entry.partition);
        if let Some(states) = per_shard.get_mut(owner) {
            states.push(ShareStateChange {
                topic: entry.topic,
                partition: entry.partition,
                group: entry.group,
                leader_epoch: entry.leader_epoch,
                state_epoch: 0,
                frame,
            });
        }
    }
    for (owner, states) in per_shard.into_iter().enumerate() {
        let epochs = epochs.clone();
        let installed = shard
            .invoke_on(owner, move |s| async move {
                s.share_states.replace(states, epochs)
            })
            .await;
        if installed.is_err() {
            tracing::error!(
                owner,
                "snapshot share states not installed: the shard is gone"
            );
        }
    }
}

#[path = "share_state_reset.rs"]
mod reset;
pub(super) use reset::apply_reset;
pub use reset::propose_reset;

#[cfg(test)]
#[path = "share_state_tests.rs"]
mod tests;
