//! The replica fetcher's failure policy: how long it waits after failures in a row, and
//! which of them it logs.

use super::{REPLICA_FAILURE_LOG_INTERVAL, REPLICA_FETCH_BACKOFF, REPLICA_RECONNECT_BACKOFF_MAX};
use std::time::Duration;

/// Failures in a row and what was last logged: the back-off grows with them, and one
/// failure repeated (a refused login, a missing listener) is logged at warn once per
/// `REPLICA_FAILURE_LOG_INTERVAL`, not once per attempt.
#[derive(Default)]
pub(super) struct FailureLog {
    pub(super) in_a_row: u32,
    last_warned: Option<(String, std::time::Instant)>,
}

impl FailureLog {
    pub(super) fn note(&mut self, leader: i32, message: &str) {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let repeated = self.last_warned.as_ref().is_some_and(|(last, at)| {
            last == message && at.elapsed() < REPLICA_FAILURE_LOG_INTERVAL
        });
        // A dropped connection once in a while is routine (a leader restarting): warn only
        // when it keeps failing.
        if self.in_a_row < 3 || repeated {
            tracing::debug!(leader, %message, "replica fetch failed");
            return;
        }
        tracing::warn!(leader, %message, failures = self.in_a_row, "replica fetch keeps failing");
        self.last_warned = Some((message.to_string(), std::time::Instant::now()));
    }

    /// `REPLICA_FETCH_BACKOFF`, doubled per failure in a row, at most
    /// `REPLICA_RECONNECT_BACKOFF_MAX`.
    pub(super) fn backoff(&self) -> Duration {
        let doublings = self.in_a_row.saturating_sub(1).min(16);
        REPLICA_FETCH_BACKOFF
            .saturating_mul(1 << doublings)
            .min(REPLICA_RECONNECT_BACKOFF_MAX)
    }
}
