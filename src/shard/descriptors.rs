//! The broker's file descriptors (issue 19, point 1): at start-up the RLIMIT_NOFILE soft
//! limit is raised to the hard one, and each shard's open-file budget for segment files
//! (`storage::open_files`) is derived from it:
//!
//! ```text
//! reserved          = RESERVED_DESCRIPTORS + soft_limit / SOCKET_SHARE_DIVISOR
//! per_shard_fds     = (soft_limit - reserved) / shards
//! per_shard_budget  = min(max_open_segments_per_shard,
//!                         per_shard_fds / MAX_FDS_PER_OPEN_SEGMENT) * MAX_FDS_PER_OPEN_SEGMENT
//! ```
//!
//! `RESERVED_DESCRIPTORS` covers what every broker holds whatever its load (rings, eventfds,
//! listeners, metadata and state-file writes, group offset logs, stdio); a quarter of the
//! limit is left for client sockets and fetch regions still being sent from a segment the
//! budget has since closed. A segment counts as `MAX_FDS_PER_OPEN_SEGMENT` (its log, the
//! log's duplicate for fetches, two index files while it is written); a sealed one holds two,
//! so up to twice as many sealed segments stay open. Must not touch segments itself.

use crate::config::BrokerConfig;
use crate::storage::open_files::MAX_FDS_PER_OPEN_SEGMENT;

/// Descriptors the broker needs besides segments and client sockets.
pub const RESERVED_DESCRIPTORS: u64 = 512;
/// One part in this many of the descriptor limit is left for client sockets.
pub const SOCKET_SHARE_DIVISOR: u64 = 4;

/// The soft and hard RLIMIT_NOFILE before and after `raise_open_file_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFileLimit {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and logs both. On failure the limit
/// stays as it was (and the budget is derived from it).
pub fn raise_open_file_limit() -> OpenFileLimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(error = %e, "cannot read RLIMIT_NOFILE; assuming 1024");
        return OpenFileLimit {
            soft_before: 1024,
            soft: 1024,
            hard: 1024,
        };
    }
    let soft_before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a valid rlimit; lowering nothing, raising the soft limit to the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            let e = std::io::Error::last_os_error();
            tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE to its hard limit");
        }
    }
    let result = OpenFileLimit {
        soft_before,
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    };
    tracing::info!(
        soft_before = result.soft_before,
        soft = result.soft,
        hard = result.hard,
        "open file limit (RLIMIT_NOFILE)"
    );
    result
}

/// The current soft RLIMIT_NOFILE (1024 if it cannot be read).
pub fn current_soft_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: a valid pointer to an rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
}

/// Each shard's segment-file budget, in descriptors (see the module doc for the formula).
pub fn per_shard_budget(soft_limit: u64, shards: usize, config: &BrokerConfig) -> usize {
    let reserved = RESERVED_DESCRIPTORS + soft_limit / SOCKET_SHARE_DIVISOR;
    let per_shard_fds = soft_limit.saturating_sub(reserved) / shards.max(1) as u64;
    let fds_per_segment = MAX_FDS_PER_OPEN_SEGMENT as u64;
    let segments =
        (per_shard_fds / fds_per_segment).min(u64::from(config.max_open_segments_per_shard));
    usize::try_from(segments * fds_per_segment).unwrap_or(usize::MAX)
}

/// Sets this shard thread's budget from the (already raised) limit, and logs it.
pub fn install_shard_budget(shard_id: usize, shards: usize, config: &BrokerConfig) {
    let budget = per_shard_budget(current_soft_limit(), shards, config);
    crate::storage::open_files::set_limit(budget);
    let effective = crate::storage::open_files::stats().limit;
    tracing::info!(
        shard = shard_id,
        open_file_budget = effective,
        max_open_segments_per_shard = config.max_open_segments_per_shard,
        "segment open-file budget (descriptors)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_sockets_and_the_rest_of_the_broker() {
        let config = BrokerConfig::default();
        // 20,000 descriptors, 2 shards: 512 + 5,000 reserved, 7,244 each, 1,811 segments.
        assert_eq!(per_shard_budget(20_000, 2, &config), 1_811 * 4);
        assert!(2 * per_shard_budget(20_000, 2, &config) as u64 + 5_512 <= 20_000);
        // The configured maximum caps it when the limit is generous.
        assert_eq!(per_shard_budget(1 << 20, 2, &config), 4096 * 4);
        // A tiny limit gives a budget of nothing; `set_limit` raises it to its minimum.
        assert_eq!(per_shard_budget(256, 2, &config), 0);
    }

    #[test]
    fn raising_the_limit_reaches_the_hard_limit() {
        let limit = raise_open_file_limit();
        assert_eq!(limit.soft, limit.hard);
        assert!(limit.soft >= limit.soft_before);
        assert_eq!(current_soft_limit(), limit.soft);
    }
}
