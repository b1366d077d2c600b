//! Log compaction through the partition log's API: newest value per key at its original
//! offset, tombstones kept for `delete.retention.ms` then dropped, the active segment and
//! producers' last batches left alone, the checkpoint surviving a reopen, and interrupted
//! swaps finished or discarded at open.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::support::open;
use crate::config::{CleanupPolicy, LogConfig};
use crate::storage::batch::BatchHeader;
use crate::storage::cleaner::{CleanerBudget, IoThrottle};
use crate::storage::log::PartitionLog;

pub(super) fn compact_config() -> LogConfig {
    let mut config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        cleanup_policy: CleanupPolicy::Compact,
        // Rolled by `seal_and_flush` (through the `segment.ms` check), not by appends.
        segment_ms: 1,
        ..LogConfig::default()
    };
    config.set("min.cleanable.dirty.ratio", "0.01").unwrap();
    config
}

pub(super) fn throttle(io_max_bytes_per_second: u64) -> IoThrottle {
    IoThrottle::new(CleanerBudget {
        io_max_bytes_per_second,
        dedupe_buffer_bytes: 1 << 20,
        sleep: Rc::new(|d: Duration| Box::pin(compio::time::sleep(d))),
        swap_pause: Duration::ZERO,
        stop_requested: Rc::new(|| false),
    })
}

/// One batch of (key, value) records, timestamps `ts`.
pub(super) fn keyed(
    records: &[(String, Option<String>)],
    ts: i64,
    compression: Compression,
) -> BytesMut {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: ts,
            key: Some(Bytes::from(key.clone())),
            value: value.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf
}

/// Every record from the log start: (offset, key, value), via `read` and a Kafka decoder.
async fn read_records(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.written_end_offset() {
        let slice = log.read(offset, 64 * 1024).await.unwrap();
        assert!(!slice.regions.is_empty(), "no data at {offset}");
        for region in &slice.regions {
            let mut bytes = Bytes::from(region.read_to_vec().await.unwrap());
            while !bytes.is_empty() {
                let header = BatchHeader::parse_stored_at(&bytes, 0).unwrap();
                let whole = bytes.split_to(header.size_bytes());
                crate::storage::batch::verify_crc(&whole, &header, 0).unwrap();
                let mut one = whole.clone();
                for r in RecordBatchDecoder::decode(&mut one).unwrap().records {
                    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                    out.push((r.offset, text(r.key).unwrap(), text(r.value)));
                }
                offset = header.last_offset() + 1;
            }
        }
    }
    out
}

/// `versions` rounds of `keys` keys, one batch of `keys` records per round; the value of
/// key k in round v is "k-v". Returns the log end.
async fn produce_versions(log: &PartitionLog, keys: usize, versions: usize, ts: i64) -> i64 {
    for v in 0..versions {
        let records: Vec<_> = (0..keys)
            .map(|k| {
                (
                    format!("key-{k}"),
                    Some(format!("{k}-{v}-{}", "x".repeat(40))),
                )
            })
            .collect();
        let compression = if v % 2 == 0 {
            Compression::None
        } else {
            Compression::Gzip
        };
        log.append(keyed(&records, ts, compression), false, ts)
            .await
            .unwrap();
    }
    log.log_end_offset()
}

/// Seals the active segment (an append of a marker batch after a roll) and syncs, so all
/// data before it is cleanable.
pub(super) async fn seal_and_flush(log: &PartitionLog, ts: i64) {
    log.enforce_retention(ts + 1).await.unwrap();
    log.append(
        keyed(
            &[("marker".into(), Some("m".into()))],
            ts,
            Compression::None,
        ),
        false,
        ts,
    )
    .await
    .unwrap();
    log.flush().await.unwrap();
}

