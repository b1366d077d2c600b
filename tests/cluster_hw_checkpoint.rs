//! High-watermark checkpoints (issue 17, decision 0012 "High-watermark checkpoints"): each
//! shard writes Kafka's `replication-offset-checkpoint` text file for its partitions under
//! `<data_dir>/replication-offset-checkpoint/shard-<id>`, periodically and at a clean
//! shutdown, and a restarted broker starts each partition's high watermark from it. 3 nodes
//! on 127.0.0.1, one core each, an RF=3 topic with 20 records written with acks=all:
//! - the whole cluster crashes (SIGKILL, so every ISR stays full); the leader, restarted
//!   alone, serves nothing: without a quorum it can neither catch up (it listens only
//!   after) nor register this start, and until it has, the leaderships its metadata names
//!   are its last start's (decision 0012, "A restart ends the leaderships of the last
//!   start"); once the rest rejoin, the partition's leader, in a new epoch, serves all 20
//!   at once;
//! - the followers learn the high watermark from fetch answers without records too (their
//!   checkpoints reach 20 while idle); when the leader crashes and stays down, the follower
//!   promoted serves all 20 records from its first answer as leader;
//! - a clean shutdown writes the checkpoint (the periodic one never runs there); a garbage
//!   checkpoint file is a warning: the broker starts, rejoins and writes a good one again.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use kafka_protocol::records::RecordBatchDecoder;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, leaders, metadata};
use support::wire::{RawConn, encode_batch, plain_record, produce_request, topic_name};

const TOPIC: &str = "checkpointed";
/// What every shard of a start logs once its partitions are open.
const SHARD_READY: &str = "shard ready";
const RECORDS: usize = 20;
/// Generous bounds for a loaded 2-core box: waits, not speed assertions.
const WAIT: Duration = Duration::from_secs(60);
/// Checkpoints every 200 ms, so a test does not wait Kafka's 5 s for one.
const FAST_CHECKPOINTS: &str = "replica_high_watermark_checkpoint_interval_ms = 200\n";
/// Long enough for a follower to get an answer without records (the leader's long poll
/// ends after 500 ms), several times over on a loaded box.
const IDLE_ANSWER_WAIT: Duration = Duration::from_secs(4);
/// The longest interval accepted: no periodic checkpoint within a test.
const SHUTDOWN_CHECKPOINTS_ONLY: &str = "replica_high_watermark_checkpoint_interval_ms = 3600000\n";

/// Creates the topic (one partition, RF 3, min.insync.replicas 2), writes `RECORDS`
/// one-record batches with acks=all to its leader and returns the leader.
fn create_and_fill(cluster: &LocalCluster) -> i32 {
    cluster.create_replicated_topic(TOPIC, 1, WAIT);
    let leader = leaders(cluster.node(1), TOPIC)[0];
    let mut conn = RawConn::connect(&cluster.node(leader).bootstrap()).expect("connect");
    for i in 0..RECORDS {
        let value = Bytes::from(format!("r-{i}"));
        let batch = encode_batch(&[plain_record(0, 1_700_000_000_000 + i as i64, value)]);
        let request: ProduceRequest =
            produce_request(TOPIC, 0, batch.freeze(), -1).with_timeout_ms(30_000);
        let code = conn.call(&request, 9).responses[0].partition_responses[0].error_code;
        assert_eq!(code, 0, "acks=all produce {i}\n{}", cluster.diagnostics());
    }
    leader
}

fn checkpoint_file(data_dir: &Path) -> PathBuf {
    // `--cores 1`: one shard, one file.
    data_dir
        .join("replication-offset-checkpoint")
        .join("shard-0")
}

/// The offset `node`'s checkpoint holds for the topic's partition 0, if any.
fn checkpointed(cluster: &LocalCluster, node: i32) -> Option<i64> {
    let text = std::fs::read_to_string(checkpoint_file(&cluster.node(node).data_dir)).ok()?;
    text.lines()
        .skip(2)
        .find_map(|line| line.strip_prefix(&format!("{TOPIC} 0 ")))
        .and_then(|offset| offset.parse().ok())
}

fn wait_for_checkpoint(cluster: &LocalCluster, node: i32, expected: i64) {
    support::wait_until(WAIT, Duration::from_millis(50), || {
        match checkpointed(cluster, node) {
            Some(offset) if offset == expected => Ok(()),
            seen => Err(format!(
                "node {node}'s checkpoint holds {seen:?}, expected {expected}\n{}",
                cluster.diagnostics()
            )),
        }
    });
}

/// A consumer's fetch of partition 0 from offset 0 at `node`: (high watermark, the values
/// of the records it returned).
fn fetch_all(cluster: &LocalCluster, node: i32) -> Result<(i64, Vec<String>), String> {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = RawConn::connect(&cluster.node(node).bootstrap())?.try_call(&request, 12)?;
    let p = &response.responses[0].partitions[0];
    if p.error_code != 0 {
        return Err(format!("fetch error {}", p.error_code));
    }
    let mut records = p.records.clone().unwrap_or_default();
    let mut values = Vec::new();
    if !records.is_empty() {
        for set in RecordBatchDecoder::decode_all(&mut records).map_err(|e| format!("{e:?}"))? {
            for record in set.records {
                let value = record.value.map(|v| v.to_vec()).unwrap_or_default();
                values.push(String::from_utf8_lossy(&value).into_owned());
            }
        }
    }
    Ok((p.high_watermark, values))
}

fn all_values() -> Vec<String> {
    (0..RECORDS).map(|i| format!("r-{i}")).collect()
}

