//! Share-group state across a partition failover (issue 17, decision 0025): 3 nodes, an
//! RF=3 topic, share groups whose coordinator is the partition's leader, so one SIGKILL
//! takes both the state's writer and the members' coordinator. In each, a member acquires
//! 20 records, accepts 0-9 and releases 10-14 (15-19 stay acquired); the leader is
//! SIGKILLed. The new leader, for a group it now also coordinates, must deliver
//! exactly 10-19, each with delivery count 2: nothing acknowledged again, nothing in flight
//! lost, the delivery counts kept. A new leader that started the group from scratch would
//! deliver 0-19 with count 1. The same through confluent-kafka's `ShareConsumer`
//! (`tests/clients/cluster_share_failover.py`, 200 records, half accepted).
//! And Kafka's split of roles: a group another broker coordinates fetches and acknowledges
//! at the partition's leader (raw protocol and ShareConsumer); before decision 0025 the
//! leader answered GROUP_ID_NOT_FOUND.
//! Needs confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`) for the ShareConsumer
//! tests; `SLUICE_SKIP_REAL_CLIENTS=1` skips them loudly.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeQuorumRequest, ShareFetchResponse, TopicName};
use std::time::{Duration, Instant};
use support::cluster::{
    LocalCluster, controller_of, create_topic, find_coordinator, leaders, metadata,
};
use support::real_clients_skipped;
use support::scripts::run_script;
use support::share::{acquired, alter_group, sb};
use support::share_member::{ShareMember as Member, cluster_with_group_led_elsewhere};
use support::wire::{MemberConn, RawConn, encode_batch, plain_record, produce_request};

const TOPIC: &str = "work";
const RECORDS: i64 = 20;
const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
/// Waits on a loaded 2-core box: not speed assertions.
const WAIT: Duration = Duration::from_secs(60);

fn partition_errors(r: &ShareFetchResponse) -> (i16, i16) {
    r.responses
        .first()
        .and_then(|t| t.partitions.first())
        .map_or((-1, -1), |p| (p.error_code, p.acknowledge_error_code))
}

/// Share groups each test drives alike before the kill: where a killed coordinator's
/// groups go is the coordinator placement's business (a hash over the live brokers, or
/// sticky slots spread over them), so after the kill the test goes on with one that the
/// new leader coordinates.
const CANDIDATE_GROUPS: usize = 8;

/// A formed 3-node cluster with an RF=3 topic `topic` and `CANDIDATE_GROUPS` share groups
/// (starting at the earliest offset) its partition's leader coordinates: (cluster,
/// leader, groups).
fn cluster_with_led_groups(topic: &str) -> (LocalCluster, i32, Vec<String>) {
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    assert_eq!(create_topic(cluster.node(1), topic, 1, 3, WAIT), 0);
    cluster.wait_until_known_everywhere(topic, 1, WAIT);
    let leader = leaders(cluster.node(1), topic)[0];
    // Groups the leader coordinates: the kill moves their coordinator too.
    let groups: Vec<String> = (0..1000)
        .map(|i| format!("{topic}-workers-{i}"))
        .filter(|g| find_coordinator(cluster.node(leader), g) == Ok(leader))
        .take(CANDIDATE_GROUPS)
        .collect();
    assert_eq!(
        groups.len(),
        CANDIDATE_GROUPS,
        "groups the leader coordinates"
    );
    for group in &groups {
        let earliest = [("share.auto.offset.reset", "earliest")];
        assert_eq!(alter_group(cluster.node(leader), group, &earliest), 0);
    }
    (cluster, leader, groups)
}

/// Kills `leader`, waits for the partition's next leader and returns it with the first of
/// `groups` it coordinates.
fn fail_over(
    cluster: &mut LocalCluster,
    leader: i32,
    topic: &str,
    groups: &[String],
) -> (i32, String) {
    cluster.node_mut(leader).kill();
    let mut found = None;
    support::wait_until(WAIT, Duration::from_millis(100), || {
        let running = cluster.running_ids();
        let led: Vec<i32> = running
            .iter()
            .flat_map(|id| leaders(cluster.node(*id), topic))
            .collect();
        let Some(&next) = led
            .first()
            .filter(|l| **l != leader && led.iter().all(|x| x == *l))
        else {
            return Err(format!("no settled new leader: {led:?}"));
        };
        let coordinated = groups.iter().find(|g| {
            running
                .iter()
                .all(|id| find_coordinator(cluster.node(*id), g) == Ok(next))
        });
        match coordinated {
            Some(g) => {
                found = Some((next, g.clone()));
                Ok(())
            }
            None => Err(format!(
                "new leader {next} coordinates none of {groups:?}\n{}",
                cluster.diagnostics()
            )),
        }
    });
    found.expect("a new leader coordinating a group")
}

