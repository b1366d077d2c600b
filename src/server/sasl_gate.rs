//! The gate `connection` runs in front of dispatch on SASL listeners (and only there, so
//! PLAINTEXT connections pay nothing per request): admits requests by the connection's
//! `sasl::SaslSession`, holds the reader to `sasl_server_max_receive_bytes` until
//! authentication, closes after a failed exchange, and gives the authentication deadline.

use super::connection_state::ConnectionState;
use super::sasl::SaslStage;
use kafka_protocol::messages::ApiKey;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The per-connection gate `connection` runs in front of dispatch on SASL listeners.
pub struct SaslGate {
    /// The reader's frame limit: `sasl_server_max_receive_bytes` until authenticated.
    frame_limit: Rc<Cell<usize>>,
    max_request_bytes: usize,
    /// When this gate was built (the connection's start on this shard): a connection that
    /// moved here gets a full timeout, not one counted on another shard.
    created_at: Instant,
    /// How long an exchange may take (`sasl_authentication_timeout_ms`).
    authentication_timeout: Duration,
}

impl SaslGate {
    /// The gate for a connection in `state`, or `None` (PLAINTEXT: no per-request cost).
    /// `frame_limit` is the reader's, set here to the pre-authentication limit.
    pub fn for_connection(
        state: &RefCell<ConnectionState>,
        config: &crate::config::BrokerConfig,
        frame_limit: &Rc<Cell<usize>>,
    ) -> Option<SaslGate> {
        let state = state.borrow();
        if matches!(state.sasl.stage, SaslStage::NotRequired) {
            return None;
        }
        let max_request_bytes = config.max_request_bytes as usize;
        if !state.sasl.is_authenticated() {
            frame_limit.set(max_request_bytes.min(config.sasl_server_max_receive_bytes as usize));
        }
        Some(SaslGate {
            frame_limit: frame_limit.clone(),
            max_request_bytes,
            created_at: Instant::now(),
            authentication_timeout: Duration::from_millis(config.sasl_authentication_timeout_ms),
        })
    }

    /// Whether the request with `api_key` may be dispatched; `Err` closes the connection.
    pub fn admit(&self, state: &RefCell<ConnectionState>, api_key: i16) -> Result<(), String> {
        state.borrow_mut().sasl.admit(
            ApiKey::try_from(api_key).map_err(|_| api_key),
            Instant::now(),
        )
    }

    /// Whether the request in `body` (size prefix removed, at least a header long) must
    /// not be served: then the connection closes (logged here).
    pub fn refuses(&self, state: &RefCell<ConnectionState>, body: &[u8], shard: usize) -> bool {
        let api_key = i16::from_be_bytes([body[0], body[1]]);
        match self.admit(state, api_key) {
            Ok(()) => false,
            Err(why) => {
                tracing::debug!(shard, %why, "closing connection");
                true
            }
        }
    }

    /// `after_reply`, logged: whether the connection closes now.
    pub fn closes_after_reply(&self, state: &RefCell<ConnectionState>, shard: usize) -> bool {
        match self.after_reply(state) {
            Some(why) => {
                tracing::debug!(shard, %why, "closing connection after its answer");
                true
            }
            None => false,
        }
    }

    /// After a request was answered: `Some(reason)` when the connection must now close;
    /// otherwise lifts the frame limit once authenticated.
    pub fn after_reply(&self, state: &RefCell<ConnectionState>) -> Option<String> {
        let mut state = state.borrow_mut();
        if let Some(reason) = state.sasl.close_after_reply.take() {
            return Some(reason);
        }
        if state.sasl.is_authenticated() {
            self.frame_limit.set(self.max_request_bytes);
        }
        None
    }

    /// When the current exchange must be done by; `None` while authenticated.
    pub fn deadline(&self, state: &RefCell<ConnectionState>) -> Option<Instant> {
        let state = state.borrow();
        match state.sasl.stage {
            SaslStage::Authenticated { .. } | SaslStage::NotRequired => None,
            _ => Some(
                state
                    .sasl
                    .exchange_started_at
                    .map_or(self.created_at, |at| at.max(self.created_at))
                    + self.authentication_timeout,
            ),
        }
    }
}
