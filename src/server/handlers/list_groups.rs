//! ListGroups (v0–v5; v4+ states filter, v5 types filter): every shard lists the groups it
//! owns; the answers are concatenated, sorted by group id.

use crate::server::access::{cluster_allowed, permitted};
use crate::server::authorization::{AclOperation, ResourceType};
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

pub async fn handle(ctx: &RequestContext<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    let per_shard = ctx
        .shard
        .invoke_on_all(move |s| {
            let request = request.clone();
            async move { s.groups.list_groups(&request, std::time::Instant::now()) }
        })
        .await;
    let mut error_code = 0;
    let mut groups = Vec::new();
    for result in per_shard {
        match result {
            Ok(listed) => groups.extend(listed),
            Err(_) => error_code = ResponseError::CoordinatorNotAvailable.code(),
        }
    }
    // CLUSTER DESCRIBE lists every group; else only the groups the principal may DESCRIBE.
    if !cluster_allowed(ctx, AclOperation::Describe) {
        groups.retain(|g| permitted(ctx, ResourceType::Group, &g.group_id.0));
    }
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(groups)
}
