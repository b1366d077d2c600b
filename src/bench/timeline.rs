//! The per-interval timeline of a run: samples the shared worker counters and CPU use once
//! per `stats::INTERVAL` until every worker thread has finished, and tells the consumers
//! when the producers are done.
//!
//! Must not: join worker threads or read their results (`run` does, afterwards).

use super::workers::{Counters, WorkerResult};
use super::{BYTES_PER_MB, BenchConfig, stats};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One row of the per-interval timeline.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub produced_records_per_s: f64,
    pub produced_mb_per_s: f64,
    pub consumed_records_per_s: f64,
    pub consumed_mb_per_s: f64,
    /// Broker CPU use in this interval (1.0 = one core), if a PID was given.
    pub broker_cpu_cores: Option<f64>,
    pub harness_cpu_cores: f64,
}

/// What sampling learned besides the timeline itself.
pub(super) struct Sampled {
    pub(super) timeline: Vec<TimelinePoint>,
    /// Seconds from the start until the last producer finished (None without producers
    /// finishing, which cannot happen once every thread is done).
    pub(super) producers_elapsed: Option<f64>,
}

/// Samples until every worker is done. `cpu0` is (broker, harness) CPU seconds at the start.
pub(super) fn sample_until_done(
    config: &BenchConfig,
    counters: &Counters,
    start: Instant,
    cpu0: (Option<f64>, f64),
    producer_threads: &[JoinHandle<WorkerResult>],
    consumer_threads: &[JoinHandle<WorkerResult>],
) -> Sampled {
    let mut timeline = Vec::new();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut last_cpu = cpu0;
    let mut last_t = 0.0;
    let mut next_sample = start + stats::INTERVAL;
    let mut producers_finished = false;
    let mut producers_elapsed = None;
    loop {
        let all_done = producer_threads.iter().all(|t| t.is_finished())
            && consumer_threads.iter().all(|t| t.is_finished());
        if !producers_finished && producer_threads.iter().all(|t| t.is_finished()) {
            producers_finished = true;
            producers_elapsed = Some(start.elapsed().as_secs_f64());
            counters.producers_done.store(true, Ordering::Relaxed);
        }
        let now = Instant::now();
        if now >= next_sample || all_done {
            let t = now.duration_since(start).as_secs_f64();
            let dt = (t - last_t).max(1e-6);
            let cur = (
                counters.produced_records.load(Ordering::Relaxed),
                counters.produced_payload_bytes.load(Ordering::Relaxed),
                counters.consumed_records.load(Ordering::Relaxed),
                counters.consumed_payload_bytes.load(Ordering::Relaxed),
            );
            let broker_cpu = config
                .broker_pid
                .and_then(|pid| stats::process_cpu_seconds(pid).ok());
            let harness_cpu = stats::own_cpu_seconds();
            if t - last_t > 0.05 {
                timeline.push(TimelinePoint {
                    t_s: t,
                    produced_records_per_s: (cur.0 - last.0) as f64 / dt,
                    produced_mb_per_s: (cur.1 - last.1) as f64 / dt / BYTES_PER_MB,
                    consumed_records_per_s: (cur.2 - last.2) as f64 / dt,
                    consumed_mb_per_s: (cur.3 - last.3) as f64 / dt / BYTES_PER_MB,
                    broker_cpu_cores: match (broker_cpu, last_cpu.0) {
                        (Some(now), Some(before)) => Some((now - before) / dt),
                        _ => None,
                    },
                    harness_cpu_cores: (harness_cpu - last_cpu.1) / dt,
                });
                last = cur;
                last_cpu = (broker_cpu.or(last_cpu.0), harness_cpu);
                last_t = t;
            }
            next_sample += stats::INTERVAL;
        }
        if all_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Sampled {
        timeline,
        producers_elapsed,
    }
}
