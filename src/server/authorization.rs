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
    CreateTokens = 13,
    DescribeTokens = 14,
}

impl AclOperation {
    /// This operation's bit in a KIP-430 authorized-operations bitfield.
    const fn bit(self) -> i32 {
        1 << (self as i32)
    }
}

impl ResourceType {
    /// The operations an ACL on this resource type can grant (Kafka's
    /// `AclEntry.supportedOperations`).
    pub const fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// Kafka's "authorized operations not requested" value in Metadata, DescribeCluster and
/// DescribeGroups answers.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// The KIP-430 bitfield of the operations the caller may perform on a resource of this type
/// (bit n set = `AclOperation` code n allowed). With no authorizer configured every
/// supported operation is allowed, as Kafka answers without one.
pub fn authorized_operations(resource: ResourceType) -> i32 {
    resource
        .supported_operations()
        .iter()
        .fold(0, |bits, operation| bits | operation.bit())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_match_kafkas_supported_operations() {
        // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
        let topic = [3, 4, 5, 6, 7, 8, 10, 11]
            .iter()
            .map(|b| 1 << b)
            .sum::<i32>();
        assert_eq!(authorized_operations(ResourceType::Topic), topic);
        // READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
        let group = [3, 6, 8, 10, 11].iter().map(|b| 1 << b).sum::<i32>();
        assert_eq!(authorized_operations(ResourceType::Group), group);
        // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE.
        let cluster = [5, 7, 8, 9, 10, 11, 12].iter().map(|b| 1 << b).sum::<i32>();
        assert_eq!(authorized_operations(ResourceType::Cluster), cluster);
    }
}
