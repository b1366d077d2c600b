//! Transactions (KIP-98): the transaction coordinator of one shard, its state machine and
//! its durable log.
//!
//! A transactional id belongs to one log slot (`log::slot_of`, Kafka's
//! `__transaction_state` partitions) and a slot to one shard (`owner_shard`); that shard's
//! `TxnCoordinator` holds the id's producer id, epoch and transaction state and persists
//! every change before acting on it. The work that crosses shards — allocating producer
//! ids, writing COMMIT/ABORT markers to partitions, completing transactional offset
//! commits in groups — is the shard's transaction driver (`shard::transactions`), which
//! the handlers and the shard's timer call.
//!
//! Owns: `state` (metadata, state machine, limits, errors), `log` (file format, replay),
//! `coordinator` (id table, leases, slot writers, compaction), `replicated` (cluster mode's
//! state through the metadata log instead of the slot logs), `fault` (the crash tests' hook).
//! Must not: know about sockets or other shards.

mod coordinator;
pub mod fault;
pub mod log;
mod replicated;
pub mod state;

pub use coordinator::{
    COMPACTION_MIN_LOG_BYTES, COMPACTION_RATIO, Lease, TxnCoordinator, owner_shard,
};
pub use replicated::TxnReplicator;
pub use state::{NO_PRODUCER_ID, TxnError, TxnMetadata, TxnState};
