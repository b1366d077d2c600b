//! The authorizer, with the semantics of Kafka's StandardAuthorizer: an `AclSet` indexed by
//! resource type and name (literal names, the literal `*`, and name prefixes), and the
//! decision for one (principal, host, operation, resource): super users may do anything; a
//! matching DENY wins; a matching ALLOW (or one whose operation implies the requested one)
//! allows; a resource with no ACL at all is allowed only with `allow_everyone_if_no_acl_found`.
//!
//! Lookups are cheap and lock-free: the set is immutable (it lives in the metadata snapshot,
//! rebuilt by its one writer), a decision is a few hash lookups keyed by `&str` slices of the
//! resource name and allocates nothing. Must not: know requests or connections.

use super::Principal;
use super::acl::{AclBinding, AclOperation, PatternType, Permission, ResourceType, WILDCARD};
use std::collections::HashMap;
use std::net::IpAddr;

/// Most ACLs the broker stores, so CreateAcls cannot grow the metadata without bound.
pub const MAX_ACLS: usize = 100_000;

/// Who an ACL names: every user (`User:*`) or one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalMatch {
    AnyUser,
    Exactly {
        principal_type: String,
        name: String,
    },
}

/// Where an ACL applies from: every host (`*`), one address, or a host string that is no
/// address (Kafka stores it, and it never matches a connection's address).
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Address(IpAddr),
    Never,
}

/// One ACL as the decision reads it.
#[derive(Debug, Clone)]
struct IndexedAcl {
    principal: PrincipalMatch,
    host: HostMatch,
    operation: AclOperation,
    permission: Permission,
}

/// The ACLs of one resource type, by pattern.
#[derive(Debug, Default, Clone)]
struct TypeIndex {
    literal: HashMap<String, Vec<IndexedAcl>>,
    /// Literal `*`: every resource of the type.
    wildcard: Vec<IndexedAcl>,
    prefixed: HashMap<String, Vec<IndexedAcl>>,
    /// The distinct lengths of the stored prefixes, ascending: a name is looked up once per
    /// length, so a check costs O(distinct prefix lengths), not O(prefix ACLs).
    prefix_lengths: Vec<usize>,
}

/// Every stored ACL, as persisted (sorted, no duplicates) and indexed for decisions.
#[derive(Debug, Default, Clone)]
pub struct AclSet {
    bindings: Vec<AclBinding>,
    by_type: HashMap<ResourceType, TypeIndex>,
}

impl AclSet {
    /// Indexes `bindings` (duplicates are stored once, as Kafka does).
    pub fn new(mut bindings: Vec<AclBinding>) -> AclSet {
        bindings.sort();
        bindings.dedup();
        let mut by_type: HashMap<ResourceType, TypeIndex> = HashMap::new();
        for binding in &bindings {
            let index = by_type.entry(binding.resource_type).or_default();
            let acl = IndexedAcl {
                principal: principal_match(&binding.principal),
                host: host_match(&binding.host),
                operation: binding.operation,
                permission: binding.permission,
            };
            let name = binding.resource_name.clone();
            match binding.pattern_type {
                PatternType::Literal if name == WILDCARD => index.wildcard.push(acl),
                PatternType::Literal => index.literal.entry(name).or_default().push(acl),
                PatternType::Prefixed => {
                    if !index.prefix_lengths.contains(&name.len()) {
                        index.prefix_lengths.push(name.len());
                    }
                    index.prefixed.entry(name).or_default().push(acl);
                }
            }
        }
        for index in by_type.values_mut() {
            index.prefix_lengths.sort_unstable();
        }
        AclSet { bindings, by_type }
    }

    /// Every stored ACL, sorted.
    pub fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Calls `visit` with each ACL whose pattern covers `name` of `resource_type`; stops
    /// early when it returns false.
    fn for_each_covering(
        &self,
        resource_type: ResourceType,
        name: &str,
        mut visit: impl FnMut(&IndexedAcl) -> bool,
    ) {
        let Some(index) = self.by_type.get(&resource_type) else {
            return;
        };
        let literal = index.literal.get(name).into_iter().flatten();
        let prefixed = index
            .prefix_lengths
            .iter()
            .take_while(|len| **len <= name.len())
            .filter_map(|len| name.get(..*len))
            .filter_map(|prefix| index.prefixed.get(prefix))
            .flatten();
        for acl in literal.chain(index.wildcard.iter()).chain(prefixed) {
            if !visit(acl) {
                return;
            }
        }
    }
}

fn principal_match(principal: &str) -> PrincipalMatch {
    match principal.split_once(':') {
        Some((super::principal::USER_TYPE, WILDCARD)) => PrincipalMatch::AnyUser,
        Some((principal_type, name)) => PrincipalMatch::Exactly {
            principal_type: principal_type.to_string(),
            name: name.to_string(),
        },
        // Validated on the way in; an unparsable one matches no one.
        None => PrincipalMatch::Exactly {
            principal_type: String::new(),
            name: principal.to_string(),
        },
    }
}

