//! Shared set-up for the partition-log tests: a small config, test batches, opening,
//! simulated crashes and a CRC-checked read of the whole log. Holds no tests itself.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;

use crate::config::LogConfig;
use crate::storage::batch::{BatchHeader, build_test_batch, validate_batches};
use crate::storage::error::StorageError;
use crate::storage::log::PartitionLog;

const TOPIC: &str = "t";

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

pub(super) fn batch(count: i32, value_len: usize, ts: i64) -> BytesMut {
    BytesMut::from(&build_test_batch(count, value_len, ts, None)[..])
}

pub(super) fn pbatch(pid: i64, epoch: i16, seq: i32, count: i32) -> BytesMut {
    BytesMut::from(&build_test_batch(count, 8, 1000, Some((pid, epoch, seq)))[..])
}

pub(super) async fn open(dir: &Path, config: LogConfig) -> Result<Rc<PartitionLog>, StorageError> {
    PartitionLog::open(dir, TOPIC, 0, config).await
}

/// Drops the handle without `close`, as a crash would. A crash also ends the log's
/// background seal tasks; in a test they would outlive the handle and race the reopen, so
/// they finish first. Nothing else is flushed or marked clean.
pub(super) async fn crash(log: Rc<PartitionLog>) {
    log.wait_writer_idle().await;
    drop(log);
}

/// Every batch from the log start to the written end, CRC-checked, via `read`.
pub(super) async fn read_all(log: &PartitionLog) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.written_end_offset() {
        let slice = log.read(offset, 1000).await.unwrap();
        assert!(!slice.regions.is_empty(), "no data at {offset}");
        for r in &slice.regions {
            let bytes = r.read_to_vec().await.unwrap();
            let batches = validate_batches(&bytes).expect("served bytes are whole valid batches");
            for b in batches {
                out.push(b.header);
                offset = b.header.last_offset() + 1;
            }
        }
    }
    out
}

pub(super) fn assert_gap_free(headers: &[BatchHeader], from: i64) {
    let mut next = from;
    for h in headers {
        assert_eq!(h.base_offset, next, "gap or overlap before {h:?}");
        next = h.last_offset() + 1;
    }
}
