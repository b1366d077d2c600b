//! What handlers tell clients about the cluster: the live brokers and their addresses, each
//! partition's leader, replicas, ISR and offline replicas, the controller, and which broker
//! coordinates a group or transactional id. On a single node all of it is this node; in
//! cluster mode it comes from the applied metadata log (`metadata::replicated`) and the
//! quorum's state. Shared by Metadata, DescribeCluster, FindCoordinator, DescribeQuorum and
//! the partition handlers' NOT_LEADER_OR_FOLLOWER answers, so no handler imports another.

use crate::metadata::MetadataSnapshot;
use crate::server::context::RequestContext;
use crate::shard::Shard;

/// A broker as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub fenced: bool,
}

/// A partition's replicas as Metadata lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    /// -1 when the partition has no live leader (offline: no live in-sync replica).
    pub leader: i32,
    /// Bumped by every leader change (0 on a single node).
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// The metadata log's ISR, without fenced brokers.
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// Kafka's leader-epoch fencing of a request that names the epoch it believes in
/// (`current_leader_epoch`, -1: not checked): older than the partition's is
/// FENCED_LEADER_EPOCH (the client's metadata is stale), newer is UNKNOWN_LEADER_EPOCH
/// (this broker has not applied the change yet).
pub fn check_leader_epoch(requested: i32, current: i32) -> Result<(), i16> {
    use kafka_protocol::ResponseError;
    match requested {
        r if r < 0 || r == current => Ok(()),
        r if r < current => Err(ResponseError::FencedLeaderEpoch.code()),
        _ => Err(ResponseError::UnknownLeaderEpoch.code()),
    }
}

/// The partition's leader epoch as the applied metadata says (0 on a single node).
pub fn leader_epoch(snapshot: &MetadataSnapshot, topic: &str, partition: i32) -> i32 {
    snapshot
        .cluster
        .as_deref()
        .map_or(0, |c| c.leader_epoch(topic, partition))
}

/// The listener the request came in on (`None` on a connection no listener accepted).
fn listener_of(ctx: &RequestContext<'_>) -> Option<String> {
    ctx.connection
        .borrow()
        .listener
        .as_ref()
        .map(|l| l.name.clone())
}

/// Every registered broker as the client of this request reaches it (fenced ones with
/// `fenced: true`), in id order. Kafka answers with each broker's endpoint of the listener
/// the request came in on and leaves out brokers without that listener; this broker is
/// always there, by the advertised address of that listener.
pub fn brokers_seen_from(
    ctx: &RequestContext<'_>,
    snapshot: &MetadataSnapshot,
) -> Vec<BrokerEndpoint> {
    let node = ctx.shard.config.node_id;
    let this_broker = |fenced| {
        let (host, port) = ctx.advertised_address();
        BrokerEndpoint {
            id: node,
            host,
            port,
            fenced,
        }
    };
    let Some(cluster) = &snapshot.cluster else {
        return vec![this_broker(false)];
    };
    let listener = listener_of(ctx);
    cluster
        .brokers
        .values()
        .filter_map(|b| {
            if b.id == node {
                return Some(this_broker(b.fenced));
            }
            let (host, port) = b.endpoint(listener.as_deref())?;
            Some(BrokerEndpoint {
                id: b.id,
                host: host.to_string(),
                port,
                fenced: b.fenced,
            })
        })
        .collect()
}

/// Live brokers only, as this request's client reaches them: what Metadata lists.
pub fn live_brokers_seen_from(
    ctx: &RequestContext<'_>,
    snapshot: &MetadataSnapshot,
) -> Vec<BrokerEndpoint> {
    brokers_seen_from(ctx, snapshot)
        .into_iter()
        .filter(|b| !b.fenced)
        .collect()
}

/// The controller clients are told about: the quorum's leader, or -1 while none is known.
pub fn controller_id(shard: &Shard) -> i32 {
    match &shard.cluster {
        None => shard.config.node_id,
        Some(cluster) => cluster.leader().unwrap_or(-1),
    }
}

