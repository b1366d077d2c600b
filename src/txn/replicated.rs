//! Cluster mode (issue 17, decision 0022): a transactional id's state goes through the
//! metadata Raft log instead of the shard's slot logs. The coordinator still decides every
//! change under the id's lease; `Lease::persist` hands the whole new state to a
//! `TxnReplicator` (the shard layer's, which proposes it) and returns once the quorum
//! committed it and this node applied it. Every node applies every id's records on the
//! id's owning shard (`apply_replicated`), so the broker that coordinates an id after a
//! failover holds its state and finishes what the old coordinator decided.
//!
//! Versions: each applied state is stamped with the log index of its record, and a record
//! names the version it was derived from; a record whose base is no longer the id's state
//! (a lease held across a coordinator move and back) is refused, the same on every node.
//!
//! Owns: the replicated path of `persist`, applying records, a snapshot image's states.
//! Must not: talk to the quorum (the replicator does) or write slot logs.

use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::coordinator::{Lease, TxnCoordinator};
use super::state::{TxnError, TxnMetadata, TxnState};

/// Cluster mode's way to the metadata log, given to each shard's coordinator at start-up.
pub trait TxnReplicator {
    /// Proposes `meta` as its id's state, derived from the state of version
    /// `base_version`; resolves once committed and applied on this node, or with the error
    /// to answer (NOT_COORDINATOR: another broker coordinates the id now).
    fn replicate(
        &self,
        meta: TxnMetadata,
        base_version: u64,
    ) -> LocalBoxFuture<'static, Result<(), TxnError>>;
}

impl TxnCoordinator {
    /// Cluster mode: states go through `replicator` from now on. States replayed from slot
    /// logs are dropped: the metadata log (applied after this) is the only source.
    pub fn replicate_through(&self, replicator: Rc<dyn TxnReplicator>) {
        let mut txns = self.inner.txns.borrow_mut();
        if !txns.is_empty() {
            tracing::warn!(
                ids = txns.len(),
                "cluster mode ignores the transaction slot logs in __transaction_state"
            );
        }
        txns.clear();
        *self.inner.replicator.borrow_mut() = Some(replicator);
    }

    /// The version of the id's state (0: unknown id, or a single node).
    pub fn version_of(&self, transactional_id: &str) -> u64 {
        self.inner
            .versions
            .borrow()
            .get(transactional_id)
            .copied()
            .unwrap_or(0)
    }

    /// An applied `TxnState` record (checked for its coordinator already): the id's state
    /// becomes `meta` at `version` if the record was derived from the id's current state;
    /// else the refusal to answer its proposer with. A `Dead` state forgets the id.
    pub fn apply_replicated(
        &self,
        meta: TxnMetadata,
        base_version: u64,
        version: u64,
    ) -> Result<(), String> {
        let id = meta.transactional_id.clone();
        let current = self.version_of(&id);
        if current != base_version {
            return Err(format!(
                "transactional id {id}: the state changed since version {base_version} (now {current})"
            ));
        }
        if meta.state == TxnState::Dead {
            self.inner.txns.borrow_mut().remove(&id);
            self.inner.versions.borrow_mut().remove(&id);
        } else {
            self.inner.txns.borrow_mut().insert(id.clone(), meta);
            self.inner.versions.borrow_mut().insert(id, version);
        }
        Ok(())
    }

    /// Every id's state with its version, for a snapshot image.
    pub fn replicated_states(&self) -> Vec<(u64, TxnMetadata)> {
        self.all()
            .into_iter()
            .map(|meta| (self.version_of(&meta.transactional_id), meta))
            .collect()
    }

    /// A snapshot image was installed: this shard's ids get exactly the image's states.
    pub fn install_replicated(&self, states: Vec<(u64, TxnMetadata)>) {
        let mut txns = HashMap::with_capacity(states.len());
        let mut versions = HashMap::with_capacity(states.len());
        for (version, meta) in states {
            versions.insert(meta.transactional_id.clone(), version);
            txns.insert(meta.transactional_id.clone(), meta);
        }
        *self.inner.txns.borrow_mut() = txns;
        *self.inner.versions.borrow_mut() = versions;
    }
}

impl Lease {
    /// Cluster mode's `persist`: the state is the id's once the record is applied here.
    pub(super) async fn persist_replicated(
        &mut self,
        replicator: Rc<dyn TxnReplicator>,
        meta: TxnMetadata,
    ) -> Result<(), TxnError> {
        if let Err(e) = replicator.replicate(meta.clone(), self.version).await {
            // A proposal retried after its first try was dropped may have been applied
            // after all (the retry then finds its base replaced): the state is written.
            let applied = self.coordinator.get(&self.transactional_id);
            let written = match meta.state {
                TxnState::Dead => applied.is_none() && self.current.is_some(),
                _ => applied.as_ref() == Some(&meta),
            };
            if !written {
                return Err(e);
            }
        }
        self.version = self.coordinator.version_of(&self.transactional_id);
        self.current = (meta.state != TxnState::Dead).then_some(meta);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_derived_from_a_replaced_one_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let coordinator = TxnCoordinator::open(dir.path(), 0, 1).expect("open");
        let first = TxnMetadata::new("tx-a".into(), 7, 60_000, 1);
        coordinator
            .apply_replicated(first.clone(), 0, 5)
            .expect("a new id from version 0");
        assert_eq!(coordinator.version_of("tx-a"), 5);
        // A second write based on the unknown id (a lease taken before the first) is stale.
        let mut other = first.bumped(2);
        assert!(coordinator.apply_replicated(other.clone(), 0, 6).is_err());
        assert_eq!(coordinator.get("tx-a"), Some(first.clone()));
        other.state = TxnState::Ongoing;
        coordinator
            .apply_replicated(other.clone(), 5, 7)
            .expect("based on the current version");
        assert_eq!(
            coordinator.replicated_states(),
            vec![(7, other.clone())],
            "the image holds each id with its version"
        );
        // A tombstone forgets the id; an installed image replaces everything.
        coordinator
            .apply_replicated(other.dead(3), 7, 8)
            .expect("tombstone");
        assert_eq!(
            (coordinator.get("tx-a"), coordinator.version_of("tx-a")),
            (None, 0)
        );
        coordinator.install_replicated(vec![(9, first.clone())]);
        assert_eq!(coordinator.replicated_states(), vec![(9, first)]);
    }
}
