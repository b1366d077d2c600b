//! A measurement aid, off unless `SLUICE_STAGE_TRACE` names a file prefix: timestamped marks
//! at the stages of an acks=all round (produce written, replica fetch in, its answer read,
//! acknowledgement; on a follower: fetch answer received and written), one file per thread
//! (`PREFIX.PID.TID`), so that `perf/round_stages.py` can line the three brokers' marks up
//! on CLOCK_MONOTONIC (session 25, issue 17). Off, a mark costs one relaxed load.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

/// Environment variable naming the trace files' prefix.
pub const STAGE_TRACE_ENV: &str = "SLUICE_STAGE_TRACE";

fn prefix() -> Option<&'static str> {
    static PREFIX: OnceLock<Option<String>> = OnceLock::new();
    PREFIX
        .get_or_init(|| std::env::var(STAGE_TRACE_ENV).ok())
        .as_deref()
}

thread_local! {
    static OUT: RefCell<Option<std::io::BufWriter<std::fs::File>>> = const { RefCell::new(None) };
}

/// CLOCK_MONOTONIC in nanoseconds (the clock `perf` and every process on the box share).
pub fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Whether marks are written.
pub fn enabled() -> bool {
    prefix().is_some()
}

/// Writes one mark: `ns event key a b c` (key: which partition, see `key`). A failed
/// write drops the mark: this is a measurement aid, never on the data's path.
pub fn mark(event: &str, key: u64, a: i64, b: i64, c: i64) {
    let Some(prefix) = prefix() else {
        return;
    };
    let ns = now_ns();
    OUT.with(|out| {
        let mut out = out.borrow_mut();
        if out.is_none() {
            // SAFETY: gettid has no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            let path = format!("{prefix}.{}.{tid}", std::process::id());
            *out = std::fs::File::create(path)
                .ok()
                .map(|f| std::io::BufWriter::with_capacity(1 << 16, f));
        }
        if let Some(w) = out.as_mut() {
            let _ = writeln!(w, "{ns} {event} {key} {a} {b} {c}");
        }
    });
}

/// Writes what the buffer holds (the shard's maintenance tick calls it, so a killed
/// broker loses at most a second of marks).
pub fn flush() {
    if prefix().is_none() {
        return;
    }
    OUT.with(|out| {
        if let Some(w) = out.borrow_mut().as_mut() {
            let _ = w.flush();
        }
    });
}

/// Runs `wait` (the shard loop's ring wait, which may sleep) and, with marks on, marks it
/// `sl` with its start and its length: `round_stages.py` counts the wake-ups in a stage.
pub fn timed_wait(wait: impl FnOnce()) {
    if !enabled() {
        return wait();
    }
    let from = now_ns();
    wait();
    mark("sl", 0, from, now_ns() - from, 0);
}

/// A partition's key in the marks: a hash of its topic and index.
pub fn key(topic: &str, partition: i32) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    partition.hash(&mut h);
    h.finish()
}
