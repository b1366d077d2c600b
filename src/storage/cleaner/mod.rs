//! Log compaction (Kafka's log cleaner) for `cleanup.policy=compact` and `compact,delete`:
//! on the owning shard, in the background, one partition at a time, within an I/O budget.
//! A pass (`PartitionLog::clean`) plans the cleanable range (`plan.rs`), builds a key →
//! newest-offset map over its dirty part (`offset_map.rs`, bounded by the dedupe buffer),
//! rewrites the sealed segments keeping the newest record per key (`rewrite.rs`, batches
//! filtered by `filter.rs`), swaps them in crash-safely (`swap.rs`) and persists the cleaner
//! checkpoint (the first dirty offset) in `cleaner.checkpoint`. Transactional and control
//! batches are kept whole and never supersede anything (an aborted record must not erase a
//! committed one). Must not touch the active segment, decide which partition to clean (the
//! shard does), or hold sealed segments' files beyond one pass.

mod filter;
mod offset_map;
mod plan;
mod rewrite;
mod swap;

use crate::storage::notify::yield_now;
use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::error::StorageError;
use super::log::PartitionLog;
use super::notify::AsyncLock;
use super::state::{read_small_file, write_file_atomically};

pub use filter::{
    FilterScratch, Filtered, RecordView, filter_batch, records_section, walk_records,
};
pub use offset_map::{KeyOffsetMap, OFFSET_MAP_ENTRY_BYTES, key_hash};
pub use plan::{CleaningPlan, CompactionSettings, plan_cleaning};
pub use swap::finish_interrupted_swaps;

pub const CHECKPOINT_FILE_NAME: &str = "cleaner.checkpoint";
const CHECKPOINT_MAGIC: &[u8; 4] = b"SLCC";
/// magic + first dirty offset + crc.
const CHECKPOINT_FILE_BYTES: usize = 4 + 8 + 4;
/// The I/O budget's accounting window.
pub const CLEANER_IO_WINDOW: Duration = Duration::from_secs(1);
/// How far a pass may run ahead of its budget's rate before it sleeps. The budget used to
/// be checked only once a whole window's bytes were spent, so a pass read up to a second's
/// budget (100 MiB by default) at full disk speed and then slept: at 1.1 GB/s for 60 ms in
/// `perf/cleaner.py`, with the other topic's produce p99 up by half. Kafka's Throttler
/// checks every 100 ms; pacing within 10 ms keeps the cleaner's I/O spread out.
pub const CLEANER_PACE_SLACK: Duration = Duration::from_millis(10);
const _: () = assert!(CLEANER_PACE_SLACK.as_millis() < CLEANER_IO_WINDOW.as_millis());
/// Longest a throttled pass sleeps before looking whether the shard is stopping.
pub const CLEANER_STOP_CHECK: Duration = Duration::from_millis(100);

/// Sleeps on the caller's timer (the shard's wheel); storage has no clock of its own.
pub type Sleeper = Rc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()>>>>;

/// The cleaner's state in one partition log.
#[derive(Default)]
pub struct CleanerState {
    /// First offset not yet cleaned (Kafka's cleaner checkpoint); 0 before the first pass.
    first_dirty_offset: Cell<i64>,
    /// Held while segments are replaced: the log's segment list changes only under it
    /// (retention and DeleteRecords take it before dropping segments).
    pub(super) swap_lock: AsyncLock,
}

/// The shard's cleaner limits (the `[log] cleaner_*` keys).
#[derive(Clone)]
pub struct CleanerBudget {
    /// Bytes read plus written per second, all partitions of the shard together.
    pub io_max_bytes_per_second: u64,
    /// Memory for one pass's key → offset map.
    pub dedupe_buffer_bytes: u64,
    pub sleep: Sleeper,
    /// Test hook (crash tests): how long a pass waits with its `.swap` files written and
    /// nothing replaced yet. Zero in production.
    pub swap_pause: Duration,
    /// Asked at every batch: true ends the pass (shutdown), its `.cleaned` files deleted.
    pub stop_requested: Rc<dyn Fn() -> bool>,
}

