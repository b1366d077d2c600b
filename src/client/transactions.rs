//! Transaction administration for the CLI and tools: ListTransactions from every broker
//! and DescribeTransactions from the broker that coordinates the id (the others answer
//! NOT_COORDINATOR or TRANSACTIONAL_ID_NOT_FOUND). Works against any Kafka-compatible
//! broker. Must not: take part in a transaction.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{Client, ClientError, Result};

/// One transactional id as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransaction {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
}

/// One transactional id as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTransaction {
    pub transactional_id: String,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 when no transaction is open.
    pub start_time_ms: i64,
    /// (topic, partition) of the open transaction.
    pub partitions: Vec<(String, i32)>,
}

/// Every transactional id of every broker, sorted by id.
pub fn list_transactions(client: &mut Client) -> Result<Vec<ListedTransaction>> {
    let nodes: Vec<i32> = client.brokers().keys().copied().collect();
    let mut all = Vec::new();
    for node in nodes {
        let response = client
            .broker_connection(node)?
            .call(&ListTransactionsRequest::default().with_duration_filter(-1))?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka {
                context: format!("ListTransactions on broker {node}"),
                code: response.error_code,
                message: None,
            });
        }
        all.extend(
            response
                .transaction_states
                .into_iter()
                .map(|t| ListedTransaction {
                    transactional_id: t.transactional_id.0.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                }),
        );
    }
    all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(all)
}

/// The coordinator's view of one transactional id.
pub fn describe_transaction(client: &mut Client, id: &str) -> Result<DescribedTransaction> {
    let nodes: Vec<i32> = client.brokers().keys().copied().collect();
    let mut last_code = ResponseError::TransactionalIdNotFound.code();
    for node in nodes {
        let request = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
        let response = client.broker_connection(node)?.call(&request)?;
        let Some(state) = response.transaction_states.into_iter().next() else {
            continue;
        };
        if state.error_code != 0 {
            last_code = state.error_code;
            continue;
        }
        let partitions = state
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect();
        return Ok(DescribedTransaction {
            transactional_id: id.to_string(),
            state: state.transaction_state.to_string(),
            producer_id: state.producer_id.0,
            producer_epoch: state.producer_epoch,
            timeout_ms: state.transaction_timeout_ms,
            start_time_ms: state.transaction_start_time_ms,
            partitions,
        });
    }
    Err(ClientError::Kafka {
        context: format!("DescribeTransactions {id}"),
        code: last_code,
        message: None,
    })
}
