//! `shard_affinity` (decision 0031): where the shards' threads may run, read back from the
//! kernel (`Cpus_allowed_list` of each `sluice-shard-N` thread in /proc). "core", the
//! default, pins each shard to its own core; "shared" lets every shard run on any core of
//! `cores`, so a shard whose core a kernel thread or another process holds can move.

mod support;

use std::collections::BTreeSet;
use support::Broker;

/// The cores a `Cpus_allowed_list` line names ("0-1,3").
fn parse_cpu_list(text: &str) -> BTreeSet<usize> {
    let mut cpus = BTreeSet::new();
    for item in text.trim().split(',').filter(|s| !s.is_empty()) {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let (a, b): (usize, usize) = (a.parse().expect("cpu id"), b.parse().expect("cpu id"));
        cpus.extend(a..=b);
    }
    cpus
}

/// Each shard thread's name and the cores it may run on, once all `shards` threads exist.
fn shard_threads(pid: u32, shards: usize) -> Vec<(String, BTreeSet<usize>)> {
    support::shard_threads(pid, shards, |dir| {
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        Some(parse_cpu_list(list))
    })
}

/// Two shards on cores 0 and 1, or `None` on a machine with one core (nothing to observe).
fn two_cores() -> Option<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("shard_affinity: skipped, this machine has {cores} core(s)");
        return None;
    }
    Some(())
}

#[test]
fn by_default_each_shard_is_pinned_to_its_own_core() {
    if two_cores().is_none() {
        return;
    }
    let broker = Broker::start_with(&["--cores", "0,1"]);
    let threads = shard_threads(broker.pid().expect("running"), 2);
    assert_eq!(
        threads,
        vec![
            ("sluice-shard-0".to_string(), BTreeSet::from([0])),
            ("sluice-shard-1".to_string(), BTreeSet::from([1])),
        ],
        "{}",
        broker.diagnostics()
    );
}

#[test]
fn shared_affinity_lets_every_shard_run_on_every_configured_core() {
    if two_cores().is_none() {
        return;
    }
    let broker = Broker::start_with_config("shard_affinity = \"shared\"\n", &["--cores", "0,1"]);
    let threads = shard_threads(broker.pid().expect("running"), 2);
    assert_eq!(
        threads,
        vec![
            ("sluice-shard-0".to_string(), BTreeSet::from([0, 1])),
            ("sluice-shard-1".to_string(), BTreeSet::from([0, 1])),
        ],
        "{}",
        broker.diagnostics()
    );
}

#[test]
fn an_unknown_shard_affinity_is_refused_at_start() {
    let (started, stderr) = support::serve_with_bad_config("shard_affinity = \"numa\"\n");
    assert!(!started, "a bad shard_affinity must not start");
    assert!(
        stderr.contains("`core`, `shared`, `unpinned`"),
        "names the accepted values: {stderr}"
    );
}
