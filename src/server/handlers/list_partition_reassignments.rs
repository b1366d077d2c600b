//! ListPartitionReassignments (KIP-455): the partition reassignments in progress. On one
//! node every partition's only replica is already where it belongs, so none is ever in
//! progress and the answer lists none. In cluster mode they are the metadata log's
//! (`metadata::reassign`), as this node has applied it: each with its replicas (target
//! first, then the ones being removed) and the replicas being added and removed; a null
//! topic list asks for all of them, a named partition with none in progress is left out
//! (as Kafka's controller does).

use crate::server::context::RequestContext;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

fn brokers(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let response = ListPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_error_message(None);
    let snapshot = ctx.shard.metadata.load_full();
    let Some(cluster) = snapshot.cluster.as_deref() else {
        return response.with_topics(Vec::new());
    };
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let mut topics: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (topic, partition, reassignment) in cluster.reassignments_in_progress() {
        let asked = wanted
            .as_ref()
            .is_none_or(|w| w.get(&topic).is_some_and(|ps| ps.contains(&partition)));
        if !asked {
            continue;
        }
        let ongoing = OngoingPartitionReassignment::default()
            .with_partition_index(partition)
            .with_replicas(brokers(cluster.replicas(&topic, partition)))
            .with_adding_replicas(brokers(&reassignment.adding))
            .with_removing_replicas(brokers(&reassignment.removing));
        topics.entry(topic).or_default().push(ongoing);
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    response.with_topics(topics)
}
