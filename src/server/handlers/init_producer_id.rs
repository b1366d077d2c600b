//! InitProducerId: hands an idempotent producer a broker-unique id (epoch 0). Ids come from
//! shard 0's allocator, which persists blocks so ids are never reused after a restart.
//! With a transactional id the request goes to the id's coordinating shard
//! (`shard::transactions::init_producer_id`: timeout check, fencing, epoch bump, KIP-360).

use crate::server::access::{allowed_on_any, cluster_allowed, permitted};
use crate::server::authorization::{AclOperation, ResourceType};
use crate::server::context::RequestContext;
use crate::shard::transactions;
use crate::txn::TxnError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_throttle_time_ms(0)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(transactional_id) = request.transactional_id {
        let transactional_id = transactional_id.0.to_string();
        if !permitted(ctx, ResourceType::TransactionalId, &transactional_id) {
            let code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return response.with_error_code(code);
        }
        let timeout_ms = request.transaction_timeout_ms;
        let expected = (request.producer_id.0 >= 0 && request.producer_epoch >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
        let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
        let answer = ctx
            .shard
            .invoke_on(owner, move |s| async move {
                transactions::init_producer_id(&s, &transactional_id, timeout_ms, expected).await
            })
            .await
            .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
        return match answer {
            Ok((producer_id, epoch)) => response
                .with_error_code(0)
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            // PRODUCER_FENCED exists from v4 (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
            Err(e) => response.with_error_code(e.code(ctx.version, 4)),
        };
    }
    // An idempotent producer needs CLUSTER IDEMPOTENT_WRITE, or WRITE on some topic (KIP-679).
    if !cluster_allowed(ctx, AclOperation::IdempotentWrite)
        && !allowed_on_any(ctx, AclOperation::Write, ResourceType::Topic)
    {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // A producer that already has an id and asks to bump its epoch (KIP-360) keeps its id.
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 {
        let epoch = request.producer_epoch.checked_add(1).unwrap_or(0);
        return response
            .with_error_code(0)
            .with_producer_id(request.producer_id)
            .with_producer_epoch(epoch);
    }
    let allocated = ctx
        .shard
        .invoke_on(0, |s| async move {
            s.metadata_writer
                .as_ref()
                .map(|w| w.allocate_producer_id().map_err(|e| e.to_string()))
        })
        .await;
    match allocated {
        Ok(Some(Ok(id))) => response
            .with_error_code(0)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        _ => response.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
}
