//! ShareGroupDescribe (KIP-932, v1): each group is described by its owning shard — members,
//! epochs, assignments. Groups of other types, or unknown ones, get GROUP_ID_NOT_FOUND.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::views::topics_view;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let topics = topics_view(ctx.shard);
    let calls = request.group_ids.into_iter().map(|group_id| {
        let owner = ctx.shard.owner_of_group(&group_id.0);
        let topics = topics.clone();
        async move {
            let name = group_id.0.to_string();
            if !permitted(ctx, ResourceType::Group, &name) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            ctx.shard
                .invoke_on(owner, move |s| async move {
                    s.groups
                        .share_group_describe(&name, &topics, std::time::Instant::now())
                })
                .await
                .unwrap_or_else(|_| {
                    DescribedGroup::default()
                        .with_group_id(group_id)
                        .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                })
        }
    });
    let groups = futures_util::future::join_all(calls).await;
    ShareGroupDescribeResponse::default()
        .with_throttle_time_ms(0)
        .with_groups(groups)
}
