//! AddOffsetsToTxn: adds a consumer group to the producer's transaction (its offsets will
//! be committed or dropped with the transaction), on the id's coordinating shard.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::transactions;
use crate::txn::TxnError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

/// PRODUCER_FENCED exists from v2 (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const PRODUCER_FENCED_SINCE_VERSION: i16 = 2;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let response = AddOffsetsToTxnResponse::default().with_throttle_time_ms(0);
    let group_id = request.group_id.0.to_string();
    if group_id.is_empty() {
        return response.with_error_code(ResponseError::InvalidGroupId.code());
    }
    let transactional_id = request.transactional_id.0.to_string();
    if !permitted(ctx, ResourceType::TransactionalId, &transactional_id) {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !permitted(ctx, ResourceType::Group, &group_id) {
        return response.with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
    let added = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            transactions::add_offsets(&s, &transactional_id, producer_id, epoch, &group_id).await
        })
        .await
        .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
    match added {
        Ok(()) => response.with_error_code(0),
        Err(e) => response.with_error_code(e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION)),
    }
}
