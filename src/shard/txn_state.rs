//! Cluster mode: the transaction coordinators' state through the metadata log (issue 17,
//! decision 0022). `ClusterTxns` is the `TxnReplicator` each shard's coordinator is given:
//! it proposes an id's new state as a `MetadataRecord::TxnState`. The apply loop
//! (`cluster_apply`) hands every applied record to the id's owning shard here, and gathers
//! / hands out the states of a snapshot image.
//! Must not: decide transitions (the transaction driver does) or talk Raft (the
//! `ClusterHandle` does).

use super::Shard;
use crate::cluster::{ClusterHandle, PROPOSAL_TIMEOUT};
use crate::metadata::replicated::MetadataRecord;
use crate::metadata::txn_state::{self, TxnStatesImage};
use crate::txn::{TxnError, TxnMetadata, TxnReplicator};
use futures_util::future::LocalBoxFuture;
use kafka_protocol::ResponseError;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Between two tries of a state change while the quorum has no leader.
const NO_LEADER_RETRY: Duration = Duration::from_millis(100);

/// Gives this shard's transaction coordinator the metadata log, in cluster mode (start-up).
/// The `CatchUp` that lets this node coordinate is the group offsets' (`group_offsets`).
pub(super) fn replicate_if_clustered(shard: &Rc<Shard>) {
    if let Some(cluster) = &shard.cluster {
        shard.txns.replicate_through(Rc::new(ClusterTxns {
            cluster: cluster.clone(),
        }));
    }
}

struct ClusterTxns {
    cluster: Arc<ClusterHandle>,
}

impl TxnReplicator for ClusterTxns {
    fn replicate(
        &self,
        meta: TxnMetadata,
        base_version: u64,
    ) -> LocalBoxFuture<'static, Result<(), TxnError>> {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            // Refused before it is proposed: the record would be refused on apply anyway.
            let metadata = txn_state::encode(&meta).ok_or(TxnError::TooLarge)?;
            let record = MetadataRecord::TxnState {
                transactional_id: meta.transactional_id.clone(),
                coordinator: cluster.node_id,
                base_version,
                metadata,
            };
            propose_through_leader_changes(&cluster, record)
                .await
                .map_err(|e| {
                    tracing::warn!(id = %meta.transactional_id, code = e.0, message = %e.1,
                        "transaction state not replicated");
                    txn_error(&e)
                })
        })
    }
}

/// Proposes `record`, again while the quorum has no leader (NOT_CONTROLLER: dropped, or
/// the leader changed under it) for up to `PROPOSAL_TIMEOUT` (the last try has its own
/// bound: 20 s at worst): a quorum leader's death then costs an EndTxn its election, not an
/// error. A dropped proposal that was applied after all is refused on its retry (its base
/// version is gone); `Lease::persist` sees the state it proposed and takes it as written.
pub(super) async fn propose_through_leader_changes(
    cluster: &ClusterHandle,
    record: MetadataRecord,
) -> Result<(), (i16, String)> {
    let deadline = std::time::Instant::now() + PROPOSAL_TIMEOUT;
    loop {
        match cluster.propose(record.clone()).await {
            Ok(_) => return Ok(()),
            Err((code, _))
                if code == ResponseError::NotController.code()
                    && std::time::Instant::now() + NO_LEADER_RETRY < deadline =>
            {
                compio::time::sleep(NO_LEADER_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A proposal's failure as the transaction requests answer it: NOT_COORDINATOR as it is
/// (the client finds the coordinator again); no quorum leader, a timeout and anything else
/// as COORDINATOR_NOT_AVAILABLE, which clients retry (Kafka's coordinator maps a failed or
/// timed-out append to its state log to the same code).
fn txn_error((code, _): &(i16, String)) -> TxnError {
    if *code == ResponseError::NotCoordinator.code() {
        TxnError::NotCoordinator
    } else {
        TxnError::CoordinatorNotAvailable
    }
}

/// An applied `TxnState` record: the id's owning shard takes the state, stamped with the
/// index just applied; a record derived from a replaced state is refused (NOT_COORDINATOR
/// to its proposer), the same on every node.
pub(super) async fn apply(
    shard: &Rc<Shard>,
    meta: TxnMetadata,
    base_version: u64,
) -> Result<(), (i16, String)> {
    let snapshot = shard.metadata.load();
    let version = snapshot.cluster.as_ref().map_or(0, |c| c.applied_index);
    let owner = shard.owner_of_transactional_id(&meta.transactional_id);
    let applied = shard
        .invoke_on(owner, move |s| async move {
            s.txns.apply_replicated(meta, base_version, version)
        })
        .await;
    match applied {
        Ok(Ok(())) => Ok(()),
        Ok(Err(stale)) => Err((ResponseError::NotCoordinator.code(), stale)),
        Err(gone) => {
            tracing::error!(
                owner,
                "replicated transaction state not applied: the owning shard is gone"
            );
            Err((
                ResponseError::CoordinatorNotAvailable.code(),
                gone.to_string(),
            ))
        }
    }
}

/// Every shard's transaction states, for a snapshot image at the index just applied (the
/// apply loop is their only writer, so nothing changes while they are gathered).
pub(super) async fn gather(shard: &Rc<Shard>) -> TxnStatesImage {
    let per_shard = shard
        .invoke_on_all(|s| async move { s.txns.replicated_states() })
        .await;
    let mut image = TxnStatesImage::new();
    for (version, meta) in per_shard.into_iter().flatten().flatten() {
        // Every applied state passed `encode`'s bound when it was proposed.
        match txn_state::encode(&meta) {
            Some(encoded) => image.push((version, encoded)),
            None => {
                tracing::error!(id = %meta.transactional_id, "oversized transaction state left out of a snapshot")
            }
        }
    }
    image.sort();
    image
}

/// A snapshot image was installed: each shard's ids get exactly the image's states.
pub(super) async fn install(shard: &Rc<Shard>, image: TxnStatesImage) {
    let mut per_shard: Vec<Vec<(u64, TxnMetadata)>> = vec![Vec::new(); shard.count()];
    for (version, encoded) in image {
        let Some(meta) = txn_state::decode(&encoded) else {
            tracing::error!(
                version,
                "undecodable transaction state in a snapshot skipped"
            );
            continue;
        };
        let owner = shard.owner_of_transactional_id(&meta.transactional_id);
        if let Some(states) = per_shard.get_mut(owner) {
            states.push((version, meta));
        }
    }
    for (owner, states) in per_shard.into_iter().enumerate() {
        let installed = shard
            .invoke_on(
                owner,
                move |s| async move { s.txns.install_replicated(states) },
            )
            .await;
        if installed.is_err() {
            tracing::error!(
                owner,
                "snapshot transaction states not installed: the owning shard is gone"
            );
        }
    }
}
