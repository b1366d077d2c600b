//! Criterion benchmark of `PartitionLog::append`: 1 KiB records in 16 KiB – 1 MiB batches,
//! acknowledged after the write (page cache) and, for one size, after a group-committed
//! fdatasync. Runs on the target directory's disk (not tmpfs).

use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::config::LogConfig;
use sluice::storage::PartitionLog;
use sluice::storage::batch::build_test_batch;

/// Value bytes so that each record is about 1 KiB on the wire.
const RECORD_VALUE_BYTES: usize = 1024 - 10;
const BATCH_SIZES_BYTES: [usize; 3] = [16 * 1024, 256 * 1024, 1024 * 1024];
/// Keeps the benchmark's disk footprint bounded.
const RETENTION_BYTES: i64 = 512 * 1024 * 1024;

fn bench_append(c: &mut Criterion) {
    let rt = compio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let config = LogConfig {
        segment_bytes: 128 * 1024 * 1024,
        retention_bytes: RETENTION_BYTES,
        retention_ms: -1,
        max_message_bytes: 8 * 1024 * 1024,
        ..LogConfig::default()
    };
    let log: Rc<PartitionLog> = rt
        .block_on(PartitionLog::open(dir.path(), "bench", 0, config))
        .expect("open");
    let mut group = c.benchmark_group("append");
    for (durable, sizes) in [
        (false, &BATCH_SIZES_BYTES[..]),
        (true, &BATCH_SIZES_BYTES[1..2]),
    ] {
        for &batch_bytes in sizes {
            let records = (batch_bytes / 1024) as i32;
            let template = build_test_batch(records, RECORD_VALUE_BYTES, 0, None);
            group.throughput(Throughput::Bytes(template.len() as u64));
            let name = if durable { "durable" } else { "page_cache" };
            group.bench_with_input(BenchmarkId::new(name, batch_bytes), &template, |b, t| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            log.append(BytesMut::from(&t[..]), durable, 0)
                                .await
                                .expect("append");
                        }
                        let elapsed = start.elapsed();
                        log.enforce_retention(0).await.expect("retention");
                        elapsed
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
