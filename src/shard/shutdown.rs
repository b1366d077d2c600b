//! Shutdown signalling on a shard: `begin_shutdown` wakes every task waiting for it
//! (connections, long polls, the cleaner, delivery rounds) through one-shot channels.

use super::Shard;

impl Shard {
    /// Marks the shard as stopping and wakes everything waiting for that.
    pub fn begin_shutdown(&self) {
        if self.shutting_down.replace(true) {
            return;
        }
        for waiter in self.shutdown_waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Runs `work` every `period` (after the first period) until shutdown begins: the shape
    /// of shard 0's periodic cluster checks (ISR changes, auto leader rebalance).
    pub(super) async fn every_until_shutdown<F, Fut>(
        &self,
        period: std::time::Duration,
        mut work: F,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use futures_util::FutureExt;
        let mut stop = self.shutdown_signal().fuse();
        while !self.shutting_down.get() {
            let mut tick = self.timer.sleep(period).fuse();
            futures_util::select! {
                _ = stop => return,
                _ = tick => {},
            }
            work().await;
        }
    }

    /// Completes when shutdown begins (immediately if it already has).
    pub fn shutdown_signal(&self) -> futures_channel::oneshot::Receiver<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        if self.shutting_down.get() {
            let _ = tx.send(());
        } else {
            push_pruned(&mut self.shutdown_waiters.borrow_mut(), tx);
        }
        rx
    }
}

/// Adds a shutdown waiter, first dropping the waiters whose receiver is gone when the list is
/// full. Every long-poll Fetch asks for a signal and drops it when answered, so without the
/// pruning the list grew by one sender per long poll for the broker's whole life. Pruning only
/// when the vector would grow keeps it amortized O(1) and at most twice the live waiters.
fn push_pruned(
    waiters: &mut Vec<futures_channel::oneshot::Sender<()>>,
    tx: futures_channel::oneshot::Sender<()>,
) {
    if waiters.len() == waiters.capacity() {
        waiters.retain(|waiter| !waiter.is_canceled());
    }
    waiters.push(tx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_waiters_whose_receivers_are_gone_do_not_accumulate() {
        let mut waiters = Vec::new();
        let mut live = Vec::new();
        for i in 0..100_000 {
            let (tx, rx) = futures_channel::oneshot::channel::<()>();
            push_pruned(&mut waiters, tx);
            if i % 1_000 == 0 {
                live.push(rx); // a long-lived waiter (a connection, the cleaner)
            }
        }
        assert!(
            waiters.len() <= 2 * live.len() + 64,
            "{} waiters",
            waiters.len()
        );
        for waiter in waiters.drain(..) {
            let _ = waiter.send(());
        }
        for mut rx in live {
            assert_eq!(rx.try_recv(), Ok(Some(())), "a live waiter was dropped");
        }
    }
}
