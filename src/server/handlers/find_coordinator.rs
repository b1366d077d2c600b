//! FindCoordinator (v0–v6, batched `coordinator_keys` from v4; v6's share-group keys are
//! INVALID_REQUEST: no share groups here): this broker coordinates every group and
//! transactional id — the owning shard is reached internally — so the
//! answer is always this node's advertised address. No shard hop needed.

use crate::group;
use crate::group::CoordinatorKeyType;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let config = &ctx.shard.config;
    let (host, port) = config.advertised_address();
    let authorized = |kind: CoordinatorKeyType, key: &str| {
        let resource = match kind {
            CoordinatorKeyType::Group => ResourceType::Group,
            CoordinatorKeyType::Transaction => ResourceType::TransactionalId,
        };
        permitted(ctx, resource, key)
    };
    group::find_coordinator(&request, ctx.version, config.node_id, &host, port, &authorized)
}
