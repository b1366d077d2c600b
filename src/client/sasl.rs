//! The client's side of SASL (issue 20), run on each new connection to a SASL_PLAINTEXT or
//! SASL_SSL listener right after ApiVersions, as Kafka's clients do: SaslHandshake v1 names
//! the mechanism, then SaslAuthenticate carries PLAIN's one message or SCRAM's two
//! (RFC 5802 / RFC 7677, SCRAM-SHA-256 and SCRAM-SHA-512, with the server's signature
//! checked). Also the client's security settings as the CLI takes them.
//!
//! Must not: frame requests (`connection` does) or keep the password beyond the config.

use super::connection::Connection;
use super::error::{ClientError, Result};
use crate::security::scram::ScramMechanism;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
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
    let handshake = conn.call(
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(sasl.mechanism.clone())),
    )?;
    if handshake.error_code != 0 {
        let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(failed(
            &addr,
            format!(
                "the broker does not offer {} (it offers {})",
                sasl.mechanism,
                offered.join(", ")
            ),
        ));
    }
    if sasl.mechanism == "PLAIN" {
        let message = format!("\0{}\0{}", sasl.username, sasl.password);
        exchange(conn, message.into_bytes())?;
        return Ok(());
    }
    let mechanism = ScramMechanism::from_name(&sasl.mechanism).ok_or_else(|| {
        failed(
            &addr,
            format!(
                "{} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                sasl.mechanism
            ),
        )
    })?;
    let client = ScramClient::new(mechanism, &sasl.username);
    let server_first = exchange(conn, client.first_message().into_bytes())?;
    let (client_final, server_signature) = client
        .final_message(&server_first, sasl.password.as_bytes())
        .map_err(|e| failed(&addr, e))?;
    let server_final = exchange(conn, client_final.into_bytes())?;
    verify_server_final(&server_final, &server_signature).map_err(|e| failed(&addr, e))
}

/// One SaslAuthenticate round trip: the server's answer bytes, or its error.
fn exchange(conn: &mut Connection, message: Vec<u8>) -> Result<Vec<u8>> {
    let response =
        conn.call(&SaslAuthenticateRequest::default().with_auth_bytes(message.into()))?;
    if response.error_code != 0 {
        let why = response
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| format!("error code {}", response.error_code));
        return Err(failed(conn.addr(), why));
    }
    Ok(response.auth_bytes.to_vec())
}

/// RFC 5802's client: the first message, then the final one from the server's first.
struct ScramClient {
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
