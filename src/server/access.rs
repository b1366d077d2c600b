//! Enforcement of the registry's authorization table, in one place: `routing` asks
//! `cluster_refusal` before any handler runs (an API whose needs are all on the cluster is
//! refused there), and handlers ask `permitted` with each topic, group or transactional id
//! their request names, which checks what the table declares for the API being served, so
//! the table, not the handler, says which operation a name needs. Also the KIP-430
//! authorized-operations bitfields. With no authorizer configured everything is permitted,
//! as in Kafka. Must not: hold ACLs (the metadata snapshot does) or decide semantics (the
//! authorizer in `security` does).

use super::authorization::{AclOperation, Authorize, ResourceType, authorized_operations};
use super::context::RequestContext;
use super::registry::served;
use crate::config::AuthorizerChoice;
use crate::security::authorizer::{AclSet, Policy, Requester};

/// The one name of the CLUSTER resource, as Kafka names it.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// Whether an authorizer is configured (`authorizer = "standard"`).
pub fn authorizer_enabled(ctx: &RequestContext<'_>) -> bool {
    ctx.shard.config.authorizer != AuthorizerChoice::None
}

/// Runs `decide` with the broker's policy, the connection's principal and address, and the
/// ACLs of the current snapshot (one wait-free load; nothing allocated).
fn with_authorizer<R>(
    ctx: &RequestContext<'_>,
    decide: impl FnOnce(Policy<'_>, Requester<'_>, &AclSet) -> R,
) -> R {
    let config = &ctx.shard.config;
    let policy = Policy {
        super_users: &config.super_users,
        allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
    };
    let connection = ctx.connection.borrow();
    let who = Requester {
        principal: &connection.principal,
        host: connection.peer_ip,
    };
    let snapshot = ctx.shard.metadata.load();
    decide(policy, who, &snapshot.acls)
}

/// Whether the connection's principal may perform `operation` on `name`. Cheap: one
/// snapshot load and a few hash lookups; allocates nothing.
pub fn allowed(
    ctx: &RequestContext<'_>,
    operation: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if !authorizer_enabled(ctx) {
        return true;
    }
    with_authorizer(ctx, |policy, who, acls| {
        policy.authorize(acls, who, operation, resource_type, name)
    })
}

/// Whether the principal may perform `operation` on some resource of `resource_type`
/// (KIP-679's check for idempotent producers).
pub fn allowed_on_any(
    ctx: &RequestContext<'_>,
    operation: AclOperation,
    resource_type: ResourceType,
) -> bool {
    if !authorizer_enabled(ctx) {
        return true;
    }
    with_authorizer(ctx, |policy, who, acls| {
        policy.authorize_any(acls, who, operation, resource_type)
    })
}

/// `operation` on the cluster itself.
pub fn cluster_allowed(ctx: &RequestContext<'_>, operation: AclOperation) -> bool {
    allowed(ctx, operation, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
}

/// Whether the request may touch `name` of `resource_type`, as the registry declares for
/// the API being served: every declared requirement on that type (`All`) or one of them
/// (`Any`). A type the API declares nothing for is refused, so a handler asking about a
/// resource its table line forgot fails closed.
pub fn permitted(ctx: &RequestContext<'_>, resource_type: ResourceType, name: &str) -> bool {
    if !authorizer_enabled(ctx) {
        return true;
    }
    let Some(api) = served(ctx.api) else {
        return false;
    };
    let mut needed = api
        .authorize
        .requirements()
        .iter()
        .filter(|r| r.resource == resource_type)
        .peekable();
    if needed.peek().is_none() {
        return false;
    }
    let check =
        |r: &&super::authorization::Requirement| allowed(ctx, r.operation, resource_type, name);
    match api.authorize {
        Authorize::Nothing => true,
        Authorize::All(_) => needed.all(|r| check(&r)),
        Authorize::Any(_) => needed.any(|r| check(&r)),
    }
}

/// Whether `authorize` is checked entirely before the handler runs: every requirement it
/// names is on the cluster.
pub fn checked_before_handler(authorize: &Authorize) -> bool {
    let requirements = authorize.requirements();
    !requirements.is_empty()
        && requirements
            .iter()
            .all(|r| r.resource == ResourceType::Cluster)
}

/// CLUSTER_AUTHORIZATION_FAILED when the API's needs are all on the cluster and the
/// principal lacks them (all of an `All`, none of an `Any`); `None` lets the handler run
/// (and check the resources its request names with `permitted`).
pub fn cluster_refusal(ctx: &RequestContext<'_>) -> Option<i16> {
    if !authorizer_enabled(ctx) {
        return None;
    }
    let api = served(ctx.api)?;
    if !checked_before_handler(&api.authorize) {
        return None;
    }
    let mut requirements = api.authorize.requirements().iter();
    let allowed = match api.authorize {
        Authorize::Nothing => true,
        Authorize::All(_) => requirements.all(|r| cluster_allowed(ctx, r.operation)),
        Authorize::Any(_) => requirements.any(|r| cluster_allowed(ctx, r.operation)),
    };
    (!allowed).then_some(kafka_protocol::ResponseError::ClusterAuthorizationFailed.code())
}

/// The KIP-430 bitfield of what the principal may do on `name`: every supported operation
/// without an authorizer, else the ones the ACLs allow.
pub fn operations_bitfield(
    ctx: &RequestContext<'_>,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    if !authorizer_enabled(ctx) {
        return authorized_operations(resource_type);
    }
    with_authorizer(ctx, |policy, who, acls| {
        policy.authorized_operations(acls, who, resource_type, name)
    })
}

/// Whether a topic the request names may be created on the fly (Kafka's auto-creation
/// needs CREATE on the cluster or on the topic).
pub fn may_auto_create(ctx: &RequestContext<'_>, topic: &str) -> bool {
    cluster_allowed(ctx, AclOperation::Create)
        || allowed(ctx, AclOperation::Create, ResourceType::Topic, topic)
}
