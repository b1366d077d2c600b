//! A secured cluster (issues 17 and 20, decision 0021): every broker registers each of its
//! listeners, so Metadata, DescribeCluster and FindCoordinator answer a client with the
//! brokers' addresses on the listener it came in on; and followers replicate over the
//! inter-broker listener with its security, here SASL_SSL with SCRAM-SHA-512. A follower
//! with a wrong inter-broker password stays out of the ISR, says why in its log and backs
//! off instead of retrying in a tight loop; one whose user may not CLUSTER_ACTION (no super
//! user, the standard authorizer on) stays out of every ISR; on an SSL inter-broker listener
//! that requires client certificates, followers present theirs (`inter_broker_ssl_*`).
//!
//! The secured clusters also declare a PLAINTEXT listener named SETUP: only for this test's
//! own set-up (SCRAM users, topics, the raw-protocol waits). Clients and replication use
//! SASL_SSL; Sluice has no way yet to seed SCRAM credentials without a listener to send
//! AlterUserScramCredentials on (Kafka's `kafka-storage format --add-scram`).
//! Python comes from `SLUICE_TEST_PYTHON`; `SLUICE_SKIP_REAL_CLIENTS=1` skips the
//! confluent-kafka part loudly.

mod support;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::cluster::{
    LocalCluster, create_topic, create_topic_with_configs, log_bytes, metadata,
};
use support::scripts::run_script;
use support::tls::Certs;
use support::wire::{RawConn, encode_batch, plain_record, produce_request, topic_name};
use support::{clients_dir, real_clients_skipped};

/// How long followers may take to copy what was produced, or the ISR to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The secured clusters' `replica_lag_time_max_ms`: a follower that cannot fetch is out of
/// the ISR this long after it fell behind.
const LAG_MS: u64 = 3000;
const BROKER_PASSWORD: &str = "broker-secret";
const CLIENT_USER: &str = "alice";
const CLIENT_PASSWORD: &str = "alice-secret";
const SECURED: usize = 1;

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Creates `topic` with 3 partitions, replication factor 3 and `min.insync.replicas=2`.
fn create_rf3_topic(cluster: &LocalCluster, topic: &str) {
    let code = create_topic_with_configs(
        cluster.node(1),
        topic,
        3,
        3,
        &[("min.insync.replicas", "2")],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "create {topic}\n{}", cluster.diagnostics());
}

/// Node 3 declares PLAINTEXT only; nodes 1 and 2 also EXTERNAL.
fn listeners_of(id: i32) -> Vec<&'static str> {
    if id == 3 {
        vec!["PLAINTEXT"]
    } else {
        vec!["PLAINTEXT", "EXTERNAL"]
    }
}

/// FindCoordinator (v3) for `group` on `conn`: (error, node id, port).
fn coordinator(conn: &mut RawConn, group: &str) -> (i16, i32, i32) {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.into()))
        .with_key_type(0);
    let found: FindCoordinatorResponse = conn
        .try_call(&request, 3)
        .unwrap_or_else(|e| panic!("FindCoordinator {group}: {e}"));
    (found.error_code, found.node_id.0, found.port)
}

