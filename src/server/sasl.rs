//! A connection's SASL state on a SASL listener, and the gate in front of dispatch that
//! enforces it as Kafka's `SaslServerAuthenticator` does: before authentication only
//! ApiVersions, SaslHandshake and SaslAuthenticate are served (anything else closes the
//! connection), frames are held to `sasl_server_max_receive_bytes`, the exchange is bounded
//! in requests and time, and a session past `connections_max_reauth_ms` (KIP-368) is closed
//! unless it re-authenticates. PLAINTEXT connections have no gate at all.
//!
//! The mechanisms themselves are `security::{plain, scram}`; the SaslHandshake and
//! SaslAuthenticate handlers drive them through this state; `sasl_gate` applies it to a
//! connection. A leaf: imports nothing of the server.

use crate::config::listeners::SecurityProtocol;
use crate::security::scram::ScramServer;
use kafka_protocol::messages::ApiKey;
use std::time::{Duration, Instant};

/// SASL-phase requests (ApiVersions, handshakes, authenticate rounds) a connection may send
/// before it authenticates: a SCRAM login takes four, a client retrying ApiVersions a few.
pub const SASL_EXCHANGE_REQUESTS_MAX: u32 = 16;

/// The mechanism exchange a handshake chose.
#[derive(Debug)]
pub enum Exchange {
    Plain,
    Scram(Box<ScramServer>),
}

impl Exchange {
    pub fn mechanism_name(&self) -> &'static str {
        match self {
            Exchange::Plain => "PLAIN",
            Exchange::Scram(server) => server.mechanism().name(),
        }
    }
}

/// Where a connection stands in the SASL protocol.
#[derive(Debug, Default)]
pub enum SaslStage {
    /// Not a SASL listener: nothing to authenticate, no gate.
    #[default]
    NotRequired,
    /// Waiting for SaslHandshake (ApiVersions may come first).
    AwaitingHandshake,
    /// The handshake chose a mechanism; SaslAuthenticate rounds follow.
    Authenticating(Exchange),
    /// Authenticated with `mechanism`; the session ends at `expires_at` (KIP-368), if set.
    Authenticated {
        mechanism: &'static str,
        expires_at: Option<Instant>,
    },
}

/// A connection's SASL state; moves with the connection to another shard.
#[derive(Debug, Default)]
pub struct SaslSession {
    pub stage: SaslStage,
    /// SASL-phase requests since the connection opened or last authenticated.
    exchange_requests: u32,
    /// Authenticated before: a new handshake is a re-authentication (same principal only).
    pub reauthenticating: bool,
    /// Set by a handler when the connection must close once its answer is written (a
    /// failed authentication, an unsupported mechanism), with the reason for the log.
    pub close_after_reply: Option<String>,
    /// When the current exchange began (the connection's start, or a re-authentication's
    /// handshake): the authentication deadline counts from here.
    pub exchange_started_at: Option<Instant>,
}

impl SaslSession {
    /// The state a new connection on a listener of `protocol` starts in.
    pub fn for_protocol(protocol: SecurityProtocol) -> SaslSession {
        SaslSession {
            stage: if protocol.requires_sasl() {
                SaslStage::AwaitingHandshake
            } else {
                SaslStage::NotRequired
            },
            exchange_started_at: Some(Instant::now()),
            ..SaslSession::default()
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.stage, SaslStage::Authenticated { .. })
    }

    /// Whether `api` may be served now; `Err` is why the connection closes instead.
    pub fn admit(&mut self, api: Result<ApiKey, i16>, now: Instant) -> Result<(), String> {
        let api = api.map_err(|key| format!("unknown API key {key} during SASL"))?;
        let sasl_request = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        match &self.stage {
            SaslStage::NotRequired => return Ok(()),
            SaslStage::Authenticated { expires_at, .. } => {
                if expires_at.is_some_and(|at| now >= at) && api != ApiKey::SaslHandshake {
                    return Err("SASL session expired without re-authentication".into());
                }
                if api == ApiKey::SaslAuthenticate {
                    return Err("SaslAuthenticate without a handshake".into());
                }
                if api != ApiKey::SaslHandshake {
                    return Ok(());
                }
            }
            SaslStage::AwaitingHandshake => {
                if api != ApiKey::ApiVersions && api != ApiKey::SaslHandshake {
                    return Err(format!("{api:?} before SASL authentication"));
                }
            }
            SaslStage::Authenticating(_) => {
                if api != ApiKey::SaslAuthenticate {
                    return Err(format!("{api:?} during a SASL exchange"));
                }
            }
        }
        debug_assert!(sasl_request || api == ApiKey::ApiVersions);
        self.exchange_requests += 1;
        if self.exchange_requests > SASL_EXCHANGE_REQUESTS_MAX {
            return Err(format!(
                "more than {SASL_EXCHANGE_REQUESTS_MAX} requests without authenticating"
            ));
        }
        Ok(())
    }

    /// Records a successful authentication; `lifetime` is the session's (KIP-368).
    pub fn authenticated(&mut self, mechanism: &'static str, lifetime: Option<Duration>) {
        self.stage = SaslStage::Authenticated {
            mechanism,
            expires_at: lifetime.map(|l| Instant::now() + l),
        };
        self.exchange_requests = 0;
        self.reauthenticating = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_authentication_only_the_sasl_requests_pass() {
        let now = Instant::now();
        let mut session = SaslSession::for_protocol(SecurityProtocol::SaslPlaintext);
        assert!(session.admit(Ok(ApiKey::ApiVersions), now).is_ok());
        assert!(session.admit(Ok(ApiKey::Metadata), now).is_err());
        assert!(session.admit(Ok(ApiKey::SaslAuthenticate), now).is_err());
        assert!(session.admit(Err(999), now).is_err());
        assert!(session.admit(Ok(ApiKey::SaslHandshake), now).is_ok());
        session.stage = SaslStage::Authenticating(Exchange::Plain);
        assert!(session.admit(Ok(ApiKey::ApiVersions), now).is_err());
        assert!(session.admit(Ok(ApiKey::SaslAuthenticate), now).is_ok());
        session.authenticated("PLAIN", None);
        assert!(session.admit(Ok(ApiKey::Produce), now).is_ok());
        assert!(session.admit(Ok(ApiKey::SaslAuthenticate), now).is_err());
    }

    #[test]
    fn plaintext_connections_are_never_gated() {
        let mut session = SaslSession::for_protocol(SecurityProtocol::Plaintext);
        for _ in 0..100 {
            assert!(session.admit(Ok(ApiKey::Produce), Instant::now()).is_ok());
        }
    }

    #[test]
    fn the_exchange_is_bounded_in_requests() {
        let mut session = SaslSession::for_protocol(SecurityProtocol::SaslPlaintext);
        for _ in 0..SASL_EXCHANGE_REQUESTS_MAX {
            assert!(
                session
                    .admit(Ok(ApiKey::ApiVersions), Instant::now())
                    .is_ok()
            );
        }
        assert!(
            session
                .admit(Ok(ApiKey::ApiVersions), Instant::now())
                .is_err()
        );
    }

    #[test]
    fn an_expired_session_closes_unless_it_re_authenticates() {
        let mut session = SaslSession::for_protocol(SecurityProtocol::SaslPlaintext);
        session.authenticated("PLAIN", Some(Duration::from_millis(10)));
        let later = Instant::now() + Duration::from_secs(1);
        assert!(session.admit(Ok(ApiKey::Fetch), later).is_err());
        assert!(session.admit(Ok(ApiKey::SaslHandshake), later).is_ok());
    }
}
