//! ConsumerGroupHeartbeat (KIP-848): forwarded to the shard that owns the group, with the
//! cluster's topics (name -> id, partition count) so the coordinator can assign partitions
//! and name them by topic id (`server::views::topics_view`).

use crate::config::group_config::GroupTimeouts;
use crate::group::consumer::DEFAULT_TIMEOUTS;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::views::topics_view;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use std::time::Instant;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let client = ctx.client_info();
    if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_member_epoch(-1);
    }
    // Subscribed topic names the principal may not DESCRIBE: TOPIC_AUTHORIZATION_FAILED.
    let subscribed = request.subscribed_topic_names.iter().flatten();
    if subscribed
        .into_iter()
        .any(|t| !permitted(ctx, ResourceType::Topic, t))
    {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_member_epoch(-1);
    }
    let topics = topics_view(ctx.shard);
    // The group's own session timeout / heartbeat interval (GROUP configs), if any.
    let timeouts = GroupTimeouts::with_overrides(
        DEFAULT_TIMEOUTS,
        ctx.shard
            .metadata
            .load()
            .group_configs
            .get(request.group_id.0.as_str())
            .map(|c| &**c),
    );
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .consumer_heartbeat(&request, &client, &topics, timeouts, Instant::now())
                .await
        })
        .await
        .unwrap_or_else(|_| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_member_epoch(-1)
        })
}
