//! Metadata: the live brokers (just this one on a single node), topics with ids, partitions
//! with their leader, replicas, ISR and offline replicas (`server::cluster_view`).
//! Auto-creates requested topics when the request, the broker and the principal's CREATE
//! allow it. Topics the principal may not DESCRIBE are hidden from the full listing and
//! answered TOPIC_AUTHORIZATION_FAILED when requested by name.

use crate::server::access::{
    CLUSTER_RESOURCE_NAME, may_auto_create, operations_bitfield, permitted,
};
use crate::server::cluster_view::{controller_id, live_brokers_seen_from, partition_replicas};
use crate::server::authorization::{AUTHORIZED_OPERATIONS_OMITTED, ResourceType};
use crate::server::context::RequestContext;
use crate::shard::topics::ensure_topic;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// The error Metadata gives a partition with no leader. Kafka (KRaftMetadataCache) answers
/// LEADER_NOT_AVAILABLE, leader -1, with the replica in `offline_replicas` when the only
/// replica's log directory failed; produce and fetch to it answer KAFKA_STORAGE_ERROR.
pub const OFFLINE_PARTITION_METADATA_ERROR: ResponseError = ResponseError::LeaderNotAvailable;

fn topic_entry(
    ctx: &RequestContext<'_>,
    topic: &crate::metadata::TopicMeta,
) -> MetadataResponseTopic {
    let snapshot = ctx.shard.metadata.load();
    let ids = |list: Vec<i32>| list.into_iter().map(BrokerId).collect::<Vec<_>>();
    let reachable = live_brokers_seen_from(ctx, &snapshot);
    let partitions = (0..topic.partitions)
        .map(|p| {
            let mut placed = partition_replicas(ctx.shard, &snapshot, &topic.name, p);
            let error = if placed.leader < 0 {
                OFFLINE_PARTITION_METADATA_ERROR.code()
            } else if !reachable.iter().any(|b| b.id == placed.leader) {
                // A live leader without the request's listener: Kafka answers leader -1 and
                // LISTENER_NOT_FOUND from v6 (LEADER_NOT_AVAILABLE before).
                placed.leader = -1;
                if ctx.version >= 6 {
                    ResponseError::ListenerNotFound.code()
                } else {
                    ResponseError::LeaderNotAvailable.code()
                }
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_epoch(placed.leader_epoch)
                .with_error_code(error)
                .with_leader_id(BrokerId(placed.leader))
                .with_replica_nodes(ids(placed.replicas))
                .with_isr_nodes(ids(placed.isr))
                .with_offline_replicas(ids(placed.offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(false)
        .with_partitions(partitions)
}

pub async fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let shard = ctx.shard;
    let brokers = live_brokers_seen_from(ctx, &shard.metadata.load())
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
                .with_rack(None)
        })
        .collect();
    // v0 has no "all topics" null: an empty list means all. v1+ uses null for all.
    let requested = match request.topics {
        None => None,
        Some(list) if list.is_empty() && ctx.version == 0 => None,
        Some(list) => Some(list),
    };
    // v4+ carries the client's own auto-create flag; older versions always allow it.
    let allow_auto_create = ctx.version < 4 || request.allow_auto_topic_creation;
    let mut topics = Vec::new();
    match requested {
        None => {
            // Topics the principal may not DESCRIBE are left out, as Kafka does.
            let snapshot = shard.metadata.load_full();
            let mut all: Vec<_> = snapshot
                .topics
                .values()
                .filter(|t| permitted(ctx, ResourceType::Topic, &t.name))
                .cloned()
                .collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            topics.extend(all.iter().map(|t| topic_entry(ctx, t)));
        }
        Some(list) => {
            for wanted in list {
                topics.push(requested_entry(ctx, &wanted, allow_auto_create).await);
            }
        }
    }
    // KIP-430: asked-for bitfields for every listed topic (errors included, as Kafka does),
    // and the cluster's only in v8-v10 (v11 moved it to DescribeCluster).
    for topic in &mut topics {
        topic.topic_authorized_operations = match &topic.name {
            Some(name) if request.include_topic_authorized_operations => {
                operations_bitfield(ctx, ResourceType::Topic, &name.0)
            }
            _ => AUTHORIZED_OPERATIONS_OMITTED,
        };
    }
    let cluster_operations =
        if (8..=10).contains(&ctx.version) && request.include_cluster_authorized_operations {
            operations_bitfield(ctx, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(
            shard.metadata.load().cluster_id.clone(),
        )))
        .with_controller_id(BrokerId(controller_id(shard)))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_operations)
}

/// The answer for one requested topic (by name, or by id from v10): its entry, auto-created
/// when the request, the broker and the principal's CREATE allow, or the error Kafka gives.
async fn requested_entry(
    ctx: &RequestContext<'_>,
    wanted: &MetadataRequestTopic,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let shard = ctx.shard;
    let failed = |code: ResponseError, name: Option<String>| {
        MetadataResponseTopic::default()
            .with_error_code(code.code())
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
    };
    let name = match (&wanted.name, wanted.topic_id.is_nil()) {
        (Some(n), _) => n.0.to_string(),
        (None, false) => match shard.metadata.load().topic_by_id(&wanted.topic_id) {
            Some(t) => t.name.clone(),
            None => {
                return failed(ResponseError::UnknownTopicId, None).with_topic_id(wanted.topic_id);
            }
        },
        (None, true) => return failed(ResponseError::InvalidRequest, None),
    };
    if !permitted(ctx, ResourceType::Topic, &name) {
        let by_id = wanted.name.is_none();
        let shown = if by_id { None } else { Some(name) };
        return failed(ResponseError::TopicAuthorizationFailed, shown)
            .with_topic_id(wanted.topic_id);
    }
    let exists = shard.metadata.load().topic(&name).is_some();
    // A cluster node still replaying the metadata log does not know every topic yet: it
    // must not try to create one (Kafka's answer while a topic is not available yet).
    if !exists && shard.replaying_metadata() {
        return failed(ResponseError::LeaderNotAvailable, Some(name));
    }
    let would_create = !exists && allow_auto_create && shard.config.auto_create_topics;
    if would_create && !may_auto_create(ctx, &name) {
        return failed(ResponseError::TopicAuthorizationFailed, Some(name));
    }
    match ensure_topic(shard, &name, allow_auto_create).await {
        Ok(topic) => topic_entry(ctx, &topic),
        Err(e) => MetadataResponseTopic::default()
            .with_error_code(e.code)
            .with_name(Some(TopicName(StrBytes::from_string(name)))),
    }
}
