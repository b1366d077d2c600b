//! The shard's log cleaner task: one pass at a time over the compacted partitions this shard
//! owns, the filthiest (highest dirty ratio, as Kafka picks) of those due, all
//! within the shard's cleaner budget (`[log] cleaner_*`); it sleeps `cleaner_backoff_ms` on
//! the shard's timer when nothing is due. Records passes, bytes and time behind in the
//! shard's metrics. Must not do the cleaning itself (`storage::cleaner` does, through
//! `partition::Partition`).

use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::partition::Partition;
use crate::storage::cleaner::{CleanerBudget, CleaningNeed, IoThrottle};

/// The shortest sleep between looks for work, whatever `cleaner_backoff_ms` says.
pub const MIN_CLEANER_BACKOFF: Duration = Duration::from_millis(10);
/// Test hook: milliseconds a pass waits with its `.swap` files written, before replacing
/// anything (crash tests kill the broker there). Unset in production.
pub const SWAP_PAUSE_ENV: &str = "SLUICE_TEST_CLEANER_SWAP_PAUSE_MS";

fn budget(shard: &Rc<Shard>) -> CleanerBudget {
    let log = &shard.config.log;
    let for_sleep = Rc::clone(shard);
    let for_stop = Rc::clone(shard);
    let swap_pause_ms = std::env::var(SWAP_PAUSE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    CleanerBudget {
        io_max_bytes_per_second: log.cleaner_io_max_bytes_per_second,
        dedupe_buffer_bytes: log.cleaner_dedupe_buffer_bytes,
        sleep: Rc::new(move |d| Box::pin(for_sleep.timer.sleep(d))),
        swap_pause: Duration::from_millis(swap_pause_ms),
        stop_requested: Rc::new(move || for_stop.shutting_down.get()),
    }
}

/// Runs until shutdown; ends at once while sleeping, else at the next batch of a pass.
pub async fn run(shard: Rc<Shard>) {
    use futures_util::FutureExt;
    if !shard.config.log.cleaner_enable {
        return;
    }
    let mut throttle = IoThrottle::new(budget(&shard));
    let backoff =
        Duration::from_millis(shard.config.log.cleaner_backoff_ms).max(MIN_CLEANER_BACKOFF);
    let mut stop = shard.shutdown_signal().fuse();
    while !shard.shutting_down.get() {
        if clean_filthiest(&shard, &mut throttle).await {
            continue;
        }
        let mut sleep = shard.timer.sleep(backoff).fuse();
        futures_util::select! {
            _ = stop => return,
            _ = sleep => {},
        }
    }
}

/// Cleans the partition that needs it most; false when none is due.
async fn clean_filthiest(shard: &Rc<Shard>, throttle: &mut IoThrottle) -> bool {
    let now = super::now_ms();
    let mut filthiest: Option<(String, i32, Rc<Partition>, CleaningNeed)> = None;
    let mut time_behind_ms = 0i64;
    for (topic, partition, p) in shard.partitions.all_online() {
        let Some(need) = p.cleaning_need(now) else {
            continue;
        };
        time_behind_ms = time_behind_ms.max(need.time_behind_ms);
        let better = filthiest
            .as_ref()
            .is_none_or(|(_, _, _, best)| need.dirty_ratio > best.dirty_ratio);
        if need.due && better {
            filthiest = Some((topic, partition, p, need));
        }
    }
    shard.metrics.set_cleaner_time_behind_ms(time_behind_ms);
    let Some((topic, partition, p, need)) = filthiest else {
        return false;
    };
    let started = std::time::Instant::now();
    tracing::info!(
        topic,
        partition,
        dirty_ratio = need.dirty_ratio,
        "log cleaner pass starting"
    );
    match p.clean(now, throttle).await {
        Ok(Some(stats)) => {
            shard.metrics.record_clean(&stats, started.elapsed());
            tracing::info!(
                topic,
                partition,
                dirty_ratio = need.dirty_ratio,
                bytes_read = stats.bytes_read,
                bytes_written = stats.bytes_written,
                bytes_reclaimed = stats.bytes_reclaimed,
                cleaned_up_to = stats.cleaned_up_to,
                "log cleaner pass"
            );
            true
        }
        Ok(None) => false,
        Err(e) if shard.shutting_down.get() => {
            tracing::debug!(topic, partition, error = %e, "cleaner pass stopped by shutdown");
            false
        }
        Err(e) => {
            tracing::error!(topic, partition, error = %e, "log cleaner pass failed");
            shard.metrics.record_clean_failure();
            false
        }
    }
}
