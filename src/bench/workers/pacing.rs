//! Fixed-rate batching, like a Kafka producer's accumulator: a batch is ready once `target`
//! records are due or its oldest record lingered `linger`; while every request slot is
//! taken, due records keep piling into the batch (up to a full batch). Record `n` of a
//! producer is due at `start + n / rate`.
//!
//! Must not: build or send batches; it only says how many records the next one holds.

use super::pipeline::PipelinedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest sleep slice while pacing a fixed rate; shorter slices would burn CPU spinning.
const PACING_SLEEP_MAX: Duration = Duration::from_millis(50);

/// One producer's fixed-rate schedule.
pub(super) struct Pace {
    pub(super) start: Instant,
    /// Records per second for this producer.
    pub(super) rate: f64,
    /// Records due that make a batch ready without waiting for `linger`.
    pub(super) target: u64,
    /// Records in a full batch.
    pub(super) full: usize,
    pub(super) linger: Duration,
    pub(super) deadline: Option<Instant>,
}

impl Pace {
    /// Waits until a batch is ready and `conn` has a free request slot; returns its record
    /// count, or `None` when the producer must stop (aborted or past its deadline).
    pub(super) fn next_batch(
        &self,
        conn: &PipelinedConnection,
        abort: &AtomicBool,
        sent_records: u64,
        remaining: u64,
    ) -> Option<usize> {
        loop {
            let now = Instant::now();
            if abort.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| now >= d) {
                return None;
            }
            let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
            let due_total = ((elapsed * self.rate).floor() as u64 + 1)
                .min(sent_records.saturating_add(remaining));
            let pending = due_total.saturating_sub(sent_records);
            let oldest = self.start + Duration::from_secs_f64(sent_records as f64 / self.rate);
            let ready = pending >= self.target || (pending > 0 && now >= oldest + self.linger);
            if ready && conn.has_room() {
                return Some(pending.min(self.full as u64) as usize);
            }
            if ready {
                conn.wait_for_room();
                continue;
            }
            let target_due = self.start
                + Duration::from_secs_f64((sent_records + self.target - 1) as f64 / self.rate);
            let wake = target_due.min(oldest + self.linger);
            if wake > now {
                std::thread::sleep((wake - now).min(PACING_SLEEP_MAX));
            }
        }
    }
}
