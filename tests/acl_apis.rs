//! CreateAcls, DescribeAcls and DeleteAcls over the raw protocol: SECURITY_DISABLED without
//! an authorizer, CLUSTER_AUTHORIZATION_FAILED for a principal without CLUSTER ALTER,
//! Kafka's INVALID_REQUEST validation, filters, and ACLs surviving a restart.

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const MATCH: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALLOW: i8 = 3;
const DENY: i8 = 2;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), "acl-apis-test", request, version)
}

fn creation(rtype: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rtype)
        .with_resource_name(sb(name))
        .with_resource_pattern_type(pattern)
        .with_principal(sb(principal))
        .with_host(sb("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

fn describe_all(broker: &Broker) -> DescribeAclsResponse {
    call(broker, &support::wire::describe_all_acls_request(), 3)
}

fn count(response: &DescribeAclsResponse) -> usize {
    response.resources.iter().map(|r| r.acls.len()).sum()
}

/// A DeleteAcls filter with no name, principal or host constraint (the struct's default
/// has empty strings, which match nothing).
fn any_filter() -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
}

/// Stops the broker cleanly and starts it on the same data directory. (After a SIGKILL the
/// dead process's io_uring listener may still take a connection for a moment and reset it.)
fn restart(broker: &mut Broker) {
    broker.terminate();
    broker.spawn();
}

const SUPER_ANONYMOUS: &str = "authorizer = \"standard\"\nsuper_users = [\"User:ANONYMOUS\"]\n";

#[test]
fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let broker = Broker::start();
    let create = CreateAclsRequest::default().with_creations(vec![creation(
        TOPIC,
        "t",
        LITERAL,
        "User:alice",
        READ,
        ALLOW,
    )]);
    let created: CreateAclsResponse = call(&broker, &create, 3);
    assert_eq!(
        created.results[0].error_code,
        ResponseError::SecurityDisabled.code()
    );
    let described = describe_all(&broker);
    assert_eq!(described.error_code, ResponseError::SecurityDisabled.code());
    let delete = DeleteAclsRequest::default().with_filters(vec![
        any_filter()
            .with_resource_type_filter(ANY)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY),
    ]);
    let deleted: DeleteAclsResponse = call(&broker, &delete, 3);
    assert_eq!(
        deleted.filter_results[0].error_code,
        ResponseError::SecurityDisabled.code()
    );
}

#[test]
fn a_principal_without_cluster_alter_cannot_change_acls() {
    let broker = Broker::start_with_config("authorizer = \"standard\"\n", &[]);
    let create = CreateAclsRequest::default().with_creations(vec![creation(
        TOPIC,
        "t",
        LITERAL,
        "User:ANONYMOUS",
        READ,
        ALLOW,
    )]);
    let created: CreateAclsResponse = call(&broker, &create, 2);
    assert_eq!(
        created.results[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    let described = describe_all(&broker);
    assert_eq!(
        described.error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
}

#[test]
fn acls_are_created_validated_filtered_deleted_and_survive_a_restart() {
    let mut broker = Broker::start_with_config(SUPER_ANONYMOUS, &[]);
    let create = CreateAclsRequest::default().with_creations(vec![
        creation(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW),
        creation(TOPIC, "pay", PREFIXED, "User:alice", WRITE, ALLOW),
        creation(TOPIC, "pay", PREFIXED, "User:bob", WRITE, DENY),
        creation(GROUP, "g1", LITERAL, "User:alice", READ, ALLOW),
        // Invalid: no principal type, empty name, unknown operation.
        creation(TOPIC, "x", LITERAL, "alice", READ, ALLOW),
        creation(TOPIC, "", LITERAL, "User:alice", READ, ALLOW),
        creation(TOPIC, "x", LITERAL, "User:alice", 42, ALLOW),
    ]);
    let created: CreateAclsResponse = call(&broker, &create, 3);
    let codes: Vec<i16> = created.results.iter().map(|r| r.error_code).collect();
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(codes, vec![0, 0, 0, 0, invalid, invalid, invalid]);
    assert_eq!(count(&describe_all(&broker)), 4);

    // MATCH: the ACLs that apply to topic "payments" (the two prefixed ones).
    let matching = DescribeAclsRequest::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(sb("payments")))
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_pattern_type_filter(MATCH)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let matched: DescribeAclsResponse = call(&broker, &matching, 3);
    assert_eq!(matched.error_code, 0);
    assert_eq!(matched.resources.len(), 1);
    assert_eq!(matched.resources[0].resource_name.as_str(), "pay");
    assert_eq!(matched.resources[0].acls.len(), 2);

    restart(&mut broker);
    assert_eq!(count(&describe_all(&broker)), 4, "ACLs lost on restart");

    let delete = DeleteAclsRequest::default().with_filters(vec![
        any_filter()
            .with_resource_type_filter(TOPIC)
            .with_pattern_type_filter(ANY)
            .with_principal_filter(Some(sb("User:alice")))
            .with_operation(ANY)
            .with_permission_type(ANY),
        any_filter()
            .with_resource_type_filter(0)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY),
    ]);
    let deleted: DeleteAclsResponse = call(&broker, &delete, 3);
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 2);
    assert_eq!(deleted.filter_results[1].error_code, invalid);
    assert_eq!(count(&describe_all(&broker)), 2);
    restart(&mut broker);
    assert_eq!(count(&describe_all(&broker)), 2, "deletion lost on restart");
}
