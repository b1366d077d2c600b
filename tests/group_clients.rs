//! Consumer groups with real clients: for confluent-kafka, kafka-python and KafkaJS, start a
//! broker (initial rebalance delay shortened to `INITIAL_DELAY_MS` by a config file) and run
//! `tests/clients/groups_scenarios.py`, which spawns one process per group member (scenarios
//! listed in its docstring; confluent-kafka also runs static membership, cooperative-sticky
//! and KIP-848 `group.protocol=consumer`). When the
//! script prints `@@restart-broker` this test kills the broker (SIGKILL) and starts it again
//! on the same data directory and port, then answers `restarted` on the script's stdin.
//!
//! Owns: the broker's life cycle for those scenarios. Must not: skip silently —
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips with a loud notice, a missing client fails with a hint.
//! The tests run one at a time (a lock): they measure rebalance and session timings, which
//! two concurrent runs on a small machine would blur.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{Broker, CLIENTS_INSTALL_HINT, clients_dir, real_clients_skipped};

/// The broker's `group_initial_rebalance_delay_ms` in these tests (Kafka's default is 3 s).
const INITIAL_DELAY_MS: u64 = 300;
/// Upper bound on one client's whole scenario run (normally 30–60 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
static SERIAL: Mutex<()> = Mutex::new(());

/// The Python with confluent-kafka and kafka-python.
fn python() -> PathBuf {
    support::client_python("confluent_kafka, kafka")
}

fn start_broker() -> Broker {
    Broker::start_with_config(
        &format!("group_initial_rebalance_delay_ms = {INITIAL_DELAY_MS}\n"),
        &[],
    )
}

/// `SLUICE_GROUP_SCENARIOS=a,b` runs only those scenarios (for debugging one of them).
fn scenario_filter() -> Vec<String> {
    match std::env::var("SLUICE_GROUP_SCENARIOS") {
        Ok(list) if !list.is_empty() => vec!["--scenarios".to_string(), list],
        _ => Vec::new(),
    }
}

/// Runs every scenario for `client`, restarting the broker when the script asks.
fn run_scenarios(test: &str, client: &str) {
    if real_clients_skipped(test) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let python = python();
    if client == "kafkajs" {
        let module = clients_dir().join("node_modules/kafkajs/package.json");
        assert!(
            module.exists(),
            "{} is missing: run `npm ci` in tests/clients; {CLIENTS_INSTALL_HINT}",
            module.display()
        );
    }
    let mut broker = start_broker();
    let mut child = Command::new(&python)
        .arg("groups_scenarios.py")
        .args(["--client", client, "--bootstrap", &broker.bootstrap()])
        .args(["--initial-delay-ms", &INITIAL_DELAY_MS.to_string()])
        .args(scenario_filter())
        .current_dir(clients_dir())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start groups_scenarios.py: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let started = Instant::now();
    let mut out = String::new();
    let mut restarts = 0;
    let timed_out = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if line == "@@restart-broker" {
                    broker.kill();
                    broker.spawn();
                    restarts += 1;
                    out.push_str("..   (broker killed and restarted by the test)\n");
                    stdin
                        .write_all(b"restarted\n")
                        .and_then(|_| stdin.flush())
                        .unwrap_or_else(|e| panic!("answer the script: {e}"));
                } else {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                break true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("wait for groups_scenarios.py: {e}"));
    let err = err_thread.join().unwrap_or_default();
    let elapsed = started.elapsed();
    assert!(
        !timed_out,
        "{client} scenarios did not finish within {SCRIPT_TIMEOUT:?}\n{out}\n{err}"
    );
    assert!(
        status.success(),
        "{client} scenarios failed ({status}) after {elapsed:.1?}\n----- stdout -----\n{out}\n----- stderr -----\n{err}"
    );
    let checks = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        checks > 0 && out.contains("all checks passed"),
        "{client} scenarios exited 0 without passing checks:\n{out}\n{err}"
    );
    if scenario_filter().is_empty() {
        assert_eq!(
            restarts, 1,
            "the commit-restart scenario restarts the broker once"
        );
    }
    println!("{client}: {checks} checks passed in {elapsed:.1?}\n{out}");
}

#[test]
fn confluent_kafka_groups_split_rebalance_resume_static_cooperative_kip848() {
    run_scenarios(
        "confluent_kafka_groups_split_rebalance_resume_static_cooperative_kip848",
        "confluent",
    );
}

#[test]
fn kafka_python_groups_split_rebalance_resume() {
    run_scenarios("kafka_python_groups_split_rebalance_resume", "kafka-python");
}

#[test]
fn kafkajs_groups_split_rebalance_resume() {
    run_scenarios("kafkajs_groups_split_rebalance_resume", "kafkajs");
}
