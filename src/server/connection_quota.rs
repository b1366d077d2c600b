//! KIP-612 connection creation rates (issue 20, decision 0016): the broker's
//! `max_connection_creation_rate`, each listener's `listener_max_connection_creation_rate`,
//! and the per-IP `connection_creation_rate` quotas of `ip` entities (AlterClientQuotas: a
//! named address, else the default IP entity). As in Kafka's `ConnectionQuotas`:
//!
//! * over the broker's or the listener's rate, accepting pauses (this connection is served
//!   only once the rate is back under the bound, and nothing more is accepted meanwhile);
//! * over its IP's rate, the new connection is not served and is closed once the throttle
//!   has passed (so a reconnecting client does not spin), and it is not counted against any
//!   rate (Kafka un-records it).
//!
//! Rates are measured on `QUOTA_ACCOUNTING_SHARD`, over the client quotas' window, so the
//! limits are per broker whatever shard accepts. Must not: serve connections or store
//! quotas. With no limit and no IP quota a connection costs one snapshot load and a flag
//! check: no cross-shard message.

use super::quota::{MAX_TRACKED_RATES, QUOTA_ACCOUNTING_SHARD, WindowedRate};
use crate::config::UNLIMITED_CONNECTION_CREATION_RATE;
use crate::config::listeners::ListenerSpec;
use crate::metadata::quotas::{QuotaEntity, QuotaKey};
use crate::shard::Shard;
use futures_util::FutureExt;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Connections a shard holds open until their IP's throttle passes; past it a throttled
/// connection is closed at once (each holds a descriptor).
pub const MAX_DELAYED_CLOSES_PER_SHARD: usize = 1024;

/// What a connection counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counted {
    Broker,
    Listener(String),
    Ip(IpAddr),
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Serve it once `Duration` has passed (zero: at once); accept nothing more until then.
    Serve(Duration),
    /// Its IP is over its quota: do not serve it; close it once `Duration` has passed.
    CloseAfter(Duration),
}

/// The rates of every limit measured (lives on `QUOTA_ACCOUNTING_SHARD`).
#[derive(Default)]
struct ConnectionRates {
    rates: HashMap<Counted, WindowedRate>,
}

impl ConnectionRates {
    /// The rate of `what`, `None` when `MAX_TRACKED_RATES` are measured and none is idle
    /// (a new IP is then not measured rather than memory growing).
    fn rate(&mut self, what: &Counted, now: Instant) -> Option<&mut WindowedRate> {
        if self.rates.len() >= MAX_TRACKED_RATES && !self.rates.contains_key(what) {
            self.rates.retain(|_, rate| !rate.is_idle(now));
            if self.rates.len() >= MAX_TRACKED_RATES {
                return None;
            }
        }
        Some(
            self.rates
                .entry(what.clone())
                .or_insert_with(|| WindowedRate::new(now)),
        )
    }

    /// Counts one connection against each bound (connections per second) and says what to
    /// do with it, as Kafka's `ConnectionQuotas.inc`: the broker and listener rates first,
    /// then the IP's; a connection its IP refuses is taken back off every rate.
    fn admit(&mut self, limits: &[(Counted, f64)], ip: Option<(IpAddr, f64)>) -> Admission {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (what, bound) in limits {
            if let Some(rate) = self.rate(what, now) {
                rate.record(now, 1.0);
                wait = wait.max(rate.throttle(now, *bound));
            }
        }
        if let Some((address, bound)) = ip
            && let Some(rate) = self.rate(&Counted::Ip(address), now)
        {
            rate.record(now, 1.0);
            let throttle = rate.throttle(now, bound);
            if !throttle.is_zero() {
                rate.record(now, -1.0);
                for (what, _) in limits {
                    if let Some(rate) = self.rates.get_mut(what) {
                        rate.record(now, -1.0);
                    }
                }
                return Admission::CloseAfter(throttle);
            }
        }
        Admission::Serve(wait)
    }
}

thread_local! {
    static RATES: RefCell<ConnectionRates> = RefCell::default();
    /// Connections this shard holds until their IP's throttle passes.
    static DELAYED_CLOSES: Cell<usize> = const { Cell::new(0) };
}

