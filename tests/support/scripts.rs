//! Runs one real-client script from `tests/clients/` to completion and fails with its whole
//! output unless it exits 0 having reported passed checks (`ok ...` lines and "all checks
//! passed"). Shared by `real_clients.rs` and `real_clients_txn.rs`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::clients_dir;

/// Upper bound on one client script; each needs well under a minute on a healthy broker.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs one client script to completion (or SCRIPT_TIMEOUT) and fails with its full output
/// unless it exits 0.
pub fn run_script(name: &str, program: &Path, args: &[String]) {
    let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let out_path = logs.path().join("stdout");
    let err_path = logs.path().join("stderr");
    let stdout = File::create(&out_path).unwrap_or_else(|e| panic!("create stdout log: {e}"));
    let stderr = File::create(&err_path).unwrap_or_else(|e| panic!("create stderr log: {e}"));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} for {name}: {e}", program.display()));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("waiting for {name}: {e}"),
        }
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let elapsed = started.elapsed();
    match status {
        Some(s) if s.success() => {
            let checks = out.lines().filter(|l| l.starts_with("ok ")).count();
            println!("{name}: passed {checks} checks in {elapsed:.1?}");
            assert!(
                checks > 0 && out.contains("all checks passed"),
                "{name} exited 0 but reported no passed checks:\n{out}\n{err}"
            );
        }
        Some(s) => panic!(
            "{name} failed ({s}) after {elapsed:.1?}\n----- stdout -----\n{out}\n----- stderr -----\n{err}"
        ),
        None => panic!(
            "{name} did not finish within {SCRIPT_TIMEOUT:?}\n----- stdout -----\n{out}\n----- stderr -----\n{err}"
        ),
    }
}
