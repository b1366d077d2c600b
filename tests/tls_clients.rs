//! Real clients on TLS listeners (issue 20): confluent-kafka over SASL_SSL with SCRAM-SHA-512,
//! kafka-python with PLAIN over SASL_SSL and KafkaJS with SCRAM-SHA-256 over SASL_SSL each
//! produce, consume through a group, commit, and see a wrong password refused; kcat with a
//! client certificate (mutual TLS) is its certificate's principal to the ACL authorizer, and
//! without one is `User:ANONYMOUS` and refused. Certificates are made per test with the
//! openssl CLI (`support::tls`).
//!
//! Python comes from `SLUICE_TEST_PYTHON`; `SLUICE_SKIP_REAL_CLIENTS=1` skips loudly.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::scripts::run_script;
use support::tls::Certs;
use support::{Broker, clients_dir, real_clients_skipped};

/// Bound on one kcat run.
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker with SSL (client certificates requested) and SASL_SSL listeners after its
/// PLAINTEXT one, and `user` / `password` created through the CLI when given.
fn tls_broker(certs: &Certs, extra_toml: &str, user: Option<(&str, &str)>) -> (Broker, u16, u16) {
    let toml = format!("{}\n{extra_toml}", certs.broker_toml("requested"));
    let (broker, ports) = Broker::start_with_listeners(&["SSL", "SASL_SSL"], &toml);
    if let Some((user, password)) = user {
        let (ok, _, err) = support::sluice_cli(
            &broker.bootstrap(),
            &["user", "create", user],
            Some(&format!("{password}\n")),
        );
        assert!(ok, "sluice user create: {err}");
    }
    (broker, ports[0], ports[1])
}

fn sasl_ssl_script(test: &str, program: &Path, script: &str, user: &str, password: &str) {
    let certs = Certs::make();
    let (broker, _, sasl_ssl_port) = tls_broker(&certs, "", Some((user, password)));
    let args = vec![
        clients_dir().join(script).display().to_string(),
        "--bootstrap".into(),
        format!("127.0.0.1:{sasl_ssl_port}"),
        "--user".into(),
        user.into(),
        "--password".into(),
        password.into(),
        "--ssl-ca".into(),
        certs.path("ca.pem").display().to_string(),
    ];
    run_script(test, program, &args);
    drop(broker);
}

#[test]
fn confluent_kafka_over_sasl_ssl_with_scram_sha_512() {
    if real_clients_skipped("confluent_kafka_over_sasl_ssl_with_scram_sha_512") {
        return;
    }
    let python = support::client_python("confluent_kafka");
    sasl_ssl_script(
        "sasl_confluent.py",
        &python,
        "sasl_confluent.py",
        "tls-confluent",
        "tls-confluent-pw",
    );
}

#[test]
fn kafka_python_over_sasl_ssl_with_plain() {
    if real_clients_skipped("kafka_python_over_sasl_ssl_with_plain") {
        return;
    }
    let python = support::client_python("kafka");
    sasl_ssl_script(
        "sasl_kafka_python.py",
        &python,
        "sasl_kafka_python.py",
        "tls-kp",
        "tls-kp-pw",
    );
}

#[test]
fn kafkajs_over_sasl_ssl_with_scram_sha_256() {
    if real_clients_skipped("kafkajs_over_sasl_ssl_with_scram_sha_256") {
        return;
    }
    sasl_ssl_script(
        "sasl_kafkajs.js",
        Path::new("node"),
        "sasl_kafkajs.js",
        "tls-js",
        "tls-js-pw",
    );
}

/// Runs kcat with `args`, `input` on stdin; (success, stdout, stderr).
fn kcat(args: &[String], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kcat: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("kcat stdin");
    }
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(KCAT_TIMEOUT);
        // SAFETY: signalling our own child by pid; harmless if it already exited.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().expect("kcat output");
    drop(watchdog);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kcat's connection options for the SSL listener, with the client certificate or without.
