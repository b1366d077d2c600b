//! Shards: one thread per configured core, pinned, each with its own io_uring ring and
//! executor (compio). A shard owns the partitions and groups that `placement` gives it and
//! serves the connections the kernel hands its SO_REUSEPORT listener.
//!
//! Owns: thread start-up and shutdown, the cross-shard message channels, the per-shard
//! partition table. Must not: share mutable state between shards — everything crosses by
//! message (`Shard::invoke_on`), except the read-only metadata snapshot.

mod background_flush;
pub mod budget;
mod catch_up;
mod cleaner;
mod cluster_apply;
pub mod cluster_topics;
pub mod console;
mod deadlines;
pub mod delayed;
pub mod descriptors;
mod failover;
mod group_membership;
mod group_metrics;
mod group_offsets;
mod hw_checkpoint;
pub mod io_driver;
mod leader_balance;
mod listeners;
pub mod observe;
mod open;
pub mod outbox;
pub mod placement;
mod replica_throttle;
mod replication;
mod runtime;
pub mod security_changes;
pub mod sequences;
mod shard_loop;
mod share_state;
pub use share_state::propose_reset as propose_share_state_reset;
mod shutdown;
mod start_error;
mod table;
pub mod timer;
pub mod topics;
pub mod transactions;
pub mod transactions_v2;
pub mod txn_routes;
mod txn_state;

pub use open::{create_partition, open_partition, report_offline};
pub use outbox::{ShardMail, ShardMessage};
pub use runtime::{BrokerHandle, StartError, start_broker};
pub use table::{Lookup, PartitionSlot, PartitionTable};

use crate::config::BrokerConfig;
use crate::metadata::{MetadataView, MetadataWriter};
use futures_util::future::LocalBoxFuture;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

/// Mail (single tasks, or outbox batches of up to `outbox::OUTBOX_MESSAGES_MAX` messages)
/// a shard may have queued before senders wait (backpressure).
pub const SHARD_CHANNEL_CAPACITY: usize = 4096;

/// A unit of work sent to another shard: runs there, with that shard's state.
pub type ShardTask = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, ()> + Send>;

#[derive(Debug, thiserror::Error)]
#[error("shard {0} is shutting down")]
pub struct ShardGone(pub usize);

/// Everything one shard owns. Lives in an `Rc` on its own thread.
pub struct Shard {
    pub id: usize,
    /// The CPU this shard's thread is pinned to.
    pub core: usize,
    pub config: Arc<BrokerConfig>,
    peers: Arc<[flume::Sender<ShardMail>]>,
    /// Cross-shard work and answers leave through here, one batch per target and loop
    /// turn (decision 0023). Shared with the shard loop, which flushes it.
    pub outbox: Rc<outbox::Outbox>,
    /// Read-only copy of cluster metadata (one writer: shard 0).
    pub metadata: MetadataView,
    /// Present on shard 0 only: the single writer of cluster metadata.
    pub metadata_writer: Option<Rc<MetadataWriter>>,
    /// Cluster mode only: the metadata quorum this node votes in (issue 17).
    pub cluster: Option<Arc<crate::cluster::ClusterHandle>>,
    /// The partitions this shard leads (or, on a single node, simply holds): served.
    pub partitions: PartitionTable,
    /// Cluster mode: the partitions this node follows, filled by the replica fetchers
    /// (`replication`); never served to clients, so a lookup in `partitions` misses them
    /// and answers NOT_LEADER_OR_FOLLOWER.
    pub followers: PartitionTable,
    /// The logs (of either table) with background-flush work, as their hooks told: what
    /// the maintenance tick looks at (`background_flush::due`).
    pub flush_candidates: background_flush::FlushCandidates,
    /// Cluster mode, at start-up: the checkpointed high watermarks of the partitions this
    /// shard owns, each taken when its partition opens (`hw_checkpoint`).
    checkpointed_high_watermarks: std::cell::RefCell<crate::storage::hw_checkpoint::HighWatermarks>,
    /// Consumer groups this shard coordinates (placement::shard_for_group).
    pub groups: crate::group::GroupCoordinator,
    /// Transactional ids this shard coordinates (`txn::owner_shard`).
    pub txns: crate::txn::TxnCoordinator,
    /// Cluster mode: the applied share-partition states of the partitions this shard
    /// owns (decision 0025).
    pub share_states: share_state::ShareStateStore,
    /// Cluster mode: this shard's links to the other brokers for transaction traffic
    /// (produce verification at the coordinator, markers to leaders; `txn_routes`).
    pub broker_channel: crate::cluster::broker_channel::BrokerChannel,
    pub metrics: Rc<crate::metrics::ShardMetrics>,
    /// Request bytes this shard may hold in memory (`shard_produce_memory_bytes`).
    pub request_memory: Rc<budget::MemoryBudget>,
    /// Every deadline on this shard (maintenance, back-offs, waits) sits in this one wheel.
    pub timer: timer::Timer,
    /// Records waiting for delayed delivery to this shard's partitions (issue 18).
    pub delays: delayed::DelayService,
    /// Ticked by this shard's loop only; read by the systemd watchdog thread.
    pub heartbeat: crate::admin::systemd::ShardHeartbeat,
    pub shutting_down: Cell<bool>,
    shutdown_waiters: std::cell::RefCell<Vec<futures_channel::oneshot::Sender<()>>>,
    pub started: std::time::Instant,
}

