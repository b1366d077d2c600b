//! Cluster mode: catching up with the metadata log at start-up. Shard 0 proposes a
//! `CatchUp` record and, once it is applied here, everything committed before this start
//! is too (`ClusterHandle::caught_up_since_start`); `start_broker` listens only then.
//! Must not: apply records (`cluster_apply` does) or talk Raft (the `ClusterHandle` does).

use super::Shard;
use super::start_error::StartError;
use crate::cluster::ClusterHandle;
use crate::metadata::replicated::MetadataRecord;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Between two tries of the start-up `CatchUp` proposal (no quorum leader yet).
const CATCH_UP_RETRY: Duration = Duration::from_millis(100);
/// How long one wait for a stop signal lasts while the node waits for the quorum: how
/// late the sockets may listen after the catch-up.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);
/// How often a node still waiting for the quorum says so in its log.
const CATCH_UP_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Cluster mode: waits until this start's `CatchUp` record is applied here
/// (`ClusterHandle::caught_up_since_start`), so the node serves no client from the state
/// it stopped with. Before, a restarted node answered Metadata and FindCoordinator from
/// it: brokers fenced or registered since, coordinators that had moved (librdkafka drops a
/// live broker a Metadata answer leaves out). Kafka's broker, too, opens its listeners only
/// once the controller has it caught up. A node without a quorum to catch up with waits
/// until one forms (or it is stopped), and its port refuses connections meanwhile.
pub(super) fn wait_for_first_catch_up(
    cluster: &ClusterHandle,
    stop_requested: &dyn Fn(Duration) -> bool,
) -> Result<(), StartError> {
    let began = std::time::Instant::now();
    let mut next_report = began + CATCH_UP_REPORT_EVERY;
    crate::admin::systemd::notify_status("waiting to catch up with the metadata quorum");
    while !cluster.caught_up_since_start.load(Ordering::Acquire) {
        if stop_requested(CATCH_UP_POLL) {
            return Err(StartError::StoppedBeforeServing);
        }
        if std::time::Instant::now() >= next_report {
            next_report += CATCH_UP_REPORT_EVERY;
            tracing::info!(
                node_id = cluster.node_id,
                waited_ms = began.elapsed().as_millis() as u64,
                "not listening yet: waiting to catch up with the metadata quorum"
            );
        }
    }
    Ok(())
}

/// Proposes a `CatchUp` record until one is applied here. Before that, a restarted node's
/// state may be an old one in which it coordinated groups it no longer does, with offsets
/// older than the ones acknowledged since: it must not serve them.
pub(super) async fn catch_up(shard: Rc<Shard>, cluster: Arc<ClusterHandle>) {
    while !shard.shutting_down.get() {
        let record = MetadataRecord::CatchUp {
            node: cluster.node_id,
        };
        if cluster.leader().is_some() && cluster.propose(record).await.is_ok() {
            cluster.caught_up_since_start.store(true, Ordering::Release);
            tracing::info!(node_id = cluster.node_id, "caught up with the metadata log");
            return;
        }
        shard.timer.sleep(CATCH_UP_RETRY).await;
    }
}
