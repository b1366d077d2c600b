//! No split brain (issue 17): three nodes, each in a network namespace of its own on one
//! bridge; an RF=3 topic with min.insync.replicas=2 and an idempotent acks=all
//! confluent-kafka producer running *inside the leader's namespace*. The leader's link is
//! cut, so it still takes that producer's requests but hears nothing from its peers. The
//! other two fence it and elect a new leader, and a second producer writes there. The
//! isolated leader must not acknowledge a single acks=all write once the new leader exists
//! (it cannot: its followers are gone and only the metadata quorum may shrink the ISR).
//! Then the link heals: the old leader learns the new epoch, drops its divergent tail and
//! rejoins the ISR with a copy byte for byte the new leader's; every acknowledged record of
//! both producers is in the log once, at the offset its acknowledgement named.
//!
//! Needs root (network namespaces) and confluent-kafka; `SLUICE_SKIP_REAL_CLIENTS=1` skips
//! the test loudly. Without CAP_NET_ADMIN the test fails and says so.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::cluster::{LocalCluster, create_topic_with_configs, log_bytes, metadata};
use support::netns::Namespaces;
use support::script_producer::{ScriptProducer, check_read_back, parse_acks, read_back};
use support::{client_python, real_clients_skipped};

const TOPIC: &str = "split";
/// Waits, generous for a loaded 2-core box; none of them is a speed assertion.
const ELECTION_WAIT: Duration = Duration::from_secs(60);
const REJOIN_WAIT: Duration = Duration::from_secs(120);
/// How long the isolated leader is watched for a wrong acknowledgement after the majority
/// elected a new leader: longer than a produce request's wait for the ISR would take.
const WATCH_AFTER_ELECTION: Duration = Duration::from_secs(5);
/// The majority producer's values start here, so the producers never share a value.
const MAJORITY_FIRST_VALUE: u64 = 1_000_000_000;
/// And those of the isolated side's second producer, started after the cut.
const LATE_FIRST_VALUE: u64 = 2_000_000_000;
/// A short lag bound, so the healed node rejoins the ISR quickly.
const CONFIG: &str = "replica_lag_time_max_ms = 6000\n";

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// (leader, leader epoch, sorted ISR) of partition 0 as node `id` reports it.
fn view(cluster: &LocalCluster, id: i32) -> Option<(i32, i32, Vec<i32>)> {
    let response = metadata(cluster.node(id), Some(&[TOPIC])).ok()?;
    let topic = response.topics.first().filter(|t| t.error_code == 0)?;
    let p = topic.partitions.iter().find(|p| p.partition_index == 0)?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    Some((p.leader_id.0, p.leader_epoch, isr))
}

