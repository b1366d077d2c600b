//! Cluster mode: the group coordinators' committed offsets through the metadata log
//! (issue 17, decision 0018). `ClusterOffsets` is the `OffsetsReplicator` each
//! shard's coordinator is given: it turns queued offset records into
//! `MetadataRecord::GroupOffsets` proposals. The apply loop (`cluster_apply`) hands every
//! applied record to the group's owning shard here, and gathers / hands out the offsets of
//! a snapshot image.
//! Must not: decide what is written (the group coordinator does) or talk Raft (the
//! `ClusterHandle` does).

use super::Shard;
use crate::cluster::ClusterHandle;
use crate::group::offset_log::{GroupOffsets, LogRecord, OffsetEntry};
use crate::group::{OffsetsReplicator, WriteError, WriteOrigin};
use crate::metadata::MetadataView;
use crate::metadata::group_offsets::{
    GroupOffsetsImage, MAX_OFFSET_CHANGES_PER_RECORD, OffsetChange,
};
use crate::metadata::replicated::MetadataRecord;
use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Gives this shard's group coordinator the metadata log, in cluster mode (start-up); on
/// shard 0 also starts the catch-up that lets this node coordinate groups.
pub(super) fn replicate_if_clustered(shard: &Rc<Shard>) {
    if let Some(cluster) = &shard.cluster {
        shard.groups.replicate_through(Rc::new(ClusterOffsets {
            cluster: cluster.clone(),
            metadata: shard.metadata.clone(),
        }));
        if shard.id == 0 {
            compio::runtime::spawn(super::catch_up::catch_up(shard.clone(), cluster.clone()))
                .detach();
        }
    }
}

struct ClusterOffsets {
    cluster: Arc<ClusterHandle>,
    metadata: MetadataView,
}

impl OffsetsReplicator for ClusterOffsets {
    fn coordinates(&self, group_id: &str) -> bool {
        let snapshot = self.metadata.load();
        let Some(cluster) = snapshot.cluster.as_deref() else {
            return false;
        };
        // Once caught up, a lag behind the quorum is harmless: the coordinator changes
        // only through records, so one that became coordinator has applied every commit
        // acknowledged before, and later ones by others are refused at apply.
        self.cluster.caught_up_since_start.load(Ordering::Acquire)
            && cluster.coordinator(group_id) == Some(self.cluster.node_id)
    }

    fn coordinates_slot(&self, slot: usize) -> bool {
        let snapshot = self.metadata.load();
        let Some(cluster) = snapshot.cluster.as_deref() else {
            return false;
        };
        self.cluster.caught_up_since_start.load(Ordering::Acquire)
            && cluster.coordinates_slot(self.cluster.node_id, slot)
    }

    fn coordinator_epoch(&self, group_id: &str) -> Option<i32> {
        let snapshot = self.metadata.load();
        let (broker, epoch) = snapshot
            .cluster
            .as_deref()?
            .coordinator_with_epoch(group_id)?;
        (self.cluster.caught_up_since_start.load(Ordering::Acquire)
            && broker == self.cluster.node_id)
            .then_some(epoch)
    }

    fn applied_index(&self) -> u64 {
        self.metadata
            .load()
            .cluster
            .as_deref()
            .map_or(0, |c| c.applied_index)
    }

    fn format_level(&self) -> i16 {
        self.metadata
            .load()
            .cluster
            .as_deref()
            .map_or(crate::metadata::format_level::LEGACY_LEVEL, |c| {
                c.format_level()
            })
    }

