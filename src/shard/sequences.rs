//! A producer's next sequence on a partition, asked of the partition's owning shard: the
//! broker's own producers (delayed delivery, dead-letter topics) resume their sequence
//! after a crash from the partition's producer state, so a retried append is recognised as
//! a duplicate instead of written twice.
//!
//! Must not: append anything or change producer state.

use std::rc::Rc;

use super::{Lookup, Shard};
use crate::storage::batch::add_sequence;

/// What the owner of a partition knows of one producer's sequence there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextSequence {
    /// Its last sequence + 1, or 0 when the partition has no state for this producer.
    Known(i32),
    /// No such partition (deleted, or never created).
    Missing,
    /// The partition is offline or its shard cannot answer now.
    Unavailable,
}

/// `producer_id`'s next sequence on `topic`-`partition`, from the partition's owner.
pub async fn next_sequence(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    producer_id: i64,
) -> NextSequence {
    let owner = shard.owner_of_partition(topic, partition);
    let topic = topic.to_string();
    shard
        .invoke_on(owner, move |s| async move {
            match s.partitions.get(&topic, partition) {
                Lookup::Online(p) => NextSequence::Known(
                    p.producer_states()
                        .iter()
                        .find(|state| state.producer_id == producer_id)
                        .map_or(0, |state| add_sequence(state.last_sequence, 1)),
                ),
                Lookup::Missing => NextSequence::Missing,
                Lookup::Offline(_) => NextSequence::Unavailable,
            }
        })
        .await
        .unwrap_or(NextSequence::Unavailable)
}