/// The first answer `node` gives as the partition's leader must already hold everything
/// committed: ListOffsets latest and the fetch's high watermark are `RECORDS`, and the
/// fetch returns every record. Waits only for it to answer as the leader at all.
fn assert_serves_everything_at_once(cluster: &LocalCluster, node: i32) {
    let deadline = Instant::now() + WAIT;
    let latest = loop {
        match cluster.latest_offset(node, (TOPIC, 0), 0) {
            Ok(offset) => break offset,
            Err(e) => assert!(
                Instant::now() < deadline,
                "node {node} never answered as leader: {e}\n{}",
                cluster.diagnostics()
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        latest,
        RECORDS as i64,
        "ListOffsets latest right after the restart\n{}",
        cluster.diagnostics()
    );
    let (high_watermark, values) = fetch_all(cluster, node).expect("fetch from the leader");
    assert_eq!(high_watermark, RECORDS as i64);
    assert_eq!(values, all_values());
}

#[test]
fn a_leader_restarted_alone_after_the_whole_cluster_crashed_serves_nothing_until_registered() {
    let mut cluster = LocalCluster::start_with_config(3, FAST_CHECKPOINTS);
    cluster.wait_until_formed(3);
    let leader = create_and_fill(&cluster);
    wait_for_checkpoint(&cluster, leader, RECORDS as i64);
    // A crash of every node: no controlled shutdown, so the ISR stays {1, 2, 3}.
    for id in 1..=3 {
        cluster.node_mut(id).kill();
    }
    let log_start = cluster.node_mut(leader).spawn_unwaited();
    // Alone it has no quorum to catch up and register with: its partitions open, but its
    // port takes no connection.
    cluster
        .node(leader)
        .wait_until_logged(log_start, SHARD_READY, WAIT);
    cluster
        .node_mut(leader)
        .assert_refuses_connections_for(IDLE_ANSWER_WAIT, "alone, the restarted leader served");

    // The others come back: the cluster goes on from there.
    let others: Vec<i32> = (1..=3).filter(|&id| id != leader).collect();
    cluster.start_nodes(&others);
    cluster.node_mut(leader).wait_until_serving(log_start);
    cluster.wait_until_formed(3);
    support::wait_until(WAIT, Duration::from_millis(100), || {
        let now_leader = leaders(cluster.node(leader), TOPIC).first().copied();
        match now_leader.map(|l| fetch_all(&cluster, l)) {
            Some(Ok((hw, values))) if hw == RECORDS as i64 && values == all_values() => Ok(()),
            other => Err(format!("after the others rejoined: {other:?}")),
        }
    });
}

#[test]
fn an_idle_followers_checkpoint_is_current_and_it_serves_everything_when_promoted() {
    let mut cluster = LocalCluster::start_with_config(3, FAST_CHECKPOINTS);
    cluster.wait_until_formed(3);
    let leader = create_and_fill(&cluster);
    // The last records a follower fetched came with the high watermark from before its own
    // fetch; only the answers without records that follow bring it to 20.
    let followers: Vec<i32> = (1..=3).filter(|&id| id != leader).collect();
    for &id in &followers {
        wait_for_checkpoint(&cluster, id, RECORDS as i64);
    }
    // The leader crashes and stays down: once it is fenced one of its followers leads, and
    // its first answer as leader already holds everything committed.
    cluster.node_mut(leader).kill();
    let mut promoted = None;
    support::wait_until(WAIT, Duration::from_millis(20), || {
        promoted = followers.iter().copied().find(|&id| {
            metadata(cluster.node(id), Some(&[TOPIC])).is_ok_and(|answer| {
                answer
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .is_some_and(|p| p.leader_id.0 == id)
            })
        });
        match promoted {
            Some(_) => Ok(()),
            None => Err(format!("no follower leads yet\n{}", cluster.diagnostics())),
        }
    });
    let promoted = promoted.expect("waited for it");
    assert_serves_everything_at_once(&cluster, promoted);
}

#[test]
fn a_clean_shutdown_writes_the_checkpoint_and_a_garbage_one_is_ignored() {
    let mut cluster = LocalCluster::start_with_config(3, SHUTDOWN_CHECKPOINTS_ONLY);
    cluster.wait_until_formed(3);
    let leader = create_and_fill(&cluster);
    let follower = (1..=3).find(|&id| id != leader).unwrap_or(1);
    // The follower's high watermark reaches 20 from the answers without records; give it
    // the time (no file is written before the shutdown, so it cannot be watched).
    std::thread::sleep(IDLE_ANSWER_WAIT);
    cluster.node_mut(follower).terminate();
    assert_eq!(
        checkpointed(&cluster, follower),
        Some(RECORDS as i64),
        "the shutdown wrote the checkpoint\n{}",
        cluster.diagnostics()
    );
    assert!(
        checkpointed(&cluster, leader).is_none(),
        "no periodic checkpoint within the hour's interval"
    );

    std::fs::write(
        checkpoint_file(&cluster.node(follower).data_dir),
        b"0\n3\nnot a checkpoint\x00\xff\n",
    )
    .expect("write garbage");
    cluster.node_mut(follower).spawn();
    cluster.wait_until_formed(3);
    let log = std::fs::read_to_string(cluster.node(follower).log_path.as_ref().expect("log"))
        .unwrap_or_default();
    assert!(
        log.contains("high-watermark checkpoint ignored"),
        "the garbage file is reported"
    );
    std::thread::sleep(IDLE_ANSWER_WAIT);
    cluster.node_mut(follower).terminate();
    assert_eq!(
        checkpointed(&cluster, follower),
        Some(RECORDS as i64),
        "a good checkpoint replaced the garbage\n{}",
        cluster.diagnostics()
    );
}
