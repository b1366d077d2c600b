//! The failover scripts' confluent-kafka producer and reader (tests/clients/cluster_failover.py)
//! driven from a test: an idempotent acks=all producer whose acknowledgements the test
//! collects as they come, optionally run inside a network namespace, and a read-back of a
//! partition from its start to its high watermark.

use super::clients_dir;
use super::cluster::LocalCluster;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The newest stderr lines a script keeps (a Python traceback, librdkafka's complaints).
const MAX_STDERR_LINES: usize = 40;

/// A client script driven line by line: its output lines collected by a reader thread, a
/// `stop` line on its stdin ends it, and it prints `done` when it has finished. Its last
/// stderr lines are kept too, so a script that died says why.
pub struct ScriptProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl ScriptProcess {
    /// Starts `command` (run in tests/clients) with piped stdin and stdout.
    pub fn start(mut command: Command) -> ScriptProcess {
        let mut child = command
            .current_dir(clients_dir())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client script");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("script stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut kept = sink.lock().unwrap();
                    if kept.len() == MAX_STDERR_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        ScriptProcess {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// Whether the script still runs (or how it ended), with its last stderr lines: a
    /// script that stopped printing may have died rather than be waiting.
    pub fn liveness(&mut self) -> String {
        let state = match self.child.try_wait() {
            Ok(None) => "running".to_string(),
            Ok(Some(status)) => format!("exited: {status}"),
            Err(e) => format!("unknown: {e}"),
        };
        let stderr: Vec<String> = self.stderr.lock().unwrap().iter().cloned().collect();
        format!("script {state}; its last stderr lines: {stderr:#?}")
    }

    /// The output lines so far.
    pub fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap()
    }

    /// Asks the script to stop and waits for its `done`, at most `within`; every line.
    pub fn stop(mut self, within: Duration) -> Vec<String> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = Instant::now() + within;
        while !self.lines().iter().any(|l| l.starts_with("done")) {
            assert!(Instant::now() < deadline, "the script did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
        self.lines().clone()
    }
}

impl Drop for ScriptProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The producer script; its `ack VALUE OFFSET WALL_MS` lines collected as they come.
pub struct ScriptProducer {
    script: ScriptProcess,
}

impl ScriptProducer {
    /// Starts producing `first`, `first + 1`, ... to partition 0 of `topic` through
    /// `bootstrap`, inside `namespace` when given.
    pub fn start(
        python: &Path,
        namespace: Option<&str>,
        bootstrap: &str,
        topic: &str,
        first: u64,
    ) -> ScriptProducer {
        let mut command = match namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(python);
                c
            }
            None => Command::new(python),
        };
        command
            .args(["cluster_failover.py", "produce", "--bootstrap", bootstrap])
            .args(["--topic", topic, "--first", &first.to_string()]);
        ScriptProducer {
            script: ScriptProcess::start(command),
        }
    }

    /// Acknowledgements so far: (value, offset, wall ms).
    pub fn acks(&self) -> Vec<(u64, i64, i64)> {
        parse_acks(&self.script.lines())
    }

    pub fn wait_acks(&self, count: usize, within: Duration, cluster: &LocalCluster) {
        let deadline = Instant::now() + within;
        while self.acks().len() < count {
            assert!(
                Instant::now() < deadline,
                "{} acks of {count} within {within:?}\n{}",
                self.acks().len(),
                cluster.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `err VALUE ERROR` lines: deliveries the client gave up on.
    pub fn errors(&self) -> Vec<String> {
        let lines = self.script.lines();
        lines
            .iter()
            .filter(|l| l.starts_with("err "))
            .cloned()
            .collect()
    }

    /// Stops producing and waits for the flush (bounded by the script's message timeout).
    pub fn stop(self) -> Vec<String> {
        self.script.stop(Duration::from_secs(180))
    }
}

/// The script's `ack VALUE OFFSET WALL_MS` lines, as (value, offset, wall ms).
pub fn parse_acks(lines: &[String]) -> Vec<(u64, i64, i64)> {
    lines
        .iter()
        .filter_map(|l| {
            let mut f = l.strip_prefix("ack ")?.split(' ');
            Some((
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// What a read-back must show after any failure: offsets gap-free from 0, no value stored
/// twice, and every acknowledged (value, offset) at exactly its offset.
pub fn check_read_back(records: &[(i64, u64)], acks: &[(u64, i64, i64)]) {
    for (i, (offset, _)) in records.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are not gap-free at {i}");
    }
    let mut values: Vec<u64> = records.iter().map(|r| r.1).collect();
    values.sort();
    let stored = values.len();
    values.dedup();
    assert_eq!(values.len(), stored, "a record was stored twice");
    for (value, offset, _) in acks {
        let found = records.get(*offset as usize).map(|r| r.1);
        assert_eq!(
            found,
            Some(*value),
            "acknowledged record {value} at offset {offset} lost (read back: {found:?})"
        );
    }
}

/// Reads the partition back through `bootstrap`: (offset, value) in offset order.
pub fn read_back(python: &Path, bootstrap: &str, topic: &str) -> Vec<(i64, u64)> {
    let output = Command::new(python)
        .args(["cluster_failover.py", "verify", "--bootstrap", bootstrap])
        .args(["--topic", topic])
        .current_dir(clients_dir())
        .output()
        .expect("run the verify script");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut records: Vec<(i64, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("rec ")?.split(' ');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    records.sort();
    assert!(!records.is_empty(), "nothing read back: {text}");
    records
}
