//! Certificates for TLS tests, made with the openssl CLI in a temporary directory: a CA, the
//! broker's certificate for 127.0.0.1 / localhost signed by it, and a client certificate
//! whose subject is `CLIENT_DN`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The client certificate's subject as Kafka prints it (RFC 2253, most specific first).
pub const CLIENT_DN: &str = "CN=kcat-client,OU=Test,O=Sluice,C=US";
/// The same subject in openssl's `-subj` order.
const CLIENT_SUBJECT: &str = "/C=US/O=Sluice/OU=Test/CN=kcat-client";

pub struct Certs {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    /// A CA, `broker.pem`/`broker.key` (CN=localhost) and `client.pem`/`client.key`.
    pub fn make() -> Certs {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Sluice Test CA",
            ],
        );
        let certs = Certs { dir };
        certs.issue("broker", "/CN=localhost", "serverAuth", "localhost");
        certs.issue("client", CLIENT_SUBJECT, "clientAuth", "");
        certs
    }

    /// Issues `<name>.pem` / `<name>.key` for `subject`, signed by the CA.
    pub fn issue(&self, name: &str, subject: &str, usage: &str, dns: &str) {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        let mut extensions = format!("basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n");
        if !dns.is_empty() {
            extensions.push_str(&format!("subjectAltName=IP:127.0.0.1,DNS:{dns}\n"));
        }
        std::fs::write(d.join(&ext), extensions).expect("write extensions");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subject,
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The broker's `ssl_*` keys for these certificates.
    pub fn broker_toml(&self, client_auth: &str) -> String {
        format!(
            "ssl_certificate_location = \"{}\"\nssl_key_location = \"{}\"\n\
             ssl_truststore_location = \"{}\"\nssl_client_auth = \"{client_auth}\"\n",
            self.path("broker.pem").display(),
            self.path("broker.key").display(),
            self.path("ca.pem").display(),
        )
    }
}
