//! Tiny helpers every group file uses to build Kafka answers (strings, error codes).
//!
//! Owns: the conversions only. Must not: hold any group logic, or import any other group
//! module (everything in group/ may import this one).

use kafka_protocol::ResponseError;
use kafka_protocol::protocol::StrBytes;

/// An owned Kafka string from a `&str` (the generated messages take `StrBytes`).
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The wire error code of a per-member or per-partition result: 0 (Kafka's NONE, which
/// `ResponseError` has no variant for) on success.
pub fn error_code(result: Result<(), ResponseError>) -> i16 {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}
