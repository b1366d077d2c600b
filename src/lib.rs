//! Sluice: a Kafka-compatible storage node. Thread-per-core, shared-nothing: each core runs
//! its own io_uring event loop and owns a set of partitions. See `docs/architecture.md`.

pub mod cli;
pub mod config;
pub mod group;
