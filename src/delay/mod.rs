//! Delayed delivery (issue 18, decision 0009): records that ask to appear in their topic
//! later are kept in a per-shard delay log until they are due, then appended to their
//! partition by the shard's delay service (`shard::delayed`).
//!
//! Owns: reading a produce payload's delay requests (`plan`: the header pre-check and the
//! per-record due times), the delay log's file format and replay (`log`), its pending-index
//! checkpoint (`checkpoint`), and the batch a
//! delivery appends (`delivery`). Must not: touch partitions, shards or sockets (the shard's
//! delay service does the I/O and the appends).

pub mod checkpoint;
pub mod delivery;
pub mod log;
pub mod plan;

/// Header asking for a delay in milliseconds from the broker's receipt (decimal ASCII).
pub const DELAY_HEADER: &[u8] = b"sluice.delay.ms";
/// Header asking for delivery at an epoch time in milliseconds (decimal ASCII).
pub const DELIVER_AT_HEADER: &[u8] = b"sluice.deliver.at.ms";
/// The prefix both header keys share: the produce path's one memmem pass looks for it.
pub const HEADER_KEY_PREFIX: &[u8] = b"sluice.del";
const _: () = assert!(DELAY_HEADER.len() > HEADER_KEY_PREFIX.len());

/// Producer id base of the delivery producer: shard `n` appends its deliveries as producer
/// `DELIVERY_PRODUCER_ID_BASE + n`, epoch 0, so the partition's idempotence recognises a
/// delivery re-appended after a crash. InitProducerId hands out ids from 0 upwards and
/// never gets near this range.
pub const DELIVERY_PRODUCER_ID_BASE: i64 = 0x7fff_ffff_0000_0000;
/// The delivery producer's epoch (never bumped: its sequences are continued from the
/// partition's producer state).
pub const DELIVERY_PRODUCER_EPOCH: i16 = 0;
