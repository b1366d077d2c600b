//! Cluster mode (issues 17 and 20): ACLs, SCRAM credentials and client quotas are metadata
//! of the whole cluster, carried by the Raft metadata log as Kafka's KRaft carries them
//! (AccessControlEntryRecord, UserScramCredentialRecord, ClientQuotaRecord). A change made
//! through any broker is seen by every broker, a restarted broker has it again, and a
//! change that fails (a credential deleted that does not exist) fails alike everywhere.

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest,
    DeleteAclsResponse, DescribeAclsResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice::security::scram::ScramMechanism;
use std::time::Duration;
use support::cluster::LocalCluster;
use support::wire::call_once;

const TOPIC: i8 = 2;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const READ: i8 = 3;
const ALLOW: i8 = 3;
const ITERATIONS: i32 = 4096;
const CLIENT: &str = "cluster-security-test";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Every stored ACL as (resource name, principal, operation), as `node` describes them.
fn acls(node: &support::Broker) -> Vec<(String, String, i8)> {
    let request = support::wire::describe_all_acls_request();
    let response: DescribeAclsResponse = call_once(&node.bootstrap(), CLIENT, &request, 3);
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut seen: Vec<(String, String, i8)> = response
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                (
                    r.resource_name.to_string(),
                    a.principal.to_string(),
                    a.operation,
                )
            })
        })
        .collect();
    seen.sort();
    seen
}

/// Users with SCRAM credentials as (user, mechanism code, iterations), as `node` describes them.
fn credentials(node: &support::Broker) -> Vec<(String, i8, i32)> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(None);
    let response: DescribeUserScramCredentialsResponse =
        call_once(&node.bootstrap(), CLIENT, &request, 0);
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut seen: Vec<(String, i8, i32)> = response
        .results
        .iter()
        .flat_map(|r| {
            r.credential_infos
                .iter()
                .map(|c| (r.user.to_string(), c.mechanism, c.iterations))
        })
        .collect();
    seen.sort();
    seen
}

/// Every user entity's quotas as (user, key, value), as `node` describes them.
fn user_quotas(node: &support::Broker) -> Vec<(String, String, f64)> {
    let request = DescribeClientQuotasRequest::default().with_components(vec![
        ComponentData::default()
            .with_entity_type(sb("user"))
            .with_match_type(2)
            .with_match(None),
    ]);
    let response: DescribeClientQuotasResponse = call_once(&node.bootstrap(), CLIENT, &request, 1);
    assert_eq!(response.error_code, 0, "{response:?}");
    let mut seen = Vec::new();
    for entry in response.entries.unwrap_or_default() {
        let user = entry
            .entity
            .iter()
            .find(|e| e.entity_type.as_str() == "user")
            .and_then(|e| e.entity_name.as_ref().map(|n| n.to_string()))
            .unwrap_or_default();
        for value in entry.values {
            seen.push((user.clone(), value.key.to_string(), value.value));
        }
    }
    seen.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    seen
}

/// Waits until `read` gives `expected` on every running node (each applies the committed
/// record on its own, a moment apart).
fn on_every_node<T: PartialEq + std::fmt::Debug>(
    cluster: &LocalCluster,
    what: &str,
    read: impl Fn(&support::Broker) -> T,
    expected: &T,
) {
    for id in cluster.running_ids() {
        support::wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            let seen = read(cluster.node(id));
            match &seen == expected {
                true => Ok(()),
                false => Err(format!(
                    "node {id} shows {what} {seen:?}, expected {expected:?}\n{}",
                    cluster.diagnostics()
                )),
            }
        });
    }
}

