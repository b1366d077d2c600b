//! TLS listeners through the wire (issue 20): a certificate reload on SIGHUP (new handshakes
//! get the new certificate, an open connection keeps being served, an unreadable file keeps
//! the old one), a start-up refusal naming the bad key, the kTLS fallback said in the
//! metrics, and fuzzed handshake input (garbage, a truncated ClientHello, an oversized
//! record, plaintext Kafka) that only ever closes the connection, with bounded memory.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::tls::Certs;
use support::{Broker, clients_dir};

/// How long a test waits for the broker to log or close something.
const WAIT: Duration = Duration::from_secs(30);

fn ssl_broker(certs: &Certs) -> (Broker, u16) {
    let (broker, ports) = Broker::start_with_listeners(&["SSL"], &certs.broker_toml("none"));
    (broker, ports[0])
}

/// The probe script, connected: its stdin and its output lines.
struct Probe {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Probe {
    fn connect(port: u16, certs: &Certs) -> Probe {
        let mut child = Command::new("python3")
            .arg(clients_dir().join("tls_reload_probe.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(certs.path("ca.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        let stdout = child.stdout.take().expect("probe stdout");
        Probe {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) => line,
            other => panic!("probe said nothing: {other:?}"),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_log(broker: &Broker, needle: &str, occurrences: usize) {
    let path = broker.log_path.as_ref().expect("broker log");
    let deadline = Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.matches(needle).count() >= occurrences {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sighup(broker: &Broker) {
    let pid = broker.pid().expect("broker running") as i32;
    // SAFETY: signalling the broker process this test started.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let certs = Certs::make();
    let (broker, port) = ssl_broker(&certs);
    let mut before = Probe::connect(port, &certs);
    assert_eq!(before.line(), "subject localhost");
    assert_eq!(before.line(), "answer 1 ok");

    certs.issue("renewed", "/CN=renewed", "serverAuth", "localhost");
    for (from, to) in [("renewed.pem", "broker.pem"), ("renewed.key", "broker.key")] {
        std::fs::copy(certs.path(from), certs.path(to)).expect("replace certificate");
    }
    sighup(&broker);
    wait_for_log(&broker, "TLS certificates reloaded", 1);

    let mut after = Probe::connect(port, &certs);
    assert_eq!(
        after.line(),
        "subject renewed",
        "new handshakes use the new certificate"
    );
    assert_eq!(after.line(), "answer 1 ok");
    writeln!(before.child.stdin.as_mut().expect("stdin")).expect("probe stdin");
    assert_eq!(
        before.line(),
        "answer 2 ok",
        "the connection made before the reload is still served"
    );

    // An unreadable certificate keeps the current one, and the log says why.
    std::fs::write(certs.path("broker.pem"), "not a certificate").expect("break certificate");
    sighup(&broker);
    wait_for_log(&broker, "TLS certificates not reloaded", 1);
    let mut kept = Probe::connect(port, &certs);
    assert_eq!(kept.line(), "subject renewed");
    assert_eq!(kept.line(), "answer 1 ok");
}

#[test]
fn a_tls_listener_without_a_usable_certificate_is_refused_at_start() {
    let temp = tempfile::tempdir().expect("temp dir");
    let config = temp.path().join("sluice.toml");
    std::fs::write(
        &config,
        "listeners = \"SSL://127.0.0.1:0\"\nssl_certificate_location = \"/nonexistent.pem\"\n\
         ssl_key_location = \"/nonexistent.key\"\n",
    )
    .expect("write config");
    let out = Command::new(support::sluice_bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&config)
        .output()
        .expect("run sluice");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a missing certificate must be refused"
    );
    assert!(err.contains("ssl_certificate_location"), "{err}");
}

#[test]
fn the_ktls_fallback_is_said_in_the_metrics() {
    let certs = Certs::make();
    let (broker, _) = ssl_broker(&certs);
    let metrics = support::scrape_metrics(broker.admin_port);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sluice_tls_ktls_unavailable{"))
        .unwrap_or_else(|| panic!("no sluice_tls_ktls_unavailable in:\n{metrics}"));
    assert!(line.contains("reason=\"") && line.ends_with(" 1"), "{line}");
    wait_for_log(&broker, "kernel TLS is not used", 1);
}

/// Sends `input` on a fresh connection to `port` and waits for the broker to close it.
fn closes_after(port: u16, input: &[u8], what: &str) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let _ = socket.write_all(input);
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    loop {
        match socket.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: not closed after {:?}: {e}", started.elapsed()),
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn fuzzed_handshake_input_only_closes_the_connection() {
    let certs = Certs::make();
    let (broker, port) = ssl_broker(&certs);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for size in [1, 5, 64, 4096, 70_000] {
        closes_after(port, &random(size), &format!("{size} random bytes"));
    }
    // A handshake record header claiming more than TLS allows (2^14 + 2048).
    closes_after(port, &[0x16, 0x03, 0x01, 0xff, 0xff], "an oversized record");
    // A ClientHello record cut short, then the client stops sending: the handshake timeout.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend(random(40));
    closes_after(port, &hello, "a truncated ClientHello");
    // A Kafka request in the clear.
    let api_versions = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0];
    closes_after(port, &api_versions, "plaintext Kafka");
    // Random bytes inside a well-formed record header.
    for _ in 0..20 {
        let body = random(300);
        let mut record = vec![0x16, 0x03, 0x03, 0x01, 0x2c];
        record.extend(body);
        closes_after(port, &record, "a random handshake record");
    }

    // Many clients stalled mid-handshake hold only their fixed buffers.
    let pid = broker.pid().expect("pid");
    let before = rss_kib(pid);
    let stalled: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let _ = s.write_all(&hello);
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "200 stalled handshakes grew the broker by {grown} KiB"
    );
    drop(stalled);
    // Still serving.
    let mut fine = Probe::connect(port, &certs);
    assert_eq!(fine.line(), "subject localhost");
    assert_eq!(fine.line(), "answer 1 ok");
}

/// `sluice bench` over an SSL listener: the CLI's own rustls client produces, then fetches
/// every record back through the broker's copy path (file regions read and encrypted).
#[test]
fn the_bench_produces_and_consumes_over_ssl() {
    let certs = Certs::make();
    let (broker, port) = ssl_broker(&certs);
    let ca = certs.path("ca.pem").display().to_string();
    let bench = |mode: &str| -> serde_json::Value {
        let args = [
            "bench",
            mode,
            "--topic",
            "tls-bench",
            "--records",
            "3000",
            "--record-size",
            "2000",
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            &ca,
            "--json",
        ];
        let (ok, out, err) = support::sluice_cli(&format!("127.0.0.1:{port}"), &args, None);
        assert!(ok, "sluice bench {mode} over SSL: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    };
    let produced = bench("produce");
    assert_eq!(produced["produced"]["records"], 3000, "{produced}");
    let consumed = bench("consume");
    assert_eq!(consumed["consumed"]["records"], 3000, "{consumed}");
    drop(broker);
}