#[test]
fn each_listener_is_answered_with_the_brokers_addresses_on_that_listener() {
    let (cluster, ports) = LocalCluster::start_with_listeners(3, &listeners_of, &|_| {
        "listener_security_protocol_map = \"EXTERNAL:PLAINTEXT\"".into()
    });
    cluster.wait_until_formed(3);
    // One partition per broker (RF=1 placement goes round the brokers).
    let code = create_topic(cluster.node(1), "spread", 3, 1, Duration::from_secs(30));
    assert_eq!(code, 0, "create spread\n{}", cluster.diagnostics());
    let groups: Vec<String> = (0..20).map(|g| format!("group-{g}")).collect();
    let mut plain = RawConn::connect(&cluster.node(1).bootstrap()).expect("connect");
    let coordinators: Vec<i32> = groups
        .iter()
        .map(|g| coordinator(&mut plain, g).1)
        .collect();
    assert!(
        coordinators.contains(&3),
        "no group is coordinated by node 3: {coordinators:?}"
    );
    for (listener, index) in [("PLAINTEXT", 0), ("EXTERNAL", 1)] {
        // Who has this listener, at which port: node 3 has no EXTERNAL and is left out.
        let expected: BTreeSet<(i32, i32)> = ports
            .iter()
            .enumerate()
            .filter_map(|(n, p)| Some((n as i32 + 1, i32::from(*p.get(index)?))))
            .collect();
        for &(id, port) in &expected {
            let at = addr(port as u16);
            let mut conn = RawConn::connect(&at).unwrap_or_else(|e| panic!("{at}: {e}"));
            let request = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("spread"))),
            ]));
            let metadata: MetadataResponse = conn
                .try_call(&request, 12)
                .unwrap_or_else(|e| panic!("Metadata via {at}: {e}"));
            let listed: BTreeSet<(i32, i32)> = metadata
                .brokers
                .iter()
                .map(|b| (b.node_id.0, b.port))
                .collect();
            assert_eq!(listed, expected, "Metadata on {listener} of node {id}");
            // A partition whose leader lacks this listener: leader -1, LISTENER_NOT_FOUND.
            let mut led_by_3 = 0;
            for p in &metadata.topics[0].partitions {
                let leader = cluster_leader(&cluster, p.partition_index);
                match (leader, listener) {
                    (3, "EXTERNAL") => {
                        led_by_3 += 1;
                        assert_eq!((p.error_code, p.leader_id.0), (72, -1), "{p:?}");
                    }
                    _ => assert_eq!((p.error_code, p.leader_id.0), (0, leader), "{p:?}"),
                }
            }
            assert_eq!(led_by_3, i32::from(listener == "EXTERNAL"));
            let described: DescribeClusterResponse = conn
                .try_call(&DescribeClusterRequest::default(), 0)
                .unwrap_or_else(|e| panic!("DescribeCluster via {at}: {e}"));
            let described: BTreeSet<(i32, i32)> = described
                .brokers
                .iter()
                .map(|b| (b.broker_id.0, b.port))
                .collect();
            assert_eq!(described, expected, "DescribeCluster on {listener}");
            for (group, &owner) in groups.iter().zip(&coordinators) {
                let (error, node, port) = coordinator(&mut conn, group);
                if owner == 3 && listener == "EXTERNAL" {
                    assert_eq!(error, 15, "{group}: COORDINATOR_NOT_AVAILABLE on EXTERNAL");
                } else {
                    assert_eq!(error, 0, "FindCoordinator {group} on {listener}");
                    assert!(
                        expected.contains(&(node, port)) && node == owner,
                        "FindCoordinator {group} on {listener}: {node} at {port}, \
                         expected {owner} in {expected:?}"
                    );
                }
            }
        }
    }
}

/// The leader of `spread`-`partition` as node 1 answers on PLAINTEXT.
fn cluster_leader(cluster: &LocalCluster, partition: i32) -> i32 {
    support::cluster::leaders(cluster.node(1), "spread")[partition as usize]
}

/// Super users when every broker is one: the SETUP listener's anonymous set-up, the client,
/// the brokers' own user (Kafka's usual grant of CLUSTER_ACTION to brokers).
const BROKERS_ARE_SUPER_USERS: &str = "\"User:ANONYMOUS\", \"User:alice\", \"User:broker\"";

