//! `sluice cluster local` (issue 17's "one command starts a local 3-node cluster"): the
//! nodes form a cluster, and a SIGTERM to the command (a script or a service manager
//! stopping it, not Ctrl-C at a terminal, which reaches every node itself) stops every node
//! cleanly instead of leaving them running with no parent.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::wire::RawConn;

const WAIT: Duration = Duration::from_secs(60);

fn alive(pid: i32) -> bool {
    // A zombie (exited, not reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

/// SIGKILLs whatever node is still running when the test ends (a failed test must not leave
/// brokers behind).
struct Reaper(Vec<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.0.iter().copied().filter(|p| alive(*p)) {
            // SAFETY: kill(2) with SIGKILL on a pid this test's command printed.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Starts `sluice cluster local --nodes 3 --cores 1` and waits until every node answers
/// Metadata with three brokers. Returns the command, the nodes' pids and the reaper that
/// kills whatever is left when the test ends.
fn start_local_cluster(dir: &std::path::Path) -> (std::process::Child, Vec<i32>, Reaper) {
    // The nodes use base, base+100 and base+200 onwards.
    let base = support::free_port().min(u16::MAX - 300);
    let mut command = Command::new(support::sluice_bin())
        .args(["cluster", "local", "--nodes", "3", "--cores", "1"])
        .args(["--base-port", &base.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sluice cluster local");
    let stdout = command.stdout.take().expect("stdout");
    let mut pids = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the command's output");
        // "node 1 (pid 1234): kafka 127.0.0.1:..., log ..."
        if let Some(rest) = line.split("(pid ").nth(1)
            && let Some(pid) = rest.split(')').next().and_then(|p| p.parse::<i32>().ok())
        {
            pids.push(pid);
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let reaper = Reaper(pids.iter().copied().chain([command.id() as i32]).collect());
    assert_eq!(pids.len(), 3, "three nodes announced: {pids:?}");
    // Every node answers Metadata with three brokers: the cluster formed.
    let bootstrap: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    support::wait_until(WAIT, Duration::from_millis(200), || {
        let counts: Vec<usize> = bootstrap
            .iter()
            .map(|b| {
                RawConn::connect(b)
                    .and_then(|mut c| {
                        c.try_call(&kafka_protocol::messages::MetadataRequest::default(), 12)
                    })
                    .map(|m| m.brokers.len())
                    .unwrap_or(0)
            })
            .collect();
        if counts.iter().all(|c| *c == 3) {
            Ok(())
        } else {
            Err(format!("brokers seen by each node: {counts:?}"))
        }
    });
    (command, pids, reaper)
}

/// `Cpus_allowed_list` of a process (tid = pid) or of one of its threads.
fn cpus_allowed(pid: i32, tid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .expect("read a thread's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .expect("Cpus_allowed_list in /proc status")
}

/// The thread ids of a process whose name starts with `prefix`.
fn threads_named(pid: i32, prefix: &str) -> Vec<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list a node's threads");
    tasks
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|comm| comm.starts_with(prefix))
        })
        .collect()
}

#[test]
fn a_local_clusters_nodes_leave_their_shards_to_the_kernel() {
    // Pinned, every node's only shard went to core 0 (`--cores 1` is cores 0..1): three
    // brokers queued on one core while the other idled (decision 0012, session 22).
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut command, pids, _reaper) = start_local_cluster(dir.path());
    for pid in &pids {
        let process = cpus_allowed(*pid, *pid);
        let shards = threads_named(*pid, "sluice-shard-");
        assert_eq!(shards.len(), 1, "node {pid} runs one shard: {shards:?}");
        assert_eq!(
            cpus_allowed(*pid, shards[0]),
            process,
            "node {pid}'s shard may run on every core the node may"
        );
    }
    let _ = command.kill();
    let _ = command.wait();
}

#[test]
fn a_sigterm_to_the_command_stops_every_node_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut command, pids, _reaper) = start_local_cluster(dir.path());

    // SAFETY: kill(2) on the child's pid with SIGTERM.
    unsafe {
        libc::kill(command.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = command.try_wait().expect("wait for the command") {
            break status;
        }
        assert!(Instant::now() < deadline, "the command did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "every node stopped cleanly: {status}");
    let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "nodes still running: {left:?}");
    for node in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("node-{node}/sluice.log")))
            .unwrap_or_default();
        assert!(
            log.contains("stopped cleanly"),
            "node {node} did not shut down cleanly:\n{log}"
        );
    }
}
