//! AlterConfigs: replace all of a topic's overrides, or all dynamic configs of one BROKER
//! level (this node's id, or "" for the cluster default).

use crate::metadata::ConfigOp;
use crate::server::config_resources::alter;
use crate::server::context::RequestContext;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, alter_configs_response};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let changes = resource
            .configs
            .iter()
            .map(|c| {
                let op = match &c.value {
                    Some(v) => ConfigOp::Set(v.to_string()),
                    None => ConfigOp::Delete,
                };
                (c.name.to_string(), op)
            })
            .collect();
        let (code, message) = alter(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            Ok(changes),
            false,
            request.validate_only,
        )
        .await;
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}
