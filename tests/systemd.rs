//! systemd packaging: the unit file verifies, the example config matches the config types,
//! and `sluice serve` speaks the notify protocol (READY, WATCHDOG, STOPPING).

mod support;

use sluice::config::BrokerConfig;
use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};
use support::Broker;

const UNIT: &str = include_str!("../systemd/sluice.service");
const EXAMPLE_CONFIG: &str = include_str!("../systemd/sluice.toml");
const SYSUSERS: &str = include_str!("../systemd/sluice.sysusers");

fn systemd_analyze() -> &'static str {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "systemd-analyze is not installed; it is needed to verify systemd/sluice.service \
         (run `apt-get install systemd`)"
    );
    "systemd-analyze"
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let tool = systemd_analyze();
    let bin = env!("CARGO_BIN_EXE_sluice");
    assert!(
        UNIT.contains("\nExecStart=/usr/bin/sluice serve --config /etc/sluice/sluice.toml\n"),
        "unit's ExecStart changed; update this test"
    );
    // verify checks that ExecStart exists, so point it at the binary Cargo built.
    let unit = UNIT.replace("ExecStart=/usr/bin/sluice ", &format!("ExecStart={bin} "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(tool)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify failed:\n{stdout}{stderr}");
    // verify exits 0 on settings it ignores ("Failed to parse ..., ignoring"): any complaint
    // about our unit is a failure.
    let complaints: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("sluice.service"))
        .collect();
    assert!(
        complaints.is_empty(),
        "verify complained:\n{}",
        complaints.join("\n")
    );
}

#[test]
fn unit_file_has_the_required_settings() {
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=10s",
        "Restart=on-failure",
        "LimitNOFILE=1048576",
        "User=sluice",
        "StateDirectory=sluice",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/sluice",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "missing `{line}`");
    }
    assert!(SYSUSERS.contains("u sluice - \"Sluice broker\" /var/lib/sluice"));
}

/// The field names serde expects, read from the "expected one of" list of an unknown-key error.
fn expected_fields(toml_with_unknown_key: &str) -> BTreeSet<String> {
    let err = BrokerConfig::from_toml(toml_with_unknown_key).unwrap_err();
    let list = err
        .split_once("expected one of")
        .unwrap_or_else(|| panic!("unexpected error format: {err}"))
        .1;
    list.split(',')
        .map(|f| f.trim().trim_matches('`').to_string())
        .filter(|f| !f.is_empty())
        .collect()
}

fn keys_of(table: &toml::Table) -> BTreeSet<String> {
    table.keys().cloned().collect()
}

#[test]
fn example_config_lists_every_key_with_its_default() {
    let parsed = BrokerConfig::from_toml(EXAMPLE_CONFIG).expect("example config parses");
    parsed.validate().expect("example config validates");

    let table: toml::Table = toml::from_str(EXAMPLE_CONFIG).unwrap();
    let mut top = keys_of(&table);
    // The commented-out keys: optional with no default value.
    for optional in [
        "advertised_listener",
        "listeners",
        "advertised_listeners",
        "listener_security_protocol_map",
        "controller_quorum_voters",
        "controller_listen",
        "ssl_certificate_location",
        "ssl_key_location",
        "ssl_truststore_location",
        "inter_broker_listener_name",
        "inter_broker_ssl_ca_file",
        "inter_broker_ssl_certificate_location",
        "inter_broker_ssl_key_location",
        "inter_broker_sasl_mechanism",
        "inter_broker_sasl_username",
        "inter_broker_sasl_password",
        "upgrade_test_max_metadata_format_level",
    ] {
        top.insert(optional.to_string());
        assert!(
            EXAMPLE_CONFIG.contains(&format!("# {optional} = ")),
            "{optional}"
        );
    }
    assert_eq!(top, expected_fields("zz_unknown = 1"), "top-level keys");
    let log = table["log"].as_table().expect("[log] table");
    assert_eq!(
        keys_of(log),
        expected_fields("[log]\nzz_unknown = 1"),
        "[log] keys"
    );

    // Every value is the embedded default, except data_dir (the service's state directory).
    let expected = BrokerConfig {
        data_dir: "/var/lib/sluice".into(),
        ..BrokerConfig::default()
    };
    assert_eq!(format!("{parsed:?}"), format!("{expected:?}"));
}

fn recv_messages(
    sock: &UnixDatagram,
    until: Instant,
    mut stop: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match sock.recv(&mut buf) {
            Ok(n) => {
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    seen.push(line.to_string());
                    if stop(line) {
                        return seen;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("notify socket recv: {e}"),
        }
    }
    seen
}

#[test]
fn serve_sends_ready_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let socket_str = socket_path.to_str().unwrap().to_string();
    let mut broker = Broker::start_with_env(
        &[],
        &[("NOTIFY_SOCKET", &socket_str), ("WATCHDOG_USEC", "1000000")],
    );

    let seen = recv_messages(&sock, Instant::now() + Duration::from_secs(30), |l| {
        l == "READY=1"
    });
    assert!(
        seen.iter().any(|l| l == "READY=1"),
        "no READY=1; got {seen:?}"
    );

    // With a 1 s watchdog the broker pings every 0.5 s while its shards make progress.
    let mut pings = 0;
    let seen = recv_messages(&sock, Instant::now() + Duration::from_secs(15), |l| {
        if l == "WATCHDOG=1" {
            pings += 1;
        }
        pings >= 3
    });
    assert!(pings >= 3, "expected WATCHDOG=1 pings; got {seen:?}");

    let status = broker.terminate().expect("broker was running");
    assert!(status.success(), "clean exit after SIGTERM, got {status}");
    let seen = recv_messages(&sock, Instant::now() + Duration::from_secs(5), |l| {
        l == "STOPPING=1"
    });
    assert!(
        seen.iter().any(|l| l == "STOPPING=1"),
        "no STOPPING=1; got {seen:?}"
    );
}