#[test]
fn acls_credentials_and_quotas_reach_every_broker_and_outlive_a_restart() {
    let mut cluster = LocalCluster::start_with_config(
        3,
        "authorizer = \"standard\"\nsuper_users = [\"User:ANONYMOUS\"]\n",
    );
    cluster.wait_until_formed(3);

    // An ACL created through node 1.
    let acl = AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(sb("orders"))
        .with_resource_pattern_type(PREFIXED)
        .with_principal(sb("User:alice"))
        .with_host(sb("*"))
        .with_operation(READ)
        .with_permission_type(ALLOW);
    let created: CreateAclsResponse = call_once(
        &cluster.node(1).bootstrap(),
        CLIENT,
        &CreateAclsRequest::default().with_creations(vec![acl]),
        3,
    );
    assert_eq!(created.results[0].error_code, 0, "{created:?}");

    // A credential through node 2, with a deletion of one that does not exist: that change
    // alone fails, as on a single node.
    let mechanism = ScramMechanism::Sha256;
    let salt = b"cluster-salt";
    let salted = mechanism.salted_password(b"alice-secret", salt, ITERATIONS as u32);
    let altered: AlterUserScramCredentialsResponse = call_once(
        &cluster.node(2).bootstrap(),
        CLIENT,
        &AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![
                ScramCredentialUpsertion::default()
                    .with_name(sb("alice"))
                    .with_mechanism(mechanism.code())
                    .with_iterations(ITERATIONS)
                    .with_salt(bytes::Bytes::from_static(salt))
                    .with_salted_password(bytes::Bytes::from(salted)),
            ])
            .with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(sb("nobody"))
                    .with_mechanism(mechanism.code()),
            ]),
        0,
    );
    let mut results: Vec<(String, i16)> = altered
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    results.sort();
    assert_eq!(
        results,
        vec![
            ("alice".to_string(), 0),
            ("nobody".to_string(), ResponseError::ResourceNotFound.code())
        ]
    );

    // A quota through node 3.
    let quota: AlterClientQuotasResponse = call_once(
        &cluster.node(3).bootstrap(),
        CLIENT,
        &AlterClientQuotasRequest::default().with_entries(vec![
            EntryData::default()
                .with_entity(vec![
                    EntityData::default()
                        .with_entity_type(sb("user"))
                        .with_entity_name(Some(sb("alice"))),
                ])
                .with_ops(vec![
                    OpData::default()
                        .with_key(sb("producer_byte_rate"))
                        .with_value(1_048_576.0),
                ]),
        ]),
        1,
    );
    assert_eq!(quota.entries[0].error_code, 0, "{quota:?}");

    let expected_acls = vec![("orders".to_string(), "User:alice".to_string(), READ)];
    let expected_credentials = vec![("alice".to_string(), mechanism.code(), ITERATIONS)];
    let expected_quotas = vec![(
        "alice".to_string(),
        "producer_byte_rate".to_string(),
        1_048_576.0,
    )];
    on_every_node(&cluster, "ACLs", acls, &expected_acls);
    on_every_node(&cluster, "credentials", credentials, &expected_credentials);
    on_every_node(&cluster, "quotas", user_quotas, &expected_quotas);

    // A broker killed and restarted replays them from its log.
    cluster.node_mut(2).kill();
    cluster.node_mut(2).spawn();
    cluster.wait_until_formed(3);
    on_every_node(&cluster, "ACLs", acls, &expected_acls);
    on_every_node(&cluster, "credentials", credentials, &expected_credentials);
    on_every_node(&cluster, "quotas", user_quotas, &expected_quotas);

    // DeleteAcls through node 3 answers what it removed, and it is gone everywhere.
    let deleted: DeleteAclsResponse = call_once(
        &cluster.node(3).bootstrap(),
        CLIENT,
        &DeleteAclsRequest::default().with_filters(vec![
            DeleteAclsFilter::default()
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(TOPIC)
                .with_pattern_type_filter(ANY)
                .with_operation(ANY)
                .with_permission_type(ANY),
        ]),
        3,
    );
    let result = &deleted.filter_results[0];
    assert_eq!(result.error_code, 0, "{deleted:?}");
    let removed: Vec<String> = result
        .matching_acls
        .iter()
        .map(|m| m.resource_name.to_string())
        .collect();
    assert_eq!(removed, vec!["orders".to_string()]);
    on_every_node(&cluster, "ACLs", acls, &Vec::new());
}
