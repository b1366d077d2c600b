//! Tests of the timing wheel (on an explicit tick clock, no real time) and of the timer
//! service under the shard's batched loop. No assert depends on how fast the machine is:
//! real-time tests only check "not before the deadline" and "eventually".

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Wake;

const MS: u64 = 1;
const SECOND: u64 = 1_000 * MS;
const HOUR: u64 = 3_600 * SECOND;
const DAY: u64 = 24 * HOUR;

/// Advances `wheel` to `now` and returns what fired, in firing order.
fn advance<T: Default>(wheel: &mut TimingWheel<T>, now: u64) -> Vec<T> {
    let mut fired = Vec::new();
    wheel.advance(now, |_, value| fired.push(value));
    fired
}

/// A small deterministic generator (splitmix64), so the big test needs no seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Spread over every level: a random bit width, then random bits below it.
    fn delay(&mut self, max: u64) -> u64 {
        let bits = self.next() % 64;
        let delay = self.next() & ((1u64 << bits) - 1).max(1);
        delay % max
    }
}

#[test]
fn an_entry_takes_at_most_40_bytes() {
    // The delayed-delivery feature budgets 64 bytes per pending record in all.
    assert_eq!(TimingWheel::<Option<Waker>>::entry_bytes(), 40);
    assert_eq!(TimingWheel::<u64>::entry_bytes(), 32);
    assert_eq!(TimingWheel::<(u32, u32)>::entry_bytes(), 32);
}

#[test]
fn entries_fire_in_deadline_order_and_never_early() {
    let mut wheel = TimingWheel::new(100);
    for when in [30, 5, 70, 5, 1, 64, 63, 200] {
        wheel.insert(when, when).unwrap();
    }
    assert_eq!(advance(&mut wheel, 0), Vec::<u64>::new());
    assert_eq!(advance(&mut wheel, 4), vec![1]);
    assert_eq!(advance(&mut wheel, 63), vec![5, 5, 30, 63]);
    assert_eq!(advance(&mut wheel, 199), vec![64, 70]);
    assert_eq!(advance(&mut wheel, 200), vec![200]);
    assert!(wheel.is_empty());
}

