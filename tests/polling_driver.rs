//! The broker on compio's polling driver (issue 21): forced with `SLUICE_IO_DRIVER=polling`,
//! real clients (confluent-kafka, kcat) round-trip through it, and a restart on the same
//! data directory serves every record again, from disk (page cache dropped), through the
//! zero-copy fetch. A second test takes io_uring away for real — a
//! seccomp filter makes `io_uring_setup` fail with EPERM, as Docker's default profile does —
//! and checks the broker starts anyway, on polling, after exactly one warning line, and that
//! `SLUICE_IO_DRIVER=io_uring` then refuses to start instead.
//!
//! Python comes from `SLUICE_TEST_PYTHON`, as in `tests/real_clients.rs`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Broker, clients_dir, metric_sample, real_clients_skipped, scrape_metrics};

/// Upper bound on one client script; each needs well under a minute on a healthy broker.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Records produced before the restart and read back after it.
const RESTART_RECORDS: usize = 3000;
/// Value padding: 3000 records of about 1 KB make partitions far larger than the kernel's
/// readahead, so a fetch from the start cannot find its whole region cached.
const RECORD_PADDING_BYTES: usize = 900;
/// Bound on one kcat run.
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);
/// The warning `sluice serve` logs when it falls back to polling.
#[cfg(target_arch = "x86_64")]
const FALLBACK_WARNING: &str = "io_uring is unavailable";

/// `GET path` on the admin listener: (status code, body).
fn admin_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// The driver `/v1/status` reports.
fn status_driver(admin_port: u16) -> String {
    let (code, body) = admin_get(admin_port, "/v1/status");
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    doc["io_driver"].as_str().unwrap_or("<missing>").to_string()
}

/// Waits until `/v1/ready` answers 200: the Kafka port accepts a moment before the broker
/// reports its shards (and their driver) to the admin listener.
fn wait_ready(admin_port: u16) {
    let deadline = Instant::now() + support::BROKER_START_TIMEOUT;
    while admin_get(admin_port, "/v1/ready").0 != 200 {
        assert!(Instant::now() < deadline, "/v1/ready never answered 200");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_runs_on_polling(admin_port: u16) {
    wait_ready(admin_port);
    assert_eq!(status_driver(admin_port), "polling");
    let metrics = scrape_metrics(admin_port);
    assert_eq!(
        metric_sample(&metrics, "sluice_io_driver{driver=\"polling\"}"),
        Some(1.0),
        "the gauge names the polling driver"
    );
    assert_eq!(
        metric_sample(&metrics, "sluice_io_driver{driver=\"io_uring\"}"),
        None
    );
}

/// Runs a client script from tests/clients and fails with its output unless it exits 0
/// having reported passed checks.
fn run_script(program: &Path, args: &[String]) {
    let logs = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout log"))
        .stderr(std::fs::File::create(&err_path).expect("stderr log"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && out.contains("all checks passed"),
        "{args:?} failed or timed out ({status:?}):\n----- stdout -----\n{out}\n----- stderr -----\n{err}"
    );
}

/// kcat with a bound on its run time; returns stdout.
fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("timeout")
        .arg(KCAT_TIMEOUT.as_secs().to_string())
        .arg("kcat")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (apt-get install -y kcat)");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write to kcat");
    }
    let out = child.wait_with_output().expect("wait for kcat");
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drops the page cache of every segment file, so the next fetch reads from disk.
fn drop_segment_pages(data_dir: &Path) {
    use std::os::fd::AsRawFd;
    let mut dropped = 0;
    for entry in std::fs::read_dir(data_dir).expect("data dir").flatten() {
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for file in files.flatten() {
            if file.path().extension().is_some_and(|e| e == "log") {
                let f = std::fs::File::open(file.path()).expect("open segment");
                // SAFETY: advice on a descriptor this function owns; no memory is passed.
                let rc =
                    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
                assert_eq!(rc, 0, "posix_fadvise on {}", file.path().display());
                dropped += 1;
            }
        }
    }
    assert!(dropped > 0, "no segment files under {}", data_dir.display());
}

#[test]
fn forced_polling_driver_serves_real_clients_and_a_restart() {
    if real_clients_skipped("forced_polling_driver_serves_real_clients_and_a_restart") {
        return;
    }
    let python = support::client_python("confluent_kafka, kafka, snappy, lz4, zstandard");
    let mut broker = Broker::start_with_env(&[], &[("SLUICE_IO_DRIVER", "polling")]);
    assert_runs_on_polling(broker.admin_port);
    let bootstrap = broker.bootstrap();

    run_script(
        &python,
        &[
            "confluent_kafka_roundtrip.py".into(),
            "--bootstrap".into(),
            bootstrap.clone(),
        ],
    );
    run_script(
        Path::new("bash"),
        &[
            "kcat_roundtrip.sh".into(),
            "--bootstrap".into(),
            bootstrap.clone(),
            "--sluice".into(),
            support::sluice_bin().display().to_string(),
        ],
    );

    // Produce with kcat, restart cleanly on the same data directory, read back from disk.
    let topic = "polling-restart";
    let (ok, _, err) = support::sluice_cli(
        &bootstrap,
        &["topic", "create", topic, "--partitions", "2"],
        None,
    );
    assert!(ok, "topic create: {err}");
    let lines: String = (0..RESTART_RECORDS)
        .map(|i| {
            format!(
                "key-{i}:value-{i}-{}\n",
                "x".repeat(RECORD_PADDING_BYTES + i % 200)
            )
        })
        .collect();
    kcat(
        &["-P", "-b", &bootstrap, "-t", topic, "-K:", "-X", "acks=all"],
        Some(&lines),
    );
    let status = broker.terminate().expect("the broker was running");
    assert!(status.success(), "clean shutdown on polling: {status}");
    broker.spawn();
    assert_runs_on_polling(broker.admin_port);
    // After start-up (which may read segment tails), so the fetch below must read the disk.
    drop_segment_pages(&broker.data_dir);

    let read = kcat(
        &[
            "-C", "-b", &bootstrap, "-t", topic, "-e", "-q", "-f", "%k:%s\n",
        ],
        None,
    );
    let mut got: Vec<&str> = read.lines().collect();
    let mut want: Vec<&str> = lines.lines().collect();
    assert_eq!(
        got.len(),
        RESTART_RECORDS,
        "every record survives the restart"
    );
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "keys and values read back unchanged");
    // Answers were file regions sent without a copy (from the shard thread, or on a worker
    // when the pages were not all back in cache; `server::file_send`'s unit test drives splice on polling).
    let metrics = scrape_metrics(broker.admin_port);
    let file_sends: f64 = ["cached", "splice"]
        .iter()
        .filter_map(|path| {
            metric_sample(
                &metrics,
                &format!("sluice_fetch_file_sends_total{{path=\"{path}\"}}"),
            )
        })
        .sum();
    assert!(file_sends >= 1.0, "fetch sent file regions: {file_sends}");
}

