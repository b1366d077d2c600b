//! Shared helpers for integration tests: start the real `sluice` binary on free loopback
//! ports with a fresh data directory, and stop it again.
#![allow(dead_code)]

pub mod cluster;
pub mod netns;
pub mod script_producer;
pub mod scripts;
pub mod share;
pub mod share_member;
pub mod tls;
pub mod wire;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where test brokers listen unless they run in a network namespace of their own.
pub const LOOPBACK: &str = "127.0.0.1";

/// How long a broker may take to start listening before a test gives up.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `Broker::spawn` waits for the Kafka port: it listens only once every shard has
/// opened (and after a crash recovered) its partitions, which for a test's tens of
/// thousands of partitions on a loaded box takes far longer than an empty start.
pub const BROKER_LISTEN_TIMEOUT: Duration = Duration::from_secs(300);

/// Path of the `sluice` binary Cargo built for this test run.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// Ports handed to test brokers come from below Linux's ephemeral range (32768–60999):
/// a client reconnecting to a stopped broker on an ephemeral port can be given that very
/// port as its own source port (a TCP self-connect) and hold it, so the restarted broker
/// could not bind it again.
const TEST_PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// What a broker logs when another broker holds (or is starting up on) its address.
const PORT_CLAIMED_BY_ANOTHER_BROKER: &str = "listening on this address or starting up on it";

/// With `SLUICE_TEST_KEEP_DIRS` set, a broker's directory (its data and `broker.log`)
/// outlives the test, its path printed with `label`: a flaky run's broker log can be read
/// afterwards (a reset on a first connect, a node that panicked).
pub fn keep_for_diagnosis(temp: tempfile::TempDir, label: &str) -> Option<tempfile::TempDir> {
    if std::env::var_os("SLUICE_TEST_KEEP_DIRS").is_none() {
        return Some(temp);
    }
    eprintln!("{label} keeps its directory {}", temp.keep().display());
    None
}

/// A loopback port nobody is listening on right now, outside the ephemeral range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread concurrent test processes over the range; walk from a per-process start.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = TEST_PORT_RANGE.end - TEST_PORT_RANGE.start;
    let seed = (std::process::id() as u16).wrapping_mul(7919) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = TEST_PORT_RANGE.start + (seed.wrapping_add(step.wrapping_mul(13))) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORT_RANGE:?}");
}