/// A node's config: the certificates, SASL_SSL as the inter-broker listener with SCRAM as
/// user `broker` and `password`, the standard authorizer with `super_users` (and no ACLs:
/// a cluster does not replicate them yet).
fn secured_toml(certs: &Certs, password: &str, super_users: &str) -> String {
    format!(
        "{}listener_security_protocol_map = \"SETUP:PLAINTEXT\"\n\
         authorizer = \"standard\"\n\
         super_users = [{super_users}]\n\
         inter_broker_listener_name = \"SASL_SSL\"\n\
         inter_broker_sasl_mechanism = \"SCRAM-SHA-512\"\n\
         inter_broker_sasl_username = \"broker\"\n\
         inter_broker_sasl_password = \"{password}\"\n\
         replica_lag_time_max_ms = {LAG_MS}\n\
         log_level = \"info,sluice::cluster=debug\"\n",
        certs.broker_toml("none")
    )
}

/// A formed 3-node cluster with SETUP and SASL_SSL listeners, the users `broker` and
/// `alice` created (through the quorum), and `topic` (3 partitions, RF=3,
/// min.insync.replicas=2).
fn secured_cluster(
    certs: &Certs,
    password_of: &dyn Fn(i32) -> String,
    super_users: &str,
    topic: &str,
) -> (LocalCluster, Vec<Vec<u16>>) {
    let toml = |id: i32| secured_toml(certs, &password_of(id), super_users);
    let names = |_| vec!["SETUP", "SASL_SSL"];
    let (cluster, ports) = LocalCluster::start_with_listeners(3, &names, &toml);
    cluster.wait_until_formed(3);
    for (user, password) in [("broker", BROKER_PASSWORD), (CLIENT_USER, CLIENT_PASSWORD)] {
        let (ok, _, err) = support::sluice_cli(
            &cluster.node(1).bootstrap(),
            &["user", "create", user, "--mechanism", "SCRAM-SHA-512"],
            Some(&format!("{password}\n")),
        );
        assert!(
            ok,
            "sluice user create {user}: {err}\n{}",
            cluster.diagnostics()
        );
    }
    create_rf3_topic(&cluster, topic);
    (cluster, ports)
}

/// Produces `count` messages over SASL_SSL with confluent-kafka (acks=all) and checks what
/// its Metadata says (`cluster_sasl_ssl.py`).
fn produce_over_sasl_ssl(certs: &Certs, ports: &[Vec<u16>], topic: &str, count: usize) {
    let python = support::client_python("confluent_kafka");
    let secured: Vec<String> = ports.iter().map(|p| p[SECURED].to_string()).collect();
    let args = vec![
        clients_dir()
            .join("cluster_sasl_ssl.py")
            .display()
            .to_string(),
        "--bootstrap".into(),
        addr(ports[0][SECURED]),
        "--user".into(),
        CLIENT_USER.into(),
        "--password".into(),
        CLIENT_PASSWORD.into(),
        "--ssl-ca".into(),
        certs.path("ca.pem").display().to_string(),
        "--topic".into(),
        topic.into(),
        "--count".into(),
        count.to_string(),
        "--ports".into(),
        secured.join(","),
    ];
    run_script("cluster_sasl_ssl.py", &python, &args);
}

/// Each partition's (leader, sorted ISR) as node 1 answers on the SETUP listener.
fn leaders_and_isrs(cluster: &LocalCluster, topic: &str) -> Vec<(i32, Vec<i32>)> {
    let Ok(response) = metadata(cluster.node(1), Some(&[topic])) else {
        return Vec::new();
    };
    let Some(t) = response.topics.first() else {
        return Vec::new();
    };
    let mut partitions: Vec<_> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    partitions
        .into_iter()
        .map(|p| {
            let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            isr.sort();
            (p.leader_id.0, isr)
        })
        .collect()
}

