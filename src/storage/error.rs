//! Errors of the partition log. Owns the mapping from storage failures to Kafka error codes;
//! must not decide how a handler answers beyond that code.

use kafka_protocol::ResponseError;
use std::io;
use std::path::PathBuf;

use super::batch::BatchError;
use super::recompress::RecompressError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    MessageTooLarge { size_bytes: usize, max_bytes: u32 },
    #[error(
        "out of order sequence for producer {producer_id}: got {first_sequence}, expected after {last_sequence}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        first_sequence: i32,
        last_sequence: i32,
    },
    #[error("producer {producer_id} epoch {epoch} is older than current epoch {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("cannot recompress for compression.type: {0}")]
    Recompress(#[from] RecompressError),
    #[error("corrupt log {}: at byte {position}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("i/o error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("partition {partition} is offline: {reason}")]
    Offline { partition: String, reason: String },
    /// A follower was sent a batch starting below its log end that it does not hold: the
    /// two logs diverge there (truncation by leader epoch must run first).
    #[error("replicated batch at offset {base_offset} overlaps the log ending at {log_end_offset}")]
    Diverged {
        base_offset: i64,
        log_end_offset: i64,
    },
}

impl StorageError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn corrupt(file: impl Into<PathBuf>, position: u64, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            file: file.into(),
            position,
            reason: reason.into(),
        }
    }

    /// No space (or quota) left on the device: recoverable once space is freed.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => {
                source.kind() == io::ErrorKind::StorageFull
                    || matches!(
                        source.raw_os_error(),
                        Some(libc::ENOSPC) | Some(libc::EDQUOT)
                    )
            }
            _ => false,
        }
    }

    /// The Kafka error code a handler should answer with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
            StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
            StorageError::OutOfOrderSequence { .. } => {
                ResponseError::OutOfOrderSequenceNumber.code()
            }
            StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
            StorageError::InvalidBatch(e) => e.kafka_error_code(),
            StorageError::Recompress(e) => e.kafka_error_code(),
            StorageError::Corrupt { .. } => ResponseError::KafkaStorageError.code(),
            StorageError::Io { .. } => ResponseError::KafkaStorageError.code(),
            StorageError::Offline { .. } => ResponseError::KafkaStorageError.code(),
            StorageError::Diverged { .. } => ResponseError::OffsetOutOfRange.code(),
        }
    }
}