#[test]
fn entries_due_on_the_same_tick_fire_in_insert_order() {
    let mut wheel = TimingWheel::new(100);
    for id in 0..10 {
        wheel.insert(5_000, id).unwrap();
    }
    assert_eq!(advance(&mut wheel, 10_000), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_cancelled_entry_never_fires_and_its_key_goes_stale() {
    let mut wheel = TimingWheel::new(100);
    let a = wheel.insert(10, "a").unwrap();
    let b = wheel.insert(10, "b").unwrap();
    let c = wheel.insert(5_000, "c").unwrap();
    assert_eq!(wheel.cancel(b), Some("b"));
    assert_eq!(wheel.cancel(b), None, "a second cancel is a no-op");
    assert_eq!(
        wheel.cancel(c),
        Some("c"),
        "cancel works on a higher level too"
    );
    assert_eq!(wheel.len(), 1);
    assert_eq!(advance(&mut wheel, 10_000), vec!["a"]);
    assert!(!wheel.contains(a));
    assert_eq!(wheel.cancel(a), None, "cancel after firing is a no-op");
    // The freed slot is reused: the old key must not reach the new entry.
    let d = wheel.insert(20_000, "d").unwrap();
    assert_eq!(wheel.cancel(a), None);
    assert_eq!(wheel.cancel(b), None);
    assert!(wheel.contains(d));
    assert_eq!(wheel.deadline(d), Some(20_000));
}

#[test]
fn a_deadline_already_past_fires_at_the_next_advance() {
    let mut wheel = TimingWheel::new(10);
    advance(&mut wheel, 1_000);
    wheel.insert(3, "late").unwrap();
    assert_eq!(wheel.next_tick(), Some(1_001));
    assert_eq!(advance(&mut wheel, 1_001), vec!["late"]);
}

#[test]
fn entries_cascade_across_levels_from_1_ms_to_30_days() {
    let delays = [
        1,
        63,
        64,
        65,
        4_095,
        4_096,
        4_097,
        262_143,
        262_144,
        HOUR,
        DAY - 1,
        DAY,
        7 * DAY + 3,
        30 * DAY,
    ];
    // Start away from tick 0, so digits of `elapsed` are not all zero.
    let start = 12_345_678;
    let mut wheel = TimingWheel::new(100);
    advance(&mut wheel, start - 1);
    assert_eq!(wheel.levels_in_use(), 0, "levels are created on demand");
    for &delay in &delays {
        wheel.insert(start + delay, delay).unwrap();
    }
    assert_eq!(
        wheel.levels_in_use(),
        LEVELS_MAX,
        "30 days needs the sixth level"
    );
    for &delay in &delays {
        // One tick before: nothing; at the deadline: exactly this entry.
        assert_eq!(advance(&mut wheel, start + delay - 1), Vec::<u64>::new());
        assert_eq!(advance(&mut wheel, start + delay), vec![delay]);
    }
    assert!(wheel.is_empty());
}

#[test]
fn an_idle_wheel_jumps_without_walking_every_tick() {
    let mut wheel = TimingWheel::new(10);
    wheel.insert(30 * DAY, ()).unwrap();
    let mut steps = 0;
    while wheel.advance(wheel.next_tick().unwrap(), |_, _| {}) == 0 {
        steps += 1;
    }
    // One cascade per level at most, not 2.6 billion ticks.
    assert!(steps < LEVELS_MAX, "{steps} steps");
}

#[test]
fn deadlines_beyond_the_horizon_wait_and_fire_on_time() {
    let mut wheel = TimingWheel::new(10);
    let far = 2 * HORIZON_TICKS + 17;
    wheel.insert(far, "far").unwrap();
    // The horizon's turn lands exactly on `elapsed`: the overflow must be placed again.
    assert_eq!(advance(&mut wheel, HORIZON_TICKS - 1), Vec::<&str>::new());
    assert_eq!(
        advance(&mut wheel, 2 * HORIZON_TICKS - 1),
        Vec::<&str>::new()
    );
    assert_eq!(advance(&mut wheel, far - 1), Vec::<&str>::new());
    assert_eq!(advance(&mut wheel, far), vec!["far"]);
}

#[test]
fn a_short_delay_across_the_horizon_boundary_fires_on_time() {
    let mut wheel = TimingWheel::new(10);
    advance(&mut wheel, HORIZON_TICKS - 3);
    wheel.insert(HORIZON_TICKS + 2, "across").unwrap();
    assert_eq!(advance(&mut wheel, HORIZON_TICKS + 1), Vec::<&str>::new());
    assert_eq!(advance(&mut wheel, HORIZON_TICKS + 2), vec!["across"]);
}

#[test]
fn a_full_wheel_refuses_inserts_until_an_entry_leaves() {
    let mut wheel = TimingWheel::new(2);
    wheel.insert(10, 1).unwrap();
    let second = wheel.insert(20, 2).unwrap();
    assert!(wheel.insert(30, 3).is_err());
    wheel.cancel(second);
    wheel.insert(30, 3).unwrap();
    assert_eq!(advance(&mut wheel, 100), vec![1, 3]);
}

/// A million entries over every level, with cancels and inserts while the clock moves in
/// uneven steps: each live entry fires exactly once, in the first advance that reaches its
/// deadline (never before), in deadline order; no cancelled entry fires.
#[test]
fn a_million_entries_each_fire_once_at_or_after_their_deadline() {
    const ENTRIES: usize = 1_000_000;
    let mut rng = Rng(14);
    let mut wheel = TimingWheel::new(ENTRIES);
    let mut deadline: Vec<u64> = Vec::with_capacity(ENTRIES);
    let mut keys = Vec::with_capacity(ENTRIES);
    let mut fired = vec![false; ENTRIES];
    let mut cancelled = vec![false; ENTRIES];
    let mut now = 0u64;
    let mut last_fired_deadline = 0;
    while !wheel.is_empty() || deadline.len() < ENTRIES {
        // Keep the wheel busy while time moves: new entries (half of them up front) and a
        // cancel now and then.
        let batch = if now == 0 { ENTRIES / 2 } else { 64 };
        for _ in 0..batch.min(ENTRIES - deadline.len()) {
            // At least one tick ahead: an entry due "now" rightly fires one advance later.
            let when = now + 1 + rng.delay(30 * DAY);
            keys.push(wheel.insert(when, deadline.len() as u32).unwrap());
            deadline.push(when);
        }
        let victim = (rng.next() % deadline.len() as u64) as usize;
        if wheel.cancel(keys[victim]).is_some() {
            cancelled[victim] = true;
        }
        let before = now;
        let step_max = if rng.next().is_multiple_of(4) {
            DAY
        } else {
            100
        };
        now += 1 + rng.delay(step_max);
        wheel.advance(now, |_, id| {
            let id = id as usize;
            assert!(!fired[id], "entry {id} fired twice");
            assert!(!cancelled[id], "cancelled entry {id} fired");
            assert!(deadline[id] <= now, "entry {id} fired early");
            assert!(deadline[id] > before, "entry {id} fired late");
            assert!(deadline[id] >= last_fired_deadline, "out of order");
            last_fired_deadline = deadline[id];
            fired[id] = true;
        });
        last_fired_deadline = now;
    }
    for id in 0..ENTRIES {
        assert!(
            fired[id] != cancelled[id],
            "entry {id} neither fired nor cancelled"
        );
    }
}

// ----- the service, under the shard's loop ---------------------------------------------------

/// Runs `test` on a fresh ring under the shard's own loop, with a started timer.
fn on_shard_loop<F: Future>(test: impl FnOnce(Timer) -> F) -> F::Output {
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    crate::shard::shard_loop::block_on_batched(&runtime, || None, async move {
        test(Timer::start()).await
    })
}

/// Fails (instead of hanging the suite) if `future` never completes. Generous on purpose.
async fn eventually<F: Future>(future: F) -> F::Output {
    compio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the timer never fired")
}

struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct RecordWake {
    id: u32,
    log: Arc<Mutex<Vec<u32>>>,
}

impl Wake for RecordWake {
    fn wake(self: Arc<Self>) {
        self.log.lock().expect("log").push(self.id);
    }
}

fn poll_once(sleep: &mut Sleep, waker: &Waker) -> Poll<()> {
    Pin::new(sleep).poll(&mut Context::from_waker(waker))
}

#[test]
fn a_sleep_completes_at_or_after_its_deadline() {
    on_shard_loop(|timer| async move {
        let deadline = Instant::now() + Duration::from_millis(5);
        eventually(timer.sleep_until(deadline)).await;
        assert!(Instant::now() >= deadline);
        assert_eq!(timer.pending(), 0);
        // A deadline already past completes at once, without an entry.
        let mut past = timer.sleep_until(Instant::now() - Duration::from_millis(1));
        assert!(past.is_elapsed());
        assert_eq!(poll_once(&mut past, Waker::noop()), Poll::Ready(()));
    });
}

#[test]
fn a_dropped_sleep_is_cancelled_and_never_wakes() {
    on_shard_loop(|timer| async move {
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut dropped = timer.sleep(Duration::from_millis(2));
        assert_eq!(poll_once(&mut dropped, &waker), Poll::Pending);
        assert_eq!(timer.pending(), 1);
        drop(dropped);
        assert_eq!(timer.pending(), 0, "dropping cancels the entry");
        eventually(timer.sleep(Duration::from_millis(10))).await;
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn an_earlier_sleep_rearms_a_driver_armed_for_later() {
    on_shard_loop(|timer| async move {
        let mut later = timer.sleep(Duration::from_secs(3_600));
        assert_eq!(poll_once(&mut later, Waker::noop()), Poll::Pending);
        // Let the driver arm itself for the hour-long sleep first.
        compio::runtime::spawn(async {}).await.expect("yield");
        let wakeups = timer.driver_wakeups();
        eventually(timer.sleep(Duration::from_millis(5))).await;
        assert!(timer.driver_wakeups() > wakeups, "the driver re-armed");
        assert!(!later.is_elapsed());
    });
}

#[test]
fn wakers_are_woken_in_deadline_order() {
    on_shard_loop(|timer| async move {
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut sleeps = Vec::new();
        for id in [30, 10, 20, 11] {
            let waker = Waker::from(Arc::new(RecordWake {
                id,
                log: log.clone(),
            }));
            let mut sleep = timer.sleep_until(start + Duration::from_millis(u64::from(id)));
            assert_eq!(poll_once(&mut sleep, &waker), Poll::Pending);
            sleeps.push(sleep);
        }
        eventually(timer.sleep_until(start + Duration::from_millis(31))).await;
        assert_eq!(*log.lock().expect("log"), vec![10, 11, 20, 30]);
        assert!(sleeps.iter().all(Sleep::is_elapsed));
    });
}

#[test]
fn an_idle_driver_does_not_wake() {
    on_shard_loop(|timer| async move {
        eventually(timer.sleep(Duration::from_millis(1))).await;
        let wakeups = timer.driver_wakeups();
        // compio's own timer, so that the shard timer has nothing pending.
        compio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(timer.driver_wakeups(), wakeups);
    });
}

#[test]
fn timeout_returns_the_output_or_elapsed() {
    on_shard_loop(|timer| async move {
        let quick = timer.timeout(Duration::from_secs(3_600), async { 7 }).await;
        assert_eq!(quick, Ok(7));
        assert_eq!(
            timer.pending(),
            0,
            "the finished timeout cancelled its sleep"
        );
        let never = std::future::pending::<()>();
        let slow = eventually(timer.timeout(Duration::from_millis(3), never)).await;
        assert_eq!(slow, Err(Elapsed));
    });
}

#[test]
fn reset_moves_a_deadline_earlier_and_later() {
    on_shard_loop(|timer| async move {
        let mut sleep = timer.sleep(Duration::from_secs(3_600));
        let soon = Instant::now() + Duration::from_millis(3);
        sleep.reset(soon);
        assert_eq!(timer.pending(), 1);
        eventually(&mut sleep).await;
        assert!(Instant::now() >= soon);
        sleep.reset(Instant::now() + Duration::from_secs(3_600));
        assert!(!sleep.is_elapsed());
    });
}

#[test]
fn sleeps_beyond_the_limit_fall_back_to_their_own_timer() {
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    crate::shard::shard_loop::block_on_batched(&runtime, || None, async {
        let timer = Timer::start_with_capacity(1);
        let first = timer.sleep(Duration::from_millis(2));
        let second = timer.sleep(Duration::from_millis(2));
        assert_eq!(timer.pending(), 1);
        eventually(futures_util::future::join(first, second)).await;
    });
}
