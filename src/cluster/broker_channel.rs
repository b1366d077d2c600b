//! Requests one broker sends another for transactions in cluster mode (decision 0022): a
//! partition leader asks the transactional id's coordinator broker to verify (or, for
//! transactions v2, to add) the partitions of a transactional Produce with AddPartitionsToTxn
//! v4+, and the coordinator sends WriteTxnMarkers to the leaders of its transaction's
//! partitions. Both go over the inter-broker links the replica fetchers use (`leader_link`,
//! with the inter-broker listener's TLS and SASL, decision 0021).
//!
//! Each shard has its own channel: per peer broker a pool of at most
//! `LINKS_PER_BROKER_MAX` links, each carrying one request at a time; a caller waits for a
//! free link, connects it if needed and sends, all within `BROKER_CALL_TIMEOUT`. A link that
//! failed, or whose call was cut short, is dropped and its place reconnects on next use.
//!
//! Owns: the links and the wait for them. Must not: decide what a verdict or a marker
//! failure means (the shard's transaction code does).

use super::leader_link::LeaderLink;
use crate::config::inter_broker::InterBrokerSecurity;
use crate::metadata::replicated::ClusterState;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Links one shard keeps to one peer broker: concurrent transactional requests beyond it
/// wait for a free link (within the call's timeout).
pub const LINKS_PER_BROKER_MAX: usize = 4;
/// Longest one call may take, waiting for a link, connecting and answering included: past
/// it the caller answers a retriable error instead of holding its client.
pub const BROKER_CALL_TIMEOUT: Duration = Duration::from_secs(5);
const _: () = assert!(LINKS_PER_BROKER_MAX > 0);

/// One pool: `LINKS_PER_BROKER_MAX` slots circulate through the channel, each holding a
/// connected link or nothing (connect on use).
struct Pool {
    give: flume::Sender<Option<LeaderLink>>,
    take: flume::Receiver<Option<LeaderLink>>,
}

/// A slot taken from a pool; going out of scope it returns what it holds (nothing when the
/// call failed or was dropped mid-exchange).
struct Slot {
    give: flume::Sender<Option<LeaderLink>>,
    link: Option<LeaderLink>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Never full: exactly LINKS_PER_BROKER_MAX slots exist per pool.
        let _ = self.give.try_send(self.link.take());
    }
}

/// This shard's links to the other brokers, for transaction traffic.
pub struct BrokerChannel {
    client_id: String,
    /// None when the inter-broker settings do not resolve (a single node, or a config that
    /// start-up validation refused): every call fails.
    security: Option<Arc<InterBrokerSecurity>>,
    pools: RefCell<HashMap<i32, Pool>>,
}

impl BrokerChannel {
    pub fn new(node_id: i32, security: Option<Arc<InterBrokerSecurity>>) -> BrokerChannel {
        BrokerChannel {
            client_id: format!("sluice-txn-{node_id}"),
            security,
            pools: RefCell::new(HashMap::new()),
        }
    }

