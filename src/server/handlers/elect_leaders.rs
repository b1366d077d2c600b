//! ElectLeaders (KIP-460): on one node every partition's only replica already leads, so a
//! preferred or unclean election is never needed. Named partitions answer
//! ELECTION_NOT_NEEDED (or UNKNOWN_TOPIC_OR_PARTITION); a null list means every partition,
//! and then, as in Kafka's controller, partitions that need no election are left out.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Kafka's ElectionType codes (v1+; v0 always asks for the preferred leader).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

fn partition_result(partition: i32, error: ResponseError, message: String) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

pub async fn handle(ctx: &RequestContext<'_>, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let response = ElectLeadersResponse::default().with_throttle_time_ms(0);
    if ctx.version >= 1 && request.election_type != PREFERRED && request.election_type != UNCLEAN {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    let snapshot = ctx.shard.metadata.load_full();
    let Some(wanted) = request.topic_partitions else {
        let mut names: Vec<&String> = snapshot.topics.keys().collect();
        names.sort();
        let results = names
            .into_iter()
            .map(|name| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(name.clone())))
                    .with_partition_result(Vec::new())
            })
            .collect();
        return response.with_error_code(0).with_replica_election_results(results);
    };
    let results = wanted
        .into_iter()
        .map(|topic| {
            let known = snapshot.topic(&topic.topic.0).map(|t| t.partitions);
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| match known {
                    Some(count) if (0..count).contains(&p) => partition_result(
                        p,
                        ResponseError::ElectionNotNeeded,
                        "Leader election not needed for topic partition.".into(),
                    ),
                    Some(_) => partition_result(
                        p,
                        ResponseError::UnknownTopicOrPartition,
                        format!("No such partition as {}-{p}", topic.topic.0),
                    ),
                    None => partition_result(
                        p,
                        ResponseError::UnknownTopicOrPartition,
                        format!("No such topic as {}", topic.topic.0),
                    ),
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic)
                .with_partition_result(partitions)
        })
        .collect();
    response.with_error_code(0).with_replica_election_results(results)
}
