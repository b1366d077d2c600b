//! The shard's delay service (issue 18, decision 0009): records that asked for delayed
//! delivery wait in this shard's delay log, indexed by a timing wheel of 40-byte entries,
//! until the delivery loop appends them to their partition through `Partition::append`.
//!
//! Owns: the wheel (due time → frame position), the delay log writer, the delivery loop and
//! its recovery of unfinished deliveries, the pending gauge and the lateness histogram.
//! Must not: hold record bytes in memory while they wait (they stay in the log), or append
//! anywhere but through the partition on its owning shard.

mod deliver;
mod writer;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::task::Waker;

use crate::delay::log::{self as delay_log, FrameRef, Intent, Pending};
use crate::delay::plan::DelayedRecord;
use crate::shard::timer::TimingWheel;

pub use deliver::run;

/// Pending delayed records one shard holds (the wheel's limit: 40 bytes each, 2.5 GiB at
/// most). Beyond it produce is refused with POLICY_VIOLATION.
pub const DELAYED_RECORDS_PER_SHARD_MAX: usize = 64 * 1024 * 1024;

/// A store was refused.
#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    #[error("this broker shard already holds {0} delayed records (its limit)")]
    Full(usize),
    #[error("{0}")]
    Log(String),
}

/// One shard's delayed records.
pub struct DelayService {
    inner: Rc<Inner>,
}

struct Inner {
    shard_id: usize,
    writer: Rc<writer::DelayLogWriter>,
    wheel: RefCell<TimingWheel<FrameRef>>,
    /// Epoch milliseconds of wheel tick 0.
    origin_ms: i64,
    /// Records staged but not yet in the wheel (their store awaits the write).
    storing: Cell<usize>,
    /// Deliveries whose intent is written but whose append has not completed: after a
    /// restart, or after an append failed. Appended again, same sequence, before new ones.
    unresolved: RefCell<Vec<(FrameRef, Intent)>>,
    /// Records taken from the wheel and not yet delivered.
    delivering: Cell<usize>,
    /// Set when a store needs the delivery loop to look at the wheel again.
    rearm: Cell<bool>,
    driver: Cell<Option<Waker>>,
    /// Pending records per partition (for `sluice topic describe` and the console): memory
    /// per partition, not per record.
    by_partition: RefCell<HashMap<(String, i32), u64>>,
    /// Where the pending gauge, deliveries and their lateness are recorded.
    metrics: Rc<crate::metrics::ShardMetrics>,
    /// When the service opened (before replay), until the first delivery after it: the
    /// start-up log says how long a restart kept due records waiting.
    opened: Cell<Option<std::time::Instant>>,
    /// The cut of the checkpoint replay started from (0: none).
    checkpoint_cut: u64,
}

impl DelayService {
    /// Opens the shard's delay log, replays it and fills the wheel with every record still
    /// pending. Synchronous: runs once at shard start, before the shard serves.
    pub fn open(
        data_dir: &Path,
        shard_id: usize,
        metrics: Rc<crate::metrics::ShardMetrics>,
    ) -> std::io::Result<DelayService> {
        let opened = std::time::Instant::now();
        let dir = delay_log::shard_dir(data_dir, shard_id);
        std::fs::create_dir_all(&dir)?;
        let origin_ms = crate::shard::now_ms();
        let mut wheel = TimingWheel::new(DELAYED_RECORDS_PER_SHARD_MAX);
        let mut overfull = 0usize;
        let mut by_partition: HashMap<(String, i32), u64> = HashMap::new();
        // Runs of one partition's records are the rule in the log (a produce stores a
        // partition's batch at once): count a run, then add it to the map, instead of a
        // key String and a hash per record.
        let mut run: Option<((String, i32), u64)> = None;
        let replay_started = std::time::Instant::now();
        let replayed = delay_log::replay(&dir, |frame, due_ms, topic, partition| {
            match &mut run {
                Some(((t, p), n)) if *p == partition && t == topic => *n += 1,
                _ => {
                    if let Some((key, n)) = run.replace(((topic.to_string(), partition), 1)) {
                        *by_partition.entry(key).or_default() += n;
                    }
                }
            }
            if wheel.insert(tick_of(origin_ms, due_ms), frame).is_err() {
                overfull += 1;
            }
        })?;
        if let Some((key, n)) = run {
            *by_partition.entry(key).or_default() += n;
        }
        for (_, intent) in &replayed.unresolved {
            let key = (intent.topic.clone(), intent.partition);
            *by_partition.entry(key).or_default() += intent.records.len() as u64;
        }
        if overfull > 0 {
            tracing::error!(
                shard = shard_id,
                overfull,
                "delay log holds more records than the wheel's limit; those wait for a restart"
            );
        }
        let segments: Vec<(u64, u64, u64)> = replayed
            .segments
            .iter()
            .map(|s| (s.number, s.len, s.live))
            .collect();
        tracing::info!(
            shard = shard_id,
            pending = wheel.len(),
            unresolved = replayed.unresolved.len(),
            segments = segments.len(),
            checkpoint = replayed.checkpoint_cut.is_some(),
            tail_bytes = replayed.tail_bytes,
            replay_ms = replay_started.elapsed().as_millis() as u64,
            "delay log replayed"
        );
        metrics.set_delayed_pending(wheel.len() as u64);
        Ok(DelayService {
            inner: Rc::new(Inner {
                shard_id,
                writer: writer::DelayLogWriter::new(dir, &segments),
                wheel: RefCell::new(wheel),
                origin_ms,
                storing: Cell::new(0),
                unresolved: RefCell::new(replayed.unresolved),
                delivering: Cell::new(0),
                rearm: Cell::new(false),
                driver: Cell::new(None),
                by_partition: RefCell::new(by_partition),
                metrics,
                opened: Cell::new(Some(opened)),
                checkpoint_cut: replayed.checkpoint_cut.unwrap_or(0),
            }),
        })
    }

