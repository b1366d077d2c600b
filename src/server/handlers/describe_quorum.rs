//! DescribeQuorum (KIP-595, KIP-853): a Kafka 4.x broker forwards it to the KRaft
//! controller quorum. In cluster mode the answer is the Raft state of Sluice's own metadata
//! quorum (`cluster_quorum`): leader, term as the epoch, commit index as the high watermark,
//! each voter's replicated index as the leader knows it. On a single node this node is its
//! own controller, so it answers as a single-voter
//! quorum of the `__cluster_metadata` partition: itself the leader and only voter, caught
//! up now. Sluice keeps no metadata log, so the count of metadata changes since start
//! stands in for its offsets. Any other topic or partition is UNKNOWN_TOPIC_OR_PARTITION,
//! as Kafka's Raft client answers.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// KRaft's metadata topic and its one partition.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;
/// This node has led the quorum since it started: one election, one epoch.
const LEADER_EPOCH: i32 = 1;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether the request names exactly the metadata partition, as Kafka requires.
fn names_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            topic.topic_name.0.as_str() == METADATA_TOPIC
                && matches!(topic.partitions.as_slice(), [p] if p.partition_index == METADATA_PARTITION)
        }
        _ => false,
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let response = DescribeQuorumResponse::default()
        .with_error_code(0)
        .with_error_message(None);
    if !names_metadata_partition(&request) {
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionData::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(None)
                    })
                    .collect();
                TopicData::default()
                    .with_topic_name(t.topic_name)
                    .with_partitions(partitions)
            })
            .collect();
        return response.with_topics(topics);
    }
    if let Some(cluster) = &ctx.shard.cluster {
        return cluster_quorum(ctx, cluster, response);
    }
    let node = BrokerId(ctx.shard.config.node_id);
    let offset = i64::try_from(ctx.shard.metadata.load().version).unwrap_or(i64::MAX);
    let now = now_ms();
    let voter = ReplicaState::default()
        .with_replica_id(node)
        .with_log_end_offset(offset)
        .with_last_fetch_timestamp(now)
        .with_last_caught_up_timestamp(now);
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(0)
        .with_error_message(None)
        .with_leader_id(node)
        .with_leader_epoch(LEADER_EPOCH)
        .with_high_watermark(offset)
        .with_current_voters(vec![voter])
        .with_observers(Vec::new());
    let topic = TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![partition]);
    let response = response.with_topics(vec![topic]);
    if ctx.version < 2 {
        return response;
    }
    // The listener the request came in on, as Kafka reports the node's endpoints.
    let (host, port) = ctx.advertised_address();
    let name = ctx
        .connection
        .borrow()
        .listener
        .as_ref()
        .map_or_else(|| "PLAINTEXT".to_string(), |l| l.name.clone());
    let listener = Listener::default()
        .with_name(StrBytes::from_string(name))
        .with_host(StrBytes::from_string(host))
        .with_port(u16::try_from(port).unwrap_or(0));
    response.with_nodes(vec![Node::default().with_node_id(node).with_listeners(vec![listener])])
}

/// The listener name of the controllers' own addresses.
const CONTROLLER_LISTENER_NAME: &str = "CONTROLLER";

/// DescribeQuorum from the metadata quorum's Raft state (cluster mode).
fn cluster_quorum(
    ctx: &RequestContext<'_>,
    cluster: &crate::cluster::ClusterHandle,
    response: DescribeQuorumResponse,
) -> DescribeQuorumResponse {
    let status = cluster.status.load();
    let Some(leader) = status.leader else {
        return response
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "the metadata quorum has no leader yet",
            )));
    };
    let now = now_ms();
    let to_offset = |index: u64| i64::try_from(index).unwrap_or(i64::MAX);
    let voters = status
        .voters
        .iter()
        .map(|v| {
            let known = status.is_leader || v.id == ctx.shard.config.node_id;
            let end = if !status.is_leader && v.id == ctx.shard.config.node_id {
                to_offset(status.last_index)
            } else if known {
                to_offset(v.matched)
            } else {
                -1
            };
            ReplicaState::default()
                .with_replica_id(BrokerId(v.id))
                .with_log_end_offset(end)
                .with_last_fetch_timestamp(if v.recent_active { now } else { -1 })
                .with_last_caught_up_timestamp(if v.matched >= status.commit { now } else { -1 })
        })
        .collect();
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(0)
        .with_error_message(None)
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(to_offset(status.commit))
        .with_current_voters(voters)
        .with_observers(Vec::new());
    let topic = TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![partition]);
    let response = response.with_topics(vec![topic]);
    if ctx.version < 2 {
        return response;
    }
    let nodes = cluster
        .voters
        .iter()
        .map(|v| {
            let listener = Listener::default()
                .with_name(StrBytes::from_static_str(CONTROLLER_LISTENER_NAME))
                .with_host(StrBytes::from_string(v.host.clone()))
                .with_port(v.port);
            Node::default()
                .with_node_id(BrokerId(v.id))
                .with_listeners(vec![listener])
        })
        .collect();
    response.with_nodes(nodes)
}
