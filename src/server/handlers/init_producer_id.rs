//! InitProducerId: hands an idempotent producer a broker-unique id (epoch 0). Ids come from
//! shard 0's allocator, which persists blocks so ids are never reused after a restart.
//! Transactions are not supported: a transactional id is refused with a clear message.

use crate::server::context::RequestContext;
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
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
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
