//! Which kernel I/O interface the shard runtimes run on, and building a shard's runtime on it.
//!
//! io_uring is the default and the path every benchmark reports. Where the kernel refuses it
//! (`kernel.io_uring_disabled`, a container's seccomp profile, gVisor, an old kernel) the
//! broker runs on compio's readiness-based driver instead (epoll for sockets, file reads,
//! writes and fsyncs on a blocking thread pool), after one warning line, rather than exiting.
//! The choice is made once, before any shard starts, so every shard runs on the same driver.
//!
//! Owns: the choice (config `io_driver`, `SLUICE_IO_DRIVER`, the start-up probe) and the
//! runtime builder. Must not: change what the broker does on either driver, only how.

use crate::config::IoDriverChoice;
use std::collections::HashSet;

/// Environment variable that overrides the config's `io_driver` ("auto", "io_uring", "polling").
pub const IO_DRIVER_ENV: &str = "SLUICE_IO_DRIVER";

/// The driver the shards run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    IoUring,
    Polling,
}

impl IoDriver {
    /// The name shown in the start-up log, `/v1/status` and the `sluice_io_driver` gauge.
    pub fn name(self) -> &'static str {
        match self {
            IoDriver::IoUring => "io_uring",
            IoDriver::Polling => "polling",
        }
    }

    fn compio_type(self) -> compio::driver::DriverType {
        match self {
            IoDriver::IoUring => compio::driver::DriverType::IoUring,
            IoDriver::Polling => compio::driver::DriverType::Poll,
        }
    }
}

/// The configured choice, with `SLUICE_IO_DRIVER` (when set) taking precedence.
pub fn configured_choice(config_choice: IoDriverChoice) -> Result<IoDriverChoice, String> {
    match std::env::var(IO_DRIVER_ENV) {
        Ok(text) => IoDriverChoice::parse(&text).ok_or_else(|| {
            format!("{IO_DRIVER_ENV}={text:?}: expected \"auto\", \"io_uring\" or \"polling\"")
        }),
        Err(_) => Ok(config_choice),
    }
}

/// Decides the driver once for the whole broker. `auto` probes io_uring with a ring of the
/// configured size; a refusal logs one warning naming the cause and the cost and picks
/// polling. `io_uring` never falls back: the shards' own ring errors then stop start-up.
pub fn choose(choice: IoDriverChoice, ring_entries: u32) -> IoDriver {
    match choice {
        IoDriverChoice::IoUring => IoDriver::IoUring,
        IoDriverChoice::Polling => IoDriver::Polling,
        IoDriverChoice::Auto => match probe_io_uring(ring_entries) {
            Ok(()) => IoDriver::IoUring,
            Err(error) => {
                tracing::warn!(
                    "io_uring is unavailable ({}); running on the polling driver instead: \
                     sockets via epoll, file reads, writes and fsyncs on a thread pool, \
                     expect lower throughput and more CPU per GB than io_uring. Set \
                     {IO_DRIVER_ENV}=io_uring to refuse to start without io_uring",
                    refusal_cause(&error)
                );
                IoDriver::Polling
            }
        },
    }
}

/// Creates (and drops) one io_uring ring the way a shard would.
fn probe_io_uring(ring_entries: u32) -> std::io::Result<()> {
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor
        .capacity(ring_entries)
        .driver_type(compio::driver::DriverType::IoUring);
    proactor.build().map(drop)
}

/// Why the kernel refused io_uring, in an operator's words.
fn refusal_cause(error: &std::io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|text| text.trim().parse::<u8>().ok())
        .filter(|level| *level > 0);
    let why = match (error.raw_os_error(), disabled) {
        (_, Some(level)) => format!("sysctl kernel.io_uring_disabled={level}"),
        (Some(libc::ENOSYS), None) => {
            "the kernel has no io_uring, or a seccomp filter hides it".into()
        }
        (Some(libc::EPERM), None) => {
            "not permitted: a seccomp profile (containers) or io_uring_group".into()
        }
        (Some(libc::ENOMEM), None) => {
            "the locked-memory limit (ulimit -l, LimitMEMLOCK=) is too low for the ring".into()
        }
        _ => "the kernel refused to create a ring".into(),
    };
    format!("{why}: {error}")
}

