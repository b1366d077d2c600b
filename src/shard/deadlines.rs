//! The coordinators' deadlines on the shard's timer, each in a loop of its own so that a
//! background flush's fdatasync in the maintenance loop never holds them back: group
//! deadlines (session expiry, rebalance and join delays) and transaction deadlines
//! (timeouts, unfinished completions).
//!
//! Owns: the two loops and their tick lengths. Must not: do the work itself — the group
//! coordinator and the transaction driver do.

use std::rc::Rc;

use futures_util::FutureExt;

use super::Shard;
use super::transactions::{
    TXN_TIMER_TICK, complete_preparing, restore_pending_offsets, run_timer_tick,
};

/// How often group deadlines (session timeouts, rebalance and join delays) are checked.
pub const GROUP_DEADLINE_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// Group deadlines until shutdown.
pub(super) async fn group_deadlines(shard: Rc<Shard>) {
    let mut stop = shard.shutdown_signal().fuse();
    while !shard.shutting_down.get() {
        let mut tick = shard.timer.sleep(GROUP_DEADLINE_TICK).fuse();
        futures_util::select! {
            _ = stop => return,
            _ = tick => {},
        }
        shard.groups.tick(std::time::Instant::now());
    }
}

/// Transaction deadlines until shutdown: first the transactions a restart left decided but
/// unfinished (and the pending marks of the open ones' offsets), then every
/// `TXN_TIMER_TICK` the timed-out ones.
pub(super) async fn txn_deadlines(shard: Rc<Shard>) {
    let mut stop = shard.shutdown_signal().fuse();
    complete_preparing(&shard).await;
    restore_pending_offsets(&shard).await;
    while !shard.shutting_down.get() {
        let mut tick = shard.timer.sleep(TXN_TIMER_TICK).fuse();
        futures_util::select! {
            _ = stop => return,
            _ = tick => {},
        }
        run_timer_tick(&shard).await;
        let open = shard
            .txns
            .open_count(|id| shard.coordinates_transactional_id(id));
        shard.metrics.set_open_transactions(open as u64);
    }
}
