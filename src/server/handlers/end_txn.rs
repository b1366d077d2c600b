//! EndTxn: commits or aborts the producer's transaction on the id's coordinating shard
//! (v5: transactions v2, answering the bumped epoch the producer continues with).
//! Answered once the outcome is durable and the markers were written (a marker that could
//! not be written is retried by the coordinator's timer; the outcome stands).

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::{transactions, transactions_v2};
use kafka_protocol::ResponseError;
use crate::txn::TxnError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

/// PRODUCER_FENCED exists from v2 (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const PRODUCER_FENCED_SINCE_VERSION: i16 = 2;
/// EndTxn v5 is transactions v2's (KIP-890): every decision bumps the epoch, answered back.
const TRANSACTIONS_V2_SINCE_VERSION: i16 = 5;

pub async fn handle(ctx: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let response = EndTxnResponse::default()
        .with_throttle_time_ms(0)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let transactional_id = request.transactional_id.0.to_string();
    if !permitted(ctx, ResourceType::TransactionalId, &transactional_id) {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    let (producer_id, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let owner = ctx.shard.owner_of_transactional_id(&transactional_id);
    let v2 = ctx.version >= TRANSACTIONS_V2_SINCE_VERSION;
    let ended = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            if v2 {
                transactions_v2::end_txn(&s, &transactional_id, producer_id, epoch, commit)
                    .await
                    .map(Some)
            } else {
                transactions::end_txn(&s, &transactional_id, producer_id, epoch, commit)
                    .await
                    .map(|()| None)
            }
        })
        .await
        .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
    match ended {
        Ok(None) => response.with_error_code(0),
        Ok(Some((next_id, next_epoch))) => response
            .with_error_code(0)
            .with_producer_id(ProducerId(next_id))
            .with_producer_epoch(next_epoch),
        Err(e) => response.with_error_code(e.code(ctx.version, PRODUCER_FENCED_SINCE_VERSION)),
    }
}