impl Shard {
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// Runs `work` on shard `target` and returns its result. On the same shard it runs
    /// inline; otherwise the closure crosses in this shard's outbox batch to `target`, and
    /// the answer comes back in `target`'s outbox batch to this shard, to a oneshot.
    pub async fn invoke_on<R, F, Fut>(
        self: &Rc<Self>,
        target: usize,
        work: F,
    ) -> Result<R, ShardGone>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return Ok(work(self.clone()).await);
        }
        let (task, reply) = self.remote_call(work);
        self.outbox.send(target, task).await?;
        reply.await.map_err(|_| ShardGone(target))
    }

    /// `invoke_on` for another shard whose outbox queue has room (`outbox.has_room`): the
    /// work is queued now, behind everything queued for `target` before it and ahead of
    /// everything after, and the returned future only waits for the result. Should the
    /// queue be full after all (it cannot, on this thread, right after `has_room`), the
    /// work is dropped and the result is `ShardGone`, never a wait out of order.
    pub fn invoke_queued<R, F, Fut>(
        self: &Rc<Self>,
        target: usize,
        work: F,
    ) -> impl Future<Output = Result<R, ShardGone>> + 'static
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (task, reply) = self.remote_call(work);
        let queued = self.outbox.send_now(target, task);
        async move {
            queued?;
            reply.await.map_err(|_| ShardGone(target))
        }
    }

    /// `work` as a task for another shard, which sends its result back to this one in its
    /// outbox; and the receiver of that result.
    fn remote_call<R, F, Fut>(
        self: &Rc<Self>,
        work: F,
    ) -> (ShardTask, futures_channel::oneshot::Receiver<R>)
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let source = self.id;
        let (reply_tx, reply_rx) = futures_channel::oneshot::channel();
        let task: ShardTask = Box::new(move |shard: Rc<Shard>| {
            Box::pin(async move {
                let result = work(shard.clone()).await;
                let reply = move || {
                    let _ = reply_tx.send(result);
                };
                shard.outbox.complete(source, Box::new(reply));
            })
        });
        (task, reply_rx)
    }

    /// Runs `work` on every shard concurrently and collects the results in shard order.
    pub async fn invoke_on_all<R, F, Fut>(self: &Rc<Self>, work: F) -> Vec<Result<R, ShardGone>>
    where
        F: Fn(Rc<Shard>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let calls = (0..self.count()).map(|target| {
            let work = work.clone();
            async move { self.invoke_on(target, work).await }
        });
        futures_util::future::join_all(calls).await
    }

    /// A cluster node still replaying the metadata log (just restarted): it does not know
    /// every topic yet, so it must not auto-create one (Kafka answers LEADER_NOT_AVAILABLE
    /// while a topic is not available yet, which clients retry).
    pub fn replaying_metadata(&self) -> bool {
        let Some(cluster) = self.cluster.as_deref() else {
            return false;
        };
        let applied = self
            .metadata
            .load()
            .cluster
            .as_ref()
            .map_or(0, |c| c.applied_index);
        !cluster.caught_up(applied)
    }

    /// The slot of a partition this shard leads and may serve: `Missing` (answered
    /// NOT_LEADER_OR_FOLLOWER) for every one until this start's registration is applied in
    /// cluster mode (`ClusterHandle::registered_since_start`).
    pub fn led(&self, topic: &str, partition: i32) -> Lookup {
        let registered = self.cluster.as_deref().is_none_or(|c| {
            c.registered_since_start
                .load(std::sync::atomic::Ordering::Acquire)
        });
        if registered {
            self.partitions.get(topic, partition)
        } else {
            Lookup::Missing
        }
    }

    /// The partition this shard leads and serves, or the Kafka error a client request for
    /// it answers: KAFKA_STORAGE_ERROR when offline; NOT_LEADER_OR_FOLLOWER when metadata
    /// knows it but it is not led here (cluster mode: another broker leads it, or this one
    /// only follows it; or its creation is still in flight), so the client looks the leader
    /// up again; UNKNOWN_TOPIC_OR_PARTITION otherwise.
    pub fn led_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Rc<crate::partition::Partition>, kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        match self.led(topic, partition) {
            Lookup::Online(p) => Ok(p),
            Lookup::Offline(_) => Err(ResponseError::KafkaStorageError),
            Lookup::Missing => {
                let exists = self
                    .metadata
                    .load()
                    .topic(topic)
                    .is_some_and(|t| partition >= 0 && partition < t.partitions);
                Err(if exists {
                    ResponseError::NotLeaderOrFollower
                } else {
                    ResponseError::UnknownTopicOrPartition
                })
            }
        }
    }

    pub fn owner_of_partition(&self, topic: &str, partition: i32) -> usize {
        placement::shard_for_partition(topic, partition, self.count())
    }

    pub fn owner_of_group(&self, group_id: &str) -> usize {
        placement::shard_for_group(group_id, self.count())
    }
}

/// Milliseconds since the Unix epoch (wall clock, for record timestamps and retention).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
