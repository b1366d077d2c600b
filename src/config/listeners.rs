//! Kafka listeners as Kafka configures them: `listeners` (named `NAME://host:port` entries),
//! `advertised_listeners` (what Metadata hands out, per listener name) and
//! `listener_security_protocol_map` (name → security protocol; the names PLAINTEXT, SSL,
//! SASL_PLAINTEXT and SASL_SSL map to themselves by default). The older single `listen` /
//! `advertised_listener` keys still work: they mean one PLAINTEXT listener.
//!
//! Owns: parsing and validating those keys into `ListenerSpec`s. Must not: bind sockets
//! (the shard runtime does) or know anything about authentication itself.

use super::{BrokerConfig, ConfigError};
use std::net::{SocketAddr, ToSocketAddrs};

/// Listeners one broker may declare (each costs a socket per shard).
pub const MAX_LISTENERS: usize = 16;
/// Longest listener name accepted.
pub const LISTENER_NAME_BYTES_MAX: usize = 64;

/// How a listener's connections are secured (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        match text {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Connections must complete a SASL exchange before anything but ApiVersions and the
    /// SASL requests is served.
    pub fn requires_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// The transport is TLS (`security::tls`).
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// One listener: its name, protocol, the address every shard binds and the address
/// clients are told to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// KIP-612: new connections per second this listener accepts (Kafka's
    /// `listener.name.X.max.connection.creation.rate`, here `listener_max_connection_creation_rate`);
    /// `None` is no listener limit (the broker's `max_connection_creation_rate` still applies).
    pub max_connection_creation_rate: Option<u32>,
}

fn invalid(key: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { key, message }
}

/// Splits `NAME://host:port` into the name and the `host:port` part.
fn split_entry(key: &'static str, entry: &str) -> Result<(String, String), ConfigError> {
    let Some((name, address)) = entry.trim().split_once("://") else {
        return Err(invalid(
            key,
            format!("{entry:?} is not of the form NAME://host:port"),
        ));
    };
    let name = name.trim().to_ascii_uppercase();
    if name.is_empty()
        || name.len() > LISTENER_NAME_BYTES_MAX
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(key, format!("listener name {name:?} is not valid")));
    }
    Ok((name, address.trim().to_string()))
}

/// `host:port` (IPv6 hosts in brackets) as a host and a port.
fn host_and_port(key: &'static str, address: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, format!("{address:?} has no port")))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid(key, format!("{address:?} has no valid port")))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The address to bind for `host:port`; an empty host is every interface, as in Kafka.
fn bind_address(key: &'static str, address: &str) -> Result<SocketAddr, ConfigError> {
    let (host, port) = host_and_port(key, address)?;
    let host = if host.is_empty() { "0.0.0.0" } else { &host };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| invalid(key, format!("cannot resolve {address:?}")))
}

/// `listener_security_protocol_map`: `NAME:PROTOCOL,...`.
fn protocol_map(text: Option<&str>) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    const KEY: &str = "listener_security_protocol_map";
    let mut map = Vec::new();
    for entry in text
        .unwrap_or("")
        .split(',')
        .filter(|e| !e.trim().is_empty())
    {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| invalid(KEY, format!("{entry:?} is not NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol.trim())
            .ok_or_else(|| invalid(KEY, format!("unknown security protocol in {entry:?}")))?;
        map.push((name.trim().to_ascii_uppercase(), protocol));
    }
    Ok(map)
}

/// Every listener the configuration declares, in the order given.
pub fn resolve(config: &BrokerConfig) -> Result<Vec<ListenerSpec>, ConfigError> {
    let Some(listeners) = config.listeners.as_deref() else {
        let (advertised_host, advertised_port) = config.advertised_address();
        return with_connection_rates(
            config,
            vec![ListenerSpec {
                name: SecurityProtocol::Plaintext.name().to_string(),
                protocol: SecurityProtocol::Plaintext,
                bind: config.listen,
                advertised_host,
                advertised_port,
                max_connection_creation_rate: None,
            }],
        );
    };
    let map = protocol_map(config.listener_security_protocol_map.as_deref())?;
    let mut specs: Vec<ListenerSpec> = Vec::new();
    for entry in listeners.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, address) = split_entry("listeners", entry)?;
        let protocol = map
            .iter()
            .find(|(mapped, _)| *mapped == name)
            .map(|(_, protocol)| *protocol)
            .or_else(|| SecurityProtocol::parse(&name))
            .ok_or_else(|| {
                invalid(
                    "listener_security_protocol_map",
                    format!("listener {name} has no security protocol"),
                )
            })?;
        if specs.iter().any(|s| s.name == name) {
            return Err(invalid(
                "listeners",
                format!("listener {name} appears twice"),
            ));
        }
        let bind = bind_address("listeners", &address)?;
        if specs.iter().any(|s| s.bind == bind) {
            return Err(invalid("listeners", format!("{bind} is bound twice")));
        }
        // Not advertised explicitly: the bound host, or this machine's name for a wildcard.
        let (host, port) = host_and_port("listeners", &address)?;
        specs.push(ListenerSpec {
            name,
            protocol,
            bind,
            advertised_host: if host.is_empty() || bind.ip().is_unspecified() {
                bind.ip().to_string()
            } else {
                host
            },
            advertised_port: i32::from(port),
            max_connection_creation_rate: None,
        });
    }
    if specs.is_empty() {
        return Err(invalid("listeners", "declares no listener".into()));
    }
    if specs.len() > MAX_LISTENERS {
        return Err(invalid(
            "listeners",
            format!("{} listeners, at most {MAX_LISTENERS}", specs.len()),
        ));
    }
    apply_advertised(config.advertised_listeners.as_deref(), &mut specs)?;
    with_connection_rates(config, specs)
}

