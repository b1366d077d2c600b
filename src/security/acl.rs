//! Kafka's ACL vocabulary (KIP-11, KIP-290): resource types, operations, pattern types,
//! permissions and the ACL binding itself, with the wire codes CreateAcls/DescribeAcls/
//! DeleteAcls carry and the validation Kafka applies before storing one. Also the filters
//! DescribeAcls and DeleteAcls match bindings with. Must not: decide who may do what (the
//! authorizer does, from these bindings).

use super::principal::{PRINCIPAL_BYTES_MAX, Principal};
use serde::{Deserialize, Serialize};

/// The resource name and host that match every resource and every host.
pub const WILDCARD: &str = "*";
/// Longest resource name an ACL may carry (the longest Kafka name, a transactional id, is
/// bounded only by the request size; this keeps the metadata file bounded).
pub const ACL_RESOURCE_NAME_BYTES_MAX: usize = 1024;
/// Longest host string an ACL may carry (an IPv6 address with a zone fits easily).
pub const ACL_HOST_BYTES_MAX: usize = 255;

/// Kafka's `ResourceType` codes (the numbers on the wire in CreateAcls/DescribeAcls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
/// bitfields of Metadata, DescribeCluster and DescribeGroups. `All` (2) grants every
/// operation; the filter-only `ANY` (1) is `None` in an `AclFilter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(i8)]
pub enum AclOperation {
    All = 2,
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

/// Kafka's `PatternType`: a literal name (`*` = every resource) or a name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(i8)]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

/// Kafka's `AclPermissionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(i8)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

impl ResourceType {
    pub fn from_code(code: i8) -> Option<ResourceType> {
        use ResourceType::*;
        [
            Topic,
            Group,
            Cluster,
            TransactionalId,
            DelegationToken,
            User,
        ]
        .into_iter()
        .find(|t| *t as i8 == code)
    }

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

impl AclOperation {
    pub fn from_code(code: i8) -> Option<AclOperation> {
        use AclOperation::*;
        [
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            CreateTokens,
            DescribeTokens,
        ]
        .into_iter()
        .find(|o| *o as i8 == code)
    }

    /// This operation's bit in a KIP-430 authorized-operations bitfield.
    pub const fn bit(self) -> i32 {
        1 << (self as i32)
    }
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<PatternType> {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .find(|p| *p as i8 == code)
    }
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Permission> {
        [Permission::Deny, Permission::Allow]
            .into_iter()
            .find(|p| *p as i8 == code)
    }
}

/// One ACL: on the resources `pattern_type`/`resource_name` of `resource_type` names,
/// `principal` connecting from `host` is allowed or denied `operation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, `User:*` for every user.
    pub principal: String,
    /// An IP address as the client connects from, or `*` (Kafka stores any string; one that
    /// is not an address never matches a connection).
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

/// Why CreateAcls refuses a binding; Kafka answers each with INVALID_REQUEST, except an
/// unknown code which it cannot even decode into a binding (also INVALID_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("unknown {field} code {code}")]
    UnknownCode { field: &'static str, code: i8 },
    #[error("{0}")]
    Invalid(String),
}

/// The raw fields of one ACL as the wire carries them.
#[derive(Debug, Clone, Copy)]
pub struct RawAcl<'a> {
    pub resource_type: i8,
    pub resource_name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Validates a binding as Kafka's AclControlManager does before storing it.
    pub fn from_raw(raw: RawAcl<'_>) -> Result<AclBinding, AclError> {
        let unknown = |field, code| AclError::UnknownCode { field, code };
        let resource_type = ResourceType::from_code(raw.resource_type)
            .ok_or(unknown("resource type", raw.resource_type))?;
        let pattern_type = PatternType::from_code(raw.pattern_type)
            .ok_or(unknown("pattern type", raw.pattern_type))?;
        let operation =
            AclOperation::from_code(raw.operation).ok_or(unknown("operation", raw.operation))?;
        let permission = Permission::from_code(raw.permission)
            .ok_or(unknown("permission type", raw.permission))?;
        let invalid = |why: String| Err(AclError::Invalid(why));
        if raw.resource_name.is_empty() {
            return invalid("Resource name should not be empty".into());
        }
        if raw.resource_name.len() > ACL_RESOURCE_NAME_BYTES_MAX {
            return invalid(format!(
                "Resource name is longer than {ACL_RESOURCE_NAME_BYTES_MAX} bytes"
            ));
        }
        if resource_type == ResourceType::Cluster && raw.resource_name != "kafka-cluster" {
            return invalid("The only valid name for the CLUSTER resource is kafka-cluster".into());
        }
        if let Err(e) = Principal::parse(raw.principal) {
            return invalid(format!("Could not parse principal: {e}"));
        }
        if raw.principal.len() > PRINCIPAL_BYTES_MAX || raw.host.len() > ACL_HOST_BYTES_MAX {
            return invalid("Principal or host is too long".into());
        }
        Ok(AclBinding {
            resource_type,
            resource_name: raw.resource_name.to_string(),
            pattern_type,
            principal: raw.principal.to_string(),
            host: raw.host.to_string(),
            operation,
            permission,
        })
    }
}

/// Kafka's pattern-type filter: a given type, ANY (every stored binding) or MATCH (the
/// bindings that would apply to a resource of exactly this name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    Any,
    Match,
    Exactly(PatternType),
}

