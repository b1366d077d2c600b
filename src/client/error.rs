//! `ClientError`: every way a client call can fail, with enough context to print one useful
//! line. Owns the mapping of Kafka error codes to their protocol NAMES (e.g.
//! `TOPIC_ALREADY_EXISTS`). Must not: print anything or decide on retries.

use kafka_protocol::ResponseError;
use std::fmt;

/// A client-side failure. `Display` is always a single line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not resolve or connect to a broker address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A read or write on an established connection failed (including timeouts).
    #[error("i/o error talking to {addr} during {api}: {source}")]
    Io {
        addr: String,
        api: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The broker closed the connection.
    #[error("connection to {addr} closed by the broker during {api}")]
    Closed { addr: String, api: &'static str },
    /// A request could not be encoded or a response could not be decoded.
    #[error("protocol error with {addr} for {api}: {detail}")]
    Protocol {
        addr: String,
        api: &'static str,
        detail: String,
    },
    /// The broker does not support any version of an API this client implements.
    #[error("broker {addr} does not support {api} (client versions {client_min}..={client_max})")]
    UnsupportedApi {
        addr: String,
        api: &'static str,
        client_min: i16,
        client_max: i16,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {}{}", KafkaCode(*code), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        context: String,
        code: i16,
        message: Option<String>,
    },
    /// The cluster state does not allow the call (unknown topic, no leader, bad argument).
    #[error("{0}")]
    Invalid(String),
    /// An operation did not finish within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl ClientError {
    /// Builds a `Kafka` error from a response error code; `None` if the code means success.
    pub fn from_code(code: i16, context: impl Into<String>, message: Option<&str>) -> Option<Self> {
        if code == 0 {
            return None;
        }
        Some(ClientError::Kafka {
            context: context.into(),
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// The Kafka error code, if this is a broker-reported error.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True if the Kafka protocol marks this error retriable, or it is a transport failure
    /// a fresh connection may fix.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            ClientError::Io { .. } | ClientError::Closed { .. } | ClientError::Timeout(_) => true,
            _ => false,
        }
    }
}

/// Displays a Kafka error code as its protocol name, e.g. `TOPIC_ALREADY_EXISTS`.
#[derive(Debug, Clone, Copy)]
pub struct KafkaCode(pub i16);

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&error_name(self.0))
    }
}

/// The protocol name of a Kafka error code: `NONE` for 0, `UNKNOWN_ERROR_CODE_<n>` if unknown.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(n)) => format!("UNKNOWN_ERROR_CODE_{n}"),
        // The crate's Display is the CamelCase variant name; Kafka documents SCREAMING_SNAKE.
        Some(e) => camel_to_screaming_snake(&e.to_string()),
    }
}

fn camel_to_screaming_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// Shorthand used across the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_shown_by_protocol_name() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(31000), "UNKNOWN_ERROR_CODE_31000");
    }

    #[test]
    fn kafka_error_display_is_one_line_with_name_and_message() {
        let err = ClientError::from_code(36, "create topic `a`", Some("Topic 'a' already exists."))
            .expect("non-zero code is an error");
        let text = err.to_string();
        assert_eq!(
            text,
            "create topic `a`: TOPIC_ALREADY_EXISTS (Topic 'a' already exists.)"
        );
        assert!(!text.contains('\n'));
        assert!(ClientError::from_code(0, "x", None).is_none());
    }
}
