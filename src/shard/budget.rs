//! A shard's budget for request bytes held in memory (mostly produce data read from
//! sockets but not yet written). When it is spent, connections stop reading their sockets
//! until requests finish: backpressure instead of unbounded memory.
//!
//! Single-threaded (one per shard): plain `Cell`s, woken in FIFO order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

pub struct MemoryBudget {
    capacity: u64,
    in_use: Cell<u64>,
    waiters: RefCell<VecDeque<futures_channel::oneshot::Sender<()>>>,
}

/// Bytes taken from the budget; given back when dropped.
pub struct MemoryPermit {
    budget: Rc<MemoryBudget>,
    bytes: u64,
}

impl MemoryBudget {
    pub fn new(capacity: u64) -> Rc<MemoryBudget> {
        Rc::new(MemoryBudget {
            capacity: capacity.max(1),
            in_use: Cell::new(0),
            waiters: RefCell::new(VecDeque::new()),
        })
    }

    /// A permit that takes nothing from the budget (see the small-request allowance in the
    /// connection reader).
    pub fn unmetered(self: &Rc<Self>) -> MemoryPermit {
        MemoryPermit {
            budget: self.clone(),
            bytes: 0,
        }
    }

    pub fn in_use(&self) -> u64 {
        self.in_use.get()
    }

    /// Waits until `bytes` fit (a request larger than the whole budget waits until the
    /// budget is idle, then takes all of it), then takes them.
    pub async fn acquire(self: &Rc<Self>, bytes: u64) -> MemoryPermit {
        let bytes = bytes.min(self.capacity);
        // FIFO: a newcomer does not overtake connections already waiting; a woken waiter
        // that still does not fit keeps its place at the front.
        let mut woken = false;
        // If this future is dropped after being woken but before taking its bytes, the
        // wake-up passes on to the next waiter instead of being lost.
        let mut pass_on = PassOnWake {
            budget: self,
            armed: false,
        };
        loop {
            let fits = self.in_use.get() + bytes <= self.capacity;
            if fits && (woken || self.waiters.borrow().is_empty()) {
                self.in_use.set(self.in_use.get() + bytes);
                pass_on.armed = false;
                if woken {
                    // Others behind us may fit too.
                    self.wake_next();
                }
                return MemoryPermit {
                    budget: self.clone(),
                    bytes,
                };
            }
            let (tx, rx) = futures_channel::oneshot::channel();
            if woken {
                self.waiters.borrow_mut().push_front(tx);
            } else {
                self.waiters.borrow_mut().push_back(tx);
            }
            pass_on.armed = false;
            let _ = rx.await;
            pass_on.armed = true;
            woken = true;
        }
    }

    fn wake_next(&self) {
        while let Some(waiter) = self.waiters.borrow_mut().pop_front() {
            // A waiter whose connection went away has dropped its receiver: skip it.
            if waiter.send(()).is_ok() {
                return;
            }
        }
    }
}

struct PassOnWake<'a> {
    budget: &'a MemoryBudget,
    armed: bool,
}

impl Drop for PassOnWake<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.budget.wake_next();
        }
    }
}

impl Drop for MemoryPermit {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        self.budget
            .in_use
            .set(self.budget.in_use.get().saturating_sub(self.bytes));
        self.budget.wake_next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[compio::test]
    async fn permits_beyond_the_budget_wait_until_bytes_are_given_back() {
        let budget = MemoryBudget::new(100);
        let timer = crate::shard::timer::Timer::start();
        let a = budget.acquire(60).await;
        let b = budget.acquire(40).await;
        assert_eq!(budget.in_use(), 100);
        let waiting = {
            let budget = budget.clone();
            compio::runtime::spawn(async move { budget.acquire(50).await })
        };
        timer.sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(budget.in_use(), 100, "the third request must wait");
        drop(a);
        let c = waiting.await.expect("task");
        assert_eq!(budget.in_use(), 90);
        drop(b);
        drop(c);
        assert_eq!(budget.in_use(), 0);
    }

    #[compio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it_when_idle() {
        let budget = MemoryBudget::new(10);
        let p = budget.acquire(1_000).await;
        assert_eq!(budget.in_use(), 10);
        drop(p);
        assert_eq!(budget.in_use(), 0);
    }
}