    /// Records waiting for their time on this shard (in the wheel, being stored, or being
    /// delivered).
    pub fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Records of `topic`-`partition` waiting in this shard's delay log.
    pub fn pending_for(&self, topic: &str, partition: i32) -> u64 {
        let counts = self.inner.by_partition.borrow();
        counts
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    /// Writes `records` of one partition to the delay log (synced first when `sync`), then
    /// indexes them in the wheel. The produce answer waits for this.
    pub async fn store(
        &self,
        topic: &str,
        partition: i32,
        records: &[DelayedRecord],
        sync: bool,
    ) -> Result<(), DelayError> {
        let i = &self.inner;
        if let Some(why) = i.writer.failure() {
            return Err(DelayError::Log(why));
        }
        let held = self.pending();
        if held + records.len() > DELAYED_RECORDS_PER_SHARD_MAX {
            return Err(DelayError::Full(held));
        }
        let bytes: usize = records
            .iter()
            .map(|r| r.tail.len() + 64 + topic.len())
            .sum();
        let mut frames = Vec::with_capacity(bytes);
        let mut refs = Vec::with_capacity(records.len());
        for r in records {
            let offset = frames.len() as u64;
            let len = delay_log::encode_pending(
                &mut frames,
                &Pending {
                    due_ms: r.due_ms,
                    timestamp_ms: r.timestamp_ms,
                    topic,
                    partition,
                    tail: &r.tail,
                },
            );
            refs.push((offset, len, r.due_ms));
        }
        let first = i.writer.stage(frames, records.len() as u64, sync);
        i.storing.set(i.storing.get() + records.len());
        let written = i.writer.flush().await;
        i.storing.set(i.storing.get().saturating_sub(records.len()));
        written.map_err(DelayError::Log)?;
        let mut wheel = i.wheel.borrow_mut();
        for (offset, len, due_ms) in refs {
            let frame = FrameRef {
                position: first + offset,
                len,
            };
            // The limit was checked above; a race past it keeps the record in the log
            // (it is delivered after the next restart) rather than losing it.
            if let Err(e) = wheel.insert(tick_of(i.origin_ms, due_ms), frame) {
                tracing::error!(shard = i.shard_id, error = %e, "delayed record not indexed until restart");
            }
        }
        drop(wheel);
        *i.by_partition
            .borrow_mut()
            .entry((topic.to_string(), partition))
            .or_default() += records.len() as u64;
        i.metrics.set_delayed_pending(self.pending() as u64);
        i.rearm.set(true);
        if let Some(driver) = i.driver.take() {
            driver.wake();
        }
        Ok(())
    }
}

impl Inner {
    /// `delivered` records of `topic`-`partition` left the delay log.
    fn settled(&self, topic: &str, partition: i32, delivered: u64) {
        let mut counts = self.by_partition.borrow_mut();
        let key = (topic.to_string(), partition);
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(delivered);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }

    fn pending(&self) -> usize {
        self.wheel.borrow().len()
            + self.storing.get()
            + self.delivering.get()
            + self
                .unresolved
                .borrow()
                .iter()
                .map(|(_, x)| x.records.len())
                .sum::<usize>()
    }
}

/// The wheel tick (1 ms) of an epoch-ms due time; times before the origin are tick 0 (due
/// at once).
fn tick_of(origin_ms: i64, due_ms: i64) -> u64 {
    u64::try_from(due_ms.saturating_sub(origin_ms)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_record_costs_at_most_40_bytes_of_wheel() {
        assert!(TimingWheel::<FrameRef>::entry_bytes() <= 40);
    }
}