#[test]
fn acknowledged_records_stay_acknowledged_and_delivery_counts_survive_a_leader_failover() {
    failover_keeps_share_state(false);
}

/// The same after more than `SNAPSHOT_EVERY_ENTRIES` (1,000) metadata records: the next
/// leader is restarted before the kill, so it reads the share states back from its Raft
/// snapshot image (and the log after it), not from what it applied while running.
#[test]
fn share_states_come_back_from_a_raft_snapshot_on_the_next_leaders_restart() {
    failover_keeps_share_state(true);
}

/// Records other metadata changes make, to pass a snapshot.
const SNAPSHOT_PASSING_RECORDS: usize = 1_100;

fn failover_keeps_share_state(restart_next_leader_first: bool) {
    let (mut cluster, leader, groups) = cluster_with_led_groups(TOPIC);
    let addr = cluster.node(leader).bootstrap();
    let mut conn = RawConn::connect(&addr).unwrap();
    let batch: Vec<_> = (0..RECORDS)
        .map(|i| plain_record(i, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let produced = conn.call(
        &produce_request(TOPIC, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    // Kept to the end: a member's session ends with its connection, which would release
    // what it holds before the kill (the state the next leader must start from).
    let mut holding = Vec::new();
    for group in &groups {
        let mut first = Member::join(&addr, group, "member-a", TOPIC);
        let deadline = Instant::now() + WAIT;
        let got = loop {
            let r = first.fetch(&addr, &[]).unwrap();
            let got = acquired(&r);
            if !got.is_empty() || Instant::now() > deadline {
                break got;
            }
        };
        assert_eq!(
            got,
            vec![(0, RECORDS - 1, 1)],
            "the first delivery to {group}"
        );
        let acked = first
            .fetch(&addr, &[(0, 9, ACCEPT), (10, 14, RELEASE)])
            .unwrap();
        assert_eq!(partition_errors(&acked).1, 0, "acknowledged: {acked:?}");
        holding.push(first);
    }

    if restart_next_leader_first {
        restart_next_leader(&mut cluster, leader);
    }
    let (successor, group) = fail_over(&mut cluster, leader, TOPIC, &groups);
    let new_addr = cluster.node(successor).bootstrap();
    let mut second = Member::join(&new_addr, &group, "member-b", TOPIC);
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut last = None;
    while Instant::now() < deadline && seen.iter().map(|(f, l, _)| l - f + 1).sum::<i64>() < 10 {
        match second.fetch(&new_addr, &[]) {
            Ok(r) => {
                seen.extend(acquired(&r));
                last = Some(partition_errors(&r));
            }
            Err(e) => eprintln!("share fetch at the new leader: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more comes: the acknowledged records are not delivered again.
    for _ in 0..3 {
        if let Ok(r) = second.fetch(&new_addr, &[]) {
            seen.extend(acquired(&r));
        }
    }
    assert_eq!(
        seen,
        vec![(10, RECORDS - 1, 2)],
        "after the failover exactly the unacknowledged records, delivered a second time \
         (last partition errors {last:?})\n{}",
        cluster.diagnostics()
    );
}

#[test]
fn a_share_consumer_gets_no_accepted_record_again_after_its_partitions_leader_dies() {
    if real_clients_skipped("cluster share failover") {
        return;
    }
    let topic = "client-work";
    let (mut cluster, leader, groups) = cluster_with_led_groups(topic);
    let python = support::client_python("confluent_kafka");
    let state = tempfile::tempdir().expect("temp dir");
    let run = |phase: &str, bootstrap: String, group: &str| {
        let dir = state.path().join(group);
        std::fs::create_dir_all(&dir).expect("state dir");
        let args = [
            "cluster_share_failover.py".to_string(),
            phase.to_string(),
            bootstrap,
            topic.to_string(),
            group.to_string(),
            dir.display().to_string(),
        ];
        run_script(
            &format!("cluster_share_failover.py {phase} {group}"),
            &python,
            &args,
        );
    };
    for (i, group) in groups.iter().enumerate() {
        // The first run produces the records every group then reads.
        let phase = if i == 0 {
            "before"
        } else {
            "before-no-produce"
        };
        run(phase, cluster.bootstrap(), group);
    }
    let (_, group) = fail_over(&mut cluster, leader, topic, &groups);
    run("after", cluster.bootstrap(), &group);
}

/// Makes the metadata log pass a snapshot, then restarts the partition's second replica
/// (the next leader) and waits until it is in sync again.
fn restart_next_leader(cluster: &mut LocalCluster, leader: i32) {
    for i in 0..SNAPSHOT_PASSING_RECORDS {
        let value = format!("{}", 30_000 + i);
        let config = [("share.record.lock.duration.ms", value.as_str())];
        assert_eq!(
            alter_group(cluster.node(leader), "snapshot-filler", &config),
            0
        );
    }
    let partition = |cluster: &LocalCluster| {
        let response = metadata(cluster.node(leader), Some(&[TOPIC])).ok()?;
        let p = response.topics.first()?.partitions.first()?.clone();
        let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
        Some((ids(&p.replica_nodes), ids(&p.isr_nodes)))
    };
    let (replicas, _): (Vec<i32>, Vec<i32>) = partition(cluster).expect("the partition");
    let next = replicas[1];
    cluster.node_mut(next).kill();
    cluster.node_mut(next).spawn();
    support::wait_until(WAIT, Duration::from_millis(200), || {
        match partition(cluster) {
            Some((_, isr)) if isr.len() == 3 => Ok(()),
            other => Err(format!("{next} not in sync again: {other:?}")),
        }
    });
}

/// Kafka's split: the member heartbeats to the group's coordinator, and fetches and
/// acknowledges at the partition's leader, which holds the share session itself.
#[test]
fn share_fetch_and_acknowledge_work_at_a_leader_that_does_not_coordinate_the_group() {
    let topic = "elsewhere";
    let (cluster, leader, coordinator, group) =
        cluster_with_group_led_elsewhere(topic, "elsewhere");
    let at_leader = cluster.node(leader).bootstrap();
    let mut conn = RawConn::connect(&at_leader).unwrap();
    let batch: Vec<_> = (0..RECORDS)
        .map(|i| plain_record(i, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let produced = conn.call(
        &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    let at_coordinator = cluster.node(coordinator).bootstrap();
    let mut member = Member::join(&at_coordinator, &group, "member-a", topic);
    let first = member.fetch(&at_leader, &[]).unwrap();
    assert_eq!(first.error_code, 0, "ShareFetch at the leader: {first:?}");
    assert_eq!(acquired(&first), vec![(0, RECORDS - 1, 1)]);
    let acked = member
        .acknowledge(&at_leader, &[(0, 9, ACCEPT), (10, RECORDS - 1, RELEASE)])
        .unwrap();
    assert_eq!(
        acked.error_code, 0,
        "ShareAcknowledge at the leader: {acked:?}"
    );
    let partition = &acked.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{acked:?}");
    let again = member.fetch(&at_leader, &[]).unwrap();
    assert_eq!(again.error_code, 0, "{again:?}");
    assert_eq!(
        acquired(&again),
        vec![(10, RECORDS - 1, 2)],
        "the released records, again"
    );
    // The coordinator leads nothing of the topic: its answer for the partition says so.
    let mut elsewhere = Member::join(&at_coordinator, &group, "member-b", topic);
    let refused = elsewhere.fetch(&at_coordinator, &[]).unwrap();
    assert_eq!(
        partition_errors(&refused).0,
        6,
        "NOT_LEADER_OR_FOLLOWER: {refused:?}"
    );
}

#[test]
fn a_share_consumer_reads_a_partition_whose_leader_does_not_coordinate_its_group() {
    if real_clients_skipped("cluster share elsewhere") {
        return;
    }
    let topic = "client-elsewhere";
    let (cluster, _, _, group) = cluster_with_group_led_elsewhere(topic, "elsewhere");
    let python = support::client_python("confluent_kafka");
    let state = tempfile::tempdir().expect("temp dir");
    let args = [
        "cluster_share_failover.py".to_string(),
        "elsewhere".to_string(),
        cluster.bootstrap(),
        topic.to_string(),
        group,
        state.path().display().to_string(),
    ];
    run_script("cluster_share_failover.py elsewhere", &python, &args);
}

/// Members acknowledging at once in the coalescing test, and the rounds they do it in.
const CONCURRENT_MEMBERS: usize = 8;
const ACK_ROUNDS: usize = 5;

/// The metadata log's committed index, as the quorum's leader reports it.
fn metadata_high_watermark(cluster: &LocalCluster) -> i64 {
    let controller = controller_of(cluster.node(1)).expect("the controller");
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(sb("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let mut conn = RawConn::connect(&cluster.node(controller).bootstrap()).unwrap();
    let quorum = conn.call(&request, 2);
    quorum.topics[0].partitions[0].high_watermark
}

/// Acknowledgements of one group's members arriving together at the partition's leader
/// are made durable by fewer metadata-log records than there are acknowledgements: the
/// writes that come while one is in flight go as one record of the group's newest state
/// (`partition::share::coalesce`). Before, each was its own record (the log grew by
/// `CONCURRENT_MEMBERS * ACK_ROUNDS` at least). Every acknowledgement is still answered
/// without error, and what was accepted is never delivered again.
#[test]
fn concurrent_acknowledgements_of_one_group_share_metadata_records() {
    let topic = "coalesced";
    let (cluster, leader, groups) = cluster_with_led_groups(topic);
    let addr = cluster.node(leader).bootstrap();
    let total = (CONCURRENT_MEMBERS * ACK_ROUNDS) as i64;
    let batch: Vec<_> = (0..total)
        .map(|i| plain_record(i, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let produced = RawConn::connect(&addr).unwrap().call(
        &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let group = &groups[0];
    let mut members: Vec<(Member, Vec<i64>)> = (0..CONCURRENT_MEMBERS)
        .map(|i| {
            let mut m = Member::join(&addr, group, &format!("member-{i}"), topic);
            let deadline = Instant::now() + WAIT;
            let mut offsets = Vec::new();
            while offsets.len() < ACK_ROUNDS && Instant::now() < deadline {
                let want = (ACK_ROUNDS - offsets.len()) as i32;
                let r = m.fetch_at_most(&addr, &[], want).unwrap();
                for (first, last, _) in acquired(&r) {
                    offsets.extend(first..=last);
                }
            }
            assert_eq!(offsets.len(), ACK_ROUNDS, "member-{i} acquired {offsets:?}");
            (m, offsets)
        })
        .collect();

    let before = metadata_high_watermark(&cluster);
    for round in 0..ACK_ROUNDS {
        let start = std::sync::Arc::new(std::sync::Barrier::new(CONCURRENT_MEMBERS));
        let answers: Vec<i16> = std::thread::scope(|scope| {
            let running: Vec<_> = members
                .iter_mut()
                .map(|(member, offsets)| {
                    let (start, addr) = (start.clone(), addr.clone());
                    let offset = offsets[round];
                    scope.spawn(move || {
                        let mut conn = RawConn::connect(&addr).unwrap();
                        start.wait();
                        let r = member.acknowledge_over(&mut conn, &[(offset, offset, ACCEPT)]);
                        let r = r.unwrap();
                        r.responses
                            .first()
                            .and_then(|t| t.partitions.first())
                            .map_or(r.error_code, |p| r.error_code.max(p.error_code))
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(
            answers.iter().all(|e| *e == 0),
            "round {round}: {answers:?}"
        );
    }
    let records = metadata_high_watermark(&cluster) - before;
    let acknowledgements = total;
    eprintln!("{acknowledgements} acknowledgements, {records} metadata records");
    assert!(
        records * 4 <= acknowledgements * 3,
        "{acknowledgements} concurrent acknowledgements took {records} metadata records"
    );

    let mut late = Member::join(&addr, group, "member-late", topic);
    let r = late.fetch(&addr, &[]).unwrap();
    assert_eq!(acquired(&r), vec![], "every record was accepted");
}

/// Long enough that no lock expires during a test: what comes back came back because the
/// holder's session ended.
const LONG_LOCK_MS: &str = "600000";
const SHARE_SESSION_NOT_FOUND: i16 = 122;

/// Kafka's share-session cache ends a session when the connection that opened it drops,
/// and releases the member's acquired records there at once. Here at a partition leader
/// that does not coordinate the group (decision 0025): member A's records come back to
/// member B with delivery count 2, long before their 10-minute locks expire, and A's
/// session at the leader is gone. Before, they stayed locked (only epoch -1 released them).
#[test]
fn a_members_dropped_connection_releases_its_records_at_a_leader_that_does_not_coordinate() {
    let topic = "dropped";
    let (cluster, leader, coordinator, group) =
        cluster_with_group_led_elsewhere(topic, "elsewhere");
    let long_lock = [("share.record.lock.duration.ms", LONG_LOCK_MS)];
    assert_eq!(alter_group(cluster.node(leader), &group, &long_lock), 0);
    let at_leader = cluster.node(leader).bootstrap();
    let batch: Vec<_> = (0..RECORDS)
        .map(|i| plain_record(i, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let produced = RawConn::connect(&at_leader).unwrap().call(
        &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    let at_coordinator = cluster.node(coordinator).bootstrap();
    let mut a = Member::join(&at_coordinator, &group, "member-a", topic);
    let mut b = Member::join(&at_coordinator, &group, "member-b", topic);
    let first = a.fetch(&at_leader, &[]).unwrap();
    assert_eq!(acquired(&first), vec![(0, RECORDS - 1, 1)], "{first:?}");
    // A's connection to the leader drops (the member keeps its membership).
    a.conn = MemberConn::default();

    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.is_empty() && Instant::now() < deadline {
        let r = b.fetch(&at_leader, &[]).unwrap();
        seen.extend(acquired(&r));
    }
    assert_eq!(
        seen,
        vec![(0, RECORDS - 1, 2)],
        "A's records, released when its connection dropped"
    );
    let stale = a.fetch(&at_leader, &[]).unwrap();
    assert_eq!(stale.error_code, SHARE_SESSION_NOT_FOUND, "{stale:?}");
}
