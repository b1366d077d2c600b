//! SaslAuthenticate (v0–v2): one round of the exchange SaslHandshake chose. PLAIN is one
//! round; SCRAM two (client-first, client-final). Success sets the connection's principal
//! (`User:<name>`) and, with `connections_max_reauth_ms`, the session lifetime (v1+,
//! KIP-368); a re-authentication must prove the same principal. Any failure answers
//! SASL_AUTHENTICATION_FAILED with a message and closes the connection, as in Kafka.

use crate::security::scram::{ScramError, ScramMechanism};
use crate::security::{Principal, plain};
use crate::server::context::RequestContext;
use crate::server::sasl::{Exchange, SaslStage};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

/// What one round produced.
enum Round {
    /// More rounds follow; these bytes go to the client.
    Continue(Vec<u8>),
    /// Authenticated as this user; these bytes (maybe empty) go to the client.
    Done(String, Vec<u8>),
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let credentials = &snapshot.scram_credentials;
    let mut state = ctx.connection.borrow_mut();
    let round = match &mut state.sasl.stage {
        SaslStage::Authenticating(Exchange::Plain) => plain::parse(&request.auth_bytes)
            .and_then(|login| {
                plain::verify(login.password, |m| credentials.get(login.user, m).cloned())
                    .then(|| Round::Done(login.user.to_string(), Vec::new()))
                    .ok_or_else(|| "Authentication failed: Invalid username or password".into())
            }),
        SaslStage::Authenticating(Exchange::Scram(server)) => {
            let mechanism = server.mechanism();
            scram_round(server, &request.auth_bytes, |user| {
                credentials.get(user, mechanism).cloned()
            })
            .map_err(|e| scram_failure(mechanism, &e))
        }
        // The gate admits SaslAuthenticate only while authenticating; a PLAINTEXT listener
        // has no gate.
        _ => {
            return failed(
                ResponseError::IllegalSaslState.code(),
                "SaslAuthenticate is not expected now",
            );
        }
    };
    match round {
        Ok(Round::Continue(bytes)) => SaslAuthenticateResponse::default()
            .with_error_code(0)
            .with_auth_bytes(bytes.into()),
        Ok(Round::Done(user, bytes)) => {
            let principal = Principal::user(&user);
            if state.sasl.reauthenticating && state.principal != principal {
                state.sasl.close_after_reply = Some("re-authenticated as another user".into());
                return failed(
                    ResponseError::SaslAuthenticationFailed.code(),
                    "Cannot change principals during re-authentication",
                );
            }
            let mechanism = match &state.sasl.stage {
                SaslStage::Authenticating(exchange) => exchange.mechanism_name(),
                _ => "PLAIN",
            };
            let reauth_ms = ctx.shard.config.connections_max_reauth_ms;
            let lifetime = (reauth_ms > 0).then(|| Duration::from_millis(reauth_ms as u64));
            state.sasl.authenticated(mechanism, lifetime);
            state.principal = principal;
            SaslAuthenticateResponse::default()
                .with_error_code(0)
                .with_auth_bytes(bytes.into())
                .with_session_lifetime_ms(reauth_ms)
        }
        Err(message) => {
            state.sasl.close_after_reply = Some(message.clone());
            failed(ResponseError::SaslAuthenticationFailed.code(), &message)
        }
    }
}

fn failed(code: i16, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

/// Kafka's wording: the same message for an unknown user and a wrong password.
fn scram_failure(mechanism: ScramMechanism, error: &ScramError) -> String {
    match error {
        ScramError::InvalidCredentials => format!(
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism {}",
            mechanism.name()
        ),
        ScramError::Malformed(_) => format!("Authentication failed: {error}"),
    }
}

/// One SCRAM round: client-first gets server-first, client-final gets server-final.
fn scram_round(
    server: &mut crate::security::scram::ScramServer,
    message: &[u8],
    lookup: impl FnOnce(&str) -> Option<crate::security::scram::ScramCredential>,
) -> Result<Round, ScramError> {
    if server.awaiting_client_first() {
        return server.client_first(message, lookup).map(Round::Continue);
    }
    server
        .client_final(message)
        .map(|done| Round::Done(done.user, done.server_final))
}
