//! DescribeGroups (v0–v6): each group is described by its owning shard; unknown groups
//! come back as state "Dead" without an error up to v5 and as GROUP_ID_NOT_FOUND from v6
//! (KIP-1043), as in Kafka.

use crate::server::access::{operations_bitfield, permitted};
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = ctx.version;
    let include_operations = request.include_authorized_operations;
    let calls = request.groups.into_iter().map(|group_id| {
        let owner = ctx.shard.owner_of_group(&group_id.0);
        let fallback = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
        let readable = permitted(ctx, ResourceType::Group, &group_id.0);
        async move {
            if !readable {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            ctx.shard
                .invoke_on(owner, move |s| async move {
                    s.groups.describe_group(&group_id.0, version, std::time::Instant::now())
                })
                .await
                .unwrap_or(fallback)
        }
    });
    let mut groups = futures_util::future::join_all(calls).await;
    // KIP-430 (v3+): the bitfield only for groups described without error, as Kafka does;
    // the others keep the "not requested" default.
    if version >= 3 && include_operations {
        for group in groups.iter_mut().filter(|g| g.error_code == 0) {
            group.authorized_operations =
                operations_bitfield(ctx, ResourceType::Group, &group.group_id.0);
        }
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
