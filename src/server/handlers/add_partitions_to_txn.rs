//! AddPartitionsToTxn. The client form (v0–v3) adds partitions to the producer's open
//! transaction on the id's coordinating shard; partitions that do not exist are answered
//! UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED, as Kafka does: nothing
//! is added unless every partition can be. The batched form (v4+, KIP-890: what a partition
//! leader sends a coordinator) carries several transactions, each either added like the
//! client form or, with `verify_only`, only checked (every partition must already be in the
//! producer's open transaction), each answered on its own.
//!
//! Authorization as Kafka's `handleAddPartitionsToTxnRequest`: the client form needs WRITE
//! on the transactional id and on each topic; the batched form is a broker's call and needs
//! CLUSTER_ACTION on the cluster only (the producer's own WRITE was checked by the leader
//! that received its Produce), else the whole request is CLUSTER_AUTHORIZATION_FAILED.

use crate::metadata::coordinator_slots::{COORDINATOR_SLOTS, GROUP_SLOT_TOPIC};
use crate::server::access::{CLUSTER_RESOURCE_NAME, permitted};
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::{transactions, transactions_v2};
use crate::txn::TxnError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};

/// PRODUCER_FENCED exists from v2 (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const PRODUCER_FENCED_SINCE_VERSION: i16 = 2;
/// v4 is the batched form.
const BATCHED_SINCE_VERSION: i16 = 4;
/// Transactions one batched request may carry (Kafka's senders batch per coordinator and
/// flush often; a bound keeps one request from holding a shard for long).
const TRANSACTIONS_PER_REQUEST_MAX: usize = 1_000;

/// One transaction's part of a request.
struct TxnPart<'a> {
    transactional_id: String,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
    /// The client form: the requester's WRITE on the id and the topics is checked here.
    checks_client_acls: bool,
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let response = AddPartitionsToTxnResponse::default().with_throttle_time_ms(0);
    if ctx.version < BATCHED_SINCE_VERSION {
        let part = TxnPart {
            transactional_id: request.v3_and_below_transactional_id.0.to_string(),
            producer_id: request.v3_and_below_producer_id.0,
            epoch: request.v3_and_below_producer_epoch,
            verify_only: false,
            topics: &request.v3_and_below_topics,
            checks_client_acls: true,
        };
        return response.with_results_by_topic_v3_and_below(answer(ctx, part).await);
    }
    if !permitted(ctx, ResourceType::Cluster, CLUSTER_RESOURCE_NAME) {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    if request.transactions.len() > TRANSACTIONS_PER_REQUEST_MAX {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for txn in &request.transactions {
        let part = TxnPart {
            transactional_id: txn.transactional_id.0.to_string(),
            producer_id: txn.producer_id.0,
            epoch: txn.producer_epoch,
            verify_only: txn.verify_only,
            topics: &txn.topics,
            checks_client_acls: false,
        };
        let topic_results = answer(ctx, part).await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(TransactionalId(txn.transactional_id.0.clone()))
                .with_topic_results(topic_results),
        );
    }
    response.with_results_by_transaction(results)
}

/// Every partition's code for one transaction's part.
async fn answer(ctx: &RequestContext<'_>, part: TxnPart<'_>) -> Vec<AddPartitionsToTxnTopicResult> {
    let snapshot = ctx.shard.metadata.load_full();
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut unknown: Vec<(String, i32)> = Vec::new();
    for topic in part.topics {
        // A group's coordinator verifying a TxnOffsetCommit names the group's slot (Kafka's
        // `__consumer_offsets` partition); only the verification reads it (decision 0022).
        let known = if part.verify_only && topic.name.0.as_str() == GROUP_SLOT_TOPIC {
            i32::try_from(COORDINATOR_SLOTS).ok()
        } else {
            snapshot.topic(&topic.name.0).map(|t| t.partitions)
        };
        for &p in &topic.partitions {
            let entry = (topic.name.0.to_string(), p);
            match known {
                Some(n) if p >= 0 && p < n => wanted.push(entry),
                _ => unknown.push(entry),
            }
        }
    }
    // Kafka: without WRITE on the transactional id every partition fails
    // TRANSACTIONAL_ID_AUTHORIZATION_FAILED; topics without WRITE fail
    // TOPIC_AUTHORIZATION_FAILED, and the rest are not attempted.
    let id_refused = part.checks_client_acls
        && !permitted(ctx, ResourceType::TransactionalId, &part.transactional_id);
    let unwritable: Vec<&str> = part
        .topics
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|t| part.checks_client_acls && !permitted(ctx, ResourceType::Topic, t))
        .collect();
    let codes = if id_refused || !unwritable.is_empty() || !unknown.is_empty() {
        vec![ResponseError::OperationNotAttempted.code(); wanted.len()]
    } else {
        coordinate(ctx, &part, wanted.clone()).await
    };
    let code_of = |topic: &str, p: i32| {
        if id_refused {
            return ResponseError::TransactionalIdAuthorizationFailed.code();
        }
        if unwritable.contains(&topic) {
            return ResponseError::TopicAuthorizationFailed.code();
        }
        if unknown.iter().any(|(t, q)| t == topic && *q == p) {
            return ResponseError::UnknownTopicOrPartition.code();
        }
        wanted
            .iter()
            .position(|(t, q)| t == topic && *q == p)
            .and_then(|i| codes.get(i).copied())
            .unwrap_or(ResponseError::OperationNotAttempted.code())
    };
    part.topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code_of(&topic.name.0, p))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(topic.name.0.clone()))
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// The coordinator's verdict for each of `partitions` (all exist): one code for the whole
/// add, or one per partition when only verifying.
async fn coordinate(
    ctx: &RequestContext<'_>,
    part: &TxnPart<'_>,
    partitions: Vec<(String, i32)>,
) -> Vec<i16> {
    let count = partitions.len();
    let (producer_id, epoch, verify_only) = (part.producer_id, part.epoch, part.verify_only);
    // The batched form's add comes from a partition leader serving a transactions v2
    // Produce (KIP-890 part 2): the implicit add, as if that Produce had reached us.
    let implicit_add = !verify_only && ctx.version >= BATCHED_SINCE_VERSION;
    let transactional_id = part.transactional_id.clone();
    let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
    let verdicts = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            if verify_only {
                transactions::verify_partitions(&s, &transactional_id, producer_id, epoch, &partitions)
            } else if implicit_add {
                transactions_v2::add_partitions_implicitly(
                    &s,
                    &transactional_id,
                    producer_id,
                    epoch,
                    &partitions,
                )
                .await
            } else {
                let added = transactions::add_partitions(
                    &s,
                    &transactional_id,
                    producer_id,
                    epoch,
                    &partitions,
                )
                .await;
                vec![added; partitions.len()]
            }
        })
        .await
        .unwrap_or_else(|_| vec![Err(TxnError::CoordinatorNotAvailable); count]);
    verdicts
        .into_iter()
        .map(|v| match v {
            Ok(()) => 0,
            Err(e) => e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION),
        })
        .collect()
}
