//! Views of cluster metadata that several handlers hand to a coordinator: one place, so
//! handlers never call each other for them.

use crate::group::consumer::TopicsView;
use crate::shard::Shard;

/// Every topic the broker knows, as the consumer-group assignor needs them (name -> id,
/// partition count). O(topics) per call: fine at the topic counts one node holds, and it
/// keeps the group coordinator free of metadata access.
pub fn topics_view(shard: &Shard) -> TopicsView {
    shard
        .metadata
        .load_full()
        .topics
        .values()
        .map(|t| (t.name.clone(), (t.id, t.partitions)))
        .collect()
}