#[compio::test]
async fn newest_value_per_key_stays_at_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config()).await.unwrap();
    let (keys, versions) = (20usize, 6usize);
    produce_versions(&log, keys, versions, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    let before = log.size_bytes();
    let end = log.log_end_offset();
    let stats = log
        .clean(10_000, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .expect("a pass ran");
    assert!(stats.bytes_reclaimed > 0, "{stats:?}");
    assert_eq!(stats.records_removed, (keys * (versions - 1)) as u64);
    assert!(log.size_bytes() < before);
    assert_eq!(log.log_end_offset(), end, "the log end never moves");
    let records = read_records(&log).await;
    let last_round = versions - 1;
    let expected: Vec<_> = (0..keys)
        .map(|k| {
            let offset = (last_round * keys + k) as i64;
            (
                offset,
                format!("key-{k}"),
                Some(format!("{k}-{last_round}-{}", "x".repeat(40))),
            )
        })
        .chain(std::iter::once((
            end - 1,
            "marker".to_string(),
            Some("m".to_string()),
        )))
        .collect();
    assert_eq!(records, expected);
    // A second pass has nothing dirty left below the active segment.
    assert_eq!(
        log.clean(10_000, &mut throttle(u64::MAX)).await.unwrap(),
        None
    );
    // Appends go on at the log end; a reopen keeps the cleaned log and the checkpoint.
    let checkpoint = log.cleaner_first_dirty_offset();
    assert_eq!(checkpoint, stats.cleaned_up_to);
    log.close().await.unwrap();
    drop(log);
    let log = open(dir.path(), compact_config()).await.unwrap();
    assert_eq!(log.cleaner_first_dirty_offset(), checkpoint);
    assert_eq!(read_records(&log).await, expected);
    assert_eq!(log.log_end_offset(), end);
}

#[compio::test]
async fn tombstones_stay_for_delete_retention_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config();
    config.set("delete.retention.ms", "60000").unwrap();
    let log = open(dir.path(), config).await.unwrap();
    let put = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    log.append(
        keyed(
            &[put("a", Some("1")), put("b", Some("1"))],
            1_000,
            Compression::None,
        ),
        false,
        1_000,
    )
    .await
    .unwrap();
    log.append(
        keyed(&[put("a", None)], 1_000, Compression::None),
        false,
        1_000,
    )
    .await
    .unwrap();
    seal_and_flush(&log, 1_000).await;
    let now = crate::storage::recovery::wall_clock_ms();
    log.clean(now, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .expect("a pass ran");
    let records = read_records(&log).await;
    assert_eq!(
        records[..2],
        [
            (1, "b".to_string(), Some("1".to_string())),
            (2, "a".to_string(), None)
        ],
        "the tombstone replaced a's value and stays within delete.retention.ms"
    );
    // More dirty data, so the next pass runs; by its clock the tombstone has expired.
    log.append(
        keyed(&[put("c", Some("1"))], 1_000, Compression::None),
        false,
        1_000,
    )
    .await
    .unwrap();
    seal_and_flush(&log, 1_000).await;
    log.clean(now + 120_000, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .expect("a pass ran");
    let keys: Vec<_> = read_records(&log)
        .await
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert!(
        !keys.contains(&(2, "a".to_string())),
        "tombstone dropped: {keys:?}"
    );
    assert!(keys.contains(&(1, "b".to_string())));
    assert!(keys.contains(&(4, "c".to_string())));
}

#[compio::test]
async fn delete_policy_and_recent_data_are_not_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config();
    config.set("min.compaction.lag.ms", "5000").unwrap();
    let log = open(dir.path(), config).await.unwrap();
    produce_versions(&log, 5, 4, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    assert_eq!(
        log.clean(3_000, &mut throttle(u64::MAX)).await.unwrap(),
        None,
        "within min lag"
    );
    let need = log.cleaning_need(7_000).unwrap();
    assert!(need.due && need.dirty_ratio > 0.99, "{need:?}");
    let mut delete = compact_config();
    delete.cleanup_policy = CleanupPolicy::Delete;
    log.update_config(delete);
    assert!(log.cleaning_need(7_000).is_none());
    assert_eq!(
        log.clean(7_000, &mut throttle(u64::MAX)).await.unwrap(),
        None
    );
}

#[compio::test]
async fn the_io_budget_paces_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config()).await.unwrap();
    produce_versions(&log, 20, 6, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    let mut slow = throttle(4 * 1024);
    let started = std::time::Instant::now();
    let stats = log.clean(10_000, &mut slow).await.unwrap().unwrap();
    let io = stats.bytes_read + stats.bytes_written;
    assert!(io > 8 * 1024, "{stats:?}");
    assert!(
        slow.throttled > Duration::ZERO,
        "the budget made the pass wait"
    );
    assert!(started.elapsed() >= slow.throttled);
}

#[compio::test]
async fn the_io_budget_spreads_a_pass_instead_of_allowing_a_one_second_burst() {
    // 200 KB in 10 KB batches under a 1 MB/s budget: a fifth of one window's budget, which
    // the throttle used to let through at full speed. Paced, it takes at least the budget's
    // time for those bytes, less the slack it may run ahead.
    let budget = 1_000_000;
    let mut paced = throttle(budget);
    let started = std::time::Instant::now();
    for _ in 0..20 {
        paced.pace(10_000).await;
    }
    let at_budget = Duration::from_secs_f64(200_000.0 / budget as f64);
    let floor = at_budget - crate::storage::cleaner::CLEANER_PACE_SLACK;
    assert!(
        started.elapsed() >= floor,
        "200 KB at 1 MB/s took {:?}, less than {floor:?}",
        started.elapsed()
    );
}

fn copy(dir: &Path, from: &str, to: &str) {
    std::fs::copy(dir.join(from), dir.join(to)).unwrap();
}

#[compio::test]
async fn interrupted_swaps_are_finished_or_discarded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("t-0");
    let log = open(dir.path(), compact_config()).await.unwrap();
    produce_versions(&log, 10, 8, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3, "{bases:?}");
    let all = read_records(&log).await;
    log.close().await.unwrap();
    drop(log);
    let name = |base: i64, suffix: &str| format!("{base:020}.{suffix}");
    // A half-written pass: garbage `.cleaned` files are removed, the log is untouched.
    std::fs::write(part.join(name(bases[0], "log.cleaned")), b"half written").unwrap();
    std::fs::write(part.join(name(bases[0], "index.cleaned")), b"").unwrap();
    // A swap of the first two segments that crashed after deleting the second one's index
    // (its log is still there) and before the renames: its `.swap` holds both segments.
    let mut joined = std::fs::read(part.join(name(bases[0], "log"))).unwrap();
    joined.extend(std::fs::read(part.join(name(bases[1], "log"))).unwrap());
    std::fs::write(part.join(name(bases[0], "log.swap")), joined).unwrap();
    std::fs::write(part.join(name(bases[0], "index.swap")), b"").unwrap();
    copy(
        &part,
        &name(bases[0], "timeindex"),
        &name(bases[0], "timeindex.swap"),
    );
    std::fs::remove_file(part.join(name(bases[1], "index"))).unwrap();
    let log = open(dir.path(), compact_config()).await.unwrap();
    assert_eq!(
        read_records(&log).await,
        all,
        "nothing lost, nothing doubled"
    );
    let mut expected_bases = bases.clone();
    expected_bases.remove(1);
    assert_eq!(log.segment_base_offsets(), expected_bases);
    let leftovers: Vec<_> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[compio::test]
async fn segments_shrunk_by_cleaning_are_merged_by_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config()).await.unwrap();
    produce_versions(&log, 10, 12, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    log.clean(10_000, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .unwrap();
    let after_first = log.segment_count();
    produce_versions(&log, 10, 1, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    let before_second = log.segment_count();
    let stats = log
        .clean(10_000, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .unwrap();
    assert!(stats.segments_rewritten >= 2, "{stats:?}");
    assert!(
        log.segment_count() < before_second,
        "{after_first} segments after the first pass, {before_second} before the second, {} after",
        log.segment_count()
    );
    let records = read_records(&log).await;
    // The newest marker is in the active segment, which is never cleaned: it does not
    // supersede the older one yet.
    let data: Vec<_> = records.iter().filter(|r| r.1 != "marker").collect();
    let keys: std::collections::HashSet<_> = data.iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        (data.len(), keys.len()),
        (10, 10),
        "one record per key: {records:?}"
    );
    assert_eq!(records.len(), 12, "{records:?}");
    // The merged segments reopen cleanly.
    let end = log.log_end_offset();
    crate::storage::tests::support::crash(log).await;
    let log = open(dir.path(), compact_config()).await.unwrap();
    assert_eq!(read_records(&log).await, records);
    assert_eq!(log.log_end_offset(), end);
}

#[compio::test]
async fn max_compaction_lag_cleans_whatever_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config();
    // A ratio never exceeded: only max.compaction.lag.ms can make a pass due.
    config.set("min.cleanable.dirty.ratio", "1").unwrap();
    config.set("max.compaction.lag.ms", "10000").unwrap();
    let log = open(dir.path(), config).await.unwrap();
    produce_versions(&log, 5, 4, 1_000).await;
    seal_and_flush(&log, 1_000).await;
    let need = log.cleaning_need(5_000).unwrap();
    assert!(!need.due && need.time_behind_ms == 0, "{need:?}");
    assert_eq!(
        log.clean(5_000, &mut throttle(u64::MAX)).await.unwrap(),
        None
    );
    let need = log.cleaning_need(13_000).unwrap();
    assert!(need.due, "{need:?}");
    assert_eq!(need.time_behind_ms, 13_000 - 1_000 - 10_000);
    let stats = log
        .clean(13_000, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.records_removed, 15);
}

#[compio::test]
async fn a_read_skips_segments_left_holding_only_an_empty_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config()).await.unwrap();
    // Each round is one batch of about 4 KB: a segment of its own that no neighbour can
    // join, so every round but the last is left as a segment holding one empty batch.
    let versions = 5usize;
    for v in 0..versions {
        let records: Vec<_> = (0..20)
            .map(|k| (format!("key-{k}"), Some(format!("{v}-{}", "z".repeat(180)))))
            .collect();
        log.append(keyed(&records, 1_000, Compression::None), false, 1_000)
            .await
            .unwrap();
    }
    seal_and_flush(&log, 1_000).await;
    log.clean(10_000, &mut throttle(u64::MAX))
        .await
        .unwrap()
        .unwrap();
    assert!(
        log.segment_count() >= versions,
        "{:?}",
        log.segment_base_offsets()
    );
    let slice = log.read(log.log_start_offset(), 1 << 20).await.unwrap();
    assert!(
        slice.regions.len() >= versions,
        "{} regions",
        slice.regions.len()
    );
    let mut served = 0;
    for region in &slice.regions {
        let mut bytes = Bytes::from(region.read_to_vec().await.unwrap());
        served += RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .iter()
            .map(|set| set.records.len())
            .sum::<usize>();
    }
    assert_eq!(
        served, 20,
        "one fetch reaches the newest values past the empty segments"
    );
}
