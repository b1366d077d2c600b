//! AlterConfigs (replace all overrides) and IncrementalAlterConfigs (SET / DELETE /
//! APPEND / SUBTRACT per key) for topic configs. Broker configs are static (config file).

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::server::dispatch::RequestContext;
use crate::shard::topics::alter_topic_config;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// (error code, message) for one resource.
async fn alter(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, Option<String>)>, String>,
    incremental: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return (
                ResponseError::PolicyViolation.code(),
                Some("broker configs are static here: edit the config file and restart".into()),
            );
        }
        _ => {
            return (
                ResponseError::InvalidRequest.code(),
                Some("unsupported resource type".into()),
            );
        }
    }
    let changes = match changes {
        Ok(c) => c,
        Err(message) => return (ResponseError::InvalidConfig.code(), Some(message)),
    };
    match alter_topic_config(
        ctx.shard,
        name.to_string(),
        changes,
        incremental,
        validate_only,
    )
    .await
    {
        Ok(_) => (0, None),
        Err(e) => (e.code, Some(e.message)),
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let changes = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
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

pub async fn handle_incremental(
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