/// The shard's runtime on `driver`, its thread allowed on `cpus` only (empty: anywhere).
///
/// On io_uring only this thread submits to the ring (SINGLE_ISSUER), so the kernel may hold
/// completion work until the thread next waits for completions (DEFER_TASKRUN) instead of
/// interrupting it for each one: io-wq write completions and socket completions then cost
/// no wake-up while the shard is busy. Measured (`sluice bench produce --acks 1`, 3 rounds,
/// fresh broker each): 2.45–2.51 broker CPU-s/GB instead of 2.65–2.71, 4–13 % more MB/s,
/// consume, e2e and acks=all latencies unchanged. Kernels before 6.1 refuse the flags;
/// the shard then starts with a plain ring.
pub fn build_runtime(
    driver: IoDriver,
    ring_entries: u32,
    cpus: &HashSet<usize>,
) -> std::io::Result<compio::runtime::Runtime> {
    let build = |deferred: bool| {
        let mut proactor = compio::driver::ProactorBuilder::new();
        proactor
            .capacity(ring_entries)
            .driver_type(driver.compio_type());
        if deferred {
            proactor.single_issuer(true).defer_taskrun(true);
        }
        compio::runtime::RuntimeBuilder::new()
            .with_proactor(proactor)
            .thread_affinity(cpus.clone())
            .build()
    };
    if driver == IoDriver::Polling {
        return build(false);
    }
    build(true).or_else(|e| {
        tracing::warn!(cpus = ?cpus, error = %e, "io_uring DEFER_TASKRUN unavailable; using a plain ring");
        build(false)
    })
}

/// Sets the calling thread's nice value (`shard_nice`). Called on the shard's thread before
/// it starts any other: the io-wq workers its ring creates and its blocking-pool threads
/// inherit it, so the writes a shard hands off run at the shard's priority too.
pub fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority has no memory preconditions; on Linux, PRIO_PROCESS with who = 0
    // names the calling thread only (nice values are per thread).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// True when the runtime this thread runs on uses the polling driver (false outside one).
pub fn current_is_polling() -> bool {
    compio::runtime::Runtime::try_with_current(|runtime| runtime.driver_type().is_polling())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_choices_need_no_probe() {
        assert_eq!(choose(IoDriverChoice::Polling, 8), IoDriver::Polling);
        assert_eq!(choose(IoDriverChoice::IoUring, 8), IoDriver::IoUring);
    }

    #[test]
    fn a_polling_runtime_runs_timers_and_reports_itself() {
        let runtime =
            build_runtime(IoDriver::Polling, 64, &HashSet::new()).expect("polling runtime");
        assert!(runtime.driver_type().is_polling());
        let polling_inside = runtime.block_on(async {
            compio::time::sleep(std::time::Duration::from_millis(5)).await;
            current_is_polling()
        });
        assert!(polling_inside);
        assert!(!current_is_polling(), "no runtime outside block_on");
    }

    /// The cores this thread may run on, from sched_getaffinity(2).
    fn allowed_cores() -> Vec<usize> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills it for this thread.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `set` is a live cpu_set_t of `size` bytes.
        let rc = unsafe { libc::sched_getaffinity(0, size, &mut set) };
        assert_eq!(rc, 0, "sched_getaffinity");
        // SAFETY: CPU_ISSET reads within the set for ids below CPU_SETSIZE.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
            .collect()
    }

    #[test]
    fn an_unpinned_runtime_leaves_the_thread_where_it_may_run() {
        // On its own thread: pinning would change the test harness's thread otherwise.
        std::thread::spawn(|| {
            let before = allowed_cores();
            let _unpinned = build_runtime(IoDriver::Polling, 64, &HashSet::new()).expect("runtime");
            assert_eq!(
                allowed_cores(),
                before,
                "shard_affinity = unpinned pins nothing"
            );
            let first = before[0];
            let _pinned =
                build_runtime(IoDriver::Polling, 64, &HashSet::from([first])).expect("runtime");
            assert_eq!(
                allowed_cores(),
                vec![first],
                "a pinned shard runs on its core"
            );
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn the_nice_value_is_set_on_the_calling_thread_only() {
        // SAFETY: getpriority reads; errno is not consulted (nice 0..=19 here).
        let nice_of_this_thread = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice_of_this_thread();
        let inside = std::thread::spawn(move || {
            // Raising the value needs no privilege; lowering it would.
            set_thread_nice(before + 3).expect("raise nice");
            nice_of_this_thread()
        })
        .join()
        .expect("the test thread");
        assert_eq!(inside, before + 3);
        assert_eq!(nice_of_this_thread(), before, "other threads keep theirs");
    }

    #[test]
    fn causes_name_the_refusal() {
        let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
        let cause = refusal_cause(&eperm);
        assert!(
            cause.contains("seccomp") || cause.contains("io_uring_disabled"),
            "{cause}"
        );
    }
}
