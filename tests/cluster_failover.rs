//! Leader failover (issue 17 stage 3, decision 0012 "Failover"): 3 nodes on 127.0.0.1, one
//! core each, an RF=3 topic with min.insync.replicas=2 and an idempotent acks=all
//! confluent-kafka producer under load. The partition's leader is SIGKILLed again and again
//! (20 trials, 100 with SLUICE_LONG_TESTS=1) and restarted each time; then everything is read
//! back: no acknowledged record lost, none twice, offsets gap-free, each acknowledged record
//! at the offset its acknowledgement named. The restarted broker truncates, catches up and
//! rejoins the ISR before the next kill. The failover time (kill to the next acknowledged
//! produce) is printed with its median. A confluent-kafka consumer group reads the
//! partition meanwhile and commits every 200 ms; its coordinator is the first leader, so
//! the first kill hits the coordinator (later ones when the leader happens to hold the
//! group's sticky slot, decision 0024): after each kill the coordinator FindCoordinator names
//! serves a committed offset no older than the last commit acknowledged before it, and
//! never older than the one seen after the previous kill; each time the group resumes it
//! starts at its last acknowledged commit or a later one it attempted (committed offsets
//! survive, none skipped). Also: SIGTERM moves leadership first (controlled shutdown) with
//! no produce error the client does not retry.
//! Needs confluent-kafka (`SLUICE_TEST_PYTHON` or `<repo>/.venv`); `SLUICE_SKIP_REAL_CLIENTS=1`
//! skips it loudly.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::cluster::{LocalCluster, find_coordinator};
use support::real_clients_skipped;
use support::script_producer::{
    ScriptProcess, ScriptProducer, check_read_back, parse_acks, read_back,
};

/// Generous bounds for a loaded 2-core box: these are waits, not speed assertions.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);
const REJOIN_WAIT: Duration = Duration::from_secs(90);
/// The lag bound the test runs with: a restarted follower rejoins within a few seconds
/// (the ISR check runs every half of it). Failover itself runs on the default timeouts.
/// The group rejoins each new coordinator at once (no initial rebalance delay).
const CONFIG: &str = "replica_lag_time_max_ms = 6000\ngroup_initial_rebalance_delay_ms = 0\n";

