//! Transactions at the partition layer against a real log: the last stable offset stops at
//! an open transaction, read_committed reads stop there, markers end transactions, aborted
//! transactions are listed for read_committed fetches and survive a clean close and a crash.

use bytes::BytesMut;

use super::{ACKS_ALL, Isolation, Partition};
use crate::config::LogConfig;
use crate::metrics::ShardMetrics;
use crate::storage::PartitionLog;
use crate::storage::batch::{CRC_OFFSET, TRANSACTIONAL_BIT, build_test_batch, compute_crc};
use std::rc::Rc;

/// A transactional batch of `count` records from producer `pid` (epoch 0) at `seq`.
fn txn_batch(pid: i64, seq: i32, count: i32) -> BytesMut {
    let mut b = build_test_batch(count, 8, 1000, Some((pid, 0, seq)));
    let at = crate::storage::batch::ATTRIBUTES_OFFSET;
    let attributes = i16::from_be_bytes([b[at], b[at + 1]]) | TRANSACTIONAL_BIT;
    b[at..at + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    BytesMut::from(&b[..])
}

fn plain_batch(count: i32) -> BytesMut {
    BytesMut::from(&build_test_batch(count, 8, 1000, None)[..])
}

async fn open(dir: &std::path::Path) -> Partition {
    let log = PartitionLog::open(dir, "t", 0, LogConfig::default())
        .await
        .unwrap();
    let metrics = Rc::new(ShardMetrics::new(0, true));
    Partition::new(log, metrics.partition("t", 0))
}

async fn append(p: &Partition, records: BytesMut, count: u64) {
    p.append(records, count, ACKS_ALL, 0, || {}).await.unwrap();
}

#[compio::test]
async fn the_last_stable_offset_stops_at_an_open_transaction_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    append(&p, plain_batch(2), 2).await; // 0..=1
    append(&p, txn_batch(5, 0, 3), 3).await; // 2..=4, open
    append(&p, plain_batch(1), 1).await; // 5
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (6, 2));
    let committed = p.read(0, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    let uncommitted = p
        .read(0, 1 << 20, Isolation::ReadUncommitted)
        .await
        .unwrap();
    assert!(committed.bytes > 0 && committed.bytes < uncommitted.bytes);
    assert_eq!(committed.last_stable_offset, 2);
    let at_lso = p.read(2, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    assert_eq!(at_lso.bytes, 0, "nothing past the LSO for read_committed");

    let marker = p.write_txn_marker(5, 0, false, 0, 0).await.unwrap();
    assert_eq!(marker, 6);
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (7, 7));
    let after = p.read(0, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    assert!(
        after.bytes > uncommitted.bytes,
        "the marker is readable too"
    );
    let aborted: Vec<(i64, i64)> = after
        .aborted_transactions
        .iter()
        .map(|a| (a.producer_id, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(5, 2)]);
    // A fetch past the aborted transaction's marker does not list it.
    let later = p.read(7, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    assert!(later.aborted_transactions.is_empty());
    // read_uncommitted never carries the list.
    let plain = p
        .read(0, 1 << 20, Isolation::ReadUncommitted)
        .await
        .unwrap();
    assert!(plain.aborted_transactions.is_empty());
}

#[compio::test]
async fn a_commit_lists_nothing_and_open_transactions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = open(dir.path()).await;
        append(&p, txn_batch(8, 0, 2), 2).await; // 0..=1
        p.write_txn_marker(8, 0, true, 0, 0).await.unwrap(); // 2
        append(&p, txn_batch(9, 0, 1), 1).await; // 3, aborted below
        p.write_txn_marker(9, 0, false, 0, 0).await.unwrap(); // 4
        append(&p, txn_batch(8, 2, 1), 1).await; // 5, stays open
        assert_eq!(p.last_stable_offset(), 5);
        p.close().await.unwrap();
    }
    let check = |p: &Partition, how: &str| {
        assert_eq!(p.last_stable_offset(), 5, "{how}: open transaction kept");
    };
    let p = open(dir.path()).await;
    check(&p, "clean close");
    let read = p.read(0, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    assert_eq!(
        read.aborted_transactions
            .iter()
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect::<Vec<_>>(),
        vec![(9, 3, 4)]
    );
    drop(read);
    // Without a producer snapshot the state is rebuilt from the log's batches.
    drop(p);
    for entry in std::fs::read_dir(dir.path().join("t-0")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let p = open(dir.path()).await;
    check(&p, "rebuilt from the log");
    let read = p.read(0, 1 << 20, Isolation::ReadCommitted).await.unwrap();
    assert_eq!(read.aborted_transactions.len(), 1);
    assert_eq!(read.aborted_transactions[0].first_offset, 3);
}
