//! DescribeCluster: the registered brokers (fenced ones marked) on the request's listener,
//! and the controller; on a single node, this node, which is also the controller.

use crate::server::access::{CLUSTER_RESOURCE_NAME, operations_bitfield};
use crate::server::authorization::{AUTHORIZED_OPERATIONS_OMITTED, ResourceType};
use crate::server::cluster_view::{brokers_seen_from, controller_id};
use crate::server::context::RequestContext;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let brokers = brokers_seen_from(ctx, &ctx.shard.metadata.load())
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
                .with_rack(None)
                .with_is_fenced(b.fenced)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(
            ctx.shard.metadata.load().cluster_id.clone(),
        ))
        .with_controller_id(BrokerId(controller_id(ctx.shard)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            operations_bitfield(ctx, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}
