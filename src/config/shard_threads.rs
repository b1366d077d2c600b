//! Where the shard threads run and at what priority: `shard_affinity` (decision 0031) and
//! `shard_nice` (decision 0031, session 23).

use super::ConfigError;
use serde::Deserialize;

/// `shard_nice` default: the shard threads run at nice -5, so that on a box they share with
/// clients, other processes and kernel workers a woken shard (and the io-wq writer it
/// hands a write to) wins its core sooner. Measured (perf/RESULTS.md, "Session 23: keyed
/// tail by default"): keyed p99.9 1.55 ms against 1.73 at nice 0 and Crabka's 4.00,
/// one-partition 16 KiB 1.04 against 1.30, p99 lower in 6 of 6 runs, CPU per GB within
/// the rounds' spread. Lowering the nice value needs CAP_SYS_NICE or RLIMIT_NICE
/// (systemd `LimitNICE=`); without either the shards keep the inherited priority.
pub const DEFAULT_SHARD_NICE: i32 = -5;
/// The highest priority `shard_nice` accepts (Linux's nice range).
pub const SHARD_NICE_MIN: i32 = -20;
/// The lowest priority `shard_nice` accepts.
pub const SHARD_NICE_MAX: i32 = 19;

pub(super) fn validate_nice(nice: i32) -> Result<(), ConfigError> {
    if (SHARD_NICE_MIN..=SHARD_NICE_MAX).contains(&nice) {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        key: "shard_nice",
        message: format!("must be between {SHARD_NICE_MIN} and {SHARD_NICE_MAX} (a nice value)"),
    })
}

/// The `shard_affinity` setting: where each shard's thread may run (issue 22, decision 0031).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardAffinity {
    /// Each shard's thread is pinned to its own core of `cores` (thread-per-core proper).
    Core,
    /// Every shard's thread may run on any core of `cores`: a shard whose core is held by a
    /// kernel thread or another process moves to a free one instead of waiting for it.
    Shared,
    /// No affinity at all: the kernel places the shard threads on any core of the host. For
    /// several brokers sharing one host (`sluice cluster local`, `--no-pin-shards`), where
    /// every broker's first shard would otherwise be pinned to the same core and queue behind
    /// the others while the rest of the box idles (Seastar's `--overprovisioned`; decision
    /// 0012, session 22).
    Unpinned,
}

#[cfg(test)]
mod tests {
    use crate::config::BrokerConfig;

    #[test]
    fn shard_nice_defaults_to_minus_five_and_stays_a_nice_value() {
        let nice = |toml: &str| BrokerConfig::from_toml(toml).map(|c| c.shard_nice);
        assert_eq!(nice("").unwrap(), -5);
        assert_eq!(nice("shard_nice = 0").unwrap(), 0);
        for bad in [-21, 20] {
            let cfg = BrokerConfig::from_toml(&format!("shard_nice = {bad}")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("shard_nice"), "{err}");
        }
        let cfg = BrokerConfig::from_toml("shard_nice = -20").unwrap();
        assert!(cfg.validate().is_ok());
    }
}
