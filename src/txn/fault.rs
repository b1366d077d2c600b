//! A crash-injection hook for the transaction crash tests: with `SLUICE_FAULT_TXN_CRASH`
//! set in the broker's environment, the process SIGKILLs itself at one chosen point of
//! ending a transaction, so a test can prove that a restart completes a transaction that
//! was decided (PrepareCommit / PrepareAbort durable) but not fully marked.
//!
//! Compiled in always (the tests drive the release binary's code paths), inert unless the
//! variable is set: read once, then one relaxed load per transaction end. Values:
//! `after_prepare` — right after the Prepare* record is durable, before any marker;
//! `after_first_marker` — right after the first marker of a transaction is written, so
//! some partitions have their marker and others do not.
//!
//! Owns: reading the variable and the kill. Must not: be reached from a hot path.

use std::sync::OnceLock;

/// The environment variable that arms the hook.
pub const FAULT_ENV: &str = "SLUICE_FAULT_TXN_CRASH";

/// Where the armed hook kills the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    AfterPrepare,
    AfterFirstMarker,
}

fn armed() -> Option<CrashPoint> {
    static ARMED: OnceLock<Option<CrashPoint>> = OnceLock::new();
    *ARMED.get_or_init(|| {
        let value = std::env::var(FAULT_ENV).ok()?;
        match value.as_str() {
            "after_prepare" => Some(CrashPoint::AfterPrepare),
            "after_first_marker" => Some(CrashPoint::AfterFirstMarker),
            other => {
                tracing::warn!(
                    variable = FAULT_ENV,
                    value = other,
                    "unknown crash point; the hook stays inert"
                );
                None
            }
        }
    })
}

/// Kills the process with SIGKILL (as a crash would: no destructor, no flush) when the hook
/// is armed at `point`.
pub fn crash_if_armed(point: CrashPoint) {
    if armed() != Some(point) {
        return;
    }
    tracing::error!(?point, "{FAULT_ENV}: killing the broker");
    // SAFETY: sends a signal to this very process; nothing is read from or written to memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; should the call fail, abort still ends the process at once.
    std::process::abort();
}
