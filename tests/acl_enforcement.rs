//! The authorizer enforced on the wire, for the only principal a plaintext connection has
//! (User:ANONYMOUS): a DENY of READ gets TOPIC_AUTHORIZATION_FAILED on Fetch, a topic without
//! DESCRIBE is absent from Metadata, a prefixed ACL grants a family of topics, DENY beats
//! ALLOW, super users bypass ACLs, cluster-level APIs are refused with
//! CLUSTER_AUTHORIZATION_FAILED, and the KIP-430 bitfields follow the ACLs.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateAclsRequest, CreateAclsResponse, DescribeClusterRequest,
    DescribeClusterResponse, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse,
    ProduceResponse,
};
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice::client::{Client, NewTopic};
use support::{Broker, wire};

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;
const DENY: i8 = 2;
const ANONYMOUS: &str = "User:ANONYMOUS";
const DENIED: i16 = 29; // TOPIC_AUTHORIZATION_FAILED

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(
        &broker.bootstrap(),
        "acl-enforcement-test",
        request,
        version,
    )
}

fn acl(rtype: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rtype)
        .with_resource_name(sb(name))
        .with_resource_pattern_type(pattern)
        .with_principal(sb(principal))
        .with_host(sb("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

fn create_acls(broker: &Broker, acls: Vec<AclCreation>) {
    let created: CreateAclsResponse = call(
        broker,
        &CreateAclsRequest::default().with_creations(acls),
        3,
    );
    for r in &created.results {
        assert_eq!(r.error_code, 0, "CreateAcls: {:?}", r.error_message);
    }
}

fn create_topics(broker: &Broker, names: &[&str]) {
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    for name in names {
        client
            .create_topic(&NewTopic {
                name: name.to_string(),
                partitions: 1,
                replication_factor: 1,
                configs: Vec::new(),
            })
            .expect("create topic");
    }
}

/// Produces one record to partition 0 of `topic`; the partition's error code.
fn produce(broker: &Broker, topic: &str) -> i16 {
    let record = wire::plain_record(0, 1_700_000_000_000, Bytes::from_static(b"v"));
    let batch = wire::encode_batch(&[record]).freeze();
    let produced: ProduceResponse = call(broker, &wire::produce_request(topic, 0, batch, 1), 9);
    produced.responses[0].partition_responses[0].error_code
}

/// Fetches partition 0 of `topic` from offset 0: (error code, record bytes returned).
fn fetch(broker: &Broker, topic: &str) -> (i16, usize) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(wire::topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let fetched: FetchResponse = call(broker, &request, 12);
    let partition = &fetched.responses[0].partitions[0];
    let bytes = partition.records.as_ref().map_or(0, |r| r.len());
    (partition.error_code, bytes)
}

fn metadata(broker: &Broker, topics: Option<&[&str]>) -> MetadataResponse {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(wire::topic_name(n))))
            .collect()
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(true);
    call(broker, &request, 12)
}

