//! Log compaction through the wire (issue 19): a `cleanup.policy=compact` topic with tiny
//! segments and short lags, written with kcat in rounds (N keys × M versions), is cleaned
//! by the broker's own cleaner in the background; kcat and confluent-kafka then read each
//! key's latest value at its original offset and nothing older. Tombstones stay for
//! `delete.retention.ms`, then go. A SIGKILL while a pass is about to swap its cleaned
//! segment in (the `SLUICE_TEST_CLEANER_SWAP_PAUSE_MS` hook holds it there) loses nothing:
//! after a restart readers see a consistent log, and the cleaning completes.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    Broker, client_python, clients_dir, metric_sample, real_clients_skipped, scrape_metrics,
    sluice_cli,
};

const KEYS: usize = 20;
const VERSIONS: usize = 5;
/// Longest wait for the background cleaner to reach the expected state.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);
/// The broker's cleaner and retention checks run often, so a test waits seconds, not minutes.
const BROKER_CONFIG: &str =
    "log_retention_check_interval_ms = 100\n\n[log]\ncleaner_backoff_ms = 100\n";

fn start_broker() -> Broker {
    Broker::start_with_config(BROKER_CONFIG, &[])
}

fn create_compacted_topic(broker: &Broker, topic: &str, extra: &[&str]) {
    let mut args = vec![
        "topic",
        "create",
        topic,
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "segment.bytes=1024",
        "--config",
        "segment.ms=100",
        "--config",
        "min.cleanable.dirty.ratio=0.01",
        "--config",
        "min.compaction.lag.ms=0",
    ];
    for e in extra {
        args.extend(["--config", e]);
    }
    let (ok, out, err) = sluice_cli(&broker.bootstrap(), &args, None);
    assert!(ok, "topic create failed: {out} {err}");
}

/// Produces `lines` ("key:value", an empty value is a tombstone) in one kcat run.
fn kcat_produce(broker: &Broker, topic: &str, lines: &[String]) {
    let mut child = Command::new("kcat")
        .args([
            "-P",
            "-b",
            &broker.bootstrap(),
            "-t",
            topic,
            "-K:",
            "-Z",
            "-p",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed");
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write to kcat");
        }
    }
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat -P: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every record as `offset key value` lines (`<null>` for a tombstone), with kcat.
/// How long a read retries a refused connection (a broker just restarted may still be
/// opening its partitions behind its listen backlog).
const READ_RETRY: Duration = Duration::from_secs(15);

fn kcat_read(broker: &Broker, topic: &str) -> Vec<String> {
    let deadline = Instant::now() + READ_RETRY;
    let out = loop {
        let out = Command::new("kcat")
            .args(["-C", "-b", &broker.bootstrap(), "-t", topic, "-e", "-q"])
            .args(["-f", "%o %k %S %s\\n"])
            .output()
            .expect("kcat");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        out.status.success(),
        "kcat -C: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.diagnostics()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            // %S is the value length, -1 for a null value.
            let mut parts = l.splitn(4, ' ');
            let (o, k, len, v) = (parts.next(), parts.next(), parts.next(), parts.next());
            let value = if len == Some("-1") {
                "<null>"
            } else {
                v.unwrap_or("")
            };
            format!("{} {} {value}", o.unwrap_or(""), k.unwrap_or(""))
        })
        .collect()
}

fn confluent_read(broker: &Broker, topic: &str) -> Vec<String> {
    let python = client_python("confluent_kafka");
    let out = Command::new(python)
        .arg(clients_dir().join("confluent_compacted_read.py"))
        .args([&broker.bootstrap(), topic])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "confluent read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn value(key: usize, version: usize) -> String {
    format!("v{version}-of-key{key}-{}", "x".repeat(30))
}

/// Produces VERSIONS rounds of KEYS keys, one kcat run per round.
fn produce_rounds(broker: &Broker, topic: &str) {
    for v in 0..VERSIONS {
        let lines: Vec<String> = (0..KEYS)
            .map(|k| format!("key{k}:{}", value(k, v)))
            .collect();
        kcat_produce(broker, topic, &lines);
    }
}

/// What a fully compacted log holds: the last round, at its original offsets.
fn compacted_expectation() -> Vec<String> {
    let last = VERSIONS - 1;
    (0..KEYS)
        .map(|k| format!("{} key{k} {}", last * KEYS + k, value(k, last)))
        .collect()
}

