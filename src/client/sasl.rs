//! The client's side of SASL (issue 20), run on each new connection to a SASL_PLAINTEXT or
//! SASL_SSL listener right after ApiVersions, as Kafka's clients do: SaslHandshake v1 names
//! the mechanism, then SaslAuthenticate carries PLAIN's one message or SCRAM's two
//! (RFC 5802 / RFC 7677, SCRAM-SHA-256 and SCRAM-SHA-512, with the server's signature
//! checked). The exchange itself (`SaslExchange`) does no I/O: a follower's link to its
//! leader (`cluster::leader_link`) drives the same steps over its compio socket.
//!
//! Must not: frame requests (`connection` does) or keep the password beyond the config.

use super::connection::Connection;
use super::error::{ClientError, Result};
use crate::security::scram::ScramMechanism;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Client nonce bytes (RFC 5802 asks for an unpredictable printable nonce; 24 random bytes
/// are 32 base64 characters, as Kafka's client sends).
const CLIENT_NONCE_BYTES: usize = 24;
/// Fewest PBKDF2 iterations accepted from a server (Kafka's minimum): a server asking
/// fewer would weaken what an eavesdropper can brute-force.
const SCRAM_ITERATIONS_MIN: u32 = 4096;
/// Most PBKDF2 iterations accepted from a server: bounds the work one login costs.
const SCRAM_ITERATIONS_MAX: u32 = 1_000_000;

/// SASL credentials for one connection.
#[derive(Clone)]
pub struct SaslConfig {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn failed(addr: &str, why: impl std::fmt::Display) -> ClientError {
    ClientError::Invalid(format!("SASL authentication with {addr} failed: {why}"))
}

/// Authenticates `conn` (versions already negotiated) with `sasl`.
pub fn authenticate(conn: &mut Connection, sasl: &SaslConfig) -> Result<()> {
    let addr = conn.addr().to_string();
    let handshake = conn.call(&handshake_request(sasl))?;
    check_handshake(&handshake, sasl).map_err(|e| failed(&addr, e))?;
    let (mut exchange, mut message) = SaslExchange::start(sasl).map_err(|e| failed(&addr, e))?;
    loop {
        let answer = exchange_step(conn, message)?;
        match exchange.answer(&answer).map_err(|e| failed(&addr, e))? {
            Some(next) => message = next,
            None => return Ok(()),
        }
    }
}

/// SaslHandshake (v1) naming the mechanism.
pub fn handshake_request(sasl: &SaslConfig) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(sasl.mechanism.clone()))
}

/// Whether the broker offers the mechanism, with the ones it offers when not.
pub fn check_handshake(
    handshake: &SaslHandshakeResponse,
    sasl: &SaslConfig,
) -> std::result::Result<(), String> {
    if handshake.error_code == 0 {
        return Ok(());
    }
    let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
    Err(format!(
        "the broker does not offer {} (it offers {})",
        sasl.mechanism,
        offered.join(", ")
    ))
}

/// Why a SaslAuthenticate answer refused the exchange: Kafka's error name and message.
pub fn refusal(response: &SaslAuthenticateResponse) -> String {
    let name = if response.error_code == ResponseError::SaslAuthenticationFailed.code() {
        "SASL_AUTHENTICATION_FAILED".to_string()
    } else {
        format!("error code {}", response.error_code)
    };
    match &response.error_message {
        Some(message) => format!("{name}: {message}"),
        None => name,
    }
}

/// One SaslAuthenticate round trip: the server's answer bytes, or its error.
fn exchange_step(conn: &mut Connection, message: Vec<u8>) -> Result<Vec<u8>> {
    let response =
        conn.call(&SaslAuthenticateRequest::default().with_auth_bytes(message.into()))?;
    if response.error_code != 0 {
        return Err(failed(conn.addr(), refusal(&response)));
    }
    Ok(response.auth_bytes.to_vec())
}

/// The client's side of one SASL exchange without I/O, for the CLI's blocking connection
/// and a follower's link to its leader alike: `start` gives the first SaslAuthenticate
/// message, `answer` the next one for each server answer until the exchange is complete
/// (for SCRAM, with the server's signature checked).
pub enum SaslExchange {
    /// PLAIN's one message is sent: a successful answer completes it.
    Plain,
    /// SCRAM's client-first is sent: the server's first is due.
    ScramFirst {
        client: ScramClient,
        password: String,
    },
    /// SCRAM's client-final is sent: the server's final must carry this signature.
    ScramFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

impl SaslExchange {
    /// The exchange `sasl` names and its first message.
    pub fn start(sasl: &SaslConfig) -> std::result::Result<(SaslExchange, Vec<u8>), String> {
        if sasl.mechanism == "PLAIN" {
            let message = format!("\0{}\0{}", sasl.username, sasl.password);
            return Ok((SaslExchange::Plain, message.into_bytes()));
        }
        let mechanism = ScramMechanism::from_name(&sasl.mechanism).ok_or_else(|| {
            format!(
                "{} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                sasl.mechanism
            )
        })?;
        let client = ScramClient::new(mechanism, &sasl.username);
        let first = client.first_message().into_bytes();
        let password = sasl.password.clone();
        Ok((SaslExchange::ScramFirst { client, password }, first))
    }

