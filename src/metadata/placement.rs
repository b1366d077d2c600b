//! Replica placement in cluster mode (issue 17, decision 0008): where a new topic's or
//! partition's replicas go, and the check every replica list in a record must pass. Owns
//! no state: the metadata writer calls it on the state it applies to.

use super::MetadataError;
use super::replicated::ClusterState;

/// Every partition has at least one replica, no broker twice, and only registered brokers.
pub(super) fn check_replicas(
    cluster: &ClusterState,
    replicas: &[Vec<i32>],
) -> Result<(), MetadataError> {
    for list in replicas {
        let factor = i16::try_from(list.len()).unwrap_or(i16::MAX);
        if list.is_empty() {
            return Err(MetadataError::InvalidReplicationFactor(0));
        }
        for (i, broker) in list.iter().enumerate() {
            if list[..i].contains(broker) || !cluster.brokers.contains_key(broker) {
                return Err(MetadataError::InvalidReplicationFactor(factor));
            }
        }
    }
    Ok(())
}

/// Kafka's default placement: partition `p`'s replicas are `factor` consecutive live
/// brokers starting at `(start + p) % n`, so leaders spread evenly. `None` when `factor`
/// exceeds the live broker count (INVALID_REPLICATION_FACTOR).
pub fn place_replicas(
    live: &[i32],
    partitions: i32,
    first_partition: i32,
    factor: usize,
    start: usize,
) -> Option<Vec<Vec<i32>>> {
    if factor == 0 || factor > live.len() {
        return None;
    }
    let n = live.len();
    let placed = (first_partition..partitions)
        .map(|p| {
            let offset = start + usize::try_from(p).unwrap_or(0);
            (0..factor).map(|r| live[(offset + r) % n]).collect()
        })
        .collect();
    Some(placed)
}
