//! Crash test of the partition log: a child process (this test binary, re-executed) appends
//! with durable acks and prints every acknowledged batch; the parent SIGKILLs it at a random
//! moment, reopens the log and checks that every acknowledged batch is present, intact and
//! readable. Several trials by default; many more with SLUICE_LONG_TESTS=1.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice::config::LogConfig;
use sluice::storage::batch::build_test_batch;
use sluice::storage::{PartitionLog, validate_batches};

const CHILD_DIR_ENV: &str = "SLUICE_CRASH_CHILD_DIR";
const TRIALS_DEFAULT: usize = 4;
const TRIALS_LONG: usize = 40;
/// Concurrent appenders in the child, so acks are group-committed.
const CHILD_APPENDERS: usize = 4;
/// Upper bound on how long a child runs before being killed.
const KILL_AFTER_MS_MAX: u64 = 600;
/// How long the parent waits for the child's first ack.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);

fn crash_config() -> LogConfig {
    LogConfig {
        // Small segments so kills land around rolls too.
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// The child: appends durably forever, printing `ACK <base> <last>` after each ack.
#[test]
#[ignore = "run by crash_test_acknowledged_batches_survive_sigkill as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let rt = compio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let log = PartitionLog::open(Path::new(&dir), "crash", 0, crash_config())
            .await
            .expect("open");
        let tasks: Vec<_> = (0..CHILD_APPENDERS)
            .map(|worker| {
                let log = Rc::clone(&log);
                compio::runtime::spawn(async move {
                    let mut i: usize = 0;
                    loop {
                        i += 1;
                        let count = 1 + ((i + worker) % 7) as i32;
                        let value_len = 10 + (i * 37 + worker * 101) % 900;
                        let b = build_test_batch(count, value_len, i as i64, None);
                        let out = log
                            .append(BytesMut::from(&b[..]), true, 0)
                            .await
                            .expect("append");
                        println!("ACK {} {}", out.base_offset, out.last_offset);
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

fn trials() -> usize {
    if std::env::var("SLUICE_LONG_TESTS").is_ok_and(|v| v == "1") {
        TRIALS_LONG
    } else {
        TRIALS_DEFAULT
    }
}

/// Runs one child until a random kill; returns the acknowledged (base, last) offsets.
fn run_child_and_kill(dir: &Path) -> Vec<(i64, i64)> {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel::<(i64, i64)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let base: i64 = parts.next().and_then(|p| p.parse().ok()).expect("base");
            let last: i64 = parts.next().and_then(|p| p.parse().ok()).expect("last");
            if tx.send((base, last)).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let first = rx
        .recv_timeout(FIRST_ACK_TIMEOUT)
        .expect("child acknowledged nothing");
    acked.push(first);
    let kill_after = Duration::from_millis(rand::random_range(1..KILL_AFTER_MS_MAX));
    let started = Instant::now();
    while started.elapsed() < kill_after {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(5)) {
            acked.push(a);
        }
    }
    child.kill().expect("SIGKILL child");
    let _ = child.wait();
    reader.join().expect("reader thread");
    // Acks printed before the kill but read after it still count.
    acked.extend(rx.try_iter());
    acked
}

#[test]
fn crash_test_acknowledged_batches_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all_acked: Vec<(i64, i64)> = Vec::new();
    for trial in 0..trials() {
        let acked = run_child_and_kill(dir.path());
        assert!(!acked.is_empty());
        all_acked.extend(acked);
        let rt = compio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let log = PartitionLog::open(dir.path(), "crash", 0, crash_config())
                .await
                .unwrap_or_else(|e| panic!("trial {trial}: reopen failed: {e}"));
            // Read every batch back, CRC-checked.
            let mut batches = std::collections::HashMap::new();
            let mut offset = log.log_start_offset();
            let mut next_expected = offset;
            while offset < log.written_end_offset() {
                let slice = log.read(offset, 1 << 20).await.expect("read");
                for r in &slice.regions {
                    let bytes = r.read_to_vec().await.expect("region");
                    for b in validate_batches(&bytes).expect("intact batches") {
                        assert_eq!(b.header.base_offset, next_expected, "gap-free");
                        next_expected = b.header.last_offset() + 1;
                        batches.insert(b.header.base_offset, b.header.last_offset());
                        offset = next_expected;
                    }
                }
            }
            for &(base, last) in &all_acked {
                assert_eq!(
                    batches.get(&base),
                    Some(&last),
                    "trial {trial}: acknowledged batch {base}..={last} lost (log end {})",
                    log.log_end_offset()
                );
            }
            eprintln!(
                "trial {trial}: {} acked so far, log end {}, {} segments",
                all_acked.len(),
                log.log_end_offset(),
                log.segment_count()
            );
        });
    }
}
