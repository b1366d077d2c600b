//! ShardMetrics recording and snapshots.

use super::*;

/// Snapshots cross threads; the recorder itself must not (no hidden sharing).
#[test]
fn snapshot_is_send_and_clone() {
    fn assert_send_clone<T: Send + Clone + 'static>() {}
    assert_send_clone::<ShardSnapshot>();
}

#[test]
fn disabled_metrics_record_nothing() {
    let m = ShardMetrics::new(0, false);
    m.record_request(0, 1, 2, 3);
    m.record_error(0, 6);
    m.record_fsync(10);
    let p = m.partition("t", 0);
    p.record_in(100, 2);
    let s = m.snapshot();
    assert!(s.api_latency.is_empty());
    assert!(s.errors.is_empty());
    assert_eq!(s.fsync.count(), 0);
    assert_eq!(s.partitions[0].bytes_in, 0);
}

#[test]
fn partition_handle_is_shared_and_removable() {
    let m = ShardMetrics::new(3, true);
    let a = m.partition("orders", 1);
    let b = m.partition("orders", 1);
    a.record_in(100, 4);
    b.record_in(50, 1);
    a.record_out(30, 2);
    a.set_storage(2, 4096, 10, 15);
    let s = m.snapshot();
    assert_eq!(s.shard_id, 3);
    assert_eq!(
        s.partitions,
        vec![PartitionSnapshot {
            topic: "orders".into(),
            partition: 1,
            bytes_in: 150,
            records_in: 5,
            bytes_out: 30,
            records_out: 2,
            segments: 2,
            size_bytes: 4096,
            log_start_offset: 10,
            log_end_offset: 15,
            last_stable_offset: 0,
        }]
    );
    m.remove_partition("orders", 1);
    assert!(m.snapshot().partitions.is_empty());
}

#[test]
fn requests_connections_and_groups_are_counted() {
    let m = ShardMetrics::new(0, true);
    m.record_request(0, 1_000, 2_000, 3_000);
    m.record_request(0, 1_000, 2_000, 3_000);
    m.record_request(i16::MAX, 1, 1, 1);
    m.record_error(0, 6);
    m.record_error(0, 6);
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    m.in_flight_add(3);
    m.in_flight_add(-1);
    m.record_rebalance("g");
    m.set_consumer_lag("g", "t", 0, 5);
    m.set_consumer_lag("g", "t", 0, 7);
    let s = m.snapshot();
    assert_eq!(s.api_latency.len(), 2);
    assert_eq!(s.api_latency[0].0, 0);
    assert_eq!(s.api_latency[0].1.total.count(), 2);
    assert_eq!(
        s.api_latency[1].0, -1,
        "out-of-range keys share the unknown slot"
    );
    assert_eq!(s.errors, vec![((0, 6), 2)]);
    assert_eq!((s.connections, s.connections_accepted), (1, 2));
    assert_eq!(s.requests_in_flight, 2);
    assert_eq!(s.group_rebalances, vec![("g".to_string(), 1)]);
    assert_eq!(s.consumer_lag, vec![("g".into(), "t".into(), 0, 7)]);
    m.remove_group("g");
    let s = m.snapshot();
    assert!(s.group_rebalances.is_empty() && s.consumer_lag.is_empty());
}

#[test]
fn busy_ratio_is_published_per_full_window() {
    let m = ShardMetrics::new(0, true);
    m.record_loop(100, 100);
    assert_eq!(m.snapshot().busy_ratio, None);
    m.record_loop(BUSY_RATIO_WINDOW_NS / 4, BUSY_RATIO_WINDOW_NS * 3 / 4);
    let ratio = m.snapshot().busy_ratio.unwrap();
    assert!((ratio - 0.25).abs() < 0.001, "{ratio}");
    assert_eq!(m.snapshot().busy_ns_total, 100 + BUSY_RATIO_WINDOW_NS / 4);
}

#[test]
fn merge_adds_histograms_across_shards() {
    let a = ShardMetrics::new(0, true);
    let b = ShardMetrics::new(1, true);
    a.record_request(1, 1_000, 1_000, 5_000);
    b.record_request(1, 1_000, 1_000, 7_000);
    b.record_request(3, 1_000, 1_000, 7_000);
    let merged = merge_api_latency(&[a.snapshot(), b.snapshot()]);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].0, 1);
    assert_eq!(merged[0].1.total.count(), 2);
    assert_eq!(merged[0].1.total.sum_ns(), 12_000);
}
