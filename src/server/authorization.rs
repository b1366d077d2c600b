//! The vocabulary of authorization, as Kafka's ACLs name it (KIP-11, KIP-430): resource types
//! and operations, and what each API needs. The registry (`server::registry`) declares every
//! API's requirements beside its handler, so the authorizer checks one table and a new API
//! cannot forget to say what it needs. Must not: decide who may do what (that is the
//! authorizer's job; until one is configured every operation is allowed, as in Kafka).

pub use crate::security::acl::{AclOperation, ResourceType};

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