fn wait_until<T>(
    what: &str,
    within: Duration,
    cluster: &LocalCluster,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_isolated_leader_acknowledges_nothing_once_a_new_leader_is_elected() {
    let test = "an_isolated_leader_acknowledges_nothing_once_a_new_leader_is_elected";
    if real_clients_skipped(test) {
        return;
    }
    let python = client_python("confluent_kafka");
    let net = Namespaces::create(3)
        .unwrap_or_else(|e| panic!("{test} needs network namespaces (root, iproute2): {e}"));
    let cluster = LocalCluster::start_in_namespaces(&net, CONFIG);
    cluster.wait_until_formed(3);
    let node1 = cluster.node(1);
    let code = create_topic_with_configs(
        node1,
        TOPIC,
        1,
        3,
        &[("min.insync.replicas", "2")],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "CreateTopics answered {code}");
    let (leader, epoch, _) = wait_until("a full ISR", ELECTION_WAIT, &cluster, || {
        view(&cluster, 1).filter(|(leader, _, isr)| *leader > 0 && isr.len() == 3)
    });
    let majority: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let leader_ns = net.namespace((leader - 1) as usize);

    // The isolated side's producer talks to the leader from inside its namespace, so it can
    // still reach it once the link is cut.
    let leader_bootstrap = cluster.node(leader).bootstrap();
    let isolated = ScriptProducer::start(&python, Some(&leader_ns), &leader_bootstrap, TOPIC, 0);
    isolated.wait_acks(200, ELECTION_WAIT, &cluster);

    net.cut((leader - 1) as usize);
    let cut_ms = wall_ms();
    // A divergent tail for the heal to remove, whatever the first producer's timing: its
    // five requests in flight at the cut may all have been fetched by the followers already
    // (only their next fetches, cut off, would have let the leader acknowledge them), and
    // with its window full it sends nothing more. A producer that starts now can only reach
    // the isolated leader, which appends its requests and acknowledges none.
    let late = ScriptProducer::start(
        &python,
        Some(&leader_ns),
        &leader_bootstrap,
        TOPIC,
        LATE_FIRST_VALUE,
    );
    let (new_leader, new_epoch) = wait_until("a new leader", ELECTION_WAIT, &cluster, || {
        let (l, e, isr) = view(&cluster, majority[0])?;
        (l > 0 && l != leader && e > epoch && !isr.contains(&leader)).then_some((l, e))
    });
    let elected_ms = wall_ms();
    let majority_bootstrap = majority
        .iter()
        .map(|id| cluster.node(*id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let majority_producer = ScriptProducer::start(
        &python,
        None,
        &majority_bootstrap,
        TOPIC,
        MAJORITY_FIRST_VALUE,
    );
    majority_producer.wait_acks(500, ELECTION_WAIT, &cluster);
    std::thread::sleep(WATCH_AFTER_ELECTION);

    let wrong: Vec<(u64, i64, i64)> = isolated
        .acks()
        .into_iter()
        .chain(late.acks())
        .filter(|(_, _, at)| *at >= elected_ms)
        .collect();
    assert!(
        wrong.is_empty(),
        "the isolated leader {leader} acknowledged {} acks=all writes after node {new_leader} \
         was elected (epoch {new_epoch}); first: {:?}",
        wrong.len(),
        wrong.first()
    );
    let acked_while_cut = isolated
        .acks()
        .iter()
        .filter(|(_, _, at)| *at > cut_ms)
        .count();
    eprintln!(
        "{test}: leader {leader} cut at {cut_ms}; node {new_leader} leads epoch {new_epoch} \
         after {} ms; isolated producer acks after the cut: {acked_while_cut} (all before the \
         election was seen)",
        elected_ms - cut_ms
    );

    // The isolated leader appended the requests it could not acknowledge: a divergent tail
    // that the heal must remove.
    let leader_dir = cluster.node(new_leader).data_dir.clone();
    let old_dir = cluster.node(leader).data_dir.clone();
    let (alone, majority_log) = (
        log_bytes(&old_dir, TOPIC, 0),
        log_bytes(&leader_dir, TOPIC, 0),
    );
    assert!(
        !majority_log.starts_with(&alone),
        "the isolated leader appended nothing of its own ({} bytes, a prefix of the new \
         leader's {}): the test did not make a divergent tail",
        alone.len(),
        majority_log.len()
    );

    // Heal: the old leader follows, truncates whatever it appended alone, catches up.
    net.heal((leader - 1) as usize);
    wait_until(
        "the old leader back in the ISR",
        REJOIN_WAIT,
        &cluster,
        || view(&cluster, new_leader).filter(|(_, _, isr)| isr.len() == 3),
    );
    let majority_lines = majority_producer.stop();
    let isolated_lines = isolated.stop();
    let late_lines = late.stop();
    let mut acks = parse_acks(&majority_lines);
    acks.extend(parse_acks(&isolated_lines));
    acks.extend(parse_acks(&late_lines));

    let records = read_back(&python, &majority_bootstrap, TOPIC);
    check_read_back(&records, &acks);

    // Byte for byte: the healed node kept nothing of its divergent tail.
    wait_until("identical copies", REJOIN_WAIT, &cluster, || {
        let expected = log_bytes(&leader_dir, TOPIC, 0);
        (!expected.is_empty() && log_bytes(&old_dir, TOPIC, 0) == expected).then_some(())
    });
    eprintln!(
        "{test}: {} records, {} acknowledged, old leader {leader} identical to {new_leader}",
        records.len(),
        acks.len()
    );
}
