//! Busy/idle time of a shard thread without hooks into the runtime: busy is the thread's own
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`, user + system, so io_uring submission counts), idle is
//! the rest of the wall-clock time.
//!
//! Owns: one sampler per shard thread. Must not: be moved to another thread between samples
//! (the clock is per calling thread), hence `!Send`.

use std::marker::PhantomData;
use std::time::Instant;

/// Samples the calling thread's busy and idle time since the previous sample.
pub struct LoopSampler {
    last_wall: Instant,
    last_cpu_ns: u64,
    /// Pins the sampler to the thread that created it.
    _not_send: PhantomData<*const ()>,
}

impl Default for LoopSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopSampler {
    /// Create on the shard thread, at the start of its loop.
    pub fn new() -> Self {
        LoopSampler {
            last_wall: Instant::now(),
            last_cpu_ns: thread_cpu_ns(),
            _not_send: PhantomData,
        }
    }

    /// `(busy_ns, idle_ns)` since the last call; they add up to the wall time elapsed. Call
    /// from the shard's periodic timer and pass the result to `ShardMetrics::record_loop`.
    pub fn sample(&mut self) -> (u64, u64) {
        let now = Instant::now();
        let cpu = thread_cpu_ns();
        let wall_ns =
            u64::try_from(now.duration_since(self.last_wall).as_nanos()).unwrap_or(u64::MAX);
        // CPU time can exceed wall time by clock granularity: clamp so idle never underflows.
        let busy_ns = cpu.saturating_sub(self.last_cpu_ns).min(wall_ns);
        self.last_wall = now;
        self.last_cpu_ns = cpu;
        (busy_ns, wall_ns - busy_ns)
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        // Cannot happen for this clock on Linux; report no busy time rather than garbage.
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_is_busy_and_sleeping_is_idle() {
        let mut sampler = LoopSampler::new();
        // Burn some CPU on this thread.
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(30);
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let (busy, idle) = sampler.sample();
        assert!(busy > 0, "spinning shows as busy");
        std::thread::sleep(std::time::Duration::from_millis(30));
        let (busy2, idle2) = sampler.sample();
        assert!(idle2 >= 20_000_000, "sleeping shows as idle: {idle2}");
        assert!(
            busy2 < idle2,
            "a sleeping thread is mostly idle: {busy2} vs {idle2}"
        );
        let _ = (idle, x);
    }
}
