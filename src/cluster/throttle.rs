//! Kafka's follower replication throttle (KIP-73): `follower.replication.throttled.rate`
//! bytes per second, for the whole broker, over what its replica fetchers copy for the
//! replicas a topic's `follower.replication.throttled.replicas` names (`*`, or
//! `partition:broker` pairs naming this broker) while they are out of the ISR, as Kafka's
//! `shouldFollowerThrottle` (a reassignment's new replica catching up; an in-sync replica
//! is never slowed, so acks=all is not). Pacing, not windows: every throttled byte copied
//! pushes the time the next fetch may go out by `bytes / rate`, so copying N bytes takes at
//! least N / rate. Shared by every shard's fetchers (one budget per broker, as Kafka's
//! quota); the fetcher that went over pauses before its next fetch.
//! Must not: decide which partitions are throttled beyond the topic config and the ISR.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kafka's default rate (`Long.MAX_VALUE`): no throttle.
pub const UNTHROTTLED: u64 = i64::MAX as u64;
/// Longest single pause (a fetch answer is at most `replica.fetch.response.max.bytes`; a
/// tiny rate must not park a fetcher, and the shutdown it checks, for hours).
pub const MAX_PAUSE: Duration = Duration::from_secs(10);

pub struct ReplicaThrottle {
    bytes_per_second: u64,
    /// When the throttled bytes copied so far are paid for.
    paid_until: Mutex<Option<Instant>>,
}

impl ReplicaThrottle {
    pub fn new(bytes_per_second: u64) -> ReplicaThrottle {
        ReplicaThrottle {
            bytes_per_second: bytes_per_second.max(1),
            paid_until: Mutex::new(None),
        }
    }

    /// Whether any throttle is set (else the fetchers do not even look at topic configs).
    pub fn enabled(&self) -> bool {
        self.bytes_per_second < UNTHROTTLED
    }

    /// `bytes` of throttled replicas were copied at `now`: how long the fetcher waits before
    /// its next fetch (zero while the budget is ahead).
    pub fn charge(&self, bytes: u64, now: Instant) -> Duration {
        if bytes == 0 || !self.enabled() {
            return Duration::ZERO;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let mut paid = self.paid_until.lock().unwrap_or_else(|e| e.into_inner());
        let from = paid.map_or(now, |p| p.max(now));
        let until = from + cost;
        *paid = Some(until);
        until.saturating_duration_since(now).min(MAX_PAUSE)
    }
}

/// Whether a `*.replication.throttled.replicas` value names `partition` on `broker`: `*`
/// (every replica) or a comma-separated list of `partition:broker` pairs.
pub fn names_replica(value: &str, partition: i32, broker: i32) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    value.split(',').any(|pair| {
        let mut parts = pair.trim().split(':');
        let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(partition) && b == Some(broker) && parts.next().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_replicas_like_kafkas() {
        assert!(names_replica("*", 3, 7));
        assert!(names_replica("0:1, 3:7", 3, 7));
        assert!(!names_replica("0:1,3:2", 3, 7));
        assert!(!names_replica("", 0, 1));
        assert!(!names_replica("3:7:1", 3, 7));
    }

    #[test]
    fn copying_n_bytes_costs_n_over_the_rate() {
        let throttle = ReplicaThrottle::new(1_000);
        let t0 = Instant::now();
        assert_eq!(throttle.charge(500, t0), Duration::from_millis(500));
        // Before the first is paid for, the next one queues behind it.
        assert_eq!(throttle.charge(500, t0), Duration::from_millis(1_000));
        // Once idle, nothing is owed: the next charge starts from now (no saved burst).
        let later = t0 + Duration::from_secs(5);
        assert_eq!(throttle.charge(250, later), Duration::from_millis(250));
        assert_eq!(
            ReplicaThrottle::new(UNTHROTTLED).charge(1 << 30, t0),
            Duration::ZERO
        );
        assert_eq!(throttle.charge(1 << 40, later), MAX_PAUSE);
    }
}