fn trials() -> usize {
    if std::env::var("SLUICE_LONG_TESTS").as_deref() == Ok("1") {
        100
    } else {
        20
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One partition, replication factor 3, min.insync.replicas=2.
fn create_replicated_topic(cluster: &LocalCluster, name: &str) {
    let configs = [("min.insync.replicas", "2")];
    let code = support::cluster::create_topic_with_configs(
        cluster.node(1),
        name,
        1,
        3,
        &configs,
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "CreateTopics answered {code}");
}

/// The committing consumer group (`cluster_failover.py consume`).
struct GroupConsumer {
    script: ScriptProcess,
    /// librdkafka's debug trace (`--client-debug`), in a directory kept with
    /// `SLUICE_TEST_KEEP_DIRS`.
    trace: PathBuf,
    _trace_dir: Option<tempfile::TempDir>,
}

/// The trace lines a stuck group's report quotes (the newest): librdkafka's group state
/// changes and coordinator queries, its broker handles coming and going, and what each
/// Metadata answer listed.
const TRACE_LINES_QUOTED: usize = 120;
const TRACE_FACILITIES: [&str; 14] = [
    "CGRPSTATE",
    "CGRPJOINSTATE",
    "CGRPQUERY",
    "CGRPCOORD",
    "COORD ",
    "COORDSET",
    "COORDCLEAR",
    "Sending TERMINATE",
    "Decommissioning",
    "cluster connection",
    "no usable",
    "Broker changed state",
    " brokers, ",
    "REQERR",
];

impl GroupConsumer {
    fn start(python: &std::path::Path, bootstrap: &str, topic: &str, group: &str) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the client's trace");
        let trace = dir.path().join("librdkafka-debug.log");
        let mut command = Command::new(python);
        command
            .args(["cluster_failover.py", "consume", "--bootstrap", bootstrap])
            .args(["--topic", topic, "--group", group, "--commit-ms", "200"])
            .args(["--status-ms", "1000"])
            .arg("--client-debug")
            .arg(&trace);
        GroupConsumer {
            script: ScriptProcess::start(command),
            trace,
            _trace_dir: support::keep_for_diagnosis(dir, "the group's librdkafka trace"),
        }
    }

    /// The newest lines of librdkafka's trace that say where the group is stuck.
    fn trace_tail(&self) -> String {
        let Ok(text) = std::fs::read_to_string(&self.trace) else {
            return format!("no librdkafka trace at {}", self.trace.display());
        };
        let picked: Vec<&str> = text
            .lines()
            .rev()
            .filter(|l| TRACE_FACILITIES.iter().any(|f| l.contains(f)))
            .take(TRACE_LINES_QUOTED)
            .collect();
        let oldest_first: Vec<&str> = picked.into_iter().rev().collect();
        format!(
            "librdkafka's trace, its last {TRACE_LINES_QUOTED} telling lines:\n  {}",
            oldest_first.join("\n  ")
        )
    }

    /// The last commit the group acknowledged (-1: none yet).
    fn last_commit(&self) -> i64 {
        last_commit(&self.script.lines())
    }

    fn wait_commit(&mut self, at_least: i64, within: Duration, cluster: &LocalCluster) {
        let deadline = Instant::now() + within;
        while self.last_commit() < at_least {
            if Instant::now() >= deadline {
                // A copy: panicking while holding the lines' lock would poison it.
                let lines = self.script.lines().clone();
                panic!(
                    "no commit of {at_least} within {within:?}\n{}\n{}\n{}\n{}",
                    self.script.liveness(),
                    group_report(&lines),
                    self.trace_tail(),
                    cluster.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// librdkafka's latest view of the group and its fetch (`status ...`, once a second).
    fn last_status(&self) -> String {
        let lines = self.script.lines();
        let status = lines.iter().rev().find(|l| l.starts_with("status "));
        status.map_or_else(|| "no status yet".to_string(), |l| l.clone())
    }

    /// Stops (a last commit, close); returns every output line.
    fn stop(self) -> Vec<String> {
        self.script.stop(Duration::from_secs(120))
    }
}

/// What a stuck group was doing, as its script saw it: the last lines of its own (commits,
/// assignments), its client's errors, and librdkafka's view (`status` lines, once a second)
/// at the last commit and now: `group=`/`join=` name the coordinator side, `fetch=`,
/// `next=` and `hw=` the fetch side (e.g. `fetch=active next=5157 hw=32330 queued=0`: the
/// fetcher gets nothing; `join=wait-join` or `group=wait-coord`: the coordinator).
fn group_report(lines: &[String]) -> String {
    let is_status = |l: &&String| l.starts_with("status ");
    let own: Vec<&String> = lines
        .iter()
        .rev()
        .filter(|l| !is_status(l) && !l.starts_with("client-error "))
        .take(8)
        .collect();
    let errors: Vec<&String> = lines
        .iter()
        .rev()
        .filter(|l| l.starts_with("client-error "))
        .take(5)
        .collect();
    let last_commit_at = lines.iter().rposition(|l| l.starts_with("commit "));
    let status_then = last_commit_at
        .and_then(|i| lines[..=i].iter().rev().find(is_status))
        .map_or("none", |l| l.as_str());
    let status_now: Vec<&str> = lines
        .iter()
        .rev()
        .filter(is_status)
        .take(3)
        .map(|l| l.as_str())
        .collect();
    format!(
        "the group's last lines (newest first): {own:?}\nits client's last errors: {errors:?}\n\
         librdkafka's view before the last commit: {status_then}\nand now (newest first):\n  {}",
        status_now.join("\n  ")
    )
}

/// The value of the last `<prefix> <offset> ...` line.
fn last_value(lines: &[String], prefix: &str) -> Option<i64> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(prefix)?.split(' ').next()?.parse().ok())
}

fn last_commit(lines: &[String]) -> i64 {
    last_value(lines, "commit ").unwrap_or(-1)
}

/// The group's history, in order: each time it is assigned the partition it starts at
/// the last commit acknowledged before the assignment (which fetches the committed offset)
/// or at a later one it attempted: committed offsets survived, and no record was skipped.
/// (An asynchronous commit acknowledged after the assignment may be newer than where it
/// starts: the fetch came first.) Returns how many times it resumed.
fn check_group_history(lines: &[String]) -> usize {
    let (mut acked, mut attempted, mut resumed) = (-1i64, -1i64, 0);
    let mut acked_at_assignment = -1i64;
    for (i, line) in lines.iter().enumerate() {
        let value = |prefix: &str| -> Option<i64> {
            line.strip_prefix(prefix)?.split(' ').next()?.parse().ok()
        };
        if line.starts_with("assigned") {
            acked_at_assignment = acked;
        } else if let Some(offset) = value("attempt ") {
            attempted = attempted.max(offset);
        } else if let Some(offset) = value("commit ") {
            acked = acked.max(offset);
        } else if let Some(start) = value("start ") {
            let first = acked_at_assignment < 0;
            let since = acked_at_assignment;
            assert!(
                (first && start == 0) || (since..=attempted.max(since)).contains(&start),
                "the group resumed at {start}; acknowledged before its assignment {since}, \
                 attempted {attempted} (line {i}): {:?}",
                &lines[i.saturating_sub(12)..=i]
            );
            resumed += usize::from(!first);
        }
    }
    resumed
}

/// A group id whose coordinator is `broker` (asked of the cluster: its coordinator slot).
fn group_coordinated_by(cluster: &LocalCluster, broker: i32) -> String {
    (0..100)
        .map(|n| format!("failover-group-{n}"))
        .find(|g| find_coordinator(cluster.node(broker), g) == Ok(broker))
        .expect("a group id for each broker among 100")
}

#[test]
fn killing_the_leader_again_and_again_loses_no_acknowledged_record() {
    let test = "killing_the_leader_again_and_again_loses_no_acknowledged_record";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let mut cluster = LocalCluster::start_with_config(3, CONFIG);
    cluster.wait_until_formed(3);
    let topic = "failover";
    create_replicated_topic(&cluster, topic);
    cluster.wait_for_partition(topic, REJOIN_WAIT, "a leader", |l, _, isr| {
        l > 0 && isr.len() == 3
    });
    let producer = ScriptProducer::start(&python, None, &cluster.bootstrap(), topic, 0);
    producer.wait_acks(200, FAILOVER_WAIT, &cluster);
    let (first_leader, _, _) = cluster.partition_state(topic).expect("a leader");
    let group = group_coordinated_by(&cluster, first_leader);
    let mut consumer = GroupConsumer::start(&python, &cluster.bootstrap(), topic, &group);
    consumer.wait_commit(100, FAILOVER_WAIT, &cluster);
    let mut failovers = Vec::new();
    let (mut seen_offset, mut coordinator_kills) = (-1i64, 0);
    for trial in 0..trials() {
        let (leader, epoch, _) =
            cluster.wait_for_partition(topic, REJOIN_WAIT, "a full ISR", |l, _, isr| {
                l > 0 && isr.len() == 3
            });
        let acked_before = producer.acks().len();
        let last_offset = producer.acks().iter().map(|a| a.1).max().unwrap_or(-1);
        let coordinator = find_coordinator(cluster.node(leader), &group);
        coordinator_kills += usize::from(coordinator == Ok(leader));
        // Stamped once the process is gone (kill waits for it): a response it sent just
        // before dying is not a failover.
        cluster.node_mut(leader).kill();
        let committed_before = consumer.last_commit();
        let killed_at = wall_ms();
        let deadline = Instant::now() + FAILOVER_WAIT;
        let recovered_at = loop {
            let next = producer
                .acks()
                .into_iter()
                .skip(acked_before)
                .find(|a| a.2 >= killed_at && a.1 > last_offset);
            if let Some(ack) = next {
                break ack.2;
            }
            assert!(
                Instant::now() < deadline,
                "trial {trial}: no produce acknowledged within {FAILOVER_WAIT:?} of killing \
                 leader {leader}\n{}",
                cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let failover_ms = recovered_at - killed_at;
        failovers.push(failover_ms);
        let (new_leader, new_epoch, _) =
            cluster.wait_for_partition(topic, FAILOVER_WAIT, "a new leader", |l, e, _| {
                l > 0 && l != leader && e > epoch
            });
        let (serving, offset) = cluster.settled_coordinator(&group, topic, None, FAILOVER_WAIT);
        assert!(
            offset >= committed_before && offset >= seen_offset,
            "trial {trial}: coordinator {serving} has {offset} committed; acknowledged \
             before the kill: {committed_before}, seen after the last kill: {seen_offset}"
        );
        seen_offset = offset;
        eprintln!(
            "trial {trial}: killed leader {leader} (epoch {epoch}; group coordinator: \
             {coordinator:?}); {new_leader} leads in epoch {new_epoch}; next acknowledged \
             produce after {failover_ms} ms; {serving} serves commit {offset} (acknowledged \
             before the kill: {committed_before}); the group's client: {}",
            consumer.last_status()
        );
        cluster.node_mut(leader).spawn();
    }
    // The last one killed rejoins too (it truncated and caught up).
    cluster.wait_for_partition(topic, REJOIN_WAIT, "a full ISR at the end", |l, _, isr| {
        l > 0 && isr.len() == 3
    });
    // The group goes on after the last kill (it may be between two rebalances right now).
    consumer.wait_commit(seen_offset + 1, FAILOVER_WAIT, &cluster);
    let lines = producer.stop();
    let group_lines = consumer.stop();
    let resumed = check_group_history(&group_lines);
    let final_commit = last_commit(&group_lines);
    let (_, served) = cluster.settled_coordinator(&group, topic, None, FAILOVER_WAIT);
    assert_eq!(
        served, final_commit,
        "the group's last acknowledged commit, served"
    );
    eprintln!(
        "group {group}: resumed {resumed} times, {coordinator_kills} of the kills hit its \
         coordinator, last commit {final_commit}; its client's last {}",
        group_lines
            .iter()
            .rev()
            .find(|l| l.starts_with("status "))
            .map_or("status: none", |l| l.as_str())
    );
    let acks = parse_acks(&lines);
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("err ")).collect();
    assert!(
        errors.is_empty(),
        "{} produce errors, the first: {:?}",
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    check_read_back(&read_back(&python, &cluster.bootstrap(), topic), &acks);
    failovers.sort();
    let median = failovers[failovers.len() / 2];
    eprintln!(
        "failover (kill -> next acknowledged produce) over {} trials: median {median} ms, \
         max {} ms, all {failovers:?}; {} records acknowledged",
        failovers.len(),
        failovers[failovers.len() - 1],
        acks.len()
    );
}

#[test]
fn sigterm_moves_leadership_before_the_broker_stops() {
    let test = "sigterm_moves_leadership_before_the_broker_stops";
    if real_clients_skipped(test) {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let mut cluster = LocalCluster::start_with_config(3, CONFIG);
    cluster.wait_until_formed(3);
    let topic = "controlled";
    create_replicated_topic(&cluster, topic);
    let (leader, epoch, _) =
        cluster.wait_for_partition(topic, REJOIN_WAIT, "a full ISR", |l, _, isr| {
            l > 0 && isr.len() == 3
        });
    let producer = ScriptProducer::start(&python, None, &cluster.bootstrap(), topic, 0);
    producer.wait_acks(200, FAILOVER_WAIT, &cluster);
    let acked_before = producer.acks().len();
    let status = cluster.node_mut(leader).terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "unclean exit: {status:?}"
    );
    // Its log says the quorum moved its leaderships before it stopped.
    let log = cluster
        .node(leader)
        .log_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    assert!(
        log.contains("controlled shutdown: leaderships moved"),
        "no controlled shutdown in node {leader}'s log:\n{log}"
    );
    let (new_leader, new_epoch, _) =
        cluster.wait_for_partition(topic, FAILOVER_WAIT, "a new leader", |l, e, _| {
            l > 0 && l != leader && e > epoch
        });
    producer.wait_acks(acked_before + 200, FAILOVER_WAIT, &cluster);
    let errors = producer.errors();
    assert!(
        errors.is_empty(),
        "{} produce errors, the first: {:?}",
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    cluster.node_mut(leader).spawn();
    cluster.wait_for_partition(
        topic,
        REJOIN_WAIT,
        "the stopped broker back in the ISR",
        |_, _, isr| isr.len() == 3,
    );
    let lines = producer.stop();
    let acks = parse_acks(&lines);
    check_read_back(&read_back(&python, &cluster.bootstrap(), topic), &acks);
    eprintln!("SIGTERM on leader {leader}: {new_leader} leads in epoch {new_epoch}");
}
