//! The background flush (`flush.ms`, `flush.messages`) of a shard's maintenance tick: each
//! due partition's data is synced and its recovery point advanced. With many partitions due
//! at once (`[log] flush_syncfs_min_partitions`), one `syncfs` of the data directory's
//! filesystem replaces their fdatasyncs (decision 0020, `storage::filesystem_sync`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::Shard;
use super::table::Lookup;
use crate::partition::Partition;
use crate::storage::filesystem_sync::{FilesystemSync, FilesystemSyncMark};
use crate::storage::{FlushWatch, PartitionLog};

/// A log that told the shard it has background-flush work, with the partition it serves.
pub struct FlushCandidate {
    /// Shared with the hook: telling the shard allocates nothing but the list's slot.
    topic: Rc<str>,
    partition: i32,
    log: Weak<PartitionLog>,
}

/// The logs with background-flush work, as their hooks told (`storage::flush_watch`).
pub type FlushCandidates = Rc<RefCell<Vec<FlushCandidate>>>;

/// The hook `open` installs on the log of `topic` / `partition`.
pub fn watch(candidates: &FlushCandidates, topic: &str, partition: i32) -> FlushWatch {
    let candidates = Rc::clone(candidates);
    let topic: Rc<str> = Rc::from(topic);
    Rc::new(move |log| {
        candidates.borrow_mut().push(FlushCandidate {
            topic: Rc::clone(&topic),
            partition,
            log,
        })
    })
}

/// The partitions whose background flush is due at `now`, among the logs that told the
/// shard they have work. A log with nothing left to flush is let go (its next write tells
/// the shard again), so a tick costs the partitions written since their last flush, not
/// every partition the shard holds: scanning 100,000 idle ones ten times a second kept a
/// quarter of a core busy (perf/RESULTS.md, session 34). A log whose partition is not in
/// either table just now (it is changing tables) is looked at again next tick.
pub fn due(shard: &Shard, now: i64) -> Vec<(String, i32, Rc<Partition>)> {
    let told = std::mem::take(&mut *shard.flush_candidates.borrow_mut());
    let mut kept = Vec::with_capacity(told.len());
    let mut due = Vec::new();
    for candidate in told {
        let Some(log) = candidate.log.upgrade() else {
            continue;
        };
        if !log.keep_flush_watch() {
            continue;
        }
        if log.background_flush_due(now) {
            let (topic, partition) = (&*candidate.topic, candidate.partition);
            let serving = match shard.partitions.get(topic, partition) {
                Lookup::Online(p) => Some(p),
                _ => match shard.followers.get(topic, partition) {
                    Lookup::Online(p) => Some(p),
                    _ => None,
                },
            };
            if let Some(p) = serving.filter(|p| p.serves_log(&log)) {
                due.push((topic.to_string(), partition, p));
            }
        }
        kept.push(candidate);
    }
    shard.flush_candidates.borrow_mut().extend(kept);
    due
}

/// Background flushes (`flush.ms`, `flush.messages`) a shard runs at once. One at a time,
/// 1,000 active partitions paid 1,000 fdatasyncs in a row every tick, each waiting for its
/// own ext4 journal commit and device flush; concurrent ones share commits. Bounded so a
/// shard of 100,000 partitions does not hold 100,000 flushes (and their descriptors) open.
pub const MAX_CONCURRENT_BACKGROUND_FLUSHES: usize = 64;

/// Flushes every log in `logs` (those whose `flush.ms` / `flush.messages` is due), up to
/// `MAX_CONCURRENT_BACKGROUND_FLUSHES` at once; none once shutdown has begun. When there are
/// at least `flush_syncfs_min_partitions` of them and `filesystem` is there, through one
/// `syncfs`; if that fails, each log fdatasyncs its own files (which names the file an
/// error belongs to).
pub async fn run(
    shard: &Rc<Shard>,
    logs: &[(String, i32, Rc<Partition>)],
    now: i64,
    filesystem: Option<&FilesystemSync>,
) {
    let threshold = shard.config.log.flush_syncfs_min_partitions as usize;
    if let Some(filesystem) = filesystem
        && threshold > 0
        && logs.len() >= threshold
        && !shard.shutting_down.get()
    {
        // No await between the marks: each covers the writes its log completed before the
        // syncfs starts.
        let mut marks: Vec<FilesystemSyncMark> = logs
            .iter()
            .map(|(_, _, p)| p.filesystem_sync_mark(now))
            .collect();
        // The index entries of the logs persisting their recovery point this tick, so the
        // syncfs covers them too (no fdatasync of two index files per partition and second).
        write_indexes_before_sync(logs, &mut marks).await;
        let started = std::time::Instant::now();
        let synced = filesystem.sync().await;
        shard
            .metrics
            .record_syncfs(started.elapsed().as_nanos() as u64);
        match synced {
            Ok(()) => {
                flush_each(shard, logs.iter().zip(marks.into_iter().map(Some)), now).await;
                return;
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "syncfs failed; background flush syncs each partition");
            }
        }
    }
    flush_each(shard, logs.iter().map(|log| (log, None)), now).await;
}

/// Each log's `Partition::write_indexes_before_sync`, up to
/// `MAX_CONCURRENT_BACKGROUND_FLUSHES` at once.
async fn write_indexes_before_sync(
    logs: &[(String, i32, Rc<Partition>)],
    marks: &mut [FilesystemSyncMark],
) {
    use futures_util::StreamExt;
    futures_util::stream::iter(logs.iter().zip(marks.iter_mut()))
        .for_each_concurrent(
            MAX_CONCURRENT_BACKGROUND_FLUSHES,
            |((_, _, p), mark)| async move {
                if !p.is_closed() {
                    p.write_indexes_before_sync(mark).await;
                }
            },
        )
        .await;
}

/// Flushes each log: after a `syncfs`, up to its mark; without one, by its own fdatasync.
async fn flush_each<'a>(
    shard: &Rc<Shard>,
    logs: impl Iterator<Item = (&'a (String, i32, Rc<Partition>), Option<FilesystemSyncMark>)>,
    now: i64,
) {
    use futures_util::StreamExt;
    futures_util::stream::iter(logs)
        .for_each_concurrent(
            MAX_CONCURRENT_BACKGROUND_FLUSHES,
            |((topic, partition, p), mark)| async move {
                if shard.shutting_down.get() {
                    return;
                }
                // A follower's truncation closed this log and reopened it under a new object.
                if p.is_closed() {
                    return;
                }
                let flushed = match mark {
                    Some(mark) => p.flush_after_filesystem_sync(now, mark).await,
                    None => p.flush_if_due(now).await,
                };
                if let Err(e) = flushed {
                    tracing::error!(topic, partition, error = %e, "background flush failed");
                    if matches!(e, crate::storage::StorageError::Offline { .. }) {
                        super::open::take_offline(shard, topic, *partition, e.to_string()).await;
                    }
                }
            },
        )
        .await;
}
