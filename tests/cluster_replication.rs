//! Cluster mode, stage 2 (issue 17, decision 0012): data replication by Kafka's Fetch
//! protocol. A 3-node cluster of `sluice serve` processes (one core each): followers copy
//! their leaders' logs byte for byte (offsets and leader epochs kept), never serve clients
//! themselves, and a follower that was down catches up from where its log ends.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use std::path::Path;
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, create_topic, leaders};
use support::wire::{RawConn, encode_batch, plain_record, produce_request, topic_name};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// How long a follower may take to copy what its leader has (generous: a loaded 2-core box).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Produces `count` one-record batches (acks=1) to `topic`-`partition` on `node`.
fn produce(node: &support::Broker, topic: &str, partition: i32, count: usize, tag: &str) {
    let mut conn = RawConn::connect(&node.bootstrap()).expect("connect");
    for i in 0..count {
        let value = Bytes::from(format!("{tag}-{partition}-{i}"));
        let batch = encode_batch(&[plain_record(0, 1_700_000_000_000 + i as i64, value)]);
        let request: ProduceRequest = produce_request(topic, partition, batch.freeze(), 1);
        let response = conn.call(&request, 9);
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce {tag} {i} to {topic}-{partition}");
    }
}

/// Every `.log` segment of `topic`-`partition` in `data_dir`, in offset order, concatenated.
fn log_bytes(data_dir: &Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut segments: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

/// Waits until every node's copy of `topic`-`partition` is the leader's, byte for byte.
fn wait_for_identical_copies(cluster: &LocalCluster, topic: &str, partition: i32, leader: i32) {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let expected = log_bytes(&cluster.node(leader).data_dir, topic, partition);
    assert!(
        !expected.is_empty(),
        "the leader {leader} holds {topic}-{partition}"
    );
    for id in cluster.running_ids().into_iter().filter(|&id| id != leader) {
        loop {
            let copy = log_bytes(&cluster.node(id).data_dir, topic, partition);
            if copy == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} holds {} of the leader's {} bytes of {topic}-{partition}\n{}",
                copy.len(),
                expected.len(),
                cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn fetch_error(node: &support::Broker, topic: &str, partition: i32) -> i16 {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut conn = RawConn::connect(&node.bootstrap()).expect("connect");
    let response = conn.call(&request, 12);
    response.responses[0].partitions[0].error_code
}

#[test]
fn followers_copy_their_leaders_logs_byte_for_byte_and_catch_up_after_a_restart() {
    let mut cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    let topic = "copied";
    let code = create_topic(cluster.node(1), topic, 3, 3, Duration::from_secs(20));
    assert_eq!(code, 0, "{}", cluster.diagnostics());
    let placed = leaders(cluster.node(1), topic);
    assert_eq!(placed.len(), 3);
    for (p, &leader) in placed.iter().enumerate() {
        produce(cluster.node(leader), topic, p as i32, 60, "first");
    }
    for (p, &leader) in placed.iter().enumerate() {
        wait_for_identical_copies(&cluster, topic, p as i32, leader);
        // A follower holds the data but does not serve it: clients go to the leader.
        let follower = (1..=3).find(|&id| id != leader).unwrap_or(1);
        assert_eq!(
            fetch_error(cluster.node(follower), topic, p as i32),
            NOT_LEADER_OR_FOLLOWER
        );
        assert_eq!(fetch_error(cluster.node(leader), topic, p as i32), 0);
    }

    // A follower that was down while its leaders took writes fetches from its own log end.
    let (p0, leader0) = (0, placed[0]);
    let down = (1..=3).find(|&id| id != leader0).unwrap_or(1);
    cluster.node_mut(down).kill();
    produce(cluster.node(leader0), topic, p0, 40, "while-down");
    cluster.node_mut(down).spawn();
    produce(cluster.node(leader0), topic, p0, 20, "after");
    wait_for_identical_copies(&cluster, topic, p0, leader0);
}