fn listed(response: &MetadataResponse) -> Vec<String> {
    response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

#[test]
fn acls_deny_read_hide_undescribable_topics_grant_prefixes_and_deny_wins() {
    // No ACL on the cluster yet: allow_everyone lets the test set everything up.
    let broker = Broker::start_with_config(
        "authorizer = \"standard\"\nallow_everyone_if_no_acl_found = true\n",
        &[],
    );
    create_topics(
        &broker,
        &["readable", "secret", "pay.eu", "pay.us", "hidden", "free"],
    );
    for topic in ["readable", "secret"] {
        assert_eq!(produce(&broker, topic), 0, "produce to {topic} before ACLs");
    }
    create_acls(
        &broker,
        vec![
            acl(TOPIC, "readable", LITERAL, ANONYMOUS, READ, ALLOW),
            // DENY beats the ALLOW of everything for everyone.
            acl(TOPIC, "secret", LITERAL, "User:*", ALL, ALLOW),
            acl(TOPIC, "secret", LITERAL, ANONYMOUS, READ, DENY),
            // One prefixed ACL for the family pay.*.
            acl(TOPIC, "pay.", PREFIXED, ANONYMOUS, WRITE, ALLOW),
            // Someone else's topic: it has ACLs, none for us, so no DESCRIBE.
            acl(TOPIC, "hidden", LITERAL, "User:bob", ALL, ALLOW),
        ],
    );

    assert_eq!(fetch(&broker, "secret").0, DENIED, "DENY READ");
    let (code, bytes) = fetch(&broker, "readable");
    assert_eq!(
        (code, bytes > 0),
        (0, true),
        "ALLOW READ returns the record"
    );
    assert_eq!(
        fetch(&broker, "pay.eu").0,
        DENIED,
        "WRITE does not grant READ"
    );

    assert_eq!(produce(&broker, "pay.eu"), 0, "prefixed WRITE");
    assert_eq!(produce(&broker, "pay.us"), 0, "prefixed WRITE");
    assert_eq!(produce(&broker, "hidden"), DENIED);
    assert_eq!(
        produce(&broker, "readable"),
        DENIED,
        "READ does not grant WRITE"
    );
    assert_eq!(
        produce(&broker, "secret"),
        0,
        "ALL allows WRITE; only READ is denied"
    );

    let all = metadata(&broker, None);
    assert_eq!(
        listed(&all),
        vec!["free", "pay.eu", "pay.us", "readable", "secret"],
        "hidden has no DESCRIBE for us"
    );
    let readable = all
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "readable");
    let ops = readable.unwrap().topic_authorized_operations;
    assert_eq!(
        ops,
        (1 << READ) | (1 << DESCRIBE),
        "READ and the DESCRIBE it implies"
    );
    let asked = metadata(&broker, Some(&["hidden", "pay.eu"]));
    let codes: Vec<i16> = asked.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![DENIED, 0]);
}

#[test]
fn super_users_bypass_acls_and_others_get_cluster_authorization_failed() {
    let supers = Broker::start_with_config(
        "authorizer = \"standard\"\nsuper_users = [\"User:ANONYMOUS\"]\n",
        &[],
    );
    create_topics(&supers, &["t"]);
    create_acls(&supers, vec![acl(TOPIC, "t", LITERAL, "User:*", ALL, DENY)]);
    assert_eq!(produce(&supers, "t"), 0, "a super user ignores DENY");
    assert_eq!(fetch(&supers, "t").0, 0);

    let locked = Broker::start_with_config("authorizer = \"standard\"\n", &[]);
    let cluster: DescribeClusterResponse = call(
        &locked,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        1,
    );
    assert_eq!(
        cluster.error_code,
        ResponseError::ClusterAuthorizationFailed.code()
    );
    let created: CreateAclsResponse = call(
        &locked,
        &CreateAclsRequest::default().with_creations(vec![acl(
            CLUSTER,
            "kafka-cluster",
            LITERAL,
            ANONYMOUS,
            ALL,
            ALLOW,
        )]),
        3,
    );
    assert_eq!(
        created.results[0].error_code,
        ResponseError::ClusterAuthorizationFailed.code(),
        "no one may grant themselves the cluster"
    );
    assert_eq!(
        produce(&locked, "auto-created"),
        DENIED,
        "no CREATE, no WRITE"
    );
    assert!(listed(&metadata(&locked, None)).is_empty());
}

