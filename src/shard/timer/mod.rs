//! The per-shard timer service: every deadline on a shard (maintenance, accept back-off,
//! shutdown drain; next fetch long polls and group timeouts) sits in one `TimingWheel`, and one
//! driver task sleeps on one compio timer until the wheel's next deadline.
//!
//! Owns: the shard's wheel, the conversion between `Instant` and 1 ms ticks, the driver task
//! and the `Sleep`/`timeout` futures. Must not: be shared between shards (`Rc`, `!Send`), run
//! callbacks itself (it only wakes tasks, so no user code runs inside the wheel), or wake the
//! shard when nothing is pending (the idle driver waits for an insert, it does not poll).
//!
//! Guarantees: a sleep never completes before its deadline (deadlines round up to the next
//! tick; the driver rounds "now" down); wakers are woken in deadline order; dropping a
//! `Sleep` cancels its entry in O(1); an insert earlier than the deadline the driver sleeps
//! until wakes the driver to re-arm.

mod wheel;

#[cfg(test)]
mod tests;

pub use wheel::{
    DELAY_TICKS_NEEDED_MAX, HORIZON_TICKS, LEVELS_MAX, SLOTS_PER_LEVEL, TimerKey, TimingWheel,
    WheelFull,
};

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// One wheel tick. Deadlines are rounded up to whole ticks, so a sleep may end up to one
/// tick late (plus scheduling), never early.
pub const TICK: Duration = Duration::from_millis(1);
/// Sleeps one shard's timer holds at once (40 bytes each: at most 40 MiB). Beyond it a sleep
/// falls back to its own compio timer: slower, still correct, so the limit degrades service
/// instead of failing a request.
pub const TIMER_ENTRIES_MAX: usize = 1 << 20;
/// How far in the future a sleep whose deadline overflows `Instant` is put (never, in
/// practice): 100 years.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3_600);

/// A shard's timer. Cheap to clone (an `Rc`); every clone drives the same wheel.
#[derive(Clone)]
pub struct Timer {
    inner: Rc<Inner>,
}

struct Inner {
    wheel: RefCell<TimingWheel<Option<Waker>>>,
    /// Tick 0 of the wheel.
    origin: Instant,
    /// The tick the driver sleeps until; `u64::MAX` while it waits for a first entry.
    armed_tick: Cell<u64>,
    /// Set (and the driver woken) when an insert is earlier than `armed_tick`.
    rearm: Cell<bool>,
    driver: Cell<Option<Waker>>,
    /// Times the driver woke up and advanced the wheel (for tests and metrics).
    driver_wakeups: Cell<u64>,
}

/// `timeout` gave up: the deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

impl Timer {
    /// Creates the shard's timer and spawns its driver task on the current compio runtime
    /// (so call it on the shard's thread, inside its runtime).
    pub fn start() -> Timer {
        Timer::start_with_capacity(TIMER_ENTRIES_MAX)
    }

    /// `start` with a different limit on pending sleeps (tests of the fallback use 1).
    pub fn start_with_capacity(entries_max: usize) -> Timer {
        let inner = Rc::new(Inner {
            wheel: RefCell::new(TimingWheel::new(entries_max)),
            origin: Instant::now(),
            armed_tick: Cell::new(u64::MAX),
            rearm: Cell::new(false),
            driver: Cell::new(None),
            driver_wakeups: Cell::new(0),
        });
        compio::runtime::spawn(drive(Rc::downgrade(&inner))).detach();
        Timer { inner }
    }

    /// Completes at `deadline` (at once if it has passed).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        let state = self.inner.register(deadline);
        Sleep {
            timer: self.inner.clone(),
            deadline,
            state,
        }
    }

    /// Completes after `duration`.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(deadline_after(Instant::now(), duration))
    }

    /// Runs `future` until `deadline`: its output, or `Elapsed` (and `future` dropped).
    pub fn timeout_at<F: Future>(
        &self,
        deadline: Instant,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + use<F> {
        let sleep = self.sleep_until(deadline);
        async move {
            let future = std::pin::pin!(future);
            match futures_util::future::select(future, sleep).await {
                futures_util::future::Either::Left((output, _)) => Ok(output),
                futures_util::future::Either::Right(_) => Err(Elapsed),
            }
        }
    }

    /// Runs `future` for at most `duration`.
    pub fn timeout<F: Future>(
        &self,
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + use<F> {
        self.timeout_at(deadline_after(Instant::now(), duration), future)
    }

    /// Sleeps pending in the wheel.
    pub fn pending(&self) -> usize {
        self.inner.wheel.borrow().len()
    }

    /// Times the driver woke up to advance the wheel since the timer started.
    pub fn driver_wakeups(&self) -> u64 {
        self.inner.driver_wakeups.get()
    }
}

fn deadline_after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .unwrap_or_else(|| now + FAR_FUTURE)
}

