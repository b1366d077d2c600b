//! Cluster mode's transaction coordinator state as the metadata log carries it (issue 17,
//! decision 0022): a `MetadataRecord::TxnState` holds one transactional id's whole state in
//! the slot log's frame format (`txn::log::encode_state`, base64 in the JSON record), and
//! this is the check every node runs when it applies one. The states live with each
//! node's transaction coordinators (`shard::txn_state`), which every node fills from the
//! same applied records, so the broker that coordinates an id after a failover holds it.
//! Must not: hold the states (the shards do) or decide transitions (the coordinator did).

use super::MetadataError;
use super::replicated::{ClusterState, MAX_RECORD_BYTES};
use crate::txn::TxnMetadata;
use crate::txn::state::MAX_TRANSACTIONAL_ID_BYTES;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Largest encoded state (one slot-log frame) a `TxnState` record may carry. A transaction
/// at every per-transaction limit at once (`txn::state::MAX_TXN_RECORD_BYTES`, about 9 MB:
/// 10,000 partitions of 249-byte topic names and 1,000 offsets with 4 KiB of metadata)
/// would not fit a metadata record: in cluster mode a change past this is refused at the
/// coordinator before it is proposed (INVALID_REQUEST, as the other per-transaction limits)
/// and on apply. 10,000 partitions of 64-byte topic names take 0.7 MB.
pub const MAX_REPLICATED_TXN_STATE_BYTES: usize = 2 * 1024 * 1024;
/// The record's JSON around the state: the id (JSON-escaped, 6 bytes per byte at worst),
/// field names, the coordinator and the base version.
const RECORD_OVERHEAD_BYTES: usize = MAX_TRANSACTIONAL_ID_BYTES * 6 + 64 * 1024;
const _: () = assert!(
    MAX_REPLICATED_TXN_STATE_BYTES.div_ceil(3) * 4 + RECORD_OVERHEAD_BYTES <= MAX_RECORD_BYTES
);

/// Every id's state in a snapshot image: (version, encoded state), the version being the
/// log index of the record that wrote it (see `check_record`).
pub type TxnStatesImage = Vec<(u64, String)>;

/// `meta` as a record carries it; `None` past `MAX_REPLICATED_TXN_STATE_BYTES`.
pub fn encode(meta: &TxnMetadata) -> Option<String> {
    let frame = crate::txn::log::encode_state(meta);
    (frame.len() <= MAX_REPLICATED_TXN_STATE_BYTES).then(|| BASE64.encode(frame))
}

/// The state `encode` wrote; `None` for anything else (oversized, not base64, a torn or
/// corrupt frame).
pub fn decode(encoded: &str) -> Option<TxnMetadata> {
    if encoded.len() > MAX_REPLICATED_TXN_STATE_BYTES.div_ceil(3) * 4 {
        return None;
    }
    let frame = BASE64.decode(encoded).ok()?;
    crate::txn::log::decode_state(&frame)
}

/// Whether a `TxnState` record may be applied, and its state: well formed, of the id it
/// names, and written by the broker that coordinates the id in the state it is applied to
/// (a stale coordinator's write is refused with NOT_COORDINATOR, the same on every node;
/// the coordinator changes only through records, so one that took over has applied every
/// state acknowledged before). Whether the write was based on the id's current version is
/// the owning shard's check (`txn::TxnCoordinator::apply_replicated`).
pub fn check_record(
    cluster: Option<&ClusterState>,
    transactional_id: &str,
    coordinator: i32,
    metadata: &str,
) -> Result<TxnMetadata, MetadataError> {
    let invalid = || MetadataError::InvalidTxnState(transactional_id.to_string());
    let meta = decode(metadata).ok_or_else(invalid)?;
    if meta.transactional_id != transactional_id {
        return Err(invalid());
    }
    let current = cluster.and_then(|c| c.coordinator(transactional_id));
    if current != Some(coordinator) {
        return Err(MetadataError::NotCoordinator {
            group: transactional_id.to_string(),
            proposer: coordinator,
            current,
        });
    }
    Ok(meta)
}

#[cfg(test)]
#[path = "txn_state_tests.rs"]
mod tests;
