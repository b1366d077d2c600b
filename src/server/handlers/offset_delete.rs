//! OffsetDelete: forwarded to the owning shard; refused per partition
//! (GROUP_SUBSCRIBED_TO_TOPIC) while the group has members, otherwise deleted durably.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use std::time::Instant;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups.offset_delete(request, Instant::now()).await
        })
        .await
        .unwrap_or_else(|_| {
            OffsetDeleteResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        })
}
