//! Wire codec. Message encodings come from the `kafka-protocol` crate, generated from
//! Kafka's own JSON message specs (flexible versions and tagged fields exact); what lives
//! here is the table of what Sluice serves and the hand-written hot paths (Fetch framing
//! around zero-copy file regions). RecordBatch validation is `storage::batch`.

pub mod alloc_guard;
pub mod api;
pub mod decode;
pub mod fetch_encoder;

pub use api::{SUPPORTED_APIS, supported_range};
pub use decode::{DecodedRequest, decode_request};
