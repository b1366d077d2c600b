//! The client commands' security flags (issue 20), with librdkafka's names:
//! `--security-protocol` PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL, `--ssl-ca-location`
//! (the CA file the broker's certificate must chain to), `--ssl-certificate-location` and
//! `--ssl-key-location` (a client certificate for mutual TLS), `--sasl-mechanism` PLAIN |
//! SCRAM-SHA-256 | SCRAM-SHA-512, `--sasl-username`, `--sasl-password` (or the
//! `SLUICE_SASL_PASSWORD` environment variable, kept out of the process list).
//!
//! Must not: connect (the client does, with the `ConnectionConfig` built here).

use crate::client::{ConnectionConfig, SaslConfig};
use clap::Args;
use std::path::PathBuf;

/// The environment variable the SASL password is read from when `--sasl-password` is not
/// given (command lines are visible to every user of the machine).
pub const SASL_PASSWORD_ENV: &str = "SLUICE_SASL_PASSWORD";

#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (the broker listener's protocol).
    #[arg(long, global = true, default_value = "PLAINTEXT")]
    pub security_protocol: String,
    /// SSL / SASL_SSL: PEM CA certificates the broker's certificate must chain to.
    #[arg(long, global = true)]
    pub ssl_ca_location: Option<PathBuf>,
    /// SSL / SASL_SSL: this client's PEM certificate chain (mutual TLS).
    #[arg(long, global = true, requires = "ssl_key_location")]
    pub ssl_certificate_location: Option<PathBuf>,
    /// The unencrypted PEM private key of `--ssl-certificate-location`.
    #[arg(long, global = true, requires = "ssl_certificate_location")]
    pub ssl_key_location: Option<PathBuf>,
    /// SASL_PLAINTEXT / SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, global = true)]
    pub sasl_mechanism: Option<String>,
    #[arg(long, global = true)]
    pub sasl_username: Option<String>,
    /// The SASL password (default: the SLUICE_SASL_PASSWORD environment variable).
    #[arg(long, global = true)]
    pub sasl_password: Option<String>,
}

impl SecurityArgs {
    /// The connection settings these flags ask for, or a one-line error.
    pub fn connection_config(&self) -> Result<ConnectionConfig, String> {
        let protocol = self.security_protocol.to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(format!(
                    "--security-protocol {other}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                ));
            }
        };
        let tls = if tls {
            let ca = self
                .ssl_ca_location
                .as_deref()
                .ok_or_else(|| format!("--security-protocol {protocol} needs --ssl-ca-location"))?;
            let certificate = self
                .ssl_certificate_location
                .as_deref()
                .zip(self.ssl_key_location.as_deref());
            Some(crate::client::tls::client_config_with(ca, certificate)?)
        } else {
            if self.ssl_ca_location.is_some() || self.ssl_certificate_location.is_some() {
                return Err(format!(
                    "--ssl-* options need --security-protocol SSL or SASL_SSL, not {protocol}"
                ));
            }
            None
        };
        let sasl = if sasl {
            Some(self.sasl_config(&protocol)?)
        } else {
            if self.sasl_mechanism.is_some() || self.sasl_username.is_some() {
                return Err(format!(
                    "--sasl-* options need --security-protocol SASL_PLAINTEXT or SASL_SSL, not \
                     {protocol}"
                ));
            }
            None
        };
        Ok(ConnectionConfig {
            tls,
            sasl,
            ..ConnectionConfig::default()
        })
    }

    fn sasl_config(&self, protocol: &str) -> Result<SaslConfig, String> {
        let mechanism = self
            .sasl_mechanism
            .as_deref()
            .ok_or_else(|| format!("--security-protocol {protocol} needs --sasl-mechanism"))?
            .to_ascii_uppercase();
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
            return Err(format!(
                "--sasl-mechanism {mechanism}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ));
        }
        let username = self
            .sasl_username
            .clone()
            .ok_or_else(|| format!("--security-protocol {protocol} needs --sasl-username"))?;
        let password = match &self.sasl_password {
            Some(p) => p.clone(),
            None => std::env::var(SASL_PASSWORD_ENV).map_err(|_| {
                format!(
                    "--security-protocol {protocol} needs --sasl-password or {SASL_PASSWORD_ENV}"
                )
            })?,
        };
        Ok(SaslConfig {
            mechanism,
            username,
            password,
        })
    }
}
