//! SyncGroup: forwarded to the owning shard. Followers wait until the leader sends the
//! assignments; the leader's request releases everyone.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use std::time::Instant;

pub async fn handle(ctx: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let version = ctx.version;
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return SyncGroupResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups.sync(request, version, Instant::now()).await
        })
        .await
        .unwrap_or_else(|_| {
            SyncGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        })
}
