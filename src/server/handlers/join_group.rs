//! JoinGroup: forwarded to the shard that owns the group. The answer usually waits for the
//! join phase to complete (all members rejoined, the initial delay or the rebalance timeout).

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use std::time::Instant;

pub async fn handle(ctx: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version;
    let client = ctx.client_info();
    let member_id = request.member_id.clone();
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        let protocol_name = (version < 7).then(StrBytes::default);
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_generation_id(-1)
            .with_protocol_name(protocol_name)
            .with_member_id(member_id);
    }
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    let mut response = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .join(request, client, version, Instant::now())
                .await
        })
        .await
        .unwrap_or_else(|_| {
            JoinGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_generation_id(-1)
                .with_protocol_name(None)
                .with_member_id(member_id)
        });
    // The protocol name is nullable from v7 only: older versions carry "" (as Kafka's
    // JoinGroupResponse does).
    if version < 7 && response.protocol_name.is_none() {
        response.protocol_name = Some(StrBytes::default());
    }
    response
}