fn kcat_ssl(port: u16, certs: &Certs, with_certificate: bool) -> Vec<String> {
    let mut args = vec![
        "-b".to_string(),
        format!("127.0.0.1:{port}"),
        "-X".into(),
        "security.protocol=SSL".into(),
        "-X".into(),
        format!("ssl.ca.location={}", certs.path("ca.pem").display()),
    ];
    if with_certificate {
        args.extend([
            "-X".into(),
            format!(
                "ssl.certificate.location={}",
                certs.path("client.pem").display()
            ),
            "-X".into(),
            format!("ssl.key.location={}", certs.path("client.key").display()),
        ]);
    }
    args
}

fn lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("m{i}\n")).collect()
}

#[test]
fn kcat_with_a_client_certificate_is_its_subject_to_the_authorizer() {
    if real_clients_skipped("kcat_with_a_client_certificate_is_its_subject_to_the_authorizer") {
        return;
    }
    let certs = Certs::make();
    let (broker, ssl_port, _) = tls_broker(
        &certs,
        "authorizer = \"standard\"\nallow_everyone_if_no_acl_found = true\n",
        None,
    );
    let topic = "mtls-orders";
    let group = "mtls-group";
    let cli = |args: &[&str]| {
        let (ok, out, err) = support::sluice_cli(&broker.bootstrap(), args, None);
        assert!(ok, "sluice {args:?}: {out}{err}");
    };
    cli(&["topic", "create", topic, "--partitions", "1"]);
    // Kafka's DEFAULT mapping: the subject DN as Java's X500Principal prints it (RFC 2253,
    // most specific RDN first).
    let principal = format!("User:{}", support::tls::CLIENT_DN);
    cli(&[
        "acl",
        "add",
        "--principal",
        &principal,
        "--operation",
        "all",
        "--topic",
        topic,
    ]);
    cli(&[
        "acl",
        "add",
        "--principal",
        &principal,
        "--operation",
        "all",
        "--group",
        group,
    ]);

    let with_cert = kcat_ssl(ssl_port, &certs, true);
    let produce = |args: &[String], input: &str| {
        let mut all = args.to_vec();
        all.extend(["-P", "-t", topic].map(String::from));
        kcat(&all, input)
    };
    let (ok, out, err) = produce(&with_cert, &lines(0, 20));
    assert!(ok, "kcat with its certificate produces: {out}{err}");

    let consume = |count: usize| {
        let mut all = with_cert.clone();
        all.extend(
            [
                "-G",
                group,
                "-X",
                "auto.offset.reset=earliest",
                "-c",
                &count.to_string(),
                "-f",
                "%s\n",
                topic,
            ]
            .map(String::from),
        );
        kcat(&all, "")
    };
    let (ok, out, err) = consume(20);
    assert!(ok, "kcat consumes through group {group}: {err}");
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, lines(0, 20).lines().collect::<Vec<_>>(), "{err}");
    // The group committed what it read: the next member starts after it.
    let (ok, out, err) = produce(&with_cert, &lines(20, 25));
    assert!(ok, "second produce: {out}{err}");
    let (ok, out, err) = consume(5);
    assert!(ok, "kcat consumes the rest: {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        lines(20, 25).lines().collect::<Vec<_>>(),
        "the group's committed offset was not kept: {err}"
    );

    // Without a certificate (ssl_client_auth = requested) the client is User:ANONYMOUS,
    // whom no ACL on the topic allows.
    let mut anonymous = kcat_ssl(ssl_port, &certs, false);
    anonymous.extend(["-X", "message.timeout.ms=5000"].map(String::from));
    let (ok, out, err) = produce(&anonymous, "denied\n");
    assert!(
        format!("{out}{err}").contains("uthorization failed"),
        "an anonymous TLS client must be refused: ok={ok} {out}{err}"
    );
    drop(broker);
}