/// Waits until every partition's copies on the nodes in `copies` equal its leader's log.
fn wait_for_identical_copies(cluster: &LocalCluster, topic: &str, copies: &[i32]) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    for (partition, (leader, _)) in leaders_and_isrs(cluster, topic).into_iter().enumerate() {
        let partition = partition as i32;
        let expected = log_bytes(&cluster.node(leader).data_dir, topic, partition);
        assert!(
            !expected.is_empty(),
            "leader {leader} holds {topic}-{partition}"
        );
        for &id in copies.iter().filter(|&&id| id != leader) {
            while log_bytes(&cluster.node(id).data_dir, topic, partition) != expected {
                assert!(
                    Instant::now() < deadline,
                    "node {id}'s copy of {topic}-{partition} is not leader {leader}'s\n{}",
                    cluster.diagnostics()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn a_cluster_reached_over_sasl_ssl_replicates_over_it() {
    if real_clients_skipped("a_cluster_reached_over_sasl_ssl_replicates_over_it") {
        return;
    }
    let certs = Certs::make();
    let topic = "secured";
    let password = |_| BROKER_PASSWORD.to_string();
    let (cluster, ports) = secured_cluster(&certs, &password, BROKERS_ARE_SUPER_USERS, topic);
    produce_over_sasl_ssl(&certs, &ports, topic, 300);
    // Past the lag time the ISR is still whole: the followers keep fetching over SASL_SSL.
    std::thread::sleep(Duration::from_millis(LAG_MS + 1000));
    let settled = leaders_and_isrs(&cluster, topic);
    assert_eq!(settled.len(), 3, "{settled:?}");
    for (leader, isr) in &settled {
        assert_eq!(
            isr,
            &vec![1, 2, 3],
            "leader {leader}\n{}",
            cluster.diagnostics()
        );
    }
    wait_for_identical_copies(&cluster, topic, &[1, 2, 3]);
}

/// Produces `count` one-record batches with `acks` to every partition's leader, over the
/// SETUP listener; each must be acknowledged (acks=all: once the ISR has shrunk).
fn produce_to_leaders(cluster: &LocalCluster, topic: &str, count: usize, acks: i16) {
    for (partition, (leader, _)) in leaders_and_isrs(cluster, topic).into_iter().enumerate() {
        let partition = partition as i32;
        let mut conn = RawConn::connect(&cluster.node(leader).bootstrap()).expect("connect");
        for i in 0..count {
            let value = bytes::Bytes::from(format!("{topic}-{partition}-{i}"));
            let batch = encode_batch(&[plain_record(0, 1_700_000_000_000 + i as i64, value)]);
            let request =
                produce_request(topic, partition, batch.freeze(), acks).with_timeout_ms(60_000);
            let response = conn.call(&request, 9);
            let code = response.responses[0].partition_responses[0].error_code;
            assert_eq!(
                code,
                0,
                "produce {i} to {topic}-{partition} on {leader}\n{}",
                cluster.diagnostics()
            );
        }
    }
}

/// Lines of a node's log that name a failed replica fetch.
fn fetch_failures(cluster: &LocalCluster, id: i32) -> Vec<String> {
    let path = cluster.node(id).log_path.clone().unwrap_or_default();
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("replica fetch"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_follower_with_a_wrong_inter_broker_password_stays_out_of_the_isr_and_backs_off() {
    let certs = Certs::make();
    let topic = "refused";
    let password_of = |id: i32| {
        if id == 3 {
            "wrong-password"
        } else {
            BROKER_PASSWORD
        }
        .to_string()
    };
    let started = Instant::now();
    let (cluster, _ports) = secured_cluster(&certs, &password_of, BROKERS_ARE_SUPER_USERS, topic);
    produce_to_leaders(&cluster, topic, 5, -1);
    // Node 3 cannot fetch from 1 and 2: their partitions' ISRs drop it after the lag time;
    // the partitions node 3 leads keep a full ISR (1 and 2 log in to it as they should).
    support::wait_until(SETTLE_TIMEOUT, Duration::from_millis(200), || {
        let now = leaders_and_isrs(&cluster, topic);
        let settled = now.len() == 3
            && now.iter().all(|(leader, isr)| match leader {
                3 => isr == &vec![1, 2, 3],
                1 | 2 => isr == &vec![1, 2],
                _ => false,
            });
        match settled {
            true => Ok(()),
            false => Err(format!(
                "ISRs {now:?}: node 3 should be out of those it does not lead\n{}",
                cluster.diagnostics()
            )),
        }
    });
    let failures = fetch_failures(&cluster, 3);
    assert!(
        failures
            .iter()
            .any(|l| l.contains("SASL_AUTHENTICATION_FAILED")),
        "node 3's log does not say its login was refused:\n{}",
        failures.join("\n")
    );
    // One fetcher per leader (nodes 1 and 2), each retrying at most once a second after
    // its first failures: a tight loop (every 100 ms) would log ten times as many.
    let elapsed = started.elapsed().as_secs_f64();
    let per_second = failures.len() as f64 / elapsed;
    println!(
        "node 3: {} failed fetches in {elapsed:.1} s; the last: {}",
        failures.len(),
        failures.last().map_or("", String::as_str)
    );
    assert!(
        per_second < 5.0,
        "{} failed fetches in {elapsed:.1} s: no back-off\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        fetch_failures(&cluster, 1)
            .iter()
            .all(|l| !l.contains("SASL_AUTHENTICATION_FAILED")),
        "node 1 was refused too"
    );
    wait_for_identical_copies(&cluster, topic, &[1, 2]);
}

#[test]
fn a_follower_whose_user_may_not_cluster_action_stays_out_of_every_isr() {
    let certs = Certs::make();
    let topic = "unauthorized";
    let password = |_| BROKER_PASSWORD.to_string();
    // `broker` logs in, but is no super user and no ACL grants it CLUSTER_ACTION: every
    // leader answers its fetches TOPIC_AUTHORIZATION_FAILED, as Kafka's.
    let super_users = "\"User:ANONYMOUS\", \"User:alice\"";
    let (cluster, _ports) = secured_cluster(&certs, &password, super_users, topic);
    produce_to_leaders(&cluster, topic, 5, 1);
    support::wait_until(SETTLE_TIMEOUT, Duration::from_millis(200), || {
        let now = leaders_and_isrs(&cluster, topic);
        match now.len() == 3 && now.iter().all(|(leader, isr)| isr == &vec![*leader]) {
            true => Ok(()),
            false => Err(format!(
                "ISRs {now:?}: no follower may fetch\n{}",
                cluster.diagnostics()
            )),
        }
    });
}

#[test]
fn followers_present_their_certificate_on_an_ssl_inter_broker_listener() {
    let certs = Certs::make();
    let topic = "mutual";
    // The SSL listener requires a client certificate: a follower without one could not
    // fetch; `inter_broker_ssl_*` give it the client certificate.
    let toml = |_| {
        format!(
            "{}listener_security_protocol_map = \"SETUP:PLAINTEXT\"\n\
             inter_broker_listener_name = \"SSL\"\n\
             inter_broker_ssl_ca_file = \"{}\"\n\
             inter_broker_ssl_certificate_location = \"{}\"\n\
             inter_broker_ssl_key_location = \"{}\"\n\
             replica_lag_time_max_ms = {LAG_MS}\n",
            certs.broker_toml("required"),
            certs.path("ca.pem").display(),
            certs.path("client.pem").display(),
            certs.path("client.key").display(),
        )
    };
    let names = |_| vec!["SETUP", "SSL"];
    let (cluster, _ports) = LocalCluster::start_with_listeners(3, &names, &toml);
    cluster.wait_until_formed(3);
    create_rf3_topic(&cluster, topic);
    produce_to_leaders(&cluster, topic, 20, -1);
    std::thread::sleep(Duration::from_millis(LAG_MS + 1000));
    for (leader, isr) in leaders_and_isrs(&cluster, topic) {
        assert_eq!(
            isr,
            vec![1, 2, 3],
            "leader {leader}\n{}",
            cluster.diagnostics()
        );
    }
    wait_for_identical_copies(&cluster, topic, &[1, 2, 3]);
}
