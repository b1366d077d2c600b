//! The vocabulary of authorization, as Kafka's ACLs name it (KIP-11, KIP-430): resource types
//! and operations, and what each API needs. The registry (`server::registry`) declares every
//! API's requirements beside its handler, so the authorizer checks one table and a new API
//! cannot forget to say what it needs. Must not: decide who may do what (that is the
//! authorizer's job; until one is configured every operation is allowed, as in Kafka).

/// Kafka's `ResourceType` codes (the numbers on the wire in CreateAcls/DescribeAcls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

/// Kafka's `AclOperation` codes; their bit positions form the KIP-430 authorized-operations
/// bitfields of Metadata, DescribeCluster and DescribeGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum AclOperation {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// One permission an API needs: `operation` on each resource of `resource` type the request
/// names (on the cluster itself for `ResourceType::Cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub resource: ResourceType,
    pub operation: AclOperation,
}

/// What an API needs before its handler runs. `Any` lists alternatives, as Kafka allows
/// CreateTopics with CREATE on the cluster or on the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorize {
    /// Nothing: answered before authentication (ApiVersions).
    Nothing,
    /// Every listed requirement.
    All(&'static [Requirement]),
    /// At least one of the listed requirements.
    Any(&'static [Requirement]),
}

impl Authorize {
    /// Every requirement this declaration names, alternatives included.
    pub fn requirements(&self) -> &'static [Requirement] {
        match self {
            Authorize::Nothing => &[],
            Authorize::All(r) | Authorize::Any(r) => r,
        }
    }
}

/// Shorthand for the registry table.
pub const fn needs(resource: ResourceType, operation: AclOperation) -> Requirement {
    Requirement {
        resource,
        operation,
    }
}
