//! ShareGroupHeartbeat (KIP-932, v1): forwarded to the shard that owns the group, with the
//! cluster's topics so the coordinator can assign partitions and name them by topic id.

use crate::group::share::{ShareHeartbeat, ShareTimeouts};
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::views::topics_view;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use std::time::Instant;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    // As Kafka: READ on the group, DESCRIBE on every subscribed topic.
    let refused = if !permitted(ctx, ResourceType::Group, &request.group_id.0) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else if request
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|t| !permitted(ctx, ResourceType::Topic, &t.0))
    {
        Some(ResponseError::TopicAuthorizationFailed)
    } else {
        None
    };
    if let Some(code) = refused {
        return ShareGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_member_epoch(-1);
    }
    let client = ctx.client_info();
    let topics = topics_view(ctx.shard);
    let owner = ctx.shard.owner_of_group(&request.group_id.0);
    ctx.shard
        .invoke_on(owner, move |s| async move {
            let heartbeat = ShareHeartbeat {
                member_id: request.member_id.as_str(),
                member_epoch: request.member_epoch,
                rack_id: request.rack_id.as_deref(),
                subscribed_topic_names: request
                    .subscribed_topic_names
                    .as_ref()
                    .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
                client_id: &client.client_id,
                client_host: &client.client_host,
            };
            s.groups
                .share_heartbeat(
                    &request.group_id.0,
                    heartbeat,
                    &topics,
                    ShareTimeouts::default(),
                    Instant::now(),
                )
                .await
        })
        .await
        .unwrap_or_else(|_| {
            ShareGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_member_epoch(-1)
        })
}