    /// Sends `request` to `broker` (registered and unfenced in `cluster`) at the highest
    /// version of `versions` both speak; its answer, or why there is none.
    pub async fn call<R: Request>(
        &self,
        cluster: &ClusterState,
        broker: i32,
        request: &R,
        versions: (i16, i16),
    ) -> Result<R::Response, String> {
        let security = self
            .security
            .clone()
            .ok_or("the inter-broker settings do not resolve")?;
        let (host, port) = match cluster.brokers.get(&broker) {
            Some(b) if !b.fenced => b
                .endpoint(Some(&security.listener))
                .map(|(host, port)| (host.to_string(), port))
                .ok_or_else(|| format!("broker {broker} has no listener {}", security.listener))?,
            _ => return Err(format!("broker {broker} is not live")),
        };
        let key = ApiKey::try_from(R::KEY).map_err(|_| format!("unknown api key {}", R::KEY))?;
        let pool = self.pool(broker);
        let exchange = async {
            let taken = pool.1.recv_async().await.map_err(|e| e.to_string())?;
            let mut slot = Slot {
                give: pool.0.clone(),
                link: taken,
            };
            let address = format!("{host}:{port}");
            // Taken out of the slot for the exchange: a call cut short drops the link.
            let mut link = match slot.link.take() {
                Some(link) if link.address() == address => link,
                _ => LeaderLink::connect_as(&host, port, &self.client_id, &security).await?,
            };
            let version = link.negotiated(key, versions.0, versions.1)?;
            let answer = link.call(request, version).await?;
            slot.link = Some(link);
            Ok(answer)
        };
        compio::time::timeout(BROKER_CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!("{key:?} to broker {broker}: no answer within {BROKER_CALL_TIMEOUT:?}")
            })?
    }

    /// The sender and receiver of `broker`'s pool, made on first use.
    fn pool(
        &self,
        broker: i32,
    ) -> (
        flume::Sender<Option<LeaderLink>>,
        flume::Receiver<Option<LeaderLink>>,
    ) {
        let mut pools = self.pools.borrow_mut();
        let pool = pools.entry(broker).or_insert_with(|| {
            let (give, take) = flume::bounded(LINKS_PER_BROKER_MAX);
            for _ in 0..LINKS_PER_BROKER_MAX {
                let _ = give.try_send(None);
            }
            Pool { give, take }
        });
        (pool.give.clone(), pool.take.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::listeners::SecurityProtocol;
    use crate::metadata::registration::RegisteredBroker;
    use kafka_protocol::messages::WriteTxnMarkersRequest;
    use std::time::Instant;

    const PEER: i32 = 2;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(future)
    }

    fn channel() -> BrokerChannel {
        let security = InterBrokerSecurity {
            listener: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        };
        BrokerChannel::new(1, Some(Arc::new(security)))
    }

    fn cluster_with_peer_at(port: u16, fenced: bool) -> ClusterState {
        let mut cluster = ClusterState::default();
        cluster.brokers.insert(
            PEER,
            RegisteredBroker {
                id: PEER,
                host: "127.0.0.1".into(),
                port: i32::from(port),
                fenced,
                epoch: 1,
                endpoints: Vec::new(),
                format_levels: Default::default(),
                incarnation: None,
            },
        );
        cluster
    }

    fn call(channel: &BrokerChannel, cluster: &ClusterState) -> Result<(), String> {
        run(channel.call(cluster, PEER, &WriteTxnMarkersRequest::default(), (1, 1))).map(|_| ())
    }

    #[test]
    fn failed_calls_give_their_slot_back() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        // Nothing listens there now: each connect is refused at once. A slot kept by a
        // failed call would make the fifth wait out BROKER_CALL_TIMEOUT.
        let cluster = cluster_with_peer_at(port, false);
        let channel = channel();
        let started = Instant::now();
        for _ in 0..2 * LINKS_PER_BROKER_MAX {
            let failed = call(&channel, &cluster).expect_err("nothing listens");
            assert!(failed.contains("connect"), "{failed}");
        }
        assert!(
            started.elapsed() < BROKER_CALL_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_peer_that_never_answers_is_given_up_within_the_call_timeout() {
        // Accepted by the kernel (the backlog), never read: the ApiVersions answer never comes.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("address").port();
        let cluster = cluster_with_peer_at(port, false);
        let started = Instant::now();
        let failed = call(&channel(), &cluster).expect_err("no answer");
        let took = started.elapsed();
        assert!(failed.contains("no answer within"), "{failed}");
        assert!(
            took >= BROKER_CALL_TIMEOUT && took < BROKER_CALL_TIMEOUT * 2,
            "{took:?}"
        );
    }

    #[test]
    fn a_fenced_or_unknown_broker_is_not_called() {
        let channel = channel();
        let fenced = call(&channel, &cluster_with_peer_at(9, true)).expect_err("fenced");
        assert!(fenced.contains("not live"), "{fenced}");
        let unknown = call(&channel, &ClusterState::default()).expect_err("unknown");
        assert!(unknown.contains("not live"), "{unknown}");
    }
}
