//! DescribeTransactions (v0): each transactional id's state as its coordinating shard
//! holds it — Kafka's state name, timeout, start time, producer id and epoch, and the
//! partitions of the open transaction. Unknown ids answer TRANSACTIONAL_ID_NOT_FOUND.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::txn::TxnMetadata;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let calls = request.transactional_ids.into_iter().map(|id| {
        let name = id.0.to_string();
        let owner = ctx.shard.owner_of_transactional_id(&name);
        let describable = permitted(ctx, ResourceType::TransactionalId, &name);
        async move {
            if !describable {
                let code = ResponseError::TransactionalIdAuthorizationFailed.code();
                return TransactionState::default()
                    .with_transactional_id(id)
                    .with_transaction_state(StrBytes::default())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1)
                    .with_error_code(code);
            }
            let lookup = name.clone();
            let found = ctx
                .shard
                .invoke_on(owner, move |s| async move { s.txns.get(&lookup) })
                .await;
            let state = TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(StrBytes::default())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match found {
                Ok(Some(meta)) => described(state, &meta),
                Ok(None) => state.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Err(_) => state.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            }
        }
    });
    let states = futures_util::future::join_all(calls).await;
    DescribeTransactionsResponse::default()
        .with_throttle_time_ms(0)
        .with_transaction_states(states)
}

fn described(state: TransactionState, meta: &TxnMetadata) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    // `partitions` is sorted by (topic, partition): one TopicData per run of a topic.
    for (topic, partition) in &meta.partitions {
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic.as_str() => t.partitions.push(*partition),
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    state
        .with_error_code(0)
        .with_transaction_state(StrBytes::from_static_str(meta.state.name()))
        .with_transaction_timeout_ms(meta.timeout_ms)
        .with_transaction_start_time_ms(meta.start_ms)
        .with_producer_id(ProducerId(meta.producer_id))
        .with_producer_epoch(meta.producer_epoch)
        .with_topics(topics)
}
