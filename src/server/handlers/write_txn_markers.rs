//! WriteTxnMarkers: COMMIT or ABORT markers for one producer's transaction on partitions
//! this broker leads, as a transaction coordinator sends them to partition leaders, and as
//! `kafka-transactions.sh abort` (KIP-664) sends one to end a hanging transaction whose
//! coordinator will not (its broker is gone, or the transaction was never registered).
//! Each marker goes through `Partition::write_txn_marker` on the owning shard, synced as an
//! acks=all append, so the partition's last stable offset moves past the transaction.
//! A marker naming `GROUP_SLOT_TOPIC` ends a transaction's offsets in the groups of that
//! coordinator slot (Kafka's marker on a `__consumer_offsets` partition, decision 0022).
//! Needs CLUSTER_ACTION on the cluster (the registry checks it before this runs).

use crate::metadata::coordinator_slots::{COORDINATOR_SLOTS, GROUP_SLOT_TOPIC};
use crate::server::context::RequestContext;
use crate::shard::Lookup;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ProducerId, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let shard = ctx.shard;
    let snapshot = shard.metadata.load_full();
    let now_ms = crate::shard::now_ms();
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let producer_id = marker.producer_id.0;
        let (epoch, commit) = (marker.producer_epoch, marker.transaction_result);
        let coordinator_epoch = marker.coordinator_epoch;
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let name = topic.name.0.to_string();
            if name == GROUP_SLOT_TOPIC {
                let slots = &topic.partition_indexes;
                let partitions = end_group_slots(ctx, slots, producer_id, commit).await;
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions),
                );
                continue;
            }
            let known = snapshot.topic(&name).map(|t| t.partitions);
            let calls = topic.partition_indexes.into_iter().map(|partition| {
                let name = name.clone();
                async move {
                    let code = if known.is_some_and(|n| (0..n).contains(&partition)) {
                        let owner = shard.owner_of_partition(&name, partition);
                        shard
                            .invoke_on(owner, move |s| async move {
                                write_one(&s, &name, partition, producer_id, epoch, commit, coordinator_epoch, now_ms).await
                            })
                            .await
                            .unwrap_or(ResponseError::BrokerNotAvailable.code())
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(code)
                }
            });
            let partitions = futures_util::future::join_all(calls).await;
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(ProducerId(producer_id))
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// A transaction's marker for groups' offsets (cluster mode, decision 0022): each named
/// coordinator slot's groups on every shard end the producer's pending offsets. NOT_COORDINATOR
/// when this broker does not coordinate the slot (the transaction's coordinator looks it up
/// again and retries); UNKNOWN_TOPIC_OR_PARTITION for a slot that does not exist or on a
/// single node, which has no such markers.
async fn end_group_slots(
    ctx: &RequestContext<'_>,
    slots: &[i32],
    producer_id: i64,
    commit: bool,
) -> Vec<WritableTxnMarkerPartitionResult> {
    let shard = ctx.shard;
    let calls = slots.iter().map(|&partition| async move {
        let slot = usize::try_from(partition)
            .ok()
            .filter(|s| *s < COORDINATOR_SLOTS && shard.cluster.is_some());
        let code = match slot {
            None => ResponseError::UnknownTopicOrPartition.code(),
            Some(slot) => shard
                .invoke_on_all(move |s| async move {
                    s.groups.end_txn_in_slot(slot, producer_id, commit).await
                })
                .await
                .into_iter()
                .map(|r| r.unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code())))
                .find_map(Result::err)
                .unwrap_or(0),
        };
        WritableTxnMarkerPartitionResult::default()
            .with_partition_index(partition)
            .with_error_code(code)
    });
    futures_util::future::join_all(calls).await
}

/// One marker on the partition's owning shard; the error code (0: written).
#[allow(clippy::too_many_arguments)]
async fn write_one(
    shard: &std::rc::Rc<crate::shard::Shard>,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> i16 {
    match shard.led(topic, partition) {
        Lookup::Online(p) => match p
            .write_txn_marker(producer_id, epoch, commit, coordinator_epoch, now_ms)
            .await
        {
            Ok(_) => 0,
            Err(e) => e.kafka_error_code(),
        },
        Lookup::Offline(_) => ResponseError::KafkaStorageError.code(),
        // The topic exists (checked before): in cluster mode another broker leads it.
        Lookup::Missing => ResponseError::NotLeaderOrFollower.code(),
    }
}