    fn store_membership(
        &self,
        group_id: String,
        epoch: i32,
        membership: crate::metadata::group_membership::GroupMembership,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let record = MetadataRecord::GroupMembership {
                group: group_id,
                coordinator: cluster.node_id,
                coordinator_epoch: epoch,
                membership,
            };
            // Bounded: a SyncGroup or heartbeat answer waits for this commit. The proposal
            // itself runs on (and forgets its waiter at its own timeout) if the wait ends.
            let wait = Duration::from_millis(crate::group::MEMBERSHIP_COMMIT_WAIT_MS);
            let (tx, rx) = futures_channel::oneshot::channel();
            compio::runtime::spawn(async move {
                let _ = tx.send(cluster.propose(record).await);
            })
            .detach();
            match compio::time::timeout(wait, rx).await {
                Ok(Ok(proposed)) => proposed.map(|_| ()).map_err(write_error),
                Ok(Err(_)) => Err(WriteError::unavailable("the metadata proposal was dropped")),
                Err(_) => Err(WriteError {
                    code: ResponseError::RequestTimedOut.code(),
                    message: "the group membership was not committed in time".into(),
                }),
            }
        })
    }

    fn replicate(
        &self,
        group_id: String,
        records: Vec<LogRecord>,
        origin: WriteOrigin,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        let cluster = self.cluster.clone();
        let coordinator = (origin == WriteOrigin::Coordinator).then_some(cluster.node_id);
        let changes: Vec<OffsetChange> = records.into_iter().map(to_change).collect();
        Box::pin(async move {
            // In order, one record per chunk: a large commit is several records (each
            // bounded); the answer is the first failure, and the client retries the whole.
            for chunk in changes.chunks(MAX_OFFSET_CHANGES_PER_RECORD) {
                let record = MetadataRecord::GroupOffsets {
                    group: group_id.clone(),
                    coordinator,
                    changes: chunk.to_vec(),
                };
                cluster.propose(record).await.map_err(write_error)?;
            }
            Ok(())
        })
    }

    fn replicate_changes(
        &self,
        group_id: String,
        changes: Vec<OffsetChange>,
    ) -> LocalBoxFuture<'static, Result<(), WriteError>> {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            // As `replicate`: bounded records in order, the first failure is the answer
            // (TxnOffsetCommit is retried whole; a marker is retried by the timer).
            for chunk in changes.chunks(MAX_OFFSET_CHANGES_PER_RECORD) {
                let record = MetadataRecord::GroupOffsets {
                    group: group_id.clone(),
                    coordinator: Some(cluster.node_id),
                    changes: chunk.to_vec(),
                };
                cluster.propose(record).await.map_err(write_error)?;
            }
            Ok(())
        })
    }
}

/// A proposal's failure as the group requests answer it: NOT_COORDINATOR and
/// REQUEST_TIMED_OUT as they are; no quorum leader (NOT_CONTROLLER, which group clients
/// do not expect) and anything else as COORDINATOR_NOT_AVAILABLE, which they retry.
fn write_error((code, message): (i16, String)) -> WriteError {
    let kept = [
        ResponseError::NotCoordinator.code(),
        ResponseError::RequestTimedOut.code(),
    ];
    let code = if kept.contains(&code) {
        code
    } else {
        ResponseError::CoordinatorNotAvailable.code()
    };
    WriteError { code, message }
}

fn to_change(record: LogRecord) -> OffsetChange {
    match record {
        LogRecord::Commit {
            topic,
            partition,
            entry,
        } => OffsetChange::Commit {
            topic,
            partition,
            offset: entry.offset,
            leader_epoch: entry.leader_epoch,
            metadata: entry.metadata,
            commit_ms: entry.commit_ms,
        },
        LogRecord::DeletePartition {
            topic, partition, ..
        } => OffsetChange::Delete { topic, partition },
        LogRecord::ExpirePartition {
            topic,
            partition,
            commit_ms,
        } => OffsetChange::Expire {
            topic,
            partition,
            commit_ms,
        },
        LogRecord::DeleteGroup { .. } => OffsetChange::DeleteGroup,
    }
}

fn to_record(change: OffsetChange) -> LogRecord {
    match change {
        OffsetChange::Commit {
            topic,
            partition,
            offset,
            leader_epoch,
            metadata,
            commit_ms,
        } => LogRecord::Commit {
            topic,
            partition,
            entry: OffsetEntry {
                offset,
                leader_epoch,
                metadata,
                commit_ms,
            },
        },
        OffsetChange::Delete { topic, partition } => LogRecord::DeletePartition {
            topic,
            partition,
            at_ms: 0,
        },
        OffsetChange::Expire {
            topic,
            partition,
            commit_ms,
        } => LogRecord::ExpirePartition {
            topic,
            partition,
            commit_ms,
        },
        OffsetChange::DeleteGroup => LogRecord::DeleteGroup { at_ms: 0 },
        // Kept apart by `apply` and `install`; never reached.
        OffsetChange::TxnPending { .. } | OffsetChange::TxnEnd { .. } => {
            LogRecord::DeleteGroup { at_ms: 0 }
        }
    }
}

