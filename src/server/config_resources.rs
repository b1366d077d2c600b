//! Config resources (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs): their type
//! codes on the wire and the change path both alter handlers share. Must not: know a
//! request's encoding (each handler reads its own).

use super::access::{CLUSTER_RESOURCE_NAME, permitted};
use super::authorization::ResourceType;
use super::context::RequestContext;
use crate::metadata::ConfigOp;
use crate::metadata::dynamic_broker::{BrokerConfigLevel, is_dynamic};
use crate::server::broker_configs::broker_entries;
use crate::shard::topics::{alter_broker_config, alter_group_config, alter_topic_config};
use kafka_protocol::ResponseError;

/// Kafka's `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

/// Applies `changes` (key, operation) to one resource: (error code,
/// message). `incremental` keeps the keys not named; otherwise they return to defaults.
/// The authorization error for a config resource, per its type as Kafka answers it (the
/// operation, DESCRIBE_CONFIGS or ALTER_CONFIGS, is the API's table line's): a topic or a
/// group by name, a broker through the cluster. `None` when allowed (or of a type the
/// handlers refuse as INVALID_REQUEST anyway).
pub fn config_refusal(ctx: &RequestContext<'_>, resource_type: i8, name: &str) -> Option<i16> {
    let (allowed, code) = match resource_type {
        RESOURCE_TOPIC => (
            permitted(ctx, ResourceType::Topic, name),
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_GROUP => (
            permitted(ctx, ResourceType::Group, name),
            ResponseError::GroupAuthorizationFailed,
        ),
        RESOURCE_BROKER => (
            permitted(ctx, ResourceType::Cluster, CLUSTER_RESOURCE_NAME),
            ResponseError::ClusterAuthorizationFailed,
        ),
        _ => return None,
    };
    (!allowed).then_some(code.code())
}

pub async fn alter(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, ConfigOp)>, (i16, String)>,
    incremental: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    if let Some(code) = config_refusal(ctx, resource_type, name) {
        return (code, None);
    }
    match resource_type {
        RESOURCE_TOPIC | RESOURCE_GROUP => {}
        RESOURCE_BROKER => {
            return alter_broker(ctx, name, changes, incremental, validate_only).await;
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

/// The BROKER resource: `name` is this node's id (per-broker configs) or "" (the
/// cluster-wide default). As Kafka does, one key that cannot change at run time refuses the
/// whole resource with INVALID_REQUEST; an unknown key is INVALID_CONFIG.
async fn alter_broker(
    ctx: &RequestContext<'_>,
    name: &str,
    changes: Result<Vec<(String, ConfigOp)>, (i16, String)>,
    incremental: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    let level = if name.is_empty() {
        BrokerConfigLevel::ClusterDefault
    } else if name == ctx.shard.config.node_id.to_string() {
        BrokerConfigLevel::PerBroker
    } else {
        return (
            ResponseError::InvalidRequest.code(),
            Some(format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                ctx.shard.config.node_id
            )),
        );
    };
    let changes = match changes {
        Ok(c) => c,
        Err((code, message)) => return (code, Some(message)),
    };
    let known = broker_entries(&ctx.shard.config);
    let static_keys: Vec<&str> = changes
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !is_dynamic(k) && known.iter().any(|e| e.name == *k))
        .collect();
    if !static_keys.is_empty() {
        return (
            ResponseError::InvalidRequest.code(),
            Some(format!(
                "Cannot update these configs dynamically: [{}] (Sluice reads them from its config file at start-up; change them there and restart)",
                static_keys.join(", ")
            )),
        );
    }
    if let Some((unknown, _)) = changes.iter().find(|(k, _)| !is_dynamic(k)) {
        return (
            ResponseError::InvalidConfig.code(),
            Some(format!("Unknown broker config: {unknown}")),
        );
    }
    match alter_broker_config(ctx.shard, level, changes, incremental, validate_only).await {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(e.message)),
    }
}
