//! How a follower reaches its leaders (decision 0021): Kafka's `inter.broker.listener.name`
//! and the client side of that listener's security, as plain keys:
//! `inter_broker_listener_name`, `inter_broker_ssl_ca_file`,
//! `inter_broker_ssl_certificate_location` / `inter_broker_ssl_key_location` (mutual TLS),
//! `inter_broker_sasl_mechanism`, `inter_broker_sasl_username`, `inter_broker_sasl_password`.
//! Kafka puts the SASL part in a JAAS line (`listener.name.X.<mechanism>.sasl.jaas.config`);
//! the reasons for plain keys are in the decision record.
//!
//! Owns: resolving and checking those keys at start-up (one-line errors naming the key; a
//! key the chosen listener's protocol would not read is an error, not a silent no-op), and
//! building the rustls client config the link uses. Must not: open connections.

use super::listeners::{ListenerSpec, SecurityProtocol};
use super::{BrokerConfig, ConfigError, SASL_MECHANISMS_SUPPORTED};
use crate::client::sasl::SaslConfig;
use std::path::PathBuf;
use std::sync::Arc;

/// Longest inter-broker SASL user name or password accepted.
pub const INTER_BROKER_SASL_FIELD_BYTES_MAX: usize = 1024;

/// A value that never shows in `Debug` output (the config is logged on errors).
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a follower's link to a leader uses, resolved once from the config.
#[derive(Clone)]
pub struct InterBrokerSecurity {
    /// The listener name whose endpoint a leader is reached on.
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// SSL and SASL_SSL: trusts `inter_broker_ssl_ca_file`, presents the optional client
    /// certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL_PLAINTEXT and SASL_SSL: the mechanism and credentials.
    pub sasl: Option<SaslConfig>,
}

impl std::fmt::Debug for InterBrokerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterBrokerSecurity")
            .field("listener", &self.listener)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Kafka's default when `inter.broker.listener.name` is unset is the listener named after
/// `security.inter.broker.protocol` (PLAINTEXT); Kafka then refuses to start without one.
/// Here: the listener named PLAINTEXT, else the first declared one (a cluster whose only
/// listener is SASL_SSL replicates over it without a further key).
fn default_listener(specs: &[ListenerSpec]) -> Option<&ListenerSpec> {
    specs
        .iter()
        .find(|s| s.name == SecurityProtocol::Plaintext.name())
        .or_else(|| specs.first())
}

/// Resolves and checks the `inter_broker_*` keys against the declared listeners.
pub fn resolve(
    config: &BrokerConfig,
    specs: &[ListenerSpec],
) -> Result<InterBrokerSecurity, ConfigError> {
    const LISTENER_KEY: &str = "inter_broker_listener_name";
    let spec = match config.inter_broker_listener_name.as_deref() {
        Some(name) => {
            let name = name.trim().to_ascii_uppercase();
            specs
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| invalid(LISTENER_KEY, format!("no listener is named {name}")))?
        }
        None => default_listener(specs)
            .ok_or_else(|| invalid(LISTENER_KEY, "no listener is declared"))?,
    };
    let protocol = spec.protocol;
    Ok(InterBrokerSecurity {
        listener: spec.name.clone(),
        protocol,
        tls: tls_client_config(config, protocol)?,
        sasl: sasl_config(config, protocol)?,
    })
}

fn tls_client_config(
    config: &BrokerConfig,
    protocol: SecurityProtocol,
) -> Result<Option<Arc<rustls::ClientConfig>>, ConfigError> {
    const CA_KEY: &str = "inter_broker_ssl_ca_file";
    const CERT_KEY: &str = "inter_broker_ssl_certificate_location";
    const KEY_KEY: &str = "inter_broker_ssl_key_location";
    let certificate = match (
        &config.inter_broker_ssl_certificate_location,
        &config.inter_broker_ssl_key_location,
    ) {
        (Some(chain), Some(key)) => Some((chain.clone(), key.clone())),
        (None, None) => None,
        (Some(_), None) => return Err(invalid(KEY_KEY, format!("{CERT_KEY} is set without it"))),
        (None, Some(_)) => return Err(invalid(CERT_KEY, format!("{KEY_KEY} is set without it"))),
    };
    if !protocol.uses_tls() {
        if config.inter_broker_ssl_ca_file.is_some() || certificate.is_some() {
            let key = if config.inter_broker_ssl_ca_file.is_some() {
                CA_KEY
            } else {
                CERT_KEY
            };
            return Err(invalid(
                key,
                format!(
                    "the inter-broker listener is {}: no TLS to configure",
                    protocol.name()
                ),
            ));
        }
        return Ok(None);
    }
    // Kafka's inter-broker client uses the broker's own `ssl.truststore.*`.
    let ca: PathBuf = config
        .inter_broker_ssl_ca_file
        .clone()
        .or_else(|| config.ssl_truststore_location.clone())
        .ok_or_else(|| {
            invalid(
                CA_KEY,
                format!(
                    "the inter-broker listener is {} and neither {CA_KEY} nor \
                     ssl_truststore_location names the CA to trust",
                    protocol.name()
                ),
            )
        })?;
    let pair = certificate
        .as_ref()
        .map(|(c, k)| (c.as_path(), k.as_path()));
    crate::client::tls::client_config_with(&ca, pair)
        .map(Some)
        .map_err(|message| invalid(CA_KEY, message))
}

