//! Single-thread wake-ups for the log: an edge-triggered [`Event`] (group-commit completion,
//! Fetch long-poll) and a tiny async lock built on it. `!Send` by design: everything here lives
//! on one shard thread. Must not be shared across threads.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Lets every other ready task of the shard run once before the caller continues (a long
/// loop's fairness point: the cleaner between batches, the inbox between pieces of mail).
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

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

/// A non-reentrant async lock for rare slow paths (segment roll, state-file writes), taken
/// by every append (`Log::dispatch_lock`). Uncontended acquisition never awaits. Fair: the
/// lock goes to waiters in the order they first asked, and a task asking while others wait
/// queues behind them, so appends that reach a log in some order take their offsets in
/// that order even when a roll holds the lock meanwhile (a forwarded produce relies on it:
/// its order is fixed when it is queued for the owner, decision 0023).
#[derive(Default)]
pub struct AsyncLock {
    held: Cell<bool>,
    /// Tickets of the waiting tasks, first come first: the front one takes the lock next.
    waiting: RefCell<VecDeque<u64>>,
    next_ticket: Cell<u64>,
    released: Rc<Event>,
}

pub struct AsyncLockGuard<'a> {
    lock: &'a AsyncLock,
}

impl AsyncLock {
    pub async fn lock(&self) -> AsyncLockGuard<'_> {
        if !self.held.get() && self.waiting.borrow().is_empty() {
            self.held.set(true);
            return AsyncLockGuard { lock: self };
        }
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket.wrapping_add(1));
        self.waiting.borrow_mut().push_back(ticket);
        let mut place = Place {
            lock: self,
            ticket,
            served: false,
        };
        loop {
            let mine = self.waiting.borrow().front() == Some(&ticket);
            if mine && !self.held.get() {
                self.waiting.borrow_mut().pop_front();
                place.served = true;
                self.held.set(true);
                return AsyncLockGuard { lock: self };
            }
            self.released.listen().await;
        }
    }
}

/// A waiter's place in the line. A waiter dropped before its turn (its request was
/// cancelled) leaves the line, and hands the turn on if it was next.
struct Place<'a> {
    lock: &'a AsyncLock,
    ticket: u64,
    served: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        let mut waiting = self.lock.waiting.borrow_mut();
        let was_next = waiting.front() == Some(&self.ticket);
        waiting.retain(|t| *t != self.ticket);
        drop(waiting);
        if was_next && !self.lock.held.get() {
            self.lock.released.notify();
        }
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

    fn ready<F: Future>(f: Pin<&mut F>) -> Option<F::Output> {
        match f.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    /// Waiters take the lock in the order they asked; one arriving when the holder lets go,
    /// before the first waiter ran, does not barge ahead; a waiter that gives up passes its
    /// turn on.
    #[test]
    fn the_lock_goes_to_waiters_first_come_first() {
        let lock = AsyncLock::default();
        let mut holder = Box::pin(lock.lock());
        let held = ready(holder.as_mut()).expect("uncontended");
        let mut first = Box::pin(lock.lock());
        let mut gives_up = Box::pin(lock.lock());
        let mut third = Box::pin(lock.lock());
        assert!(ready(first.as_mut()).is_none());
        assert!(ready(gives_up.as_mut()).is_none());
        assert!(ready(third.as_mut()).is_none());
        drop(held);
        let mut late = Box::pin(lock.lock());
        assert!(
            ready(late.as_mut()).is_none(),
            "a late arrival queues behind the waiters"
        );
        assert!(ready(third.as_mut()).is_none(), "not its turn yet");
        let first_held = ready(first.as_mut()).expect("first in line");
        drop(gives_up);
        assert!(ready(third.as_mut()).is_none());
        drop(first_held);
        let third_held = ready(third.as_mut()).expect("the one that gave up passed its turn on");
        assert!(ready(late.as_mut()).is_none());
        drop(third_held);
        assert!(ready(late.as_mut()).is_some());
    }
}