/// Keeps a pass under `io_max_bytes_per_second`: counts bytes in one-second windows and,
/// whenever the bytes so far in the window are more than `CLEANER_PACE_SLACK` ahead of the
/// budget's rate, sleeps until they are not. Also yields to the shard after every batch.
pub struct IoThrottle {
    budget: CleanerBudget,
    window_start: Instant,
    window_bytes: u64,
    /// Time spent sleeping for the budget (observability).
    pub throttled: Duration,
}

impl IoThrottle {
    pub fn new(budget: CleanerBudget) -> IoThrottle {
        IoThrottle {
            budget,
            window_start: Instant::now(),
            window_bytes: 0,
            throttled: Duration::ZERO,
        }
    }

    pub fn budget(&self) -> &CleanerBudget {
        &self.budget
    }

    /// Accounts `bytes` of cleaner I/O; returns once the budget allows more.
    pub async fn pace(&mut self, bytes: u64) {
        let elapsed = self.window_start.elapsed();
        if elapsed >= CLEANER_IO_WINDOW {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        let budget = self.budget.io_max_bytes_per_second.max(1);
        // The time the window's bytes may take at the budget's rate, less what has passed:
        // a read larger than one window's budget waits for as many windows as it spent.
        let allowed = CLEANER_IO_WINDOW.mul_f64(self.window_bytes as f64 / budget as f64);
        let ahead = allowed.saturating_sub(self.window_start.elapsed());
        if ahead >= CLEANER_PACE_SLACK {
            self.sleep_unless_stopped(ahead).await;
            if self.window_start.elapsed() >= CLEANER_IO_WINDOW {
                self.window_start = Instant::now();
                self.window_bytes = 0;
            }
        } else {
            yield_now().await;
        }
    }
}

impl IoThrottle {
    /// Sleeps `duration` in slices of at most `CLEANER_STOP_CHECK`, returning early once a
    /// stop is requested, so a throttled pass never holds up a shutdown.
    pub(super) async fn sleep_unless_stopped(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || (self.budget.stop_requested)() {
                return;
            }
            let slice = left.min(CLEANER_STOP_CHECK);
            (self.budget.sleep)(slice).await;
            self.throttled += slice;
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Segment bytes before minus after.
    pub bytes_reclaimed: u64,
    pub segments_rewritten: u64,
    pub records_removed: u64,
    /// The new first dirty offset.
    pub cleaned_up_to: i64,
}

/// A log's need for cleaning, for the shard to pick the filthiest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleaningNeed {
    pub dirty_ratio: f64,
    pub time_behind_ms: i64,
    pub due: bool,
}

fn encode_checkpoint(offset: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(CHECKPOINT_FILE_BYTES);
    b.extend_from_slice(CHECKPOINT_MAGIC);
    b.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn decode_checkpoint(b: &[u8]) -> Option<i64> {
    if b.len() != CHECKPOINT_FILE_BYTES || &b[..4] != CHECKPOINT_MAGIC {
        return None;
    }
    let stored = u32::from_be_bytes(b[12..16].try_into().ok()?);
    if crc32c::crc32c(&b[..12]) != stored {
        return None;
    }
    Some(i64::from_be_bytes(b[4..12].try_into().ok()?))
}

/// Reads the checkpoint; a missing or damaged one means "nothing cleaned yet" (the next pass
/// rebuilds the map from the log start: more work, never a wrong result).
pub async fn read_checkpoint(dir: &Path) -> Result<i64, StorageError> {
    let path = dir.join(CHECKPOINT_FILE_NAME);
    Ok(match read_small_file(&path).await? {
        None => 0,
        Some(b) => decode_checkpoint(&b).unwrap_or_else(|| {
            tracing::warn!(file = %path.display(), "unreadable cleaner checkpoint; recleaning from the log start");
            0
        }),
    })
}

impl PartitionLog {
    /// At open: finishes or discards a swap a crash interrupted, then loads the checkpoint.
    pub(super) async fn open_cleaner(&self) -> Result<(), StorageError> {
        finish_interrupted_swaps(&self.dir).await?;
        let offset = read_checkpoint(&self.dir).await?;
        self.cleaner.first_dirty_offset.set(offset);
        Ok(())
    }

    /// Between batches of a pass: the log must still be open and the shard not stopping.
    pub(super) fn check_cleaning_goes_on(&self, throttle: &IoThrottle) -> Result<(), StorageError> {
        self.check_online()?;
        if (throttle.budget.stop_requested)() {
            return Err(StorageError::Offline {
                partition: self.name.clone(),
                reason: "cleaner pass stopped: shutting down".into(),
            });
        }
        Ok(())
    }

    /// The first offset the cleaner has not cleaned (its checkpoint, never below the log
    /// start).
    pub fn cleaner_first_dirty_offset(&self) -> i64 {
        let checkpoint = self.cleaner.first_dirty_offset.get();
        let log_start = self.offsets.log_start_offset.get();
        if checkpoint > self.offsets.next_offset.get() {
            // Past the log end (a torn tail was truncated at open): clean from the start,
            // as Kafka resets an invalid checkpoint.
            return log_start;
        }
        checkpoint.max(log_start)
    }

    fn cleaning_plan(&self, now_ms: i64) -> Option<(CleaningPlan, CompactionSettings)> {
        let settings = {
            let config = self.config.borrow();
            if !config.cleanup_policy.compacts() {
                return None;
            }
            CompactionSettings::from_config(&config)
        };
        let synced_end = self
            .offsets
            .recovery_point
            .get()
            .min(self.offsets.written_end_offset.get());
        let segments: Vec<_> = self.segments.borrow().iter().cloned().collect();
        let plan = plan_cleaning(
            &segments,
            self.cleaner_first_dirty_offset(),
            synced_end,
            now_ms,
            &settings,
        )?;
        Some((plan, settings))
    }

    /// How dirty the log is and whether a pass is due (`None`: not compacted, or nothing
    /// cleanable).
    pub fn cleaning_need(&self, now_ms: i64) -> Option<CleaningNeed> {
        if self.check_online().is_err() {
            return None;
        }
        let (plan, _) = self.cleaning_plan(now_ms)?;
        Some(CleaningNeed {
            dirty_ratio: plan.dirty_ratio(),
            time_behind_ms: plan.time_behind_ms,
            due: plan.due,
        })
    }

    /// One cleaner pass if one is due (`Ok(None)` otherwise).
    pub async fn clean(
        &self,
        now_ms: i64,
        throttle: &mut IoThrottle,
    ) -> Result<Option<CleanStats>, StorageError> {
        self.check_online()?;
        let Some((plan, settings)) = self.cleaning_plan(now_ms) else {
            return Ok(None);
        };
        if !plan.due {
            return Ok(None);
        }
        // The pass swaps segment files: an open must not trust them unchecked after a crash.
        self.mark_unclean().await?;
        let mut stats = CleanStats::default();
        let mut map = KeyOffsetMap::with_buffer_bytes(throttle.budget().dedupe_buffer_bytes);
        let Some(map_end) = self
            .build_offset_map(&plan, &mut map, throttle, &mut stats)
            .await?
        else {
            return Ok(None);
        };
        self.rewrite_cleanable(
            &plan, &settings, &map, map_end, now_ms, throttle, &mut stats,
        )
        .await?;
        self.cleaner.first_dirty_offset.set(map_end);
        write_file_atomically(&self.dir, CHECKPOINT_FILE_NAME, encode_checkpoint(map_end)).await?;
        stats.cleaned_up_to = map_end;
        Ok(Some(stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let b = encode_checkpoint(12_345);
        assert_eq!(decode_checkpoint(&b), Some(12_345));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert_eq!(decode_checkpoint(&c), None, "flip at {i}");
        }
        assert_eq!(decode_checkpoint(&b[..10]), None);
    }
}
