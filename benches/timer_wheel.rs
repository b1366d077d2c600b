//! Criterion benchmark of the shard's timing wheel, per operation: insert, cancel, and
//! advance (per fired entry, cascades included), on a wheel that already holds a million
//! pending entries spread over 30 days, as delayed delivery would keep it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::shard::timer::{TimerKey, TimingWheel};

const BACKGROUND: usize = 1_000_000;
const DAY_MS: u64 = 24 * 3_600 * 1_000;

/// A deterministic spread of deadlines over every level (splitmix64 bits, random width).
struct Deadlines(u64);

impl Deadlines {
    fn next(&mut self, max: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let bits = (z >> 58) as u32; // 0..=63
        1 + (z & ((1u64 << bits) - 1).max(1)) % max
    }
}

fn loaded_wheel(deadlines: &mut Deadlines) -> TimingWheel<u64> {
    let mut wheel = TimingWheel::new(BACKGROUND * 2);
    for i in 0..BACKGROUND as u64 {
        let _ = wheel.insert(deadlines.next(30 * DAY_MS), i);
    }
    wheel
}

fn insert_and_cancel(c: &mut Criterion) {
    let mut deadlines = Deadlines(1);
    let mut wheel = loaded_wheel(&mut deadlines);
    let mut keys: Vec<TimerKey> = Vec::with_capacity(1 << 16);
    c.bench_function("timer_wheel/insert_1m_pending", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1 << 16);
                let whens: Vec<u64> = (0..n).map(|_| deadlines.next(30 * DAY_MS)).collect();
                let started = Instant::now();
                for (i, &when) in whens.iter().enumerate() {
                    if let Ok(key) = wheel.insert(when, i as u64) {
                        keys.push(key);
                    }
                }
                spent += started.elapsed();
                for key in keys.drain(..) {
                    wheel.cancel(key);
                }
                left -= n;
            }
            spent
        })
    });
    c.bench_function("timer_wheel/cancel_1m_pending", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1 << 16);
                for i in 0..n {
                    if let Ok(key) = wheel.insert(deadlines.next(30 * DAY_MS), i) {
                        keys.push(key);
                    }
                }
                let started = Instant::now();
                for &key in &keys {
                    black_box(wheel.cancel(key));
                }
                spent += started.elapsed();
                keys.clear();
                left -= n;
            }
            spent
        })
    });
}

fn advance(c: &mut Criterion) {
    // Per fired entry: entries due within the next hour (so most pass through two or three
    // cascades), fired by advancing to the next tick with work, as the shard's driver does.
    c.bench_function("timer_wheel/advance_per_fired_entry", |b| {
        b.iter_custom(|iters| {
            let mut deadlines = Deadlines(7);
            let mut wheel = TimingWheel::new(iters as usize + 1);
            for i in 0..iters {
                let _ = wheel.insert(deadlines.next(3_600_000), i);
            }
            let started = Instant::now();
            let mut fired = 0usize;
            while let Some(tick) = wheel.next_tick() {
                fired += wheel.advance(tick, |_, v| {
                    black_box(v);
                });
            }
            let spent = started.elapsed();
            assert_eq!(fired as u64, iters);
            spent
        })
    });
}

criterion_group!(benches, insert_and_cancel, advance);
criterion_main!(benches);