impl Inner {
    /// The first tick at or after `at` (a deadline rounds up: never early).
    fn tick_ceil(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos.div_ceil(TICK.as_nanos())).unwrap_or(u64::MAX)
    }

    /// The tick `at` falls in (now rounds down: never early).
    fn tick_floor(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos / TICK.as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant_of(&self, tick: u64) -> Instant {
        let since = u32::try_from(TICK.as_millis())
            .ok()
            .and_then(|ms| Duration::from_millis(tick).checked_mul(ms));
        since
            .and_then(|d| self.origin.checked_add(d))
            .unwrap_or_else(|| self.origin + FAR_FUTURE)
    }

    fn register(&self, deadline: Instant) -> SleepState {
        if deadline <= Instant::now() {
            return SleepState::Done;
        }
        let tick = self.tick_ceil(deadline);
        let inserted = self.wheel.borrow_mut().insert(tick, None);
        match inserted {
            Ok(key) => {
                if tick < self.armed_tick.get() {
                    self.armed_tick.set(tick);
                    self.rearm.set(true);
                    if let Some(driver) = self.driver.take() {
                        driver.wake();
                    }
                }
                SleepState::Waiting(key)
            }
            Err(full) => {
                tracing::warn!(error = %full, "shard timer full; this sleep uses its own timer");
                SleepState::Fallback(Box::pin(compio::time::sleep_until(deadline)))
            }
        }
    }

    /// Fires what is due and returns the instant the driver must wake next.
    fn fire_due(&self, woken: &mut Vec<Waker>) -> Option<Instant> {
        self.driver_wakeups.set(self.driver_wakeups.get() + 1);
        let now = self.tick_floor(Instant::now());
        let next = {
            let mut wheel = self.wheel.borrow_mut();
            wheel.advance(now, |_, waker| woken.extend(waker));
            wheel.next_tick()
        };
        // Woken outside the borrow: a waker may be anything, even code that touches the timer.
        for waker in woken.drain(..) {
            waker.wake();
        }
        self.armed_tick.set(next.unwrap_or(u64::MAX));
        self.rearm.set(false);
        next.map(|tick| self.instant_of(tick))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the driver see that the timer is gone and end.
        if let Some(driver) = self.driver.take() {
            driver.wake();
        }
    }
}

/// The driver: sleeps (one compio timer at a time) until the wheel's next tick with work,
/// or until an earlier insert re-arms it; idle (no timer at all) while the wheel is empty.
/// Holds the timer weakly so that it ends with the shard.
async fn drive(timer: Weak<Inner>) {
    let mut woken = Vec::new();
    loop {
        let next = match timer.upgrade() {
            Some(inner) => inner.fire_due(&mut woken),
            None => return,
        };
        let rearm = Rearm {
            timer: timer.clone(),
        };
        match next {
            Some(at) => {
                let sleep = std::pin::pin!(compio::time::sleep_until(at));
                futures_util::future::select(sleep, rearm).await;
            }
            None => rearm.await,
        }
    }
}

/// Completes when an insert asks the driver to re-arm (or the timer is gone).
struct Rearm {
    timer: Weak<Inner>,
}

impl Future for Rearm {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.timer.upgrade() else {
            return Poll::Ready(());
        };
        if inner.rearm.replace(false) {
            return Poll::Ready(());
        }
        inner.driver.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// A sleep on the shard's timer. Dropping it cancels its entry.
pub struct Sleep {
    timer: Rc<Inner>,
    deadline: Instant,
    state: SleepState,
}

enum SleepState {
    Waiting(TimerKey),
    Done,
    /// The wheel was full (`TIMER_ENTRIES_MAX`): a compio timer of its own.
    Fallback(Pin<Box<dyn Future<Output = ()>>>),
}

impl Sleep {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has been reached (as seen by the timer).
    pub fn is_elapsed(&self) -> bool {
        match &self.state {
            SleepState::Waiting(key) => !self.timer.wheel.borrow().contains(*key),
            SleepState::Done => true,
            SleepState::Fallback(_) => self.deadline <= Instant::now(),
        }
    }

    /// Moves the deadline (earlier or later), as cancel + insert: O(1). For a waiter whose
    /// deadline changes, such as a session timeout renewed by each heartbeat.
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
        self.state = self.timer.register(deadline);
    }

    fn cancel(&mut self) {
        if let SleepState::Waiting(key) = self.state {
            // The cancelled waker is dropped after the borrow ends (see `poll`).
            let waker = self.timer.wheel.borrow_mut().cancel(key);
            drop(waker);
        }
        self.state = SleepState::Done;
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &mut this.state {
            SleepState::Done => Poll::Ready(()),
            SleepState::Waiting(key) => {
                let mut wheel = this.timer.wheel.borrow_mut();
                let Some(slot) = wheel.get_mut(*key) else {
                    drop(wheel);
                    this.state = SleepState::Done;
                    return Poll::Ready(());
                };
                if slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    return Poll::Pending;
                }
                let replaced = slot.replace(cx.waker().clone());
                // A waker's drop may run code that uses the timer: not under the borrow.
                drop(wheel);
                drop(replaced);
                Poll::Pending
            }
            SleepState::Fallback(sleep) => {
                let ready = sleep.as_mut().poll(cx);
                if ready.is_ready() {
                    this.state = SleepState::Done;
                }
                ready
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}