/// An applied `GroupOffsets` record: the group's owning shard applies it.
pub(super) async fn apply(shard: &Rc<Shard>, group: String, changes: Vec<OffsetChange>) {
    let owner = shard.owner_of_group(&group);
    let (transactional, plain): (Vec<OffsetChange>, Vec<OffsetChange>) = changes
        .into_iter()
        .partition(OffsetChange::is_transactional);
    let records: Vec<LogRecord> = plain.into_iter().map(to_record).collect();
    let applied = shard
        .invoke_on(owner, move |s| async move {
            // A record carries either kind (each is proposed on its own), so the order
            // between the two is never observable.
            if !records.is_empty() {
                s.groups.apply_replicated(&group, &records);
            }
            if !transactional.is_empty() {
                s.groups.apply_replicated_txn(&group, &transactional);
            }
        })
        .await;
    if applied.is_err() {
        tracing::error!(
            owner,
            "replicated offsets not applied: the owning shard is gone"
        );
    }
}

/// Every shard's committed offsets, for a snapshot image at the index just applied (the
/// apply loop is the only writer, so nothing changes while they are gathered).
pub(super) async fn gather(shard: &Rc<Shard>) -> GroupOffsetsImage {
    let per_shard = shard
        .invoke_on_all(
            |s| async move { (s.groups.replicated_offsets(), s.groups.replicated_pending()) },
        )
        .await;
    let mut by_group: std::collections::BTreeMap<String, Vec<OffsetChange>> =
        std::collections::BTreeMap::new();
    for (offsets, pending) in per_shard.into_iter().flatten() {
        for (group, offsets) in offsets {
            by_group
                .entry(group)
                .or_default()
                .extend(commits_of(offsets));
        }
        for (group, changes) in pending {
            by_group.entry(group).or_default().extend(changes);
        }
    }
    by_group.into_iter().collect()
}

fn commits_of(offsets: GroupOffsets) -> Vec<OffsetChange> {
    let mut out = Vec::new();
    for (topic, partitions) in offsets {
        for (partition, entry) in partitions {
            out.push(to_change(LogRecord::Commit {
                topic: topic.clone(),
                partition,
                entry,
            }));
        }
    }
    out
}

/// A snapshot image was installed: each shard's groups get exactly the image's offsets.
pub(super) async fn install(shard: &Rc<Shard>, image: GroupOffsetsImage) {
    let count = shard.count();
    type ShardImage = (
        HashMap<String, GroupOffsets>,
        HashMap<String, Vec<OffsetChange>>,
    );
    let mut per_shard: Vec<ShardImage> = vec![(HashMap::new(), HashMap::new()); count];
    for (group, changes) in image {
        let (transactional, plain): (Vec<OffsetChange>, Vec<OffsetChange>) = changes
            .into_iter()
            .partition(OffsetChange::is_transactional);
        let mut offsets = GroupOffsets::new();
        for change in plain {
            to_record(change).apply(&mut offsets);
        }
        let owner = shard.owner_of_group(&group);
        if let Some((groups, pending)) = per_shard.get_mut(owner) {
            if !transactional.is_empty() {
                pending.insert(group.clone(), transactional);
            }
            groups.insert(group, offsets);
        }
    }
    for (owner, (groups, pending)) in per_shard.into_iter().enumerate() {
        let installed = shard
            .invoke_on(owner, move |s| async move {
                s.groups.install_replicated(groups);
                s.groups.install_pending(pending);
            })
            .await;
        if installed.is_err() {
            tracing::error!(
                owner,
                "snapshot offsets not installed: the owning shard is gone"
            );
        }
    }
}
