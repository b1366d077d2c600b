//! Sluice: a Kafka-compatible storage node. Thread-per-core, shared-nothing: each core runs
//! its own io_uring event loop and owns a set of partitions. See `docs/architecture.md`.

pub mod admin;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod delay;
pub mod group;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod protocol;
pub mod security;
pub mod server;
pub mod shard;
pub mod storage;
pub mod txn;