/// `listener_max_connection_creation_rate` (`NAME:RATE,...`, connections per second) set
/// on the listeners it names; a name no listener has is an error, not a silent no-op.
fn with_connection_rates(
    config: &BrokerConfig,
    mut specs: Vec<ListenerSpec>,
) -> Result<Vec<ListenerSpec>, ConfigError> {
    const KEY: &str = "listener_max_connection_creation_rate";
    for entry in config
        .listener_max_connection_creation_rate
        .split(',')
        .filter(|e| !e.trim().is_empty())
    {
        let (name, rate) = entry
            .split_once(':')
            .ok_or_else(|| invalid(KEY, format!("{entry:?} is not NAME:RATE")))?;
        let rate = rate
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| invalid(KEY, format!("{entry:?}: the rate must be at least 1")))?;
        let name = name.trim().to_ascii_uppercase();
        let spec = specs
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| invalid(KEY, format!("no listener is named {name}")))?;
        spec.max_connection_creation_rate = Some(rate);
    }
    Ok(specs)
}

/// `advertised_listeners`: `NAME://host:port` for some of the listeners.
fn apply_advertised(text: Option<&str>, specs: &mut [ListenerSpec]) -> Result<(), ConfigError> {
    const KEY: &str = "advertised_listeners";
    for entry in text
        .unwrap_or("")
        .split(',')
        .filter(|e| !e.trim().is_empty())
    {
        let (name, address) = split_entry(KEY, entry)?;
        let (host, port) = host_and_port(KEY, &address)?;
        let spec = specs
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| invalid(KEY, format!("{name} is not in `listeners`")))?;
        spec.advertised_host = host;
        spec.advertised_port = i32::from(port);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> BrokerConfig {
        BrokerConfig::from_toml(toml).unwrap()
    }

    #[test]
    fn the_single_listen_key_is_one_plaintext_listener() {
        let specs = resolve(&config("advertised_listener = \"b.example:19092\"")).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "PLAINTEXT");
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[0].bind.port(), 9092);
        assert_eq!(
            (specs[0].advertised_host.as_str(), specs[0].advertised_port),
            ("b.example", 19092)
        );
    }

    #[test]
    fn named_listeners_map_to_protocols_and_advertise_their_own_address() {
        let specs = resolve(&config(
            "listeners = \"PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9093,\
             INTERNAL://127.0.0.1:9094\"\n\
             listener_security_protocol_map = \"INTERNAL:SASL_PLAINTEXT\"\n\
             advertised_listeners = \"SASL_PLAINTEXT://b.example:29093\"",
        ))
        .unwrap();
        let found: Vec<_> = specs
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.protocol,
                    s.advertised_host.as_str(),
                    s.advertised_port,
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("PLAINTEXT", SecurityProtocol::Plaintext, "127.0.0.1", 9092),
                (
                    "SASL_PLAINTEXT",
                    SecurityProtocol::SaslPlaintext,
                    "b.example",
                    29093
                ),
                (
                    "INTERNAL",
                    SecurityProtocol::SaslPlaintext,
                    "127.0.0.1",
                    9094
                ),
            ]
        );
    }

    #[test]
    fn bad_listener_declarations_are_refused_with_the_key() {
        for (toml, key) in [
            (
                "listeners = \"OTHER://127.0.0.1:1\"",
                "listener_security_protocol_map",
            ),
            ("listeners = \"127.0.0.1:1\"", "listeners"),
            ("listeners = \"PLAINTEXT://127.0.0.1\"", "listeners"),
            (
                "listeners = \"PLAINTEXT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:1\"",
                "listeners",
            ),
            (
                "listeners = \"PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2\"",
                "listeners",
            ),
            (
                "listeners = \"PLAINTEXT://127.0.0.1:1\"\nadvertised_listeners = \"X://h:1\"",
                "advertised_listeners",
            ),
            (
                "listeners = \"A://127.0.0.1:1\"\nlistener_security_protocol_map = \"A:TLS\"",
                "listener_security_protocol_map",
            ),
        ] {
            match resolve(&config(toml)) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{toml}"),
                other => panic!("{toml}: {other:?}"),
            }
        }
    }
}