    /// The server's successful answer to the last message: the next message, or `None`
    /// when the exchange is complete.
    pub fn answer(&mut self, server: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        match std::mem::replace(self, SaslExchange::Done) {
            SaslExchange::Plain => Ok(None),
            SaslExchange::ScramFirst { client, password } => {
                let (client_final, server_signature) =
                    client.final_message(server, password.as_bytes())?;
                *self = SaslExchange::ScramFinal { server_signature };
                Ok(Some(client_final.into_bytes()))
            }
            SaslExchange::ScramFinal { server_signature } => {
                verify_server_final(server, &server_signature)?;
                Ok(None)
            }
            SaslExchange::Done => Err("the SASL exchange is already complete".into()),
        }
    }
}

/// RFC 5802's client: the first message, then the final one from the server's first.
pub struct ScramClient {
    mechanism: ScramMechanism,
    /// `n=user,r=nonce`, part of the signed AuthMessage.
    first_bare: String,
    nonce: String,
}

/// RFC 5802 `saslname`: `=` and `,` escaped.
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    fn new(mechanism: ScramMechanism, username: &str) -> ScramClient {
        let mut nonce = [0u8; CLIENT_NONCE_BYTES];
        rand::fill(&mut nonce);
        let nonce = BASE64.encode(nonce);
        ScramClient {
            mechanism,
            first_bare: format!("n={},r={nonce}", saslname(username)),
            nonce,
        }
    }

    /// No channel binding (`n,,`), as Kafka's clients.
    fn first_message(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// The client-final message for the server's first, and the server signature its
    /// final message must carry.
    fn final_message(
        &self,
        server_first: &[u8],
        password: &[u8],
    ) -> std::result::Result<(String, Vec<u8>), String> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| "the server's first message is not UTF-8".to_string())?;
        let attribute = |key: &str| {
            text.split(',')
                .find_map(|part| part.strip_prefix(key))
                .ok_or_else(|| format!("the server's first message has no {key}"))
        };
        let nonce = attribute("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = BASE64
            .decode(attribute("s=")?)
            .map_err(|_| "the server's salt is not base64".to_string())?;
        let iterations: u32 = attribute("i=")?
            .parse()
            .map_err(|_| "the server's iteration count is not a number".to_string())?;
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
            return Err(format!(
                "the server asks {iterations} iterations ({SCRAM_ITERATIONS_MIN}..={SCRAM_ITERATIONS_MAX} accepted)"
            ));
        }
        let m = self.mechanism;
        let salted = m.salted_password(password, &salt, iterations);
        let client_key = m.hmac(&salted, &[b"Client Key"]);
        let stored_key = m.hash(&client_key);
        // `biws` is base64("n,,"): the GS2 header of the first message, no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let signature = m.hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, &[b"Server Key"]);
        let server_signature = m.hmac(&server_key, &[auth_message.as_bytes()]);
        Ok((
            format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature,
        ))
    }
}

/// The server's final message must carry the signature only a holder of our credential's
/// ServerKey can compute (`v=`), or name its error (`e=`).
fn verify_server_final(message: &[u8], expected: &[u8]) -> std::result::Result<(), String> {
    let text = std::str::from_utf8(message)
        .map_err(|_| "the server's final message is not UTF-8".to_string())?;
    if let Some(error) = text.strip_prefix("e=") {
        return Err(format!("the server refused: {error}"));
    }
    let signature = text
        .split(',')
        .find_map(|part| part.strip_prefix("v="))
        .and_then(|v| BASE64.decode(v).ok())
        .ok_or_else(|| "the server's final message has no signature".to_string())?;
    if signature != expected {
        return Err(
            "the server's signature is wrong (not the broker holding this user's credential)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramServer};

    #[test]
    fn the_client_completes_an_exchange_with_the_broker_side() {
        for mechanism in ScramMechanism::ALL {
            let salt = b"some salt".to_vec();
            let salted = mechanism.salted_password(b"s3cret", &salt, 4096);
            let credential = ScramCredential::from_salted_password(mechanism, &salted, &salt, 4096);
            let client = ScramClient::new(mechanism, "al,ice");
            let mut server = ScramServer::new(mechanism);
            let server_first = server
                .client_first(client.first_message().as_bytes(), |user| {
                    assert_eq!(user, "al,ice");
                    Some(credential.clone())
                })
                .unwrap();
            let (client_final, expected) = client.final_message(&server_first, b"s3cret").unwrap();
            let success = server.client_final(client_final.as_bytes()).unwrap();
            verify_server_final(&success.server_final, &expected).unwrap();
            // A wrong password's proof is refused by the server.
            let client = ScramClient::new(mechanism, "al,ice");
            let mut server = ScramServer::new(mechanism);
            let server_first = server
                .client_first(client.first_message().as_bytes(), |_| {
                    Some(credential.clone())
                })
                .unwrap();
            let (client_final, _) = client.final_message(&server_first, b"wrong").unwrap();
            assert!(server.client_final(client_final.as_bytes()).is_err());
        }
    }
}
