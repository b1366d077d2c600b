use super::*;
use crate::security::acl::{AclOperation::*, PatternType::*, Permission::*, ResourceType::*};

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    host: &str,
    operation: AclOperation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: host.to_string(),
        operation,
        permission,
    }
}

const NO_SUPER_USERS: Policy<'static> = Policy {
    super_users: &[],
    allow_everyone_if_no_acl_found: false,
};

fn alice() -> Principal {
    Principal::user("alice")
}

fn from(principal: &Principal, ip: [u8; 4]) -> Requester<'_> {
    Requester {
        principal,
        host: Some(IpAddr::from(ip)),
    }
}

#[test]
fn literal_allow_grants_only_that_topic_and_implies_describe() {
    let acls = AclSet::new(vec![acl(
        Topic,
        "orders",
        Literal,
        "User:alice",
        "*",
        Read,
        Allow,
    )]);
    let me = alice();
    let who = from(&me, [10, 0, 0, 1]);
    assert!(NO_SUPER_USERS.authorize(&acls, who, Read, Topic, "orders"));
    assert!(NO_SUPER_USERS.authorize(&acls, who, Describe, Topic, "orders"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Write, Topic, "orders"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Read, Topic, "orders2"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Read, Group, "orders"));
    let bob = Principal::user("bob");
    assert!(!NO_SUPER_USERS.authorize(&acls, from(&bob, [10, 0, 0, 1]), Read, Topic, "orders"));
}

#[test]
fn prefixed_and_wildcard_patterns_cover_families_of_resources() {
    let acls = AclSet::new(vec![
        acl(Topic, "pay", Prefixed, "User:alice", "*", Write, Allow),
        acl(Topic, "payments.", Prefixed, "User:alice", "*", Read, Allow),
        acl(Group, "*", Literal, "User:*", "*", Read, Allow),
    ]);
    let me = alice();
    let who = from(&me, [10, 0, 0, 1]);
    assert!(NO_SUPER_USERS.authorize(&acls, who, Write, Topic, "payments.eu"));
    assert!(NO_SUPER_USERS.authorize(&acls, who, Read, Topic, "payments.eu"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Read, Topic, "payroll"));
    assert!(NO_SUPER_USERS.authorize(&acls, who, Write, Topic, "pay"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Write, Topic, "pa"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Write, Topic, "orders"));
    let anyone = Principal::parse("Group:ops").unwrap();
    assert!(NO_SUPER_USERS.authorize(&acls, from(&anyone, [1, 2, 3, 4]), Read, Group, "g1"));
}

#[test]
fn deny_wins_and_is_not_implied() {
    let acls = AclSet::new(vec![
        acl(Topic, "*", Literal, "User:*", "*", All, Allow),
        acl(Topic, "secret", Literal, "User:alice", "*", Read, Deny),
        acl(
            Topic,
            "sec",
            Prefixed,
            "User:alice",
            "10.0.0.9",
            Write,
            Deny,
        ),
    ]);
    let me = alice();
    let who = from(&me, [10, 0, 0, 1]);
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Read, Topic, "secret"));
    // A DENY of READ does not deny DESCRIBE.
    assert!(NO_SUPER_USERS.authorize(&acls, who, Describe, Topic, "secret"));
    // The host-specific DENY applies only from that host.
    assert!(NO_SUPER_USERS.authorize(&acls, who, Write, Topic, "secret"));
    assert!(!NO_SUPER_USERS.authorize(&acls, from(&me, [10, 0, 0, 9]), Write, Topic, "secret"));
}

#[test]
fn alter_configs_implies_describe_configs_but_not_the_reverse() {
    let acls = AclSet::new(vec![
        acl(Topic, "t", Literal, "User:alice", "*", AlterConfigs, Allow),
        acl(
            Topic,
            "u",
            Literal,
            "User:alice",
            "*",
            DescribeConfigs,
            Allow,
        ),
    ]);
    let me = alice();
    let who = from(&me, [10, 0, 0, 1]);
    assert!(NO_SUPER_USERS.authorize(&acls, who, DescribeConfigs, Topic, "t"));
    assert!(!NO_SUPER_USERS.authorize(&acls, who, AlterConfigs, Topic, "u"));
    // ALTER_CONFIGS does not imply DESCRIBE.
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Describe, Topic, "t"));
}

#[test]
fn no_matching_acl_denies_unless_allow_everyone_and_super_users_bypass() {
    let acls = AclSet::new(vec![acl(
        Topic, "owned", Literal, "User:bob", "*", Read, Allow,
    )]);
    let me = alice();
    let who = from(&me, [10, 0, 0, 1]);
    let open = Policy {
        super_users: &[],
        allow_everyone_if_no_acl_found: true,
    };
    assert!(!NO_SUPER_USERS.authorize(&acls, who, Read, Topic, "free"));
    assert!(open.authorize(&acls, who, Read, Topic, "free"));
    // The resource has ACLs (for someone else): allow-everyone does not apply.
    assert!(!open.authorize(&acls, who, Read, Topic, "owned"));
    let supers = ["User:alice".to_string()];
    let super_policy = Policy {
        super_users: &supers,
        allow_everyone_if_no_acl_found: false,
    };
    assert!(super_policy.authorize(&acls, who, Delete, Topic, "owned"));
    assert!(super_policy.authorize(&acls, who, Alter, Cluster, "kafka-cluster"));
}

#[test]
fn bitfield_lists_the_allowed_operations() {
    let acls = AclSet::new(vec![acl(
        Topic,
        "t",
        Literal,
        "User:alice",
        "*",
        Write,
        Allow,
    )]);
    let me = alice();
    let bits = NO_SUPER_USERS.authorized_operations(&acls, from(&me, [1, 1, 1, 1]), Topic, "t");
    assert_eq!(bits, Write.bit() | Describe.bit());
}

#[test]
fn duplicates_are_stored_once() {
    let one = acl(Topic, "t", Literal, "User:alice", "*", Write, Allow);
    let acls = AclSet::new(vec![one.clone(), one]);
    assert_eq!(acls.len(), 1);
}

#[test]
fn authorize_any_finds_one_writable_topic_unless_denied_everywhere() {
    let me = alice();
    let who = from(&me, [1, 1, 1, 1]);
    let some = AclSet::new(vec![acl(
        Topic,
        "t",
        Prefixed,
        "User:alice",
        "*",
        Write,
        Allow,
    )]);
    assert!(NO_SUPER_USERS.authorize_any(&some, who, Write, Topic));
    assert!(!NO_SUPER_USERS.authorize_any(&some, who, Read, Topic));
    let cancelled = AclSet::new(vec![
        acl(Topic, "t", Literal, "User:alice", "*", Write, Allow),
        acl(Topic, "t", Literal, "User:alice", "*", Write, Deny),
    ]);
    assert!(!NO_SUPER_USERS.authorize_any(&cancelled, who, Write, Topic));
    let denied_everywhere = AclSet::new(vec![
        acl(Topic, "t", Literal, "User:alice", "*", Write, Allow),
        acl(Topic, "*", Literal, "User:*", "*", Write, Deny),
    ]);
    assert!(!NO_SUPER_USERS.authorize_any(&denied_everywhere, who, Write, Topic));
    let open = Policy {
        super_users: &[],
        allow_everyone_if_no_acl_found: true,
    };
    assert!(open.authorize_any(&AclSet::default(), who, Write, Topic));
    assert!(!NO_SUPER_USERS.authorize_any(&AclSet::default(), who, Write, Topic));
}