/// Installs, in the child between fork and exec, a seccomp filter that fails
/// `io_uring_setup` with EPERM and allows every other system call.
#[cfg(target_arch = "x86_64")]
fn refuse_io_uring(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const SYS_IO_URING_SETUP: u32 = 425;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    // Offsets in `struct seccomp_data`: nr at 0, arch at 4.
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    let program = [
        stmt(load, 4),
        jump(jeq, AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, SECCOMP_RET_ALLOW),
        stmt(load, 0),
        jump(jeq, SYS_IO_URING_SETUP, 0, 1),
        stmt(ret, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret, SECCOMP_RET_ALLOW),
    ];
    // SAFETY: only async-signal-safe prctl calls run in the forked child; the filter array
    // lives in this closure, which the child owns until exec.
    unsafe {
        command.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A broker process killed (SIGKILL) when dropped, so a failed assertion leaves none behind.
#[cfg(target_arch = "x86_64")]
struct KillOnDrop(std::process::Child);

#[cfg(target_arch = "x86_64")]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sluice serve` under the filter, logging to `dir/broker.log`.
#[cfg(target_arch = "x86_64")]
fn serve_without_io_uring(
    dir: &Path,
    port: u16,
    admin_port: u16,
    driver: Option<&str>,
) -> KillOnDrop {
    let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
    let mut command = Command::new(support::sluice_bin());
    command
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("SLUICE_IO_DRIVER")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log);
    if let Some(driver) = driver {
        command.env("SLUICE_IO_DRIVER", driver);
    }
    refuse_io_uring(&mut command);
    KillOnDrop(command.spawn().expect("spawn sluice serve"))
}

#[cfg(target_arch = "x86_64")]
#[test]
fn without_io_uring_the_broker_starts_on_polling_after_one_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, admin_port) = (support::free_port(), support::free_port());
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = serve_without_io_uring(dir.path(), port, admin_port, None);
    let child = &mut broker.0;
    let deadline = Instant::now() + support::BROKER_START_TIMEOUT;
    while TcpStream::connect(&bootstrap).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
            panic!("sluice exited ({status}) instead of falling back:\n{log}");
        }
        assert!(Instant::now() < deadline, "no listener on {bootstrap}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_runs_on_polling(admin_port);

    let (ok, _, err) = support::sluice_cli(&bootstrap, &["produce", "fallback"], Some("a\nb\nc\n"));
    assert!(ok, "produce: {err}");
    let (ok, out, err) = support::sluice_cli(
        &bootstrap,
        &[
            "consume",
            "fallback",
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "10000",
        ],
        None,
    );
    assert!(ok, "consume: {err}");
    assert_eq!(out, "a\nb\nc\n");

    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for the broker");
    assert!(status.success(), "clean shutdown: {status}");
    let log = std::fs::read_to_string(dir.path().join("broker.log")).expect("broker log");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(FALLBACK_WARNING))
        .collect();
    assert_eq!(warnings.len(), 1, "exactly one warning line:\n{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("seccomp")
            && warnings[0].contains("polling")
            && warnings[0].contains("throughput"),
        "the warning names the cause and the cost: {}",
        warnings[0]
    );
    assert!(
        log.contains("io_driver=\"polling\""),
        "ready line names the driver:\n{log}"
    );

    // Forced io_uring under the same filter refuses to start, saying why.
    let mut refused = serve_without_io_uring(dir.path(), port, admin_port, Some("io_uring"));
    let status = refused.0.wait().expect("wait for the broker");
    assert!(!status.success(), "io_uring forced must not fall back");
    let log = std::fs::read_to_string(dir.path().join("broker.log")).expect("broker log");
    assert!(log.contains("io_uring"), "the error names io_uring:\n{log}");
    assert!(
        !log.contains(FALLBACK_WARNING),
        "no fallback when forced:\n{log}"
    );
}
