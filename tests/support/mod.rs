//! Shared helpers for integration tests: start the real `sluice` binary on free loopback
//! ports with a fresh data directory, and stop it again.
#![allow(dead_code)]

pub mod wire;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to start listening before a test gives up.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the `sluice` binary Cargo built for this test run.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// Ports handed to test brokers come from below Linux's ephemeral range (32768–60999):
/// a client reconnecting to a stopped broker on an ephemeral port can be given that very
/// port as its own source port (a TCP self-connect) and hold it, so the restarted broker
/// could not bind it again.
const TEST_PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

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
}

impl Broker {
    /// Starts a broker with a fresh temporary data directory.
    pub fn start() -> Broker {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Broker {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut broker = Broker {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            data_dir,
            _temp: Some(temp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            log_path: None,
        };
        broker.spawn();
        broker
    }

    /// Starts a broker with a fresh data directory and extra environment variables
    /// (e.g. `NOTIFY_SOCKET`, `WATCHDOG_USEC` for the systemd tests).
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Broker {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut broker = Broker {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            data_dir,
            _temp: Some(temp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_path: None,
        };
        broker.spawn();
        broker
    }

    /// Starts a broker on an existing data directory (for restart tests).
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Broker {
        let mut broker = Broker {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            log_path: None,
        };
        broker.spawn();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// (Re)starts the process on the same ports and data directory.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(sluice_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
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
        let child = cmd.spawn().expect("spawn sluice serve");
        self.child = Some(child);
        self.wait_until_listening();
    }

    fn wait_until_listening(&mut self) {
        let addr: SocketAddr = self.bootstrap().parse().expect("addr");
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("sluice serve exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve did not listen on {addr} within {BROKER_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
        let mut child = self.child.take()?;
        // SAFETY: sending a signal to our own child process by pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sluice did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
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
