//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka serves them: the stored
//! credential (salt, StoredKey, ServerKey, iterations: never the password, never the salted
//! password) and the server side of the four-message exchange.
//!
//! Built on RustCrypto's `hmac`/`sha2`/`pbkdf2` primitives (decision 0010: no maintained
//! crate serves SCRAM-SHA-512 from StoredKey/ServerKey). Every client message is bounded in
//! size and parsed without panics; proofs are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's minimum iteration count for both mechanisms.
pub const ITERATIONS_MIN: i32 = 4096;
/// Kafka's maximum iteration count (bounds the PBKDF2 work a PLAIN login can cost).
pub const ITERATIONS_MAX: i32 = 16384;
/// Longest client SCRAM message accepted (RFC 5802 messages are a few hundred bytes).
pub const CLIENT_MESSAGE_BYTES_MAX: usize = 4096;
/// Bytes of server nonce appended to the client's.
const SERVER_NONCE_BYTES: usize = 24;

/// A SCRAM mechanism, with Kafka's wire code (`ScramMechanism` in the SCRAM credential APIs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
            let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
                return Vec::new();
            };
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802 `Hi()`: PBKDF2 with this mechanism's HMAC, one hash length of output.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What the broker stores for one user and mechanism.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl ScramCredential {
    /// The credential for a salted password (what AlterUserScramCredentials carries): the
    /// salted password itself is not kept.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, &[b"Client Key"]);
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, &[b"Server Key"]),
            iterations,
        }
    }

    /// Whether `password` is this credential's password (PLAIN logins): derive and compare
    /// in constant time.
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let Ok(iterations) = u32::try_from(self.iterations) else {
            return false;
        };
        let salted = mechanism.salted_password(password, &self.salt, iterations);
        let derived = ScramCredential::from_salted_password(mechanism, &salted, &self.salt, 0);
        bool::from(derived.stored_key.ct_eq(&self.stored_key))
    }
}

/// Why a SCRAM exchange failed; the message goes to the client with
/// SASL_AUTHENTICATION_FAILED or ILLEGAL_SASL_STATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message is not a valid SCRAM message (or is out of turn).
    Malformed(String),
    /// Unknown user or wrong proof: one message for both, as Kafka gives.
    InvalidCredentials,
}

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScramError::Malformed(why) => write!(f, "invalid SCRAM message: {why}"),
            ScramError::InvalidCredentials => write!(f, "invalid user credentials"),
        }
    }
}

/// Where a server-side exchange stands.
#[derive(Debug)]
enum Stage {
    AwaitingClientFirst,
    AwaitingClientFinal {
        user: String,
        credential: ScramCredential,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    /// Appended to the client's nonce; random per exchange.
    server_nonce: String,
    stage: Stage,
}

/// What a client-final message proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSuccess {
    pub user: String,
    /// The `server-final-message` to send back.
    pub server_final: Vec<u8>,
}

fn malformed(why: &str) -> ScramError {
    ScramError::Malformed(why.to_string())
}

/// A client message as UTF-8 text within the size bound.
fn text(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > CLIENT_MESSAGE_BYTES_MAX {
        return Err(malformed("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))
}

/// RFC 5802 `saslname`: `=2C` is ',', `=3D` is '='; any other '=' is invalid.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest
            .get(at..at + 3)
            .ok_or_else(|| malformed("bad escape"))?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(malformed("bad escape")),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("empty user name"));
    }
    Ok(out)
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        let mut server_nonce = [0u8; SERVER_NONCE_BYTES];
        rand::fill(&mut server_nonce[..]);
        ScramServer::with_server_nonce(mechanism, BASE64.encode(server_nonce))
    }

    /// An exchange with a given server nonce (the RFC test vectors fix it).
    fn with_server_nonce(mechanism: ScramMechanism, server_nonce: String) -> ScramServer {
        ScramServer {
            mechanism,
            server_nonce,
            stage: Stage::AwaitingClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// No message handled yet: the next one is `client-first-message`.
    pub fn awaiting_client_first(&self) -> bool {
        matches!(self.stage, Stage::AwaitingClientFirst)
    }

    /// Handles `client-first-message`; `lookup` finds the user's credential for this
    /// mechanism. Returns `server-first-message`.
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.stage, Stage::AwaitingClientFirst) {
            return Err(malformed("client-first-message out of turn"));
        }
        self.stage = Stage::Done;
        let message = text(message)?;
        // gs2-header: channel binding flag, optional authzid, then the bare message.
        let (flag, rest) = message
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        if flag != "n" && flag != "y" {
            return Err(malformed("channel binding is not supported"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no GS2 header"))?;
        let mut fields = bare.split(',');
        let user = match fields.next() {
            Some(f) if f.starts_with("n=") => decode_saslname(&f[2..])?,
            _ => return Err(malformed("no user name")),
        };
        let client_nonce = match fields.next() {
            Some(f) if f.starts_with("r=") && f.len() > 2 => &f[2..],
            _ => return Err(malformed("no client nonce")),
        };
        if !client_nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(malformed("invalid client nonce"));
        }
        // Extensions (Kafka's `tokenauth=true` for delegation tokens) are not served.
        if fields.next().is_some() {
            return Err(malformed("SCRAM extensions are not supported"));
        }
        if !authzid.is_empty()
            && authzid.strip_prefix("a=").map(decode_saslname) != Some(Ok(user.clone()))
        {
            return Err(malformed("authorization id differs from the user name"));
        }
        let credential = lookup(&user).ok_or(ScramError::InvalidCredentials)?;
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        self.stage = Stage::AwaitingClientFinal {
            user,
            credential,
            nonce,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
        };
        Ok(server_first.into_bytes())
    }

    /// Handles `client-final-message`: checks the channel binding, the nonce and the proof.
    pub fn client_final(&mut self, message: &[u8]) -> Result<ScramSuccess, ScramError> {
        let Stage::AwaitingClientFinal {
            user,
            credential,
            nonce,
            client_first_bare,
            server_first,
        } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return Err(malformed("client-final-message out of turn"));
        };
        let message = text(message)?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = match fields.next() {
            Some(f) if f.starts_with("c=") => &f[2..],
            _ => return Err(malformed("no channel binding")),
        };
        let binding = BASE64
            .decode(binding)
            .map_err(|_| malformed("bad channel binding"))?;
        if !(binding.starts_with(b"n,") || binding.starts_with(b"y,")) {
            return Err(malformed("channel binding is not supported"));
        }
        match fields.next() {
            Some(f) if f.strip_prefix("r=") == Some(nonce.as_str()) => {}
            _ => return Err(malformed("nonce mismatch")),
        }
        if fields.next().is_some() {
            return Err(malformed("SCRAM extensions are not supported"));
        }
        let proof = BASE64.decode(proof).map_err(|_| malformed("bad proof"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let mechanism = self.mechanism;
        let client_signature = mechanism.hmac(&credential.stored_key, &[auth_message.as_bytes()]);
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(mechanism.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = mechanism.hmac(&credential.server_key, &[auth_message.as_bytes()]);
        Ok(ScramSuccess {
            user,
            server_final: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    }
}

/// Serde as base64 text, so the metadata file stays readable JSON.
mod base64_bytes {
    use super::BASE64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