fn sasl_config(
    config: &BrokerConfig,
    protocol: SecurityProtocol,
) -> Result<Option<SaslConfig>, ConfigError> {
    const MECHANISM_KEY: &str = "inter_broker_sasl_mechanism";
    const USER_KEY: &str = "inter_broker_sasl_username";
    const PASSWORD_KEY: &str = "inter_broker_sasl_password";
    let given = [
        (MECHANISM_KEY, config.inter_broker_sasl_mechanism.is_some()),
        (USER_KEY, config.inter_broker_sasl_username.is_some()),
        (PASSWORD_KEY, config.inter_broker_sasl_password.is_some()),
    ];
    if !protocol.requires_sasl() {
        if let Some((key, _)) = given.iter().find(|(_, set)| *set) {
            return Err(invalid(
                key,
                format!(
                    "the inter-broker listener is {}: no SASL to configure",
                    protocol.name()
                ),
            ));
        }
        return Ok(None);
    }
    if let Some((key, _)) = given.iter().find(|(_, set)| !*set) {
        return Err(invalid(
            key,
            format!(
                "the inter-broker listener is {}: it must be set",
                protocol.name()
            ),
        ));
    }
    let mechanism = config
        .inter_broker_sasl_mechanism
        .clone()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    if !SASL_MECHANISMS_SUPPORTED.contains(&mechanism.as_str()) {
        return Err(invalid(
            MECHANISM_KEY,
            format!(
                "{mechanism:?} is not one of {}",
                SASL_MECHANISMS_SUPPORTED.join(", ")
            ),
        ));
    }
    // Every broker of a cluster offers what this one does: a mechanism it does not enable
    // would be refused by every leader.
    if !config
        .sasl_enabled_mechanisms
        .iter()
        .any(|m| m.eq_ignore_ascii_case(&mechanism))
    {
        return Err(invalid(
            MECHANISM_KEY,
            format!("{mechanism} is not in sasl_enabled_mechanisms"),
        ));
    }
    let username = config
        .inter_broker_sasl_username
        .clone()
        .unwrap_or_default();
    let password = config
        .inter_broker_sasl_password
        .clone()
        .unwrap_or_default()
        .0;
    for (key, value) in [(USER_KEY, &username), (PASSWORD_KEY, &password)] {
        if value.is_empty() || value.len() > INTER_BROKER_SASL_FIELD_BYTES_MAX {
            return Err(invalid(
                key,
                format!("must be 1..={INTER_BROKER_SASL_FIELD_BYTES_MAX} bytes"),
            ));
        }
    }
    Ok(Some(SaslConfig {
        mechanism,
        username,
        password,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(toml: &str) -> Result<InterBrokerSecurity, ConfigError> {
        let config = BrokerConfig::from_toml(toml).unwrap();
        resolve(&config, &config.listener_specs().unwrap())
    }

    fn refused_key(toml: &str) -> &'static str {
        match resolved(toml) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{toml}: {other:?}"),
        }
    }

    #[test]
    fn the_default_is_the_plaintext_listener_else_the_first() {
        let two = "listeners = \"SASL_PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2\"";
        assert_eq!(resolved(two).unwrap().listener, "PLAINTEXT");
        let sasl_only = "listeners = \"SASL_PLAINTEXT://127.0.0.1:1\"\n\
                         inter_broker_sasl_mechanism = \"scram-sha-512\"\n\
                         inter_broker_sasl_username = \"broker\"\n\
                         inter_broker_sasl_password = \"secret\"";
        let security = resolved(sasl_only).unwrap();
        assert_eq!(security.listener, "SASL_PLAINTEXT");
        let sasl = security.sasl.unwrap();
        assert_eq!(
            (sasl.mechanism.as_str(), sasl.username.as_str()),
            ("SCRAM-SHA-512", "broker")
        );
        assert!(!format!("{:?}", BrokerConfig::from_toml(sasl_only).unwrap()).contains("secret"));
    }

    #[test]
    fn missing_unknown_and_unread_keys_are_refused_by_name() {
        let sasl = "listeners = \"SASL_PLAINTEXT://127.0.0.1:1\"\n";
        assert_eq!(
            refused_key(&format!("{sasl}inter_broker_sasl_mechanism = \"PLAIN\"")),
            "inter_broker_sasl_username"
        );
        assert_eq!(
            refused_key(&format!(
                "{sasl}inter_broker_sasl_mechanism = \"GSSAPI\"\n\
                 inter_broker_sasl_username = \"b\"\ninter_broker_sasl_password = \"p\""
            )),
            "inter_broker_sasl_mechanism"
        );
        // Keys the PLAINTEXT inter-broker listener would never read.
        assert_eq!(
            refused_key("inter_broker_sasl_username = \"b\""),
            "inter_broker_sasl_username"
        );
        assert_eq!(
            refused_key("inter_broker_ssl_ca_file = \"/ca.pem\""),
            "inter_broker_ssl_ca_file"
        );
        assert_eq!(
            refused_key("inter_broker_listener_name = \"INTERNAL\""),
            "inter_broker_listener_name"
        );
        // SSL without a CA to trust, or with an unreadable one.
        let ssl = "listeners = \"SSL://127.0.0.1:1\"\n";
        assert_eq!(refused_key(ssl), "inter_broker_ssl_ca_file");
        assert_eq!(
            refused_key(&format!(
                "{ssl}inter_broker_ssl_ca_file = \"/no/such/ca.pem\""
            )),
            "inter_broker_ssl_ca_file"
        );
    }
}