fn wait_for(what: &str, broker: &Broker, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} within {CLEAN_TIMEOUT:?}; {}",
            broker.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Offsets strictly increase; for every key the last record read is its newest version.
fn assert_consistent(lines: &[String]) {
    let mut last_offset = -1i64;
    let mut newest = std::collections::HashMap::new();
    for l in lines {
        let mut p = l.splitn(3, ' ');
        let offset: i64 = p.next().unwrap().parse().unwrap();
        assert!(
            offset > last_offset,
            "offsets go backwards or repeat at {l}: {lines:?}"
        );
        last_offset = offset;
        newest.insert(p.next().unwrap().to_string(), p.next().unwrap().to_string());
    }
    for k in 0..KEYS {
        assert_eq!(
            newest.get(&format!("key{k}")),
            Some(&value(k, VERSIONS - 1)),
            "key{k}: {lines:?}"
        );
    }
}

#[test]
fn compaction_keeps_each_keys_latest_value_at_its_offset() {
    if real_clients_skipped("compaction_keeps_each_keys_latest_value_at_its_offset") {
        return;
    }
    let broker = start_broker();
    let topic = "compacted-latest";
    create_compacted_topic(&broker, topic, &[]);
    produce_rounds(&broker, topic);
    // The cleaner may already be at work: what is read is consistent either way.
    assert_consistent(&kcat_read(&broker, topic));
    let expected = compacted_expectation();
    wait_for("the cleaner compacts the topic", &broker, || {
        kcat_read(&broker, topic) == expected
    });
    assert_eq!(
        confluent_read(&broker, topic),
        expected,
        "confluent-kafka reads the same"
    );
    let metrics = scrape_metrics(broker.admin_port);
    let total = |name: &str| -> f64 {
        (0..8)
            .filter_map(|s| metric_sample(&metrics, &format!("{name}{{shard=\"{s}\"}}")))
            .sum()
    };
    assert!(total("sluice_cleaner_passes_total") >= 1.0, "{metrics}");
    assert!(total("sluice_cleaner_reclaimed_bytes_total") > 0.0);
    assert!(total("sluice_cleaner_records_removed_total") >= ((VERSIONS - 1) * KEYS) as f64);
    // Later writes are cleaned too, and the log end never moved back.
    let lines: Vec<String> = (0..KEYS)
        .map(|k| format!("key{k}:{}", value(k, VERSIONS)))
        .collect();
    kcat_produce(&broker, topic, &lines);
    let again: Vec<String> = (0..KEYS)
        .map(|k| format!("{} key{k} {}", VERSIONS * KEYS + k, value(k, VERSIONS)))
        .collect();
    wait_for("a second pass", &broker, || {
        kcat_read(&broker, topic) == again
    });
}

#[test]
fn tombstones_are_kept_for_delete_retention_then_removed() {
    if real_clients_skipped("tombstones_are_kept_for_delete_retention_then_removed") {
        return;
    }
    let broker = start_broker();
    let topic = "compacted-tombstones";
    const DELETE_RETENTION: Duration = Duration::from_secs(6);
    let retention = format!("delete.retention.ms={}", DELETE_RETENTION.as_millis());
    create_compacted_topic(&broker, topic, &[&retention]);
    let written = Instant::now();
    kcat_produce(&broker, topic, &["a:1".into(), "b:1".into()]);
    kcat_produce(&broker, topic, &["a:".into()]);
    let with_tombstone = vec!["1 b 1".to_string(), "2 a <null>".to_string()];
    wait_for(
        "a pass replaces a's value by its tombstone",
        &broker,
        || kcat_read(&broker, topic) == with_tombstone,
    );
    assert!(
        written.elapsed() < DELETE_RETENTION,
        "checked within delete.retention.ms"
    );
    assert_eq!(confluent_read(&broker, topic), with_tombstone);
    std::thread::sleep(DELETE_RETENTION.saturating_sub(written.elapsed()) + Duration::from_secs(1));
    // New data makes the partition dirty again; that pass drops the expired tombstone.
    kcat_produce(&broker, topic, &["c:1".into()]);
    let expected = vec!["1 b 1".to_string(), "3 c 1".to_string()];
    wait_for("the expired tombstone is removed", &broker, || {
        kcat_read(&broker, topic) == expected
    });
}