#[test]
fn groups_need_read_and_committed_topics_need_read() {
    let broker = Broker::start_with_config(
        "authorizer = \"standard\"\nallow_everyone_if_no_acl_found = true\n",
        &[],
    );
    create_topics(&broker, &["mine", "theirs"]);
    create_acls(
        &broker,
        vec![
            acl(GROUP, "team-", PREFIXED, ANONYMOUS, READ, ALLOW),
            acl(GROUP, "other", LITERAL, "User:bob", READ, ALLOW),
            acl(TOPIC, "mine", LITERAL, ANONYMOUS, READ, ALLOW),
            acl(TOPIC, "theirs", LITERAL, "User:bob", READ, ALLOW),
        ],
    );
    let join = |group: &str| -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(sb("range")),
            ]);
        call(&broker, &request, 9)
    };
    assert_eq!(
        join("other").error_code,
        ResponseError::GroupAuthorizationFailed.code()
    );
    // Allowed: the first join of a v4+ member asks for a member id.
    assert_eq!(
        join("team-a").error_code,
        ResponseError::MemberIdRequired.code()
    );

    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("team-a")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            ["mine", "theirs"]
                .iter()
                .map(|t| {
                    OffsetCommitRequestTopic::default()
                        .with_name(wire::topic_name(t))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(0),
                        ])
                })
                .collect(),
        );
    let committed: OffsetCommitResponse = call(&broker, &commit, 8);
    let code_of = |topic: &str| {
        committed
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .map(|t| t.partitions[0].error_code)
    };
    assert_eq!(code_of("mine"), Some(0));
    assert_eq!(code_of("theirs"), Some(DENIED));
}

/// AddPartitionsToTxn for `topic`-0 in the client form (v3, one transaction) or the
/// batched broker form (v4, `verify_only`): (top-level error, the partition's error).
fn add_partitions_to_txn(broker: &Broker, topic: &str, version: i16) -> (i16, i16) {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TransactionalId,
    };
    let topics = vec![
        AddPartitionsToTxnTopic::default()
            .with_name(wire::topic_name(topic))
            .with_partitions(vec![0]),
    ];
    let id = TransactionalId(sb("tx-acl"));
    let request = if version < 4 {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(id)
            .with_v3_and_below_producer_id(ProducerId(1))
            .with_v3_and_below_producer_epoch(0)
            .with_v3_and_below_topics(topics)
    } else {
        AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(id)
                .with_producer_id(ProducerId(1))
                .with_producer_epoch(0)
                .with_verify_only(true)
                .with_topics(topics),
        ])
    };
    let r: AddPartitionsToTxnResponse = call(broker, &request, version);
    let partition = if version < 4 {
        r.results_by_topic_v3_and_below
            .first()
            .and_then(|t| t.results_by_partition.first())
    } else {
        r.results_by_transaction
            .first()
            .and_then(|t| t.topic_results.first())
            .and_then(|t| t.results_by_partition.first())
    };
    (
        r.error_code,
        partition.map_or(-1, |p| p.partition_error_code),
    )
}

#[test]
fn batched_add_partitions_to_txn_needs_cluster_action_instead_of_topic_acls() {
    const TRANSACTIONAL_ID: i8 = 5;
    const CLUSTER_ACTION: i8 = 9;
    let broker = Broker::start_with_config(
        "authorizer = \"standard\"\nallow_everyone_if_no_acl_found = true\n",
        &[],
    );
    create_topics(&broker, &["closed"]);
    create_acls(
        &broker,
        vec![
            acl(TOPIC, "closed", LITERAL, ANONYMOUS, WRITE, DENY),
            acl(TRANSACTIONAL_ID, "tx-acl", LITERAL, ANONYMOUS, WRITE, ALLOW),
        ],
    );
    // The client form checks the requester's WRITE on the topic.
    assert_eq!(add_partitions_to_txn(&broker, "closed", 3), (0, DENIED));
    // The broker form does not (the leader checked its producer's WRITE): the partition is
    // answered for its transaction state (no such producer here), not for the topic's ACL.
    let (top, partition) = add_partitions_to_txn(&broker, "closed", 4);
    assert_eq!(top, 0);
    assert_ne!(partition, DENIED, "the broker form checked a topic ACL");
    assert_ne!(partition, 0, "verified a transaction that does not exist");
    // It needs CLUSTER_ACTION instead: denied, the whole request is refused.
    create_acls(
        &broker,
        vec![acl(
            CLUSTER,
            "kafka-cluster",
            LITERAL,
            ANONYMOUS,
            CLUSTER_ACTION,
            DENY,
        )],
    );
    assert_eq!(
        add_partitions_to_txn(&broker, "closed", 4).0,
        ResponseError::ClusterAuthorizationFailed.code()
    );
}
