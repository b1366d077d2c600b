//! IncrementalAlterConfigs: SET / DELETE per key of a topic's config, APPEND / SUBTRACT on
//! list configs (`cleanup.policy`, the throttled-replica lists).

use crate::metadata::ConfigOp;
use crate::server::config_resources::alter;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The resource's changes, or the error for the whole resource (Kafka refuses a key named
/// twice with INVALID_REQUEST and an unknown operation with INVALID_REQUEST too).
fn changes_of(configs: &[AlterableConfig]) -> Result<Vec<(String, ConfigOp)>, (i16, String)> {
    let mut changes: Vec<(String, ConfigOp)> = Vec::with_capacity(configs.len());
    for c in configs {
        let name = c.name.to_string();
        if changes.iter().any(|(n, _)| *n == name) {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
        let value = || c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        let op = match c.config_operation {
            OP_SET => ConfigOp::Set(value()),
            OP_DELETE => ConfigOp::Delete,
            OP_APPEND => ConfigOp::Append(value()),
            OP_SUBTRACT => ConfigOp::Subtract(value()),
            other => {
                return Err((
                    ResponseError::InvalidRequest.code(),
                    format!("unknown config operation {other} for `{name}`"),
                ));
            }
        };
        changes.push((name, op));
    }
    Ok(changes)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let (code, message) = alter(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            changes_of(&resource.configs),
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
