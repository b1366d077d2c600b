//! Cost of the metrics hot path: what one request, one append and one partition update add to
//! a shard's loop, and what a scrape costs the admin thread.

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::metrics::{BrokerInfo, ShardMetrics, render_prometheus};
use std::hint::black_box;
use std::time::Instant;

fn record(c: &mut Criterion) {
    let m = ShardMetrics::new(0, true);
    let p = m.partition("orders", 0);
    let mut i = 0u64;
    c.bench_function("record_request+append+partition", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let ns = 10_000 + (i % 5_000_000);
            m.record_request(black_box(0), ns / 10, ns / 2, ns);
            m.record_append(ns / 4);
            p.record_in(black_box(1024), black_box(10));
        })
    });
    let off = ShardMetrics::new(0, false);
    c.bench_function("record_request (disabled)", |b| {
        b.iter(|| off.record_request(black_box(0), 1, 2, 3))
    });
    // A scrape: snapshot four shards with 100 partitions each and render.
    let shards: Vec<ShardMetrics> = (0..4).map(|s| ShardMetrics::new(s, true)).collect();
    for (s, m) in shards.iter().enumerate() {
        for part in 0..100 {
            m.partition(&format!("topic-{s}"), part).record_in(1, 1);
        }
        for api in [0i16, 1, 3, 8, 9, 12, 18] {
            m.record_request(api, 1_000, 10_000, 100_000);
        }
    }
    let started = Instant::now();
    c.bench_function("snapshot+render 4 shards x 100 partitions", |b| {
        b.iter(|| {
            let snaps: Vec<_> = shards.iter().map(|m| m.snapshot()).collect();
            black_box(render_prometheus(&snaps, &BrokerInfo::new(0, started)).len())
        })
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
