//! ElectLeaders (KIP-460). On one node every partition's only replica already leads, so a
//! preferred or unclean election is never needed. Named partitions answer
//! ELECTION_NOT_NEEDED (or UNKNOWN_TOPIC_OR_PARTITION); a null list means every partition,
//! and then, as in Kafka's controller, partitions that need no election are left out.
//! In cluster mode each partition's election is a record through the metadata log
//! (`MetadataRecord::ElectLeader`, decided by `metadata::reassign` from the applied state
//! on every node alike): the preferred replica takes over when it is live and in sync
//! (PREFERRED_LEADER_NOT_AVAILABLE otherwise), an unclean election gives a leaderless
//! partition a live replica. A null list proposes only the partitions whose leader is not
//! their preferred replica (unclean: that have no leader).

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use crate::metadata::replicated::{ClusterState, MetadataRecord};
use futures_util::StreamExt;
use kafka_protocol::protocol::StrBytes;

/// Elections proposed to the metadata log at once by one request (each is one record; the
/// quorum takes at most `cluster::MAX_PENDING_PROPOSALS` waiting from one node).
const MAX_CONCURRENT_ELECTIONS: usize = 64;

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
    if let Some(cluster) = snapshot.cluster.as_deref() {
        let unclean = ctx.version >= 1 && request.election_type == UNCLEAN;
        let results = elect_in_cluster(ctx, cluster, request.topic_partitions, unclean).await;
        return response.with_error_code(0).with_replica_election_results(results);
    }
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

/// One partition's election: done, or Kafka's error code and message.
type ElectionAnswer = Result<(), (i16, String)>;

/// The partitions a null list elects: those whose election could change something.
fn candidates(cluster: &ClusterState, unclean: bool) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for (topic, partitions) in &cluster.assignments {
        for (p, replicas) in partitions.iter().enumerate() {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            let leader = cluster.leader(topic, p);
            let needed = if unclean {
                leader.is_none()
            } else {
                leader != replicas.first().copied()
            };
            if needed {
                out.push((topic.clone(), p));
            }
        }
    }
    out.sort();
    out
}

async fn elect_in_cluster(
    ctx: &RequestContext<'_>,
    cluster: &ClusterState,
    wanted: Option<Vec<kafka_protocol::messages::elect_leaders_request::TopicPartitions>>,
    unclean: bool,
) -> Vec<ReplicaElectionResult> {
    let all = wanted.is_none();
    let partitions: Vec<(String, i32)> = match wanted {
        None => candidates(cluster, unclean),
        Some(topics) => topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect(),
    };
    let Some(handle) = ctx.shard.cluster.clone() else {
        return Vec::new();
    };
    let answers: Vec<((String, i32), ElectionAnswer)> =
        futures_util::stream::iter(partitions)
            .map(|(topic, partition)| {
                let handle = handle.clone();
                async move {
                    let record = MetadataRecord::ElectLeader {
                        topic: topic.clone(),
                        partition,
                        unclean,
                    };
                    let answer = handle.propose(record).await.map(|_| ());
                    ((topic, partition), answer)
                }
            })
            .buffered(MAX_CONCURRENT_ELECTIONS)
            .collect()
            .await;
    // One result per topic, its partitions in the order asked.
    let mut by_topic: Vec<(String, Vec<PartitionResult>)> = Vec::new();
    for ((topic, partition), answer) in answers {
        let result = match answer {
            Ok(()) => PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(0)
                .with_error_message(None),
            // A null list leaves out what needed no election (raced since the scan).
            Err((code, _)) if all && code == ResponseError::ElectionNotNeeded.code() => continue,
            Err((code, message)) => PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        };
        match by_topic.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, results)) => results.push(result),
            None => by_topic.push((topic, vec![result])),
        }
    }
    by_topic
        .into_iter()
        .map(|(topic, results)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(results)
        })
        .collect()
}
