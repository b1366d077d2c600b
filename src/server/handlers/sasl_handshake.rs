//! SaslHandshake (v1; v0's raw-token framing is not served, see decision 0010): picks the
//! mechanism of the SASL exchange on a SASL listener, or starts a re-authentication
//! (KIP-368, same mechanism only). An unsupported mechanism gets UNSUPPORTED_SASL_MECHANISM
//! with the enabled list, then the connection closes, as in Kafka. On a PLAINTEXT listener
//! it is ILLEGAL_SASL_STATE.

use crate::security::scram::{ScramMechanism, ScramServer};
use crate::server::context::RequestContext;
use crate::server::sasl::{Exchange, SaslStage};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let enabled = &ctx.shard.config.sasl_enabled_mechanisms;
    let response = SaslHandshakeResponse::default().with_mechanisms(
        enabled
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect(),
    );
    let mechanism = request.mechanism.as_str();
    let mut state = ctx.connection.borrow_mut();
    let sasl = &mut state.sasl;
    let previous = match &sasl.stage {
        SaslStage::NotRequired => {
            return response.with_error_code(ResponseError::IllegalSaslState.code());
        }
        SaslStage::AwaitingHandshake => None,
        SaslStage::Authenticated { mechanism, .. } => Some(*mechanism),
        // The gate admits SaslHandshake only in the two stages above.
        SaslStage::Authenticating(_) => {
            sasl.close_after_reply = Some("a second SaslHandshake".into());
            return response.with_error_code(ResponseError::IllegalSaslState.code());
        }
    };
    let exchange = if !enabled.iter().any(|m| m == mechanism) {
        None
    } else if mechanism == "PLAIN" {
        Some(Exchange::Plain)
    } else {
        ScramMechanism::from_name(mechanism).map(|m| Exchange::Scram(Box::new(ScramServer::new(m))))
    };
    let exchange = match exchange {
        Some(e) if previous.is_none_or(|p| p == e.mechanism_name()) => e,
        _ => {
            sasl.close_after_reply = Some(format!("unsupported SASL mechanism {mechanism:?}"));
            return response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
        }
    };
    sasl.stage = SaslStage::Authenticating(exchange);
    // A re-authentication gets its own deadline, counted from this handshake.
    sasl.exchange_started_at = Some(std::time::Instant::now());
    response.with_error_code(0)
}
