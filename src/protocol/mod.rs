//! Wire codec. Message encodings come from the `kafka-protocol` crate, generated from
//! Kafka's own JSON message specs (flexible versions and tagged fields exact); what lives
//! here are the hand-written hot paths (Fetch framing
//! around zero-copy file regions) and the versions the crate does not know yet
//! (`share_v2`). RecordBatch validation is `storage::batch`.

pub mod alloc_guard;
pub mod fetch_encoder;
pub mod share_v2;