fn swap_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".swap"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_during_a_cleaner_swap_loses_nothing() {
    if real_clients_skipped("sigkill_during_a_cleaner_swap_loses_nothing") {
        return;
    }
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("sluice.toml");
    std::fs::write(&config, BROKER_CONFIG).expect("write config");
    let config = config.display().to_string();
    let mut broker = Broker::start_with_env(
        &["--config", &config],
        &[("SLUICE_TEST_CLEANER_SWAP_PAUSE_MS", "600000")],
    );
    let topic = "compacted-crash";
    create_compacted_topic(&broker, topic, &[]);
    produce_rounds(&broker, topic);
    let partition_dir = broker.data_dir.join(format!("{topic}-0"));
    wait_for("a pass writes its .swap files", &broker, || {
        !swap_files(&partition_dir).is_empty()
    });
    // Readers meanwhile still see the old, complete segments.
    assert_eq!(kcat_read(&broker, topic).len(), KEYS * VERSIONS);
    broker.kill();
    assert!(!swap_files(&partition_dir).is_empty(), "killed mid-swap");
    broker.extra_env.clear();
    broker.spawn();
    let after_restart = kcat_read(&broker, topic);
    assert_consistent(&after_restart);
    assert!(
        swap_files(&partition_dir).is_empty(),
        "recovery finished the swap"
    );
    let expected = compacted_expectation();
    wait_for("cleaning completes after the restart", &broker, || {
        kcat_read(&broker, topic) == expected
    });
    assert_eq!(confluent_read(&broker, topic), expected);
}

/// Cleaner passes slowed to 128 KiB/s over about 600 KB take about ten seconds (half
/// building the key map, half writing `.cleaned` files), so kills at staggered moments land
/// in both phases.
const SLOW_CLEANER_CONFIG: &str = "log_retention_check_interval_ms = 100\n\n[log]\ncleaner_backoff_ms = 100\ncleaner_io_max_bytes_per_second = 131072\n";
const KILL_ROUNDS: u64 = 6;
const KILL_VERSIONS: usize = 12;
const KILL_VALUE_PAD: usize = 2500;

fn big_value(key: usize, version: usize) -> String {
    format!("v{version}-of-key{key}-{}", "y".repeat(KILL_VALUE_PAD))
}

#[test]
fn repeated_sigkills_during_slow_cleaner_passes_lose_nothing() {
    if real_clients_skipped("repeated_sigkills_during_slow_cleaner_passes_lose_nothing") {
        return;
    }
    let mut broker = Broker::start_with_config(SLOW_CLEANER_CONFIG, &[]);
    let topic = "compacted-kills";
    create_compacted_topic(&broker, topic, &["segment.bytes=65536"]);
    for v in 0..KILL_VERSIONS {
        let lines: Vec<String> = (0..KEYS)
            .map(|k| format!("key{k}:{}", big_value(k, v)))
            .collect();
        kcat_produce(&broker, topic, &lines);
    }
    let latest = |lines: &[String]| {
        let mut newest = std::collections::HashMap::new();
        let mut last_offset = -1i64;
        for l in lines {
            let mut p = l.splitn(3, ' ');
            let offset: i64 = p.next().unwrap().parse().unwrap();
            assert!(offset > last_offset, "offsets increase: {l}");
            last_offset = offset;
            newest.insert(p.next().unwrap().to_string(), p.next().unwrap().to_string());
        }
        for k in 0..KEYS {
            let want = big_value(k, KILL_VERSIONS - 1);
            assert_eq!(
                newest.get(&format!("key{k}")),
                Some(&want),
                "key{k} has its newest value"
            );
        }
    };
    for round in 0..KILL_ROUNDS {
        std::thread::sleep(Duration::from_millis(400 + 1100 * round));
        broker.kill();
        broker.spawn();
        latest(&kcat_read(&broker, topic));
    }
    let last = KILL_VERSIONS - 1;
    let expected: Vec<String> = (0..KEYS)
        .map(|k| format!("{} key{k} {}", last * KEYS + k, big_value(k, last)))
        .collect();
    wait_for("cleaning completes after the kills", &broker, || {
        kcat_read(&broker, topic) == expected
    });
    assert_eq!(confluent_read(&broker, topic), expected);
    let log = std::fs::read_to_string(broker.log_path.as_ref().expect("broker log")).unwrap();
    let started = log.matches("log cleaner pass starting").count();
    let finished = log.matches("log cleaner pass topic").count();
    assert!(
        started > finished,
        "at least one kill landed inside a pass (else this test checked nothing):\n{log}"
    );
}
