//! The CLI's own TLS and SASL client (issue 20): `--security-protocol`, `--sasl-mechanism`,
//! `--sasl-username`, `--sasl-password`, `--ssl-ca-location` and a client certificate
//! (`--ssl-certificate-location` / `--ssl-key-location`) on topic, produce, consume, group,
//! user and acl commands and bench, against a SASL_SSL listener with each mechanism and an
//! SSL listener requiring a client certificate. A wrong password is one line and a failure.
//! Certificates are made per test with the openssl CLI (`support::tls`).

mod support;

use support::tls::Certs;
use support::{Broker, sluice_cli};

const USER: &str = "cli-user";
const PASSWORD: &str = "cli-user-pw";

/// A broker with SSL (client certificates as `client_auth` says) and SASL_SSL listeners
/// after its PLAINTEXT one, with `USER` created through the PLAINTEXT listener.
fn tls_broker(certs: &Certs, client_auth: &str) -> (Broker, String, String) {
    let (broker, ports) =
        Broker::start_with_listeners(&["SSL", "SASL_SSL"], &certs.broker_toml(client_auth));
    let (ok, _, err) = sluice_cli(
        &broker.bootstrap(),
        &["user", "create", USER],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "sluice user create: {err}");
    let ssl = format!("127.0.0.1:{}", ports[0]);
    let sasl_ssl = format!("127.0.0.1:{}", ports[1]);
    (broker, ssl, sasl_ssl)
}

/// Runs `sluice ARGS... --security-protocol SASL_SSL ...` against `bootstrap`.
fn sasl_ssl(
    certs: &Certs,
    bootstrap: &str,
    mechanism: &str,
    password: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let ca = certs.path("ca.pem").display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&[
        "--security-protocol",
        "SASL_SSL",
        "--ssl-ca-location",
        &ca,
        "--sasl-mechanism",
        mechanism,
        "--sasl-username",
        USER,
        "--sasl-password",
        password,
    ]);
    sluice_cli(bootstrap, &all, stdin)
}

#[test]
fn the_cli_speaks_sasl_ssl_with_every_mechanism() {
    let certs = Certs::make();
    let (_broker, _, bootstrap) = tls_broker(&certs, "none");
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
        let topic = format!("cli-{}", mechanism.to_ascii_lowercase());
        let run = |args: &[&str], stdin: Option<&str>| {
            let (ok, out, err) = sasl_ssl(&certs, &bootstrap, mechanism, PASSWORD, args, stdin);
            assert!(ok, "{mechanism} {args:?}: {err}");
            out
        };
        run(&["topic", "create", &topic, "--partitions", "1"], None);
        let listed = run(&["topic", "list"], None);
        assert!(listed.contains(&topic), "{listed}");
        run(&["produce", &topic], Some("one\ntwo\nthree\n"));
        let consumed = run(
            &[
                "consume",
                &topic,
                "--from-beginning",
                "--max-messages",
                "3",
                "--group",
                "cli-group",
            ],
            None,
        );
        assert_eq!(
            consumed.lines().collect::<Vec<_>>(),
            ["one", "two", "three"]
        );
        let groups = run(&["group", "list"], None);
        assert!(groups.contains("cli-group"), "{groups}");
        let users = run(&["user", "list"], None);
        assert!(users.contains(USER), "{users}");
    }
    // bench produces over the same listener (the pipelined producer authenticates too).
    let (ok, out, err) = sasl_ssl(
        &certs,
        &bootstrap,
        "SCRAM-SHA-512",
        PASSWORD,
        &[
            "bench",
            "produce",
            "--topic",
            "cli-bench",
            "--records",
            "2000",
            "--acks",
            "1",
        ],
        None,
    );
    assert!(ok, "bench: {err}");
    assert!(out.contains("2000 records"), "{out}");
}

#[test]
fn a_wrong_password_is_one_line_and_a_failure() {
    let certs = Certs::make();
    let (_broker, _, bootstrap) = tls_broker(&certs, "none");
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let (ok, out, err) = sasl_ssl(
            &certs,
            &bootstrap,
            mechanism,
            "not-the-password",
            &["topic", "list"],
            None,
        );
        assert!(!ok, "{mechanism}: listed with a wrong password: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("authentication"), "{err}");
    }
    // Missing pieces are refused before connecting.
    let (ok, _, err) = sluice_cli(
        &bootstrap,
        &["topic", "list", "--security-protocol", "SASL_SSL"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("--ssl-ca-location"), "{err}");
}

#[test]
fn the_cli_presents_a_client_certificate_for_mutual_tls() {
    let certs = Certs::make();
    let (_broker, ssl, _) = tls_broker(&certs, "required");
    let path = |name: &str| certs.path(name).display().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));
    let (ok, _, err) = sluice_cli(
        &ssl,
        &[
            "topic",
            "create",
            "mtls-topic",
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            &ca,
            "--ssl-certificate-location",
            &cert,
            "--ssl-key-location",
            &key,
        ],
        None,
    );
    assert!(ok, "with a client certificate: {err}");
    // Without one the broker (ssl_client_auth = required) refuses the handshake.
    let (ok, _, err) = sluice_cli(
        &ssl,
        &[
            "topic",
            "list",
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            &ca,
        ],
        None,
    );
    assert!(!ok, "listed without a client certificate");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
