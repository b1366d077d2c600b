//! DescribeProducers: the idempotent producers each partition remembers (id, epoch, last
//! sequence, last timestamp), read from `Partition::producer_states` on the owning shard.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::Lookup;
use crate::storage::ProducerStateInfo;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

fn producer(info: &ProducerStateInfo) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(info.producer_id))
        .with_producer_epoch(i32::from(info.producer_epoch))
        .with_last_sequence(info.last_sequence)
        .with_last_timestamp(info.last_timestamp)
        .with_coordinator_epoch(info.coordinator_epoch)
        .with_current_txn_start_offset(info.current_txn_start_offset)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let shard = ctx.shard;
    let snapshot = shard.metadata.load_full();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let readable = permitted(ctx, ResourceType::Topic, &name);
        let known = snapshot.topic(&name).map(|t| t.partitions);
        let calls = topic.partition_indexes.into_iter().map(|partition| {
            let name = name.clone();
            async move {
                let states = if !readable {
                    Err(ResponseError::TopicAuthorizationFailed.code())
                } else if known.is_some_and(|n| (0..n).contains(&partition)) {
                    let owner = shard.owner_of_partition(&name, partition);
                    shard
                        .invoke_on(owner, move |s| async move {
                            match s.partitions.get(&name, partition) {
                                Lookup::Online(p) => Ok(p
                                    .producer_states()
                                    .iter()
                                    .map(producer)
                                    .collect::<Vec<_>>()),
                                Lookup::Offline(_) => Err(ResponseError::KafkaStorageError.code()),
                                Lookup::Missing => {
                                    Err(ResponseError::UnknownTopicOrPartition.code())
                                }
                            }
                        })
                        .await
                        .unwrap_or(Err(ResponseError::BrokerNotAvailable.code()))
                } else {
                    Err(ResponseError::UnknownTopicOrPartition.code())
                };
                let answer = PartitionResponse::default().with_partition_index(partition);
                match states {
                    Ok(active) => answer.with_error_code(0).with_active_producers(active),
                    Err(code) => answer.with_error_code(code),
                }
            }
        });
        let partitions = futures_util::future::join_all(calls).await;
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
