//! DescribeCluster: this single node, which is also the controller.

use crate::server::access::{CLUSTER_RESOURCE_NAME, operations_bitfield};
use crate::server::authorization::{AUTHORIZED_OPERATIONS_OMITTED, ResourceType};
use crate::server::context::RequestContext;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let config = &ctx.shard.config;
    let (host, port) = config.advertised_address();
    DescribeClusterResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(
            ctx.shard.metadata.load().cluster_id.clone(),
        ))
        .with_controller_id(BrokerId(config.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(config.node_id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_rack(None)
                .with_is_fenced(false),
        ])
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            operations_bitfield(ctx, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}
