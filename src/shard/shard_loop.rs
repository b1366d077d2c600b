//! The shard's event loop: compio's `block_on`, except that tasks woken by other tasks run
//! before the ring is polled, and the outbox is flushed once per turn (decision 0023).
//!
//! Owns: the order of one turn (ticks, end of turn, ring poll). Must not: know what the
//! tasks it runs do.

/// Executor ticks a shard may run back to back, while tasks keep waking one another, before
/// it enters the kernel to submit and reap ring operations. Bounded so that a chain of
/// wake-ups cannot hold back the ring for long (each tick runs at most 61 tasks).
const LOCAL_TICKS_BEFORE_POLL: u32 = 4;

/// `Runtime::block_on`, except that tasks woken by other tasks run before the ring is polled.
///
/// compio's loop polls the ring (an `io_uring_enter` with a zero timeout) after every tick
/// that leaves a task ready, and a task woken by the last task of a tick always does. So a
/// request handed from the reader to the dispatcher to the writer paid one system call per
/// hand-off, with nothing to submit or reap: 53 % of a shard's `io_uring_enter` calls in a
/// tailing-consumer run (e2e at 5,000 records/s). Here up to `LOCAL_TICKS_BEFORE_POLL` ticks
/// run first. Measured in one sitting (decision 0001, session-5 addendum): on e2e, 26 % fewer
/// `io_uring_enter` calls and 9 % less broker CPU; on acks=all with fsync, less CPU in 6 of
/// 6 A/B pairs and more throughput in 5; max-throughput produce unchanged within noise.
///
/// `end_turn` runs once per turn, after the ticks and before the ring is polled: it flushes
/// the shard's outbox (decision 0023) and returns the longest the poll may then sleep.
///
/// A panic is not caught here: the broker's panic hook aborts the process (`cli/serve.rs`).
pub(super) fn block_on_batched<F: std::future::Future>(
    runtime: &compio::runtime::Runtime,
    mut end_turn: impl FnMut() -> Option<std::time::Duration>,
    future: F,
) -> F::Output {
    use std::task::{Context, Poll};
    runtime.enter(|| {
        let waker = runtime.waker();
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                runtime.run();
                end_turn();
                return output;
            }
            let mut more = runtime.run();
            let mut ticks = 1;
            while more && ticks < LOCAL_TICKS_BEFORE_POLL {
                more = runtime.run();
                ticks += 1;
            }
            let sleep_max = end_turn();
            if more {
                runtime.poll_with(Some(std::time::Duration::ZERO));
            } else {
                // A wait that may sleep: marked under SLUICE_STAGE_TRACE (a wake-up).
                crate::metrics::stage_trace::timed_wait(|| match sleep_max {
                    Some(_) => runtime.poll_with(sleep_max),
                    None => runtime.poll(),
                });
            }
        }
    })
}
