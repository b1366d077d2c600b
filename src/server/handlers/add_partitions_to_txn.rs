//! AddPartitionsToTxn, the client form (v0–v3): adds partitions to the producer's open
//! transaction on the id's coordinating shard. Partitions that do not exist are answered
//! UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED, as Kafka does: nothing
//! is added unless every partition can be.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::transactions;
use crate::txn::TxnError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};

/// PRODUCER_FENCED exists from v2 (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const PRODUCER_FENCED_SINCE_VERSION: i16 = 2;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut unknown: Vec<(String, i32)> = Vec::new();
    for topic in &request.v3_and_below_topics {
        let known = snapshot.topic(&topic.name.0).map(|t| t.partitions);
        for &p in &topic.partitions {
            let entry = (topic.name.0.to_string(), p);
            match known {
                Some(n) if p >= 0 && p < n => wanted.push(entry),
                _ => unknown.push(entry),
            }
        }
    }
    let code_of = |(topic, p): &(String, i32), outcome: i16| {
        if unknown.iter().any(|(t, q)| t == topic && q == p) {
            ResponseError::UnknownTopicOrPartition.code()
        } else {
            outcome
        }
    };
    let transactional_id = &request.v3_and_below_transactional_id.0;
    let id_refused = !permitted(ctx, ResourceType::TransactionalId, transactional_id);
    // Kafka: topics without WRITE fail TOPIC_AUTHORIZATION_FAILED, the rest are not attempted.
    let unwritable: Vec<&str> = request
        .v3_and_below_topics
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|t| !permitted(ctx, ResourceType::Topic, t))
        .collect();
    let code_of = |entry: &(String, i32), outcome: i16| {
        if id_refused {
            ResponseError::TransactionalIdAuthorizationFailed.code()
        } else if unwritable.contains(&entry.0.as_str()) {
            ResponseError::TopicAuthorizationFailed.code()
        } else {
            code_of(entry, outcome)
        }
    };
    let outcome = if id_refused || !unwritable.is_empty() || !unknown.is_empty() {
        ResponseError::OperationNotAttempted.code()
    } else {
        let transactional_id = request.v3_and_below_transactional_id.0.to_string();
        let (producer_id, epoch) = (
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
        );
        let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
        let partitions = wanted.clone();
        let added = ctx
            .shard
            .invoke_on(owner, move |s| async move {
                transactions::add_partitions(&s, &transactional_id, producer_id, epoch, &partitions)
                    .await
            })
            .await
            .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
        match added {
            Ok(()) => 0,
            Err(e) => e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION),
        }
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code_of(&(topic.name.0.to_string(), p), outcome))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(topic.name.0.clone()))
                .with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default()
        .with_throttle_time_ms(0)
        .with_results_by_topic_v3_and_below(results)
}