/// A running broker; killed (SIGKILL) on drop unless stopped first.
pub struct Broker {
    pub child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub data_dir: PathBuf,
    /// Keeps the temporary directory alive while the broker runs.
    _temp: Option<tempfile::TempDir>,
    pub extra_args: Vec<String>,
    /// Environment variables set on the broker process (after NOTIFY_SOCKET is cleared).
    pub extra_env: Vec<(String, String)>,
    /// When set, the next `spawn` appends the broker's stdout and stderr to this file.
    pub log_path: Option<PathBuf>,
    /// When set, the broker process runs with RLIMIT_NOFILE soft = hard = this.
    pub open_file_limit: Option<u64>,
    /// The SASL_PLAINTEXT listener's port, when the config file declares `listeners`
    /// (then `--listen` is not passed: `port` is the PLAINTEXT listener's).
    pub sasl_port: Option<u16>,
    /// The address every listener binds (127.0.0.1 unless the broker runs in a network
    /// namespace of its own, see `netns`).
    pub host: String,
    /// When set, the process runs inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

impl Broker {
    /// Starts a broker with a fresh temporary data directory.
    pub fn start() -> Broker {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Broker {
        Self::start_with_env(extra_args, &[])
    }

    /// Starts a broker with a fresh data directory and extra environment variables
    /// (e.g. `NOTIFY_SOCKET`, `WATCHDOG_USEC` for the systemd tests).
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Broker {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        Self::launch(data_dir, Some(temp), extra_args, env)
    }

    /// Starts a broker with a fresh data directory and a config file holding `toml`
    /// (`--config`, before `extra_args`); the file lives as long as the broker.
    pub fn start_with_config(toml: &str, extra_args: &[&str]) -> Broker {
        let temp = tempfile::tempdir().expect("temp dir");
        let config = temp.path().join("sluice.toml");
        std::fs::write(&config, toml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let config = config.display().to_string();
        let mut args = vec!["--config", config.as_str()];
        args.extend_from_slice(extra_args);
        let data_dir = temp.path().join("data");
        Self::launch(data_dir, Some(temp), &args, &[])
    }

    /// Starts a broker on an existing data directory (for restart tests).
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Broker {
        Self::launch(data_dir.to_path_buf(), None, extra_args, &[])
    }

    fn launch(
        data_dir: PathBuf,
        temp: Option<tempfile::TempDir>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Broker {
        // The broker's own output goes next to its data, so a failing test can show it.
        let log_path = temp.as_ref().map(|t| t.path().join("broker.log"));
        let temp = temp.and_then(|t| keep_for_diagnosis(t, "broker"));
        let mut broker = Broker {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            data_dir,
            _temp: temp,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_path,
            open_file_limit: None,
            sasl_port: None,
            host: LOOPBACK.to_string(),
            netns: None,
        };
        broker.spawn();
        broker
    }

    /// Starts a broker with a PLAINTEXT listener on `port` and a SASL_PLAINTEXT one on
    /// `sasl_port`, declared with `listeners` in a config file that also holds `extra_toml`.
    pub fn start_with_sasl_listener(extra_toml: &str) -> Broker {
        Self::start_with_listeners(&["SASL_PLAINTEXT"], extra_toml).0
    }

    /// Starts a broker with a PLAINTEXT listener on `port` and one listener per name in
    /// `names` (`NAME://127.0.0.1:<port>`, the ports returned in order; the first is also
    /// `sasl_port`), declared in a config file that also holds `extra_toml`.
    pub fn start_with_listeners(names: &[&str], extra_toml: &str) -> (Broker, Vec<u16>) {
        let temp = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
        let sasl_port = ports.first().copied().unwrap_or(port);
        let config = temp.path().join("sluice.toml");
        let mut listeners = format!("PLAINTEXT://127.0.0.1:{port}");
        for (name, p) in names.iter().zip(&ports) {
            listeners.push_str(&format!(",{name}://127.0.0.1:{p}"));
        }
        let toml = format!("listeners = \"{listeners}\"\n{extra_toml}\n");
        std::fs::write(&config, toml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let mut broker = Broker {
            child: None,
            port,
            admin_port: free_port(),
            data_dir: temp.path().join("data"),
            log_path: Some(temp.path().join("broker.log")),
            extra_args: vec!["--config".into(), config.display().to_string()],
            _temp: Some(temp),
            extra_env: Vec::new(),
            open_file_limit: None,
            sasl_port: Some(sasl_port),
            host: LOOPBACK.to_string(),
            netns: None,
        };
        broker.spawn();
        (broker, ports)
    }

    /// `host:port` of the SASL_PLAINTEXT listener (`start_with_sasl_listener`).
    pub fn sasl_bootstrap(&self) -> String {
        format!(
            "127.0.0.1:{}",
            self.sasl_port.expect("a broker with a SASL listener")
        )
    }

    /// Starts a broker with a fresh data directory whose process may hold at most `limit`
    /// open files (soft and hard RLIMIT_NOFILE), on every (re)start.
    pub fn start_with_open_file_limit(limit: u64, extra_args: &[&str]) -> Broker {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut broker = Broker {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            data_dir,
            log_path: Some(temp.path().join("broker.log")),
            _temp: Some(temp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            open_file_limit: Some(limit),
            sasl_port: None,
            host: LOOPBACK.to_string(),
            netns: None,
        };
        broker.spawn();
        broker
    }

    /// The last lines the broker printed (when its output goes to a file), and whether the
    /// process is still running: for failure messages.
    pub fn diagnostics(&self) -> String {
        let log = self
            .log_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let pid = self.pid().map_or("no process".to_string(), |p| {
            // An exited child stays a zombie (state Z) until it is waited for.
            let state = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
                .flatten();
            let alive = matches!(state, Some(c) if c != 'Z' && c != 'X');
            format!("pid {p}, {}", if alive { "running" } else { "exited" })
        });
        format!("broker {pid}; its last output:\n{}", tail.join("\n"))
    }

    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}:{}", self.host, self.admin_port)
    }

    /// (Re)starts the process on the same ports and data directory and waits until its
    /// Kafka port listens. A cluster node listens only once it has caught up with its
    /// metadata quorum: start nodes that need each other with `spawn_unwaited` first.
    pub fn spawn(&mut self) {
        let log_start = self.spawn_unwaited();
        self.wait_until_serving(log_start);
    }

    /// Waits until the process `spawn_unwaited` started (its log from `log_start`) listens;
    /// if another test's broker took its port meanwhile, starts it again on another one.
    pub fn wait_until_serving(&mut self, log_start: usize) {
        if !self.wait_until_listening(log_start) {
            // Another test process's broker claimed the port between `free_port` and this
            // broker's bind (the broker refuses to share a port): take another one.
            self.port = free_port();
            self.spawn();
        }
    }

    /// (Re)starts the process on the same ports and data directory and returns at once,
    /// with where this start's lines begin in its log (for `wait_until_serving`).
    pub fn spawn_unwaited(&mut self) -> usize {
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the broker in place: the child's pid is the broker's.
            Some(namespace) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", namespace]).arg(sluice_bin());
                cmd
            }
            None => Command::new(sluice_bin()),
        };
        cmd.arg("serve").arg("--data-dir").arg(&self.data_dir);
        if self.sasl_port.is_none() {
            cmd.arg("--listen").arg(self.bootstrap());
        }
        cmd.arg("--admin-listen")
            .arg(format!("{}:{}", self.host, self.admin_port))
            .args(&self.extra_args)
            .env_remove("NOTIFY_SOCKET")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(path) = &self.log_path {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open broker log file");
            let log2 = log.try_clone().expect("clone log file");
            cmd.stdout(log).stderr(log2);
        } else if std::env::var_os("SLUICE_TEST_BROKER_LOGS").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        if let Some(limit) = self.open_file_limit {
            use std::os::unix::process::CommandExt;
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // Where this start's lines begin in a log that earlier starts appended to.
        let log_start = self
            .log_path
            .as_ref()
            .and_then(|path| std::fs::metadata(path).ok())
            .map_or(0, |m| m.len() as usize);
        let child = cmd.spawn().expect("spawn sluice serve");
        self.child = Some(child);
        log_start
    }

    /// True once the port accepts; false when the broker stopped because another broker
    /// holds its port (only a `--listen` port is retried: a config file names its own).
    fn wait_until_listening(&mut self, log_start: usize) -> bool {
        let addr: SocketAddr = self.bootstrap().parse().expect("addr");
        let deadline = Instant::now() + BROKER_LISTEN_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = self.log_since(log_start);
                if self.sasl_port.is_none()
                    && self.netns.is_none()
                    && log.contains(PORT_CLAIMED_BY_ANOTHER_BROKER)
                {
                    return false;
                }
                panic!("sluice serve exited before listening: {status}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve did not listen on {addr} within {BROKER_LISTEN_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What this process's start (its log from `log_start`, see `spawn_unwaited`) printed.
    pub fn log_since(&self, log_start: usize) -> String {
        self.log_path
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .map(|bytes| {
                String::from_utf8_lossy(bytes.get(log_start..).unwrap_or(&[])).into_owned()
            })
            .unwrap_or_default()
    }

    /// Waits until this start (its log from `log_start`) has printed `line`.
    pub fn wait_until_logged(&self, log_start: usize, line: &str, within: Duration) {
        wait_until(within, Duration::from_millis(50), || {
            match self.log_since(log_start).contains(line) {
                true => Ok(()),
                false => Err(format!("{line:?} not logged\n{}", self.diagnostics())),
            }
        });
    }

    /// Asserts that the running process refuses connections on its Kafka port for all of
    /// `period` (checked every 100 ms), and is still running at its end.
    pub fn assert_refuses_connections_for(&mut self, period: Duration, why: &str) {
        let addr: SocketAddr = self.bootstrap().parse().expect("addr");
        let until = Instant::now() + period;
        while Instant::now() < until {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                other => panic!(
                    "{why}: a connect to {addr} gave {other:?}\n{}",
                    self.diagnostics()
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        assert!(running, "{why}: the broker exited\n{}", self.diagnostics());
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.terminate_within(Duration::from_secs(30))
    }

    /// SIGTERM and wait up to `timeout` for a clean exit (brokers with many partitions
    /// close each one cleanly, fsyncs included); returns the exit status.
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: sending a signal to our own child process by pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sluice did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `signal`, spelled as `kill` takes it ("-STOP", "-CONT"), to the running broker.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("running").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGSTOP, returning once the kernel shows the process stopped (state `T` in
    /// /proc/PID/stat): a signal is delivered asynchronously, and a process still running
    /// could answer one more message.
    pub fn stop_and_wait(&self) {
        self.signal("-STOP");
        let pid = self.pid().expect("running");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            if state == Some("T") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {pid} not stopped: {stat}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How long a broker may take to name its shard threads after it accepts connections.
const SHARD_THREADS_TIMEOUT: Duration = Duration::from_secs(20);

/// (thread name, `read(its /proc task dir)`) for every `sluice-shard-N` thread of `pid`,
/// sorted, once `want` of them answer `read` (or after `SHARD_THREADS_TIMEOUT` with what
/// there is, for the caller to report).
pub fn shard_threads<T: Ord>(
    pid: u32,
    want: usize,
    read: impl Fn(&Path) -> Option<T>,
) -> Vec<(String, T)> {
    let deadline = Instant::now() + SHARD_THREADS_TIMEOUT;
    loop {
        let mut found = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
            let dir = task.expect("task entry").path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with("sluice-shard-") {
                continue;
            }
            if let Some(value) = read(&dir) {
                found.push((comm.trim().to_string(), value));
            }
        }
        if found.len() >= want || Instant::now() > deadline {
            found.sort();
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `sluice serve` with `config` as its config file on a fresh data dir, for a config
/// the broker must refuse: returns (started anyway, stderr). A broker still running after
/// `REFUSAL_WAIT` accepted the config: it is killed and reported as started, so a broken
/// check fails the test instead of hanging it.
pub fn serve_with_bad_config(config: &str) -> (bool, String) {
    const REFUSAL_WAIT: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, config).expect("write config");
    let stderr_path = dir.path().join("stderr.log");
    let stderr_file = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(sluice_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(stderr_file)
        .spawn()
        .expect("run sluice");
    let deadline = Instant::now() + REFUSAL_WAIT;
    let started = loop {
        match child.try_wait().expect("wait for sluice") {
            Some(status) => break status.success(),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    (started, stderr)
}

/// Runs `sluice <args>` as a client against `bootstrap` and returns (exit ok, stdout, stderr).
pub fn sluice_cli(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(sluice_bin());
    cmd.args(args)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn sluice client");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait sluice client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The broker a test talks to: one started for it, or an external one named by
/// `SLUICE_TEST_BOOTSTRAP=host:port`.
pub struct Target {
    /// The broker this test started (kept alive with the target); None if external.
    pub broker: Option<Broker>,
    pub bootstrap: String,
    pub external: bool,
}

impl Target {
    /// `SLUICE_TEST_BOOTSTRAP` if set, else a fresh broker.
    pub fn from_env_or_start() -> Target {
        match std::env::var("SLUICE_TEST_BOOTSTRAP") {
            Ok(bootstrap) if !bootstrap.is_empty() => Target {
                broker: None,
                bootstrap,
                external: true,
            },
            _ => Self::started(Broker::start()),
        }
    }

    /// A target on a broker this test started.
    pub fn started(broker: Broker) -> Target {
        let bootstrap = broker.bootstrap();
        Target {
            broker: Some(broker),
            bootstrap,
            external: false,
        }
    }

    /// Runs `sluice <args>` against this broker: (exit ok, stdout, stderr).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        sluice_cli(&self.bootstrap, args, stdin)
    }

    /// Runs a `sluice` command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin);
        if !ok {
            let broker = self
                .broker
                .as_ref()
                .map(Broker::diagnostics)
                .unwrap_or_default();
            panic!("sluice {args:?} failed:\nstdout: {out}\nstderr: {err}\n{broker}");
        }
        out
    }
}

/// Where the real-client scripts live (`tests/clients`); they run with it as working dir.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// How to get the tools the real-client tests need, for their failure messages.
pub const CLIENTS_INSTALL_HINT: &str = "run `bash tests/run.sh` (installs everything), or set \
    SLUICE_SKIP_REAL_CLIENTS=1 to skip these tests on purpose";

/// True (after a loud notice) when the runner asked to skip real-client tests with
/// `SLUICE_SKIP_REAL_CLIENTS=1`.
pub fn real_clients_skipped(test: &str) -> bool {
    if std::env::var("SLUICE_SKIP_REAL_CLIENTS").as_deref() == Ok("1") {
        // Written to the stderr handle, not with eprintln!, so the test harness's output
        // capture does not hide it when the (skipped) test "passes".
        use std::io::Write;
        let notice = format!(
            "\n!!! SKIPPED real-client test `{test}`: SLUICE_SKIP_REAL_CLIENTS=1 is set. \
             Nothing was checked. !!!\n"
        );
        let _ = std::io::stderr().write_all(notice.as_bytes());
        return true;
    }
    false
}

/// The Python of the client scripts: `SLUICE_TEST_PYTHON` (set by `tests/run.sh` to its
/// venv), else `<repo>/.venv/bin/python`; fails the test, saying how to get one, unless it
/// imports `modules` (comma-separated, as in an `import` statement).
pub fn client_python(modules: &str) -> PathBuf {
    let python = match std::env::var_os("SLUICE_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
            if !venv.exists() {
                panic!(
                    "SLUICE_TEST_PYTHON is not set and {} does not exist: {CLIENTS_INSTALL_HINT}",
                    venv.display()
                );
            }
            venv
        }
    };
    let probe = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "{} cannot import {modules}: {}\n{CLIENTS_INSTALL_HINT} \
             (pip install -r tests/requirements.txt)",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run Python at {} (set SLUICE_TEST_PYTHON): {e}\n{CLIENTS_INSTALL_HINT}",
            python.display()
        ),
    }
}

/// The `/metrics` text, or "" while the admin listener is not up yet.
pub fn scrape_metrics(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read metrics");
    out
}

/// The value of the sample whose line starts with `series` (name and labels).
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Waits (up to `within`) until all `connections` are open on one shard of a two-shard
/// broker, asserts none is open on or moved to the other, and returns the owner's index with
/// the moves into each shard (`sluice_connections_moved_total`).
pub fn wait_connections_on_one_shard(
    admin_port: u16,
    connections: usize,
    within: Duration,
) -> (usize, [f64; 2]) {
    let deadline = Instant::now() + within;
    let (on_shard, moved) = loop {
        let text = scrape_metrics(admin_port);
        let sample = |name: &str, shard: &str| {
            metric_sample(&text, &format!("{name}{{shard=\"{shard}\"}}")).unwrap_or(-1.0)
        };
        let on_shard = [
            sample("sluice_connections", "0"),
            sample("sluice_connections", "1"),
        ];
        let moved = [
            sample("sluice_connections_moved_total", "0"),
            sample("sluice_connections_moved_total", "1"),
        ];
        if on_shard.contains(&(connections as f64)) || Instant::now() > deadline {
            break (on_shard, moved);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("connections by shard {on_shard:?}, moved in {moved:?}");
    let owner = on_shard
        .iter()
        .position(|&n| n == connections as f64)
        .unwrap_or_else(|| panic!("connections by shard {on_shard:?}: not all on one shard"));
    assert_eq!(
        on_shard[1 - owner],
        0.0,
        "connections by shard {on_shard:?}"
    );
    assert_eq!(moved[1 - owner], 0.0, "moves to the non-owner: {moved:?}");
    (owner, moved)
}

/// Fails with an install hint when `tool` is not on the PATH (a real-client test needs it).
pub fn require_tool(tool: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: apt-get install -y {package}; {CLIENTS_INSTALL_HINT}"
    );
}

/// Polls `check` every `every` until it answers `Ok(())`; once `timeout` has passed, fails
/// the test with its last `Err(message)` (what was seen, and the diagnostics to read).
pub fn wait_until(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        std::thread::sleep(every);
    }
}