/// DescribeAcls/DeleteAcls filter; `None` fields match anything (Kafka's ANY / null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<Permission>,
}

/// Kafka's filter codes for "any".
const ANY_CODE: i8 = 1;
const MATCH_PATTERN_CODE: i8 = 2;

impl AclFilter {
    /// Reads a wire filter; unknown codes (and UNKNOWN, 0) are INVALID_REQUEST as in Kafka.
    pub fn from_raw(
        raw: RawAcl<'_>,
        resource_name: Option<&str>,
        principal: Option<&str>,
        host: Option<&str>,
    ) -> Result<AclFilter, AclError> {
        let unknown = |field, code| AclError::UnknownCode { field, code };
        let resource_type = match raw.resource_type {
            ANY_CODE => None,
            code => Some(ResourceType::from_code(code).ok_or(unknown("resource type", code))?),
        };
        let pattern = match raw.pattern_type {
            ANY_CODE => PatternFilter::Any,
            MATCH_PATTERN_CODE => PatternFilter::Match,
            code => PatternFilter::Exactly(
                PatternType::from_code(code).ok_or(unknown("pattern type", code))?,
            ),
        };
        let operation = match raw.operation {
            ANY_CODE => None,
            code => Some(AclOperation::from_code(code).ok_or(unknown("operation", code))?),
        };
        let permission = match raw.permission {
            ANY_CODE => None,
            code => Some(Permission::from_code(code).ok_or(unknown("permission type", code))?),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// Whether `acl` is one this filter selects (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
            && same(&self.principal, &acl.principal)
            && same(&self.host, &acl.host)
            && self.matches_resource(acl)
    }

    fn matches_resource(&self, acl: &AclBinding) -> bool {
        match (self.pattern, self.resource_name.as_deref()) {
            (PatternFilter::Exactly(p), name) => {
                p == acl.pattern_type && name.is_none_or(|n| n == acl.resource_name)
            }
            (PatternFilter::Any, name) => name.is_none_or(|n| n == acl.resource_name),
            (PatternFilter::Match, None) => true,
            (PatternFilter::Match, Some(name)) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(name: &'a str, principal: &'a str, host: &'a str, operation: i8) -> RawAcl<'a> {
        RawAcl {
            resource_type: ResourceType::Topic as i8,
            resource_name: name,
            pattern_type: PatternType::Literal as i8,
            principal,
            host,
            operation,
            permission: Permission::Allow as i8,
        }
    }

    #[test]
    fn validates_bindings_as_kafka_does() {
        let ok = AclBinding::from_raw(raw("t", "User:alice", "*", 3)).unwrap();
        assert_eq!(ok.operation, AclOperation::Read);
        for bad in [
            raw("", "User:alice", "*", 3),
            raw("t", "alice", "*", 3),
            raw("t", "User:alice", "*", 1),
        ] {
            assert!(AclBinding::from_raw(bad).is_err(), "{bad:?}");
        }
        let mut cluster = raw("other", "User:a", "*", 7);
        cluster.resource_type = ResourceType::Cluster as i8;
        assert!(AclBinding::from_raw(cluster).is_err());
        cluster.resource_name = "kafka-cluster";
        assert!(AclBinding::from_raw(cluster).is_ok());
    }

    #[test]
    fn match_filter_selects_the_bindings_that_apply_to_a_name() {
        let mut prefixed = AclBinding::from_raw(raw("pay", "User:a", "*", 3)).unwrap();
        prefixed.pattern_type = PatternType::Prefixed;
        let wildcard = AclBinding::from_raw(raw("*", "User:a", "*", 3)).unwrap();
        let other = AclBinding::from_raw(raw("orders", "User:a", "*", 3)).unwrap();
        let filter = AclFilter::from_raw(raw("", "", "", 1), Some("payments"), None, None);
        let mut filter = filter.unwrap();
        filter.pattern = PatternFilter::Match;
        assert!(filter.matches(&prefixed));
        assert!(filter.matches(&wildcard));
        assert!(!filter.matches(&other));
        filter.pattern = PatternFilter::Any;
        assert!(!filter.matches(&prefixed));
    }
}
