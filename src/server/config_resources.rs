//! Config resources (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs): their type
//! codes on the wire and the change path both alter handlers share. Must not: know a
//! request's encoding (each handler reads its own).

use super::context::RequestContext;
use crate::metadata::ConfigOp;
use crate::shard::topics::{alter_group_config, alter_topic_config};
use kafka_protocol::ResponseError;

/// Kafka's `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

/// Applies `changes` (key, operation) to one resource: (error code,
/// message). `incremental` keeps the keys not named; otherwise they return to defaults.
pub async fn alter(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, ConfigOp)>, (i16, String)>,
    incremental: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    match resource_type {
        RESOURCE_TOPIC | RESOURCE_GROUP => {}
        RESOURCE_BROKER => {
            // Sluice reads broker settings once at start-up; nothing is applied live yet, so
            // say which keys were refused rather than pretend they took effect.
            let keys = match &changes {
                Ok(c) => c
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(_) => String::new(),
            };
            return (
                ResponseError::PolicyViolation.code(),
                Some(format!(
                    "broker configs are static on Sluice ({keys}): set them in the config file and restart"
                )),
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
        Err((code, message)) => return (code, Some(message)),
    };
    if resource_type == RESOURCE_GROUP {
        if name.is_empty() {
            return (
                ResponseError::InvalidRequest.code(),
                Some("a group config resource needs a group id".into()),
            );
        }
        let altered = alter_group_config(
            ctx.shard,
            name.to_string(),
            changes,
            incremental,
            validate_only,
        );
        return match altered.await {
            Ok(()) => (0, None),
            Err(e) => (e.code, Some(e.message)),
        };
    }
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
