//! The background flush end to end (decision 0002, "Background flush"; decision 0020): acks=1
//! data spread over many partitions becomes durable within `flush.ms` either way, and with
//! `[log] flush_syncfs_min_partitions` reached it gets there through one `syncfs` per tick,
//! with no segment fdatasync at all; with the key 0 the same traffic is synced partition by
//! partition (which also shows the check could fail).

mod support;

use std::path::Path;
use std::time::Duration;

use sluice::client::{Client, OffsetSpec};
use support::Broker;

const TOPIC: &str = "flush-spread";
const PARTITIONS: i32 = 8;
/// Time for every partition's recovery point (rewritten at most once a second) to reach
/// its log end.
const DURABLE_WITHIN: Duration = Duration::from_secs(20);
/// Longer than a few maintenance ticks, after which a durable partition is no longer
/// watched by the flush.
const LET_GO_AFTER: Duration = Duration::from_millis(500);

/// The recovery point the partition's state file holds now.
fn recovery_point(data_dir: &Path, partition: i32) -> Option<i64> {
    let dir = data_dir.join(format!("{TOPIC}-{partition}"));
    let runtime = compio::runtime::Runtime::new().expect("compio runtime");
    let state = runtime
        .block_on(sluice::storage::state::read_state(&dir))
        .ok()??;
    Some(state.recovery_point)
}

/// Produces acks=1 records to every partition of a broker with `flush_syncfs_min_partitions
/// = threshold`, waits until each partition's recovery point reaches its log end (durable)
/// and returns how many segment fdatasyncs and how many syncfs calls the broker timed.
fn syncs_until_durable(threshold: u32) -> (f64, f64) {
    let broker = Broker::start_with_config(
        &format!("[log]\nflush_syncfs_min_partitions = {threshold}\n"),
        &[],
    );
    let bootstrap = broker.bootstrap();
    let partitions = PARTITIONS.to_string();
    let args = [
        "bench",
        "produce",
        "--topic",
        TOPIC,
        "--partitions",
        &partitions,
        "--records",
        "4000",
        "--record-size",
        "200",
        "--acks",
        "1",
        "--keys",
        "0",
    ];
    // Twice: a partition made durable leaves the flush's watch (its log tells the shard
    // again at its next write), so the second burst must be synced as well as the first.
    let mut client = Client::connect(&bootstrap).expect("connect");
    for burst in 1..=2 {
        let (ok, _, stderr) = support::sluice_cli(&bootstrap, &args, None);
        assert!(ok, "sluice bench produce failed: {stderr}");
        let all: Vec<i32> = (0..PARTITIONS).collect();
        let ends = client
            .list_offsets(TOPIC, &all, OffsetSpec::Latest)
            .expect("list offsets");
        assert!(
            ends.iter().all(|(_, end)| *end > 0),
            "every partition took records: {ends:?}"
        );
        support::wait_until(DURABLE_WITHIN, Duration::from_millis(100), || {
            let behind: Vec<(i32, Option<i64>, i64)> = ends
                .iter()
                .map(|(p, end)| (*p, recovery_point(&broker.data_dir, *p), *end))
                .filter(|(_, point, end)| *point != Some(*end))
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "threshold {threshold}, burst {burst}: (partition, recovery point, log end) not yet durable: {behind:?}\n{}",
                    broker.diagnostics()
                ))
            }
        });
        // A few maintenance ticks (100 ms apart): each durable partition is let go.
        std::thread::sleep(LET_GO_AFTER);
    }
    let metrics = support::scrape_metrics(broker.admin_port);
    let count = |family: &str| {
        support::metric_sample(&metrics, &format!("{family}_count"))
            .unwrap_or_else(|| panic!("no {family}_count in the metrics:\n{metrics}"))
    };
    (
        count("sluice_fsync_duration_seconds"),
        count("sluice_syncfs_duration_seconds"),
    )
}

#[test]
fn many_due_partitions_become_durable_through_one_syncfs_instead_of_fdatasyncs() {
    let (fdatasyncs, syncfs) = syncs_until_durable(1);
    assert_eq!(
        fdatasyncs, 0.0,
        "with every tick's due partitions at the threshold, no segment is fdatasynced"
    );
    assert!(
        syncfs >= 1.0,
        "the flush went through syncfs ({syncfs} timed)"
    );
    let (fdatasyncs, syncfs) = syncs_until_durable(0);
    assert!(
        fdatasyncs >= PARTITIONS as f64,
        "syncfs off: each partition fdatasyncs its segment ({fdatasyncs} timed)"
    );
    assert_eq!(syncfs, 0.0, "syncfs off: never called");
}
