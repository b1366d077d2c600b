//! The controller listener's security (decision 0021, controller addendum): Kafka names the
//! controller listener in `controller.listener.names` and gives it a protocol in
//! `listener.security.protocol.map`; here one key, `controller_security_protocol`,
//! PLAINTEXT (the default) or SSL. With SSL every connection between controllers is mutual
//! TLS: the listener requires a client certificate chaining to `ssl_truststore_location`,
//! and a controller connecting to a peer presents its own `ssl_certificate_location` /
//! `ssl_key_location` and trusts the same store (one identity and one CA per broker, as
//! Kafka's controller client uses the controller listener's keystore and truststore).
//! The certificate must allow both uses (extended key usage serverAuth and clientAuth).
//! SASL is not offered on this listener: the Raft log it carries is where the SCRAM
//! credentials live, so they cannot authenticate it.
//!
//! Owns: resolving and checking the key at start-up, building both rustls configs, and the
//! rule for which peer principal is let in. Must not: open connections.

use super::{AuthorizerChoice, BrokerConfig, ConfigError};
use crate::security::Principal;
use crate::security::ssl_principal::{PrincipalMapper, principal_for_certificate};
use crate::security::tls::{ClientAuth, build_server_config};
use std::sync::Arc;

const PROTOCOL_KEY: &str = "controller_security_protocol";

/// Mutual TLS between the controllers, resolved once from the config.
pub struct ControllerTls {
    /// The controller listener: client certificates required.
    pub server: Arc<rustls::ServerConfig>,
    /// Connections to the other voters: the broker's own certificate presented.
    pub client: Arc<rustls::ClientConfig>,
    /// `ssl_principal_mapping_rules`, for the peer's certificate subject.
    mapper: PrincipalMapper,
    /// With an authorizer, the principals a peer may be: Kafka asks CLUSTER_ACTION of every
    /// controller request, and the ACLs that could grant it travel over these very
    /// connections, so only `super_users` can hold it. `None`: any certificate the trust
    /// store vouches for.
    allowed: Option<Vec<String>>,
}

impl std::fmt::Debug for ControllerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerTls")
            .field("allowed", &self.allowed)
            .finish()
    }
}

impl ControllerTls {
    /// The principal a peer's verified certificate (DER, the leaf) proves, if it may speak
    /// to this controller; `Err` says why not (logged, and the connection closed).
    pub fn admit(&self, leaf: &[u8]) -> Result<Principal, String> {
        let principal = principal_for_certificate(leaf, &self.mapper)?;
        let name = principal.to_string();
        match &self.allowed {
            Some(allowed) if !allowed.contains(&name) => Err(format!(
                "{name} is not one of super_users (an authorizer is on: a controller peer \
                 needs CLUSTER_ACTION)"
            )),
            _ => Ok(principal),
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// `Some` when the controller listener uses TLS. Errors name the key at fault: a protocol
/// other than PLAINTEXT or SSL, SSL outside cluster mode, a missing or unreadable file.
pub fn resolve(config: &BrokerConfig) -> Result<Option<Arc<ControllerTls>>, ConfigError> {
    match config
        .controller_security_protocol
        .trim()
        .to_ascii_uppercase()
        .as_str()
    {
        "PLAINTEXT" => return Ok(None),
        "SSL" => {}
        other => {
            return Err(invalid(
                PROTOCOL_KEY,
                format!(
                    "{other:?} is not PLAINTEXT or SSL (SASL cannot guard the log that holds the credentials)"
                ),
            ));
        }
    }
    if config.controller_quorum_voters.is_none() {
        return Err(invalid(
            PROTOCOL_KEY,
            "SSL is set but this node has no controller listener (controller_quorum_voters is unset)",
        ));
    }
    let settings = config.tls_settings();
    let need = |value: &Option<std::path::PathBuf>, key: &'static str| {
        value.clone().ok_or_else(|| {
            invalid(
                key,
                format!("{PROTOCOL_KEY} is SSL: the controllers' mutual TLS needs it"),
            )
        })
    };
    let chain = need(&settings.certificate_location, "ssl_certificate_location")?;
    let key = need(&settings.key_location, "ssl_key_location")?;
    let ca = need(&settings.truststore_location, "ssl_truststore_location")?;
    let server = build_server_config(&settings, Some(ClientAuth::Required))
        .map_err(|e| invalid(e.key, e.message))?;
    let client = crate::client::tls::client_config_with(&ca, Some((&chain, &key)))
        .map_err(|message| invalid("ssl_truststore_location", message))?;
    let mapper = PrincipalMapper::parse(&config.ssl_principal_mapping_rules)
        .map_err(|message| invalid("ssl_principal_mapping_rules", message))?;
    let allowed = match config.authorizer {
        AuthorizerChoice::None => None,
        _ => Some(config.super_users.clone()),
    };
    Ok(Some(Arc::new(ControllerTls {
        server,
        client,
        mapper,
        allowed,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_key(config: &BrokerConfig) -> &'static str {
        match resolve(config) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn plaintext_is_the_default_and_needs_nothing() {
        let config = BrokerConfig::default();
        assert!(matches!(resolve(&config), Ok(None)));
    }

    #[test]
    fn what_cannot_work_is_refused_naming_the_key() {
        let mut config = BrokerConfig {
            controller_security_protocol: "SASL_SSL".into(),
            ..BrokerConfig::default()
        };
        assert_eq!(refused_key(&config), PROTOCOL_KEY);
        // SSL with no controller listener to guard.
        config.controller_security_protocol = "ssl".into();
        assert_eq!(refused_key(&config), PROTOCOL_KEY);
        // SSL in cluster mode without the certificate it presents.
        config.controller_quorum_voters = Some("1@127.0.0.1:9093".into());
        assert_eq!(refused_key(&config), "ssl_certificate_location");
        config.ssl_certificate_location = Some("/nonexistent/broker.pem".into());
        config.ssl_key_location = Some("/nonexistent/broker.key".into());
        assert_eq!(refused_key(&config), "ssl_truststore_location");
        // Every file named, none readable: the first one read is named.
        config.ssl_truststore_location = Some("/nonexistent/ca.pem".into());
        assert_eq!(refused_key(&config), "ssl_certificate_location");
    }
}
