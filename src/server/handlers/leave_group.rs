//! LeaveGroup (v0–v2 one member, v3+ a batch by member or instance id): forwarded to the
//! owning shard; the leaving members are removed and the group rebalances.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use std::time::Instant;

pub async fn handle(ctx: &RequestContext<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let version = ctx.version;
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups.leave_group(request, version, Instant::now())
        })
        .await
        .unwrap_or_else(|_| {
            LeaveGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        })
}
