//! FindCoordinator (v0–v6, batched `coordinator_keys` from v4; v6's share-group keys are
//! INVALID_REQUEST: no share groups here): on a single node this broker coordinates every
//! group and transactional id (the owning shard is reached internally); in cluster mode the
//! key's slot holder, COORDINATOR_NOT_AVAILABLE while there is none or this node has not
//! caught up since it started (`cluster_view::coordinator_seen_from`). No shard hop.

use crate::group;
use crate::server::cluster_view::coordinator_seen_from;
use crate::group::CoordinatorKeyType;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let snapshot = ctx.shard.metadata.load();
    let locate = |key: &str| {
        coordinator_seen_from(ctx, &snapshot, key).map(|b| (b.id, b.host, b.port))
    };
    let authorized = |kind: CoordinatorKeyType, key: &str| {
        let resource = match kind {
            CoordinatorKeyType::Group => ResourceType::Group,
            CoordinatorKeyType::Transaction => ResourceType::TransactionalId,
        };
        permitted(ctx, resource, key)
    };
    group::find_coordinator(&request, ctx.version, &locate, &authorized)
}
