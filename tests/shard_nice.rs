//! `shard_nice` (decision 0031, session 23): the shard threads' nice value, read back from
//! the kernel (field 19 of /proc/PID/task/TID/stat for each `sluice-shard-N` thread).

mod support;

use support::Broker;

/// The nice value in a /proc stat line (the fields after the command's closing parenthesis:
/// state is field 3, nice field 19).
fn nice_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19 - 3)?.parse().ok()
}

#[test]
fn the_shard_threads_run_at_shard_nice_and_the_rest_of_the_process_does_not() {
    // A raised value (lower priority) needs no privilege, so this runs as any user.
    let broker = Broker::start_with_config("shard_nice = 7\n", &["--cores", "2"]);
    let pid = broker.pid().expect("running");
    let shards = support::shard_threads(pid, 2, |dir| {
        nice_of(&std::fs::read_to_string(dir.join("stat")).ok()?)
    });
    assert!(shards.len() >= 2, "{shards:?} {}", broker.diagnostics());
    assert!(
        shards.iter().all(|(_, nice)| *nice == 7),
        "every shard thread at nice 7: {shards:?}"
    );
    // The broker inherits this test's priority (the suite may run under `nice`).
    let ours = std::fs::read_to_string("/proc/self/stat").expect("own stat");
    let main = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    assert_eq!(
        nice_of(&main),
        nice_of(&ours),
        "the main thread keeps its priority"
    );
}

#[test]
fn a_nice_value_out_of_range_is_refused_at_start() {
    let (started, stderr) = support::serve_with_bad_config("shard_nice = -21\n");
    assert!(!started, "shard_nice = -21 must not start");
    assert!(stderr.contains("shard_nice"), "names the key: {stderr}");
}
