//! DeleteGroups (v0–v2): each group is deleted by its owning shard — NON_EMPTY_GROUP while
//! it has members, GROUP_ID_NOT_FOUND if unknown, else its offsets are durably removed. A
//! deleted share group's records' state is dropped on every shard's partitions; in cluster
//! mode first, through one metadata-log record, on every broker's (decision 0025), as
//! Kafka's coordinator deletes the share-partition states before the group.

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::metadata::share_state_reset::ResetScope;
use crate::server::context::RequestContext;
use crate::server::share::reset_through_log;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::time::Instant;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let calls = request.groups_names.into_iter().map(|group_id| {
        let owner = ctx.shard.owner_of_group(&group_id.0);
        let name = group_id.0.to_string();
        let deletable = permitted(ctx, ResourceType::Group, &name);
        async move {
            if !deletable {
                return DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if ctx.shard.cluster.is_some() {
                let code = drop_share_states_first(ctx, owner, &name).await;
                if code != 0 {
                    return DeletableGroupResult::default()
                        .with_group_id(group_id)
                        .with_error_code(code);
                }
            }
            let error_code = ctx
                .shard
                .invoke_on(owner, move |s| async move {
                    s.groups.delete_group(&name, Instant::now()).await
                })
                .await
                .unwrap_or(ResponseError::CoordinatorNotAvailable.code());
            if error_code == 0 && ctx.shard.cluster.is_none() {
                let name = group_id.0.to_string();
                ctx.shard
                    .invoke_on_all(move |s| {
                        let name = name.clone();
                        async move {
                            for (topic, partition, p) in s.partitions.all_online() {
                                if let Err(e) = p.share_forget_group(&name).await {
                                    tracing::warn!(group = %name, %topic, partition, error = %e,
                                        "cannot record a deleted share group's state");
                                }
                            }
                        }
                    })
                    .await;
            }
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error_code)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    DeleteGroupsResponse::default().with_results(results)
}

/// Cluster mode: if `group` is a share group without members, its states on every
/// partition are dropped through the metadata log before the group goes (0 when done or
/// not a share group: `delete_group` answers for the rest). A member joining in between
/// finds the states gone and the group still there, as in Kafka.
async fn drop_share_states_first(ctx: &RequestContext<'_>, owner: usize, group: &str) -> i16 {
    let name = group.to_string();
    let empty_share_group = ctx
        .shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .share_offsets_changeable(&name, true, Instant::now())
                .is_ok()
        })
        .await
        .unwrap_or(false);
    if !empty_share_group {
        return 0;
    }
    reset_through_log(ctx.shard, group, ResetScope::Group).await
}