pub fn partition_replicas(
    shard: &Shard,
    snapshot: &MetadataSnapshot,
    topic: &str,
    partition: i32,
) -> PartitionReplicas {
    let node = shard.config.node_id;
    let Some(cluster) = &snapshot.cluster else {
        if snapshot.offline_reason(topic, partition).is_some() {
            return PartitionReplicas {
                leader: -1,
                leader_epoch: 0,
                replicas: vec![node],
                isr: vec![],
                offline: vec![node],
            };
        }
        return PartitionReplicas {
            leader: node,
            leader_epoch: 0,
            replicas: vec![node],
            isr: vec![node],
            offline: vec![],
        };
    };
    let replicas = cluster.replicas(topic, partition).to_vec();
    let offline: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|id| !cluster.is_live(*id))
        .collect();
    let isr: Vec<i32> = cluster
        .isr(topic, partition)
        .into_iter()
        .filter(|id| cluster.is_live(*id))
        .collect();
    let leader = match cluster.leader(topic, partition) {
        Some(leader) if cluster.is_live(leader) => leader,
        _ => -1,
    };
    PartitionReplicas {
        leader,
        leader_epoch: cluster.leader_epoch(topic, partition),
        replicas,
        isr,
        offline,
    }
}

/// The broker that coordinates `key` (a group or transactional id) as this request's
/// client reaches it: on a single node this one; in cluster mode the broker holding the
/// key's coordinator slot in the replicated state (decision 0024), so every broker gives the
/// same answer and it moves only when that broker is fenced. `None` (Kafka answers
/// COORDINATOR_NOT_AVAILABLE, which clients retry) when no live broker holds the slot
/// (naming this node instead sent the client into NOT_COORDINATOR answers until its session
/// timed out) and when that broker has no endpoint on the request's listener. A restarted
/// node's state may be the one it stopped with only before its first catch-up, when it
/// does not listen yet (`shard::runtime::wait_for_first_catch_up`).
pub fn coordinator_seen_from(
    ctx: &RequestContext<'_>,
    snapshot: &MetadataSnapshot,
    key: &str,
) -> Option<BrokerEndpoint> {
    let brokers = brokers_seen_from(ctx, snapshot);
    match snapshot.cluster.as_deref() {
        None => brokers.into_iter().next(),
        Some(cluster) => {
            let id = cluster.coordinator(key)?;
            brokers.into_iter().find(|b| b.id == id)
        }
    }
}

/// Produce v10+ (KIP-951): a partition answered NOT_LEADER_OR_FOLLOWER carries its current
/// leader, and the response the leaders' endpoints, so the client re-routes without a
/// Metadata round trip. Nothing changes on a single node or for older versions. The
/// endpoints are those of `listener`, the request's (a leader without it is not named).
pub fn add_produce_leader_hints(
    snapshot: &MetadataSnapshot,
    listener: Option<&crate::config::listeners::ListenerSpec>,
    version: i16,
    response: &mut kafka_protocol::messages::ProduceResponse,
) {
    use kafka_protocol::ResponseError;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::produce_response::{LeaderIdAndEpoch, NodeEndpoint};
    use kafka_protocol::protocol::StrBytes;
    const FIRST_VERSION_WITH_LEADER_HINTS: i16 = 10;
    let Some(cluster) = &snapshot.cluster else {
        return;
    };
    if version < FIRST_VERSION_WITH_LEADER_HINTS {
        return;
    }
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let fenced = ResponseError::FencedLeaderEpoch.code();
    let mut leaders = std::collections::BTreeSet::new();
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if partition.error_code != not_leader && partition.error_code != fenced {
                continue;
            }
            let leader = cluster
                .leader(topic.name.as_str(), partition.index)
                .filter(|id| cluster.is_live(*id));
            if let Some(leader) = leader {
                let epoch = cluster.leader_epoch(topic.name.as_str(), partition.index);
                partition.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = leaders
        .into_iter()
        .filter_map(|id| {
            let listener = listener.map(|l| l.name.as_str());
            let (host, port) = cluster.brokers.get(&id)?.endpoint(listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port)
                    .with_rack(None),
            )
        })
        .collect();
}

/// Manual replica assignments (CreateTopics, CreatePartitions) in cluster mode: refused for
/// now, rather than checked against this node alone or silently replaced by placement.
pub fn refuse_manual_assignments(shard: &Shard) -> Result<(), crate::shard::topics::TopicOpError> {
    if shard.cluster.is_none() {
        return Ok(());
    }
    Err(crate::shard::topics::TopicOpError {
        code: kafka_protocol::ResponseError::InvalidRequest.code(),
        message: "manual replica assignments are not supported in cluster mode yet: \
                  give a replication factor and the brokers are chosen"
            .into(),
    })
}
