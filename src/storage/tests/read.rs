//! Reading: fetch regions by offset and size, timestamp lookups, long-poll wake-ups and the
//! cross-thread types a fetch hands to the connection's shard.

use std::rc::Rc;

use super::support::{batch, crash, open, small_config};
use crate::config::LogConfig;
use crate::storage::batch::validate_batches;
use crate::storage::error::StorageError;
use crate::storage::log::PartitionLog;

#[compio::test]
async fn every_offset_is_found_in_the_batch_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    for i in 0..60 {
        log.append(batch(1 + i % 5, 30, i as i64), false, 0)
            .await
            .unwrap();
    }
    let check = |log: Rc<PartitionLog>| async move {
        for o in 0..log.written_end_offset() {
            let slice = log.read(o, 1).await.unwrap();
            let bytes = slice.regions[0].read_to_vec().await.unwrap();
            let h = validate_batches(&bytes).unwrap()[0].header;
            assert!(
                h.base_offset <= o && o <= h.last_offset(),
                "offset {o} in {h:?}"
            );
            assert_eq!(slice.total_bytes, bytes.len() as u64);
        }
    };
    check(Rc::clone(&log)).await;
    // Unclean reopen (no close): indexes rebuilt by recovery.
    crash(log).await;
    let log = open(dir.path(), small_config()).await.unwrap();
    check(Rc::clone(&log)).await;
    log.close().await.unwrap();
    // Clean reopen: indexes loaded from disk.
    let log = open(dir.path(), small_config()).await.unwrap();
    check(log).await;
}

#[compio::test]
async fn reads_end_on_batch_boundaries_within_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let one = batch(3, 100, 0);
    let size = one.len() as u32;
    for _ in 0..10 {
        log.append(batch(3, 100, 0), false, 0).await.unwrap();
    }
    // Smaller than one batch: the first batch anyway (KIP-74).
    let s = log.read(0, 10).await.unwrap();
    assert_eq!(s.total_bytes, size as u64);
    // 2.5 batches: two whole batches.
    let s = log.read(3, size * 5 / 2).await.unwrap();
    let bytes = s.regions[0].read_to_vec().await.unwrap();
    let v = validate_batches(&bytes).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].header.base_offset, 3);
    // Everything.
    let s = log.read(0, u32::MAX).await.unwrap();
    assert_eq!(s.total_bytes, size as u64 * 10);
    // At the written end: empty. Past the end or before the start: out of range.
    let s = log.read(30, 1000).await.unwrap();
    assert!(s.regions.is_empty());
    assert_eq!(s.written_end_offset, 30);
    assert!(matches!(
        log.read(31, 1000).await,
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.read(31, 1000).await.unwrap_err().kafka_error_code(), 1);
    log.delete_records(6).await.unwrap();
    assert!(matches!(
        log.read(5, 1000).await,
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[compio::test]
async fn timestamp_lookup_finds_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    // Batch i has timestamps 1000*i .. 1000*i+1 (two records).
    for i in 0..50i64 {
        log.append(batch(2, 50, 1000 * i), false, 0).await.unwrap();
    }
    assert!(log.segment_count() > 1);
    for i in 0..50i64 {
        let got = log.offset_for_timestamp(1000 * i).await.unwrap();
        assert_eq!(got, Some((2 * i, 1000 * i)), "target {}", 1000 * i);
        // The second record of the batch, not the batch start.
        let got = log.offset_for_timestamp(1000 * i + 1).await.unwrap();
        assert_eq!(got, Some((2 * i + 1, 1000 * i + 1)));
        let got = log.offset_for_timestamp(1000 * i + 500).await.unwrap();
        if i < 49 {
            assert_eq!(got, Some((2 * (i + 1), 1000 * (i + 1))));
        } else {
            assert_eq!(got, None);
        }
    }
    assert_eq!(log.offset_for_timestamp(-5).await.unwrap(), Some((0, 0)));
    assert_eq!(log.max_timestamp().await.unwrap(), (49_001, 99));
    // Survives a clean reopen (time index and sealed max timestamps from disk).
    log.close().await.unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    assert_eq!(
        log.offset_for_timestamp(25_000).await.unwrap(),
        Some((50, 25_000))
    );
    assert_eq!(log.max_timestamp().await.unwrap(), (49_001, 99));
}

#[compio::test]
async fn wait_for_append_completes_when_the_written_end_moves() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default()).await.unwrap();
    let waiter = log.wait_for_append();
    let l2 = Rc::clone(&log);
    let task = compio::runtime::spawn(async move {
        waiter.await;
        l2.written_end_offset()
    });
    log.append(batch(1, 10, 0), false, 0).await.unwrap();
    assert_eq!(task.await.unwrap(), 1);
}

/// Fetch results cross shards (connection shard != partition shard): regions must be `Send`.
#[test]
fn file_regions_can_cross_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<crate::storage::log::FileRegion>();
    assert_send::<crate::storage::log::ReadSlice>();
    assert_send::<crate::storage::log::AppendOutcome>();
    assert_send::<StorageError>();
}

/// One batch whose records carry `timestamps` in order (offsets assigned by the log).
fn batch_with_timestamps(
    timestamps: &[i64],
    compression: kafka_protocol::records::Compression,
) -> bytes::BytesMut {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &timestamp)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch unless offset - sequence stays constant.
            sequence: i as i32 - 1,
            timestamp,
            key: None,
            value: Some(bytes::Bytes::from(vec![b'v'; 40])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf
}

#[compio::test]
async fn max_timestamp_names_the_record_not_the_batch_end() {
    use kafka_protocol::records::Compression;
    for compression in [Compression::None, Compression::Gzip] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config()).await.unwrap();
        log.append(batch_with_timestamps(&[1; 10], compression), false, 0)
            .await
            .unwrap();
        // Offsets 10, 11, 12 with timestamps 5, 9, 3: the max is the middle record.
        log.append(batch_with_timestamps(&[5, 9, 3], compression), false, 0)
            .await
            .unwrap();
        log.append(batch_with_timestamps(&[4, 8], compression), false, 0)
            .await
            .unwrap();
        assert_eq!(
            log.max_timestamp().await.unwrap(),
            (9, 11),
            "{compression:?}"
        );
        // Clean reopen: from the time index the close wrote.
        log.close().await.unwrap();
        let log = open(dir.path(), small_config()).await.unwrap();
        assert_eq!(
            log.max_timestamp().await.unwrap(),
            (9, 11),
            "{compression:?}"
        );
        // Unclean reopen: recovery rebuilds it from the log.
        crash(log).await;
        let log = open(dir.path(), small_config()).await.unwrap();
        assert_eq!(
            log.max_timestamp().await.unwrap(),
            (9, 11),
            "{compression:?}"
        );
    }
}
