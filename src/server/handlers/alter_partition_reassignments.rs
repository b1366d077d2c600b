//! AlterPartitionReassignments (KIP-455). On one node the only possible replica set is
//! `[node_id]`, which every partition already has, so reassigning to it completes at once
//! (success, nothing moves); any other set fails Kafka's manual-assignment check with
//! INVALID_REPLICA_ASSIGNMENT. Cancelling (null replicas) finds no reassignment in progress.
//! In cluster mode each partition's change is a record through the metadata log
//! (`MetadataRecord::ReassignPartition`), validated and applied by `metadata::reassign` on
//! every node from the same state; the answer comes once this node has applied it. The
//! data then moves by replication (the new replicas follow the leader) and the leader's
//! ISR expansion completes it (decision 0019).

use crate::server::context::RequestContext;
use crate::shard::topics::check_partition_assignment;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
};
use crate::metadata::replicated::MetadataRecord;
use futures_util::StreamExt;
use kafka_protocol::protocol::StrBytes;

/// Partition changes proposed to the metadata log at once by one request.
const MAX_CONCURRENT_REASSIGNMENTS: usize = 64;

fn refused(partition: i32, error: ResponseError, message: String) -> ReassignablePartitionResponse {
    ReassignablePartitionResponse::default()
        .with_partition_index(partition)
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// One partition's answer; `partitions` is the topic's count when it exists.
fn reassign(
    node_id: i32,
    topic: &str,
    partitions: Option<i32>,
    partition: i32,
    replicas: Option<&[BrokerId]>,
) -> ReassignablePartitionResponse {
    if !partitions.is_some_and(|count| (0..count).contains(&partition)) {
        return refused(
            partition,
            ResponseError::UnknownTopicOrPartition,
            format!("Unable to find partition {topic}-{partition}."),
        );
    }
    let Some(replicas) = replicas else {
        return refused(
            partition,
            ResponseError::NoReassignmentInProgress,
            format!("No ongoing reassignment for partition {topic}-{partition}."),
        );
    };
    let replicas: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    match check_partition_assignment(node_id, &replicas, None) {
        Ok(()) => ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(0)
            .with_error_message(None),
        Err(e) => ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(e.code)
            .with_error_message(Some(StrBytes::from_string(e.message))),
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let node_id = ctx.shard.config.node_id;
    let snapshot = ctx.shard.metadata.load_full();
    if let Some(handle) = ctx.shard.cluster.clone() {
        return AlterPartitionReassignmentsResponse::default()
            .with_throttle_time_ms(0)
            .with_error_code(0)
            .with_error_message(None)
            .with_responses(reassign_in_cluster(handle, request).await);
    }
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let count = snapshot.topic(&topic.name.0).map(|t| t.partitions);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    reassign(node_id, &topic.name.0, count, p.partition_index, p.replicas.as_deref())
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_error_message(None)
        .with_responses(responses)
}

/// Cluster mode: one record per partition, answered in request order.
async fn reassign_in_cluster(
    handle: std::sync::Arc<crate::cluster::ClusterHandle>,
    request: AlterPartitionReassignmentsRequest,
) -> Vec<ReassignableTopicResponse> {
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let partitions: Vec<ReassignablePartitionResponse> =
            futures_util::stream::iter(topic.partitions)
                .map(|p| {
                    let handle = handle.clone();
                    let record = MetadataRecord::ReassignPartition {
                        topic: name.clone(),
                        partition: p.partition_index,
                        target: p.replicas.map(|r| r.iter().map(|b| b.0).collect()),
                    };
                    async move {
                        match handle.propose(record).await {
                            Ok(_) => ReassignablePartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(0)
                                .with_error_message(None),
                            Err((code, message)) => ReassignablePartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                                .with_error_message(Some(StrBytes::from_string(message))),
                        }
                    }
                })
                .buffered(MAX_CONCURRENT_REASSIGNMENTS)
                .collect()
                .await;
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    responses
}
