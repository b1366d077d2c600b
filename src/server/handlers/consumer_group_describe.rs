//! ConsumerGroupDescribe (KIP-848): each group is described by its owning shard — members,
//! epochs, current and target assignments. Classic or unknown groups get GROUP_ID_NOT_FOUND.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::views::topics_view;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let topics = topics_view(ctx.shard);
    let calls = request.group_ids.into_iter().map(|group_id| {
        let owner = ctx.shard.owner_of_group(&group_id.0);
        let topics = topics.clone();
        let describable = permitted(ctx, ResourceType::Group, &group_id.0);
        async move {
            if !describable {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let name = group_id.0.to_string();
            ctx.shard
                .invoke_on(owner, move |s| async move {
                    s.groups.consumer_group_describe(&name, &topics, std::time::Instant::now())
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
    ConsumerGroupDescribeResponse::default()
        .with_throttle_time_ms(0)
        .with_groups(groups)
}
