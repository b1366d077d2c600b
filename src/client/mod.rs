//! A small blocking Kafka client that works with any Kafka-compatible broker: used by the
//! `sluice` CLI tools and the benchmark harness.
//!
//! Layers, one direction only: `connection` (one socket: framing, versions, pipelining) ←
//! `cluster` (metadata, per-broker connections) ← `admin` (topic, config and offset admin
//! calls) / `producer` / `consumer` / `group`. Must not: depend on broker internals
//! (`server`, `storage`); it speaks only the wire protocol.

pub mod acls;
pub mod admin;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod partitioner;
pub mod producer;
pub mod reassign;
pub mod sasl;
pub mod tls;
pub mod transactions;

pub use admin::{ConfigEntry, NewTopic, OffsetSpec};
pub use cluster::{BrokerMetadata, Client, PartitionMetadata, TopicMetadata};
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{
    ConsumedRecord, Consumer, ConsumerConfig, StartOffset, decode_batches, fetch_request,
};
pub use error::{ClientError, KafkaCode, Result, error_name};
pub use group::{GroupConfig, GroupMember, HeartbeatStatus};
pub use kafka_protocol::records::Compression;
pub use partitioner::{NullKeyStrategy, Partitioner, murmur2, partition_for_key};
pub use producer::{
    Acks, DeliveryFailure, FlushReport, Producer, ProducerConfig, ProducerRecord, encode_batch,
    parse_compression, produce_request, produce_request_of,
};
pub use sasl::SaslConfig;
