//! Heartbeat: forwarded to the owning shard; resets the member's session deadline and
//! answers REBALANCE_IN_PROGRESS while the group rebalances (so the member rejoins).

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::time::Instant;

pub async fn handle(ctx: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return HeartbeatResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups.heartbeat(request, Instant::now())
        })
        .await
        .unwrap_or_else(|_| {
            HeartbeatResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        })
}