fn host_match(host: &str) -> HostMatch {
    if host == WILDCARD {
        return HostMatch::Any;
    }
    host.parse().map_or(HostMatch::Never, HostMatch::Address)
}

/// Who asks: the connection's principal and the address it connects from.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a Principal,
    pub host: Option<IpAddr>,
}

/// The broker-wide rules around the ACLs (`super_users`, `allow_everyone_if_no_acl_found`).
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// `Type:name` strings of principals that bypass every ACL.
    pub super_users: &'a [String],
    pub allow_everyone_if_no_acl_found: bool,
}

impl Policy<'_> {
    fn is_super_user(&self, principal: &Principal) -> bool {
        self.super_users.iter().any(|s| {
            s.split_once(':')
                .is_some_and(|(t, n)| t == principal.principal_type() && n == principal.name())
        })
    }

    /// Whether `who` may perform `operation` on `name` of `resource_type`.
    pub fn authorize(
        &self,
        acls: &AclSet,
        who: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let mut found_resource_acls = false;
        let mut allowed = false;
        let mut denied = false;
        acls.for_each_covering(resource_type, name, |acl| {
            found_resource_acls = true;
            match decide(acl, who, operation) {
                Some(Permission::Deny) => {
                    denied = true;
                    false
                }
                Some(Permission::Allow) => {
                    allowed = true;
                    true
                }
                None => true,
            }
        });
        if denied {
            return false;
        }
        allowed || (!found_resource_acls && self.allow_everyone_if_no_acl_found)
    }

    /// Whether `who` may perform `operation` on at least one resource of `resource_type`
    /// (Kafka's `authorizeByResourceType`, KIP-679: an idempotent producer without CLUSTER
    /// IDEMPOTENT_WRITE may still init if it can WRITE some topic). Allowed by an ALLOW on a
    /// literal or prefixed name that no DENY of the same pattern, or of the literal `*`,
    /// cancels; or, with no ACL of the type at all, by `allow_everyone_if_no_acl_found`.
    pub fn authorize_any(
        &self,
        acls: &AclSet,
        who: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let Some(index) = acls.by_type.get(&resource_type) else {
            return self.allow_everyone_if_no_acl_found;
        };
        let says = |list: &[IndexedAcl], permission: Permission| {
            list.iter().any(|acl| {
                acl.permission == permission && decide(acl, who, operation) == Some(permission)
            })
        };
        if says(&index.wildcard, Permission::Deny) {
            return false;
        }
        if says(&index.wildcard, Permission::Allow) {
            return true;
        }
        let allowed_unless_denied = |map: &HashMap<String, Vec<IndexedAcl>>| {
            map.values()
                .any(|list| says(list, Permission::Allow) && !says(list, Permission::Deny))
        };
        allowed_unless_denied(&index.literal) || allowed_unless_denied(&index.prefixed)
    }

    /// The KIP-430 bitfield of the supported operations `who` may perform on `name`.
    pub fn authorized_operations(
        &self,
        acls: &AclSet,
        who: Requester<'_>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        resource_type
            .supported_operations()
            .iter()
            .filter(|op| self.authorize(acls, who, **op, resource_type, name))
            .fold(0, |bits, op| bits | op.bit())
    }
}

/// What one ACL (whose resource pattern covers the resource) says about the request: its
/// permission when principal, host and operation match, `None` when it does not apply. Only
/// ALLOW ACLs imply: READ/WRITE/DELETE/ALTER allow DESCRIBE, ALTER_CONFIGS allows
/// DESCRIBE_CONFIGS; a DENY of READ does not deny DESCRIBE.
fn decide(acl: &IndexedAcl, who: Requester<'_>, operation: AclOperation) -> Option<Permission> {
    let principal_matches = match &acl.principal {
        // Kafka matches `User:*` against every principal, whatever its type.
        PrincipalMatch::AnyUser => true,
        PrincipalMatch::Exactly {
            principal_type,
            name,
        } => who.principal.principal_type() == principal_type && who.principal.name() == name,
    };
    let host_matches = match acl.host {
        HostMatch::Any => true,
        HostMatch::Address(ip) => who.host == Some(ip),
        HostMatch::Never => false,
    };
    if !principal_matches || !host_matches {
        return None;
    }
    use AclOperation::*;
    let operation_matches = acl.operation == All
        || acl.operation == operation
        || (acl.permission == Permission::Allow
            && match operation {
                Describe => matches!(acl.operation, Read | Write | Delete | Alter),
                DescribeConfigs => acl.operation == AlterConfigs,
                _ => false,
            });
    operation_matches.then_some(acl.permission)
}

#[cfg(test)]
mod tests;
