//! IncrementalAlterConfigs: SET / DELETE per key of a topic's config (APPEND / SUBTRACT
//! apply to list configs). Broker configs are static (config file).

use crate::server::config_resources::alter;
use crate::server::context::RequestContext;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let changes: Result<Vec<_>, String> = resource
            .configs
            .iter()
            .map(|c| match c.config_operation {
                OP_SET => Ok((
                    c.name.to_string(),
                    Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()),
                )),
                OP_DELETE => Ok((c.name.to_string(), None)),
                _ => Err(format!(
                    "`{}`: APPEND/SUBTRACT apply to list configs; none exist here",
                    c.name.as_str()
                )),
            })
            .collect();
        let (code, message) = alter(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            changes,
            true,
            request.validate_only,
        )
        .await;
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}
