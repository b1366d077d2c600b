//! Lifecycle signals as flags: SIGTERM/SIGINT request shutdown, SIGHUP requests a config
//! reload. The server polls the flags from shard 0 (e.g. on its heartbeat timer).
//!
//! Owns: the process-wide signal handlers. Must not: do anything in a handler beyond storing
//! to an atomic (async-signal-safety) — except `_exit` on a second terminate signal, so an
//! operator can always stop a broker whose graceful shutdown hangs.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static TERMINATE_SIGNALS: AtomicUsize = AtomicUsize::new(0);
static LAST_TERMINATE_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static RELOAD_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(signal: libc::c_int) {
    LAST_TERMINATE_SIGNAL.store(signal as usize, Ordering::SeqCst);
    if TERMINATE_SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // Second SIGTERM/SIGINT: the graceful path is taking too long; leave now.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + signal) };
    }
}

extern "C" fn on_reload(_signal: libc::c_int) {
    RELOAD_REQUESTED.store(true, Ordering::SeqCst);
}

/// Handle to the installed flags (the state itself is process-wide).
#[derive(Clone, Copy, Debug)]
pub struct SignalFlags(());

impl SignalFlags {
    /// True once SIGTERM or SIGINT arrived. Stays true.
    pub fn terminate_requested(&self) -> bool {
        TERMINATE_SIGNALS.load(Ordering::SeqCst) > 0
    }

    /// The terminating signal number, if one arrived (for the exit log line).
    pub fn terminate_signal(&self) -> Option<i32> {
        match LAST_TERMINATE_SIGNAL.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// True once per SIGHUP burst: clears the flag it reports.
    pub fn take_reload(&self) -> bool {
        RELOAD_REQUESTED.swap(false, Ordering::SeqCst)
    }
}

fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; we set a handler that only touches
    // atomics (or calls _exit) and an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("sigaction({signal}): {e}"),
            ));
        }
    }
    Ok(())
}

/// Installs handlers for SIGTERM, SIGINT (shutdown) and SIGHUP (reload). Call once, early in
/// `serve`, before spawning shard threads.
pub fn install_signal_handlers() -> io::Result<SignalFlags> {
    install(libc::SIGTERM, on_terminate)?;
    install(libc::SIGINT, on_terminate)?;
    install(libc::SIGHUP, on_reload)?;
    Ok(SignalFlags(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_sets_reload_once_and_sigterm_sets_terminate() {
        let flags = install_signal_handlers().unwrap();
        assert!(!flags.take_reload());
        // SAFETY: raising a signal we installed a handler for.
        unsafe { libc::raise(libc::SIGHUP) };
        assert!(flags.take_reload());
        assert!(!flags.take_reload(), "reload is reported once");
        assert!(!flags.terminate_requested());
        // SAFETY: as above; a single SIGTERM only sets the flag.
        unsafe { libc::raise(libc::SIGTERM) };
        assert!(flags.terminate_requested());
        assert_eq!(flags.terminate_signal(), Some(libc::SIGTERM));
    }
}
