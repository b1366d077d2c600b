//! ConsumerGroupHeartbeat (KIP-848): forwarded to the shard that owns the group, with the
//! cluster's topics (name -> id, partition count) so the coordinator can assign partitions
//! and name them by topic id (`server::views::topics_view`).

use crate::group::ClientInfo;
use crate::server::context::RequestContext;
use crate::server::views::topics_view;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use std::time::Instant;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let client = ClientInfo {
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: String::new(),
    };
    let topics = topics_view(ctx.shard);
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .consumer_heartbeat(&request, &client, &topics, Instant::now())
        })
        .await
        .unwrap_or_else(|_| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_member_epoch(-1)
        })
}