/// The connection creation rate bound of the `ip` entity for `address`, else of the default
/// IP entity, if either is set.
fn ip_bound(shard: &Shard, address: IpAddr) -> Option<f64> {
    let snapshot = shard.metadata.load();
    let quotas = &snapshot.client_quotas;
    if !quotas.has_key(QuotaKey::ConnectionCreationRate) {
        return None;
    }
    [Some(address), None].into_iter().find_map(|entity| {
        quotas
            .get(&QuotaEntity::ip(entity))?
            .get(&QuotaKey::ConnectionCreationRate)
            .copied()
    })
}

/// Counts a connection `listener` accepted from `peer` against the broker's, the
/// listener's and the IP's rates, and says what to do with it.
pub async fn admit(shard: &Rc<Shard>, listener: &ListenerSpec, peer: IpAddr) -> Admission {
    let mut limits = Vec::new();
    let broker = shard.config.max_connection_creation_rate;
    if broker != UNLIMITED_CONNECTION_CREATION_RATE {
        limits.push((Counted::Broker, f64::from(broker)));
    }
    if let Some(rate) = listener.max_connection_creation_rate {
        limits.push((Counted::Listener(listener.name.clone()), f64::from(rate)));
    }
    let ip = ip_bound(shard, peer).map(|bound| (peer, bound));
    if limits.is_empty() && ip.is_none() {
        return Admission::Serve(Duration::ZERO);
    }
    shard
        .invoke_on(QUOTA_ACCOUNTING_SHARD, move |_| async move {
            RATES.with(|r| r.borrow_mut().admit(&limits, ip))
        })
        .await
        .unwrap_or(Admission::Serve(Duration::ZERO))
}

/// Holds a connection its IP's quota refused until `after` has passed, then closes it
/// (at once past `MAX_DELAYED_CLOSES_PER_SHARD`, or at shutdown).
pub fn close_after(shard: &Rc<Shard>, stream: compio::net::TcpStream, after: Duration) {
    if DELAYED_CLOSES.with(Cell::get) >= MAX_DELAYED_CLOSES_PER_SHARD {
        drop(stream);
        return;
    }
    DELAYED_CLOSES.with(|c| c.set(c.get() + 1));
    let shard = shard.clone();
    compio::runtime::spawn(async move {
        {
            let mut stop = shard.shutdown_signal().fuse();
            let mut sleep = std::pin::pin!(shard.timer.sleep(after).fuse());
            futures_util::select! {
                _ = stop => {},
                _ = sleep => {},
            }
        }
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Both);
        drop(stream);
        DELAYED_CLOSES.with(|c| c.set(c.get().saturating_sub(1)));
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_over_its_rate_is_refused_and_not_counted() {
        let mut rates = ConnectionRates::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let limits = [(Counted::Broker, 1000.0)];
        // 2 connections/s over a window counted as 10 s: 20 are within it.
        for _ in 0..20 {
            assert_eq!(
                rates.admit(&limits, Some((ip, 2.0))),
                Admission::Serve(Duration::ZERO)
            );
        }
        assert!(matches!(
            rates.admit(&limits, Some((ip, 2.0))),
            Admission::CloseAfter(d) if !d.is_zero()
        ));
        // The refused one was taken back off the broker's rate, and off the IP's.
        let now = Instant::now();
        let broker = rates.rates.get(&Counted::Broker).unwrap();
        assert_eq!(broker.throttle(now, 2.0), Duration::ZERO);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            rates.admit(&limits, Some((other, 2.0))),
            Admission::Serve(Duration::ZERO)
        );
    }

    #[test]
    fn over_the_broker_rate_accepting_waits() {
        let mut rates = ConnectionRates::default();
        let limits = [(Counted::Listener("PLAINTEXT".into()), 1.0)];
        for _ in 0..10 {
            assert_eq!(rates.admit(&limits, None), Admission::Serve(Duration::ZERO));
        }
        assert!(matches!(
            rates.admit(&limits, None),
            Admission::Serve(d) if !d.is_zero()
        ));
    }
}
