//! Criterion benchmark of offset and timestamp lookups: the in-memory sparse index alone, and
//! `PartitionLog::read` / `offset_for_timestamp` end to end (index + header scan from the page
//! cache) on a multi-segment log of small batches.

use std::rc::Rc;

use bytes::BytesMut;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::config::LogConfig;
use sluice::storage::PartitionLog;
use sluice::storage::batch::build_test_batch;
use sluice::storage::offset_index::OffsetIndex;

const BATCHES: i64 = 50_000;

fn bench_lookup(c: &mut Criterion) {
    let mut index = OffsetIndex::default();
    for i in 0..100_000u32 {
        index.append(i * 10 + 9, i * 4096);
    }
    let mut probe = 0u32;
    c.bench_function("offset_index/lookup_100k_entries", |b| {
        b.iter(|| {
            probe = probe.wrapping_mul(1_103_515_245).wrapping_add(12345) % 1_000_000;
            black_box(index.lookup(probe))
        })
    });

    let rt = compio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let config = LogConfig {
        segment_bytes: 4 * 1024 * 1024,
        ..LogConfig::default()
    };
    let log: Rc<PartitionLog> = rt.block_on(async {
        let log = PartitionLog::open(dir.path(), "bench", 0, config)
            .await
            .expect("open");
        for i in 0..BATCHES {
            let b = build_test_batch(2, 100, i * 10, None);
            log.append(BytesMut::from(&b[..]), false, 0)
                .await
                .expect("append");
        }
        log
    });
    let mut n: i64 = 0;
    c.bench_function("log/read_any_offset", |b| {
        b.iter(|| {
            n = (n * 7919 + 13) % (BATCHES * 2);
            rt.block_on(log.read(n, 64 * 1024)).expect("read")
        })
    });
    c.bench_function("log/offset_for_timestamp", |b| {
        b.iter(|| {
            n = (n * 7919 + 13) % (BATCHES * 10);
            rt.block_on(log.offset_for_timestamp(n)).expect("lookup")
        })
    });
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
