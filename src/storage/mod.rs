//! The partition log: Kafka's on-disk layout (`<topic>-<partition>/<base:020>.log`, `.index`,
//! `.timeindex`), record batches stored exactly as received, group-committed appends through
//! io_uring, recovery, retention and idempotent-producer state. See
//! `docs/decisions/0002-storage-format.md`. Must not know about sockets, requests or shards.

mod append;
pub mod batch;
pub mod cleaner;
pub mod codec;
pub mod control;
pub mod error;
mod evict;
pub mod filesystem;
pub mod filesystem_sync;
mod flush_watch;
mod follower_append;
pub mod frames;
pub mod hw_checkpoint;
pub mod le_reader;
pub mod leader_epochs;
pub mod log;
mod lookup;
pub mod notify;
pub mod offset_index;
pub mod open_files;
pub mod page_cache;
pub mod producer_state;
mod read;
pub mod recompress;
mod recovery;
mod retention;
mod revalidate;
mod sealer;
pub mod segment;
pub mod state;
pub mod sync_count;
pub mod time_index;
mod truncate;
mod write_behind;
mod writer;

#[cfg(test)]
mod tests;

pub use batch::{
    BatchError, BatchHeader, BatchSummary, RECORD_BATCH_HEADER_BYTES, validate_batches,
};
pub use error::StorageError;
pub use flush_watch::FlushWatch;
pub use log::{AppendOutcome, FileRegion, PartitionLog, ReadSlice, SyncObserver};
/// The log's single-thread wake-up, also used by the partition's share-state waiters.
pub use notify::Event;
pub use producer_state::{AbortedTxn, ProducerStateInfo};
