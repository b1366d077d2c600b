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
            registered: None,
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.wakers.borrow().len()
    }
}

pub struct Listen {
    event: Rc<Event>,
    generation: u64,
    /// The waker this listener left in the event, so dropping it (a long-poll that timed
    /// out) takes it back out instead of leaking it until the next notify.
    registered: Option<Waker>,
}

impl Future for Listen {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            self.registered = None;
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        {
            let mut wakers = self.event.wakers.borrow_mut();
            if let Some(old) = self.registered.as_ref()
                && let Some(i) = wakers.iter().position(|w| w.will_wake(old))
            {
                wakers.swap_remove(i);
            }
            wakers.push(cx.waker().clone());
        }
        self.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let Some(mine) = self.registered.take() else {
            return;
        };
        if self.event.generation.get() != self.generation {
            return; // already drained by notify
        }
        let mut wakers = self.event.wakers.borrow_mut();
        if let Some(i) = wakers.iter().position(|w| w.will_wake(&mine)) {
            wakers.swap_remove(i);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn dropped_listeners_leave_no_wakers_behind() {
        let event = Rc::new(Event::default());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut l = Box::pin(event.listen());
            assert!(l.as_mut().poll(&mut cx).is_pending());
            assert!(l.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(event.waiting(), 0);
        let mut l = Box::pin(event.listen());
        assert!(l.as_mut().poll(&mut cx).is_pending());
        assert_eq!(event.waiting(), 1);
        event.notify();
        assert!(l.as_mut().poll(&mut cx).is_ready());
        assert_eq!(event.waiting(), 0);
    }
}
