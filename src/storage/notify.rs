//! Single-thread wake-ups for the log: an edge-triggered [`Event`] (group-commit completion,
//! Fetch long-poll) and a tiny async lock built on it. `!Send` by design: everything here lives
//! on one shard thread. Must not be shared across threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes every listener registered before `notify`. Listening allocates nothing per call
/// beyond the amortised growth of one waker vector.
#[derive(Default)]
pub struct Event {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Event {
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        let mut wakers = wakers;
        for w in wakers.drain(..) {
            w.wake();
        }
        // Give the (now empty) vector back so its capacity is reused.
        let mut slot = self.wakers.borrow_mut();
        if slot.is_empty() {
            *slot = wakers;
        }
    }

    /// A future that completes at the next `notify` after this call.
    pub fn listen(self: &Rc<Self>) -> Listen {
        Listen {
            event: Rc::clone(self),
            generation: self.generation.get(),
        }
    }
}

pub struct Listen {
    event: Rc<Event>,
    generation: u64,
}

impl Future for Listen {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.event.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A non-reentrant async lock for rare slow paths (segment roll, state-file writes).
/// Uncontended acquisition never awaits.
#[derive(Default)]
pub struct AsyncLock {
    held: Cell<bool>,
    released: Rc<Event>,
}

pub struct AsyncLockGuard<'a> {
    lock: &'a AsyncLock,
}

impl AsyncLock {
    pub async fn lock(&self) -> AsyncLockGuard<'_> {
        while self.held.get() {
            self.released.listen().await;
        }
        self.held.set(true);
        AsyncLockGuard { lock: self }
    }
}

impl Drop for AsyncLockGuard<'_> {
    fn drop(&mut self) {
        self.lock.held.set(false);
        self.lock.released.notify();
    }
}
