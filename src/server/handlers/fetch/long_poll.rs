//! Fetch's long poll: with fewer than `min_bytes` available, wait until an owning shard
//! reports an append to one of the fetched partitions (then read again) or until the
//! deadline, never sleeping out the wait when data has arrived.

use super::read::{PartitionRead, Reader, read_all};
use crate::server::fetch_sessions::WantedPartition;
use crate::shard::{Lookup, Shard};
use futures_util::FutureExt;
use std::rc::Rc;
use std::time::Instant;

/// Reads `wants`, and reads again after each append until `min_bytes` are available, a
/// partition errs, the deadline passes or the shard shuts down. Returns the last reads.
pub(super) async fn read_until_enough(
    shard: &Rc<Shard>,
    wants: &[WantedPartition],
    readable: &[bool],
    min_bytes: usize,
    max_bytes: usize,
    deadline: Instant,
    reader: Reader,
) -> Vec<PartitionRead> {
    let mut reads = read_all(shard, wants, readable, max_bytes, reader).await;
    loop {
        let available: usize = reads.iter().map(|r| r.bytes).sum();
        let any_error = reads.iter().any(|r| r.error_code != 0);
        if available >= min_bytes.max(1)
            || any_error
            || Instant::now() >= deadline
            || wants.is_empty()
        {
            return reads;
        }
        let seen: Vec<i64> = reads.iter().map(|r| r.progress).collect();
        wait_for_append(shard, wants, &seen, deadline, reader.replica.is_some()).await;
        if shard.shutting_down.get() {
            return reads;
        }
        reads = read_all(shard, wants, readable, max_bytes, reader).await;
    }
}

/// Waits until any wanted partition's owner reports an append, or the deadline passes.
/// The waiters left on owner shards are cancelled when this returns.
/// `seen` holds the progress each read saw (high watermark; a follower's: the written
/// end): an append that landed between that read and the registration on the owner shard
/// must wake us at once, not after the timeout.
async fn wait_for_append(
    shard: &Rc<Shard>,
    wants: &[WantedPartition],
    seen: &[i64],
    deadline: Instant,
    follower: bool,
) {
    let mut cancels = Vec::with_capacity(wants.len());
    let mut waits = Vec::with_capacity(wants.len());
    for (w, &seen_progress) in wants.iter().zip(seen) {
        let owner = w.owner;
        let (cancel_tx, cancel_rx) = futures_channel::oneshot::channel::<()>();
        cancels.push(cancel_tx);
        let topic = w.topic.clone();
        let partition = w.partition;
        waits.push(Box::pin(
            shard
                .invoke_on(owner, move |s| async move {
                    let Lookup::Online(p) = s.partitions.get(&topic, partition) else {
                        return;
                    };
                    // Checked and registered without an await in between: no lost wake-up.
                    if p.fetch_progress(follower) != seen_progress {
                        return;
                    }
                    let mut appended = std::pin::pin!(p.wait_for_high_watermark().fuse());
                    let mut cancelled = cancel_rx.fuse();
                    futures_util::select! {
                        _ = appended => {},
                        _ = cancelled => {},
                    }
                })
                .map(|_| ()),
        ));
    }
    let mut any = futures_util::future::select_all(waits).fuse();
    // On the shard's timing wheel: a long poll answered early cancels its entry in O(1).
    let mut timeout = shard.timer.sleep_until(deadline).fuse();
    let mut stop = shard.shutdown_signal().fuse();
    futures_util::select! {
        _ = any => {},
        _ = timeout => {},
        _ = stop => {},
    }
    drop(cancels);
}

