//! DescribeGroups (v0–v5): each group is described by its owning shard; unknown groups
//! come back as state "Dead" without an error, as in Kafka.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version;
    let calls = request.groups.into_iter().map(|group_id| {
        let owner = ctx.shard.owner_of_group(&group_id.0);
        let fallback = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
        async move {
            ctx.shard
                .invoke_on(owner, move |s| async move {
                    s.groups.describe_group(&group_id.0, version)
                })
                .await
                .unwrap_or(fallback)
        }
    });
    let groups = futures_util::future::join_all(calls).await;
    DescribeGroupsResponse::default().with_groups(groups)
}
