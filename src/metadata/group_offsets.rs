//! Cluster mode's committed group offsets as the metadata log carries them (issue 17,
//! decision 0018): the change kinds of a `MetadataRecord::GroupOffsets`, their
//! bounds, and the check every node runs when it applies one. The offsets themselves live
//! with the group coordinators of each node's shards (`group::replicated`), which every
//! node fills from the same applied records, so whichever broker coordinates a group after
//! a failover already holds its offsets.
//! Must not: hold the offsets (the shards do) or decide membership rules (the proposing
//! coordinator checked them).

use super::MetadataError;
use super::replicated::ClusterState;
use serde::{Deserialize, Serialize};

/// Changes one record may carry. A larger OffsetCommit (or expiry) is proposed as several
/// records; each stays far below `replicated::MAX_RECORD_BYTES` (see `MAX_CHANGE_BYTES`).
pub const MAX_OFFSET_CHANGES_PER_RECORD: usize = 128;
/// Largest encoded change: a Kafka topic name (249 bytes) and commit metadata at
/// `offset.metadata.max.bytes` (4,096), both JSON-escaped at worst 6 bytes per byte, plus
/// the fixed fields.
pub const MAX_CHANGE_BYTES: usize = (249 + 4096) * 6 + 256;
const _: () = assert!(
    MAX_OFFSET_CHANGES_PER_RECORD * MAX_CHANGE_BYTES + 64 * 1024
        <= super::replicated::MAX_RECORD_BYTES
);

/// One change to a group's committed offsets (the shapes of the group offsets log's
/// records, `group::offset_log::LogRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetChange {
    Commit {
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: String,
        /// The coordinator's wall clock at the commit, for retention.
        commit_ms: i64,
    },
    /// OffsetDelete.
    Delete { topic: String, partition: i32 },
    /// Retention: removed only if the stored commit is still the one of `commit_ms` (a
    /// newer commit applied in between survives).
    Expire {
        topic: String,
        partition: i32,
        commit_ms: i64,
    },
    /// DeleteGroups: every offset of the group.
    DeleteGroup,
    /// TxnOffsetCommit (decision 0022, "offsets of a transaction"): an offset held for the
    /// producer's open transaction, invisible to OffsetFetch until a `TxnEnd` commits it.
    /// Replicated so the group's next coordinator holds it after a failover.
    TxnPending {
        producer_id: i64,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: String,
        commit_ms: i64,
    },
    /// The transaction's marker reached the group's coordinator (Kafka's COMMIT/ABORT
    /// marker on the `__consumer_offsets` partition): every offset the producer holds in
    /// the group becomes committed (`commit`) or is dropped. A repeated end finds nothing.
    TxnEnd { producer_id: i64, commit: bool },
}

impl OffsetChange {
    /// Whether the change concerns a transaction's pending offsets (applied to the group's
    /// pending map rather than through the offsets log's record shapes).
    pub fn is_transactional(&self) -> bool {
        matches!(
            self,
            OffsetChange::TxnPending { .. } | OffsetChange::TxnEnd { .. }
        )
    }
}

/// Every committed offset of one group (`Commit` changes) and every offset its open
/// transactions hold (`TxnPending`), as a snapshot image holds it.
pub type GroupOffsetsImage = Vec<(String, Vec<OffsetChange>)>;

/// Whether a `GroupOffsets` record may be applied: bounded, and — when it names the
/// coordinator that proposed it — proposed by the broker that coordinates the group in the
/// state it is applied to. The same answer on every node; a commit taken by a broker that
/// was no longer the coordinator by then is refused (NOT_COORDINATOR), so a new
/// coordinator never misses a commit acknowledged after it took over.
pub fn check_record(
    cluster: Option<&ClusterState>,
    group: &str,
    coordinator: Option<i32>,
    changes: &[OffsetChange],
) -> Result<(), MetadataError> {
    if group.is_empty() || changes.len() > MAX_OFFSET_CHANGES_PER_RECORD {
        return Err(MetadataError::InvalidOffsets(group.to_string()));
    }
    let Some(proposer) = coordinator else {
        return Ok(());
    };
    let current = cluster.and_then(|c| c.coordinator(group));
    if current != Some(proposer) {
        return Err(MetadataError::NotCoordinator {
            group: group.to_string(),
            proposer,
            current,
        });
    }
    Ok(())
}
