//! Starting and stopping the shard threads.
//!
//! Start-up order: lock the data directory, load metadata, bind one SO_REUSEPORT socket
//! per shard (so a busy port fails before any thread starts), start the threads (each pins
//! itself, builds its io_uring ring or polling driver, opens and recovers its partitions),
//! wait until every shard reports ready (in cluster mode, also until this node caught up
//! with the metadata quorum), and only then listen and let the shards accept. Shutdown:
//! stop accepting, finish each connection's request in progress, close the logs cleanly.

use super::io_driver::IoDriver;
use super::listeners::{
    AddressClaim, BoundListeners, ShardListeners, bind_listeners, listen_once_ready,
};
use super::outbox::Outbox;
use super::shard_loop::block_on_batched;
pub use super::start_error::StartError;
use super::{PartitionTable, SHARD_CHANNEL_CAPACITY, Shard, ShardMail, ShardTask};
use crate::config::{BrokerConfig, ShardAffinity};
use crate::metadata::{MetadataView, MetadataWriter};
use crate::security::tls::TlsAcceptor;
use std::cell::Cell;
use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of locked memory one io_uring entry costs (SQE 64 B + two CQEs 16 B each), used to
/// check the rings fit the memlock budget before the kernel refuses them.
const RING_BYTES_PER_ENTRY: u64 = 64 + 2 * 16;

/// Longest a SIGTERM in cluster mode waits for the quorum to move this node's leaderships
/// (Kafka retries its ControlledShutdown for about as long by default).
pub const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The running broker, as seen from the main thread.
pub struct BrokerHandle {
    threads: Vec<JoinHandle<()>>,
    senders: Arc<[flume::Sender<ShardMail>]>,
    pub heartbeats: crate::admin::systemd::Heartbeats,
    pub metadata: MetadataView,
    pub cores: Vec<usize>,
    /// The kernel I/O interface every shard runs on.
    pub io_driver: IoDriver,
    /// Cluster mode only: the metadata controller, stopped after the shards.
    pub cluster: Option<Arc<crate::cluster::ClusterHandle>>,
    /// With SSL or SASL_SSL listeners: their TLS context, reloaded on SIGHUP.
    pub tls: Option<Arc<TlsAcceptor>>,
    _data_dir_lock: std::fs::File,
    /// Each listener's address, held against other Sluice processes until this one exits.
    _listener_claims: Vec<AddressClaim>,
}

impl BrokerHandle {
    /// Asks every shard to stop and waits for their threads to exit. In cluster mode the
    /// partitions this node leads are first handed to other in-sync replicas (controlled
    /// shutdown), for at most `CONTROLLED_SHUTDOWN_TIMEOUT`.
    pub fn shutdown(self) {
        if self.cluster.is_some() {
            super::cluster_apply::controlled_shutdown_within(&self, CONTROLLED_SHUTDOWN_TIMEOUT);
        }
        for sender in self.senders.iter() {
            let task: ShardTask = Box::new(|shard: Rc<Shard>| {
                Box::pin(async move {
                    shard.begin_shutdown();
                })
            });
            let _ = sender.send(task.into());
        }
        let mut stopped = true;
        for thread in self.threads {
            stopped &= thread.join().is_ok();
        }
        if let Some(cluster) = &self.cluster {
            let snapshot = self.metadata.load();
            let registered = snapshot
                .cluster
                .as_ref()
                .and_then(|c| c.brokers.get(&cluster.node_id));
            if let Some(broker) = registered.filter(|_| stopped) {
                cluster.mark_clean_stop(broker.epoch);
            }
            cluster.shutdown();
        }
    }

    /// Sends a task to one shard from outside the shard threads (admin, signals).
    pub fn send(&self, shard: usize, task: ShardTask) -> bool {
        self.senders
            .get(shard)
            .is_some_and(|s| s.send(task.into()).is_ok())
    }

    pub fn shard_count(&self) -> usize {
        self.senders.len()
    }

    /// The channels to every shard, for the admin thread's observer.
    pub fn shard_senders(&self) -> Arc<[flume::Sender<ShardMail>]> {
        self.senders.clone()
    }
}

fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StartError> {
    use std::os::fd::AsRawFd;
    let err = |message: String| StartError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let lock_path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| err(e.to_string()))?;
    // SAFETY: flock on a descriptor we own; non-blocking.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(err("it is in use by another sluice process".to_string()));
    }
    Ok(file)
}

/// The metadata store (single-node file or cluster log) of the data directory.
fn open_metadata(
    config: &BrokerConfig,
) -> Result<
    (
        MetadataWriter,
        MetadataView,
        Option<super::cluster_apply::ClusterParts>,
    ),
    StartError,
> {
    super::cluster_apply::open_metadata(config).map_err(|e| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        message: e,
    })
}

/// One bounded mail channel per shard: the senders every shard shares, the receivers each
/// shard takes its own of.
fn shard_channels(
    shards: usize,
) -> (
    Arc<[flume::Sender<ShardMail>]>,
    Vec<flume::Receiver<ShardMail>>,
) {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards)
        .map(|_| flume::bounded::<ShardMail>(SHARD_CHANNEL_CAPACITY))
        .unzip();
    (senders.into(), receivers)
}

/// Starts every shard and returns once all of them have recovered and are listening (in
/// cluster mode, once this node has also caught up with the metadata quorum, asking
/// `stop_requested` meanwhile whether to give up: `StartError::StoppedBeforeServing`).
pub fn start_broker(
    config: BrokerConfig,
    stop_requested: &dyn Fn(Duration) -> bool,
) -> Result<BrokerHandle, StartError> {
    let (cores, io_driver) = cores_and_driver(&config)?;
    super::descriptors::raise_open_file_limit();
    let lock = lock_data_dir(&config.data_dir)?;
    let (writer, view, cluster) = open_metadata(&config)?;
    let cluster_handle = cluster.as_ref().map(|c| c.handle.clone());
    let mut committed = cluster.map(|c| c.inputs);

    let BoundListeners {
        per_shard: listeners,
        to_listen,
        tls,
        claims: listener_claims,
    } = bind_listeners(&config, cores.len())?;
    // Read once, before any shard runs (each takes its own partitions' entries).
    let high_watermarks = Arc::new(match cluster_handle {
        Some(_) => crate::storage::hw_checkpoint::load_all(&config.data_dir, cores.len()),
        None => Default::default(),
    });

    let (senders, receivers) = shard_channels(cores.len());
    let heartbeats = crate::admin::systemd::Heartbeats::new(cores.len());
    let config = Arc::new(config);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, StartError>>();

    let mut writer = Some(writer);
    let mut threads = Vec::with_capacity(cores.len());
    let mut serve_gates = Vec::with_capacity(cores.len());
    for (id, ((core, listener), receiver)) in cores
        .iter()
        .copied()
        .zip(listeners)
        .zip(receivers)
        .enumerate()
    {
        let (open_gate, serve_gate) = futures_channel::oneshot::channel::<()>();
        serve_gates.push(open_gate);
        let ctx = ShardStart {
            id,
            core,
            cpus: shard_cpus(config.shard_affinity, core, &cores),
            config: config.clone(),
            peers: senders.clone(),
            metadata: view.clone(),
            writer: if id == 0 { writer.take() } else { None },
            cluster: cluster_handle.clone(),
            committed: if id == 0 { committed.take() } else { None },
            high_watermarks: high_watermarks.clone(),
            heartbeat: heartbeats
                .for_shard(id)
                .ok_or_else(|| StartError::Shard(id, "no heartbeat slot".into()))?,
            listeners: listener,
            io_driver,
            receiver,
            ready: ready_tx.clone(),
            serve_gate,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sluice-shard-{id}"))
            .spawn(move || run_shard_thread(ctx))
            .map_err(|e| StartError::Shard(id, e.to_string()))?;
        threads.push(thread);
    }
    drop(ready_tx);

    let handle = BrokerHandle {
        threads,
        senders,
        heartbeats,
        metadata: view,
        cores,
        io_driver,
        cluster: cluster_handle,
        tls,
        _data_dir_lock: lock,
        _listener_claims: listener_claims,
    };
    let cluster = handle.cluster.as_deref();
    let started = listen_once_ready(
        handle.shard_count(),
        cluster,
        &ready_rx,
        &to_listen,
        stop_requested,
    );
    drop(to_listen);
    if let Err(e) = started {
        // Closed gates first: shards waiting at theirs then close down instead of serving.
        drop(serve_gates);
        handle.shutdown();
        return Err(e);
    }
    for gate in serve_gates {
        let _ = gate.send(());
    }
    Ok(handle)
}

/// The I/O driver (chosen once, after the config is known valid) and the cores to run on.
/// The polling driver pins no ring memory, so only io_uring is held to the budget.
fn cores_and_driver(config: &BrokerConfig) -> Result<(Vec<usize>, IoDriver), StartError> {
    config
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let choice =
        super::io_driver::configured_choice(config.io_driver).map_err(StartError::Config)?;
    let driver = super::io_driver::choose(choice, config.ring_entries);
    let available = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cores = config
        .core_spec()
        .map_err(|e| StartError::Config(e.to_string()))?
        .resolve(available);
    let ring_bytes = u64::from(config.ring_entries) * RING_BYTES_PER_ENTRY * cores.len() as u64;
    if driver == IoDriver::IoUring && ring_bytes > config.memlock_budget_bytes {
        return Err(StartError::Config(format!(
            "{} shards with ring_entries={} need about {ring_bytes} bytes of locked memory, \
             above memlock_budget_bytes={}",
            cores.len(),
            config.ring_entries,
            config.memlock_budget_bytes
        )));
    }
    Ok((cores, driver))
}

struct ShardStart {
    id: usize,
    core: usize,
    /// Where the shard's thread may run (`shard_affinity`).
    cpus: HashSet<usize>,
    config: Arc<BrokerConfig>,
    peers: Arc<[flume::Sender<ShardMail>]>,
    metadata: MetadataView,
    writer: Option<MetadataWriter>,
    cluster: Option<Arc<crate::cluster::ClusterHandle>>,
    /// Shard 0 in cluster mode: the metadata log's committed entries to apply, and the
    /// replica fetchers' answers to append.
    committed: Option<super::cluster_apply::ClusterInputs>,
    /// Cluster mode: every shard's checkpointed high watermarks, read at start-up.
    high_watermarks: Arc<crate::storage::hw_checkpoint::HighWatermarks>,
    heartbeat: crate::admin::systemd::ShardHeartbeat,
    /// Every configured listener, bound for this shard with SO_REUSEPORT.
    listeners: ShardListeners,
    io_driver: IoDriver,
    receiver: flume::Receiver<ShardMail>,
    ready: std::sync::mpsc::Sender<Result<usize, StartError>>,
    /// Opened by `start_broker` once every shard is ready; dropped if start-up failed.
    serve_gate: futures_channel::oneshot::Receiver<()>,
}

/// The cores a shard's thread may run on: its own (`core`), every core that runs shards
/// (`shared`: on a box shared with clients and kernel threads, a shard whose core is taken
/// runs on another instead of waiting behind it; decision 0031), or none named (`unpinned`:
/// the kernel places it anywhere, for several brokers on one host; decision 0012).
fn shard_cpus(affinity: ShardAffinity, core: usize, cores: &[usize]) -> HashSet<usize> {
    match affinity {
        ShardAffinity::Core => HashSet::from([core]),
        ShardAffinity::Shared => cores.iter().copied().collect(),
        ShardAffinity::Unpinned => HashSet::new(),
    }
}

fn run_shard_thread(start: ShardStart) {
    let runtime =
        super::io_driver::build_runtime(start.io_driver, start.config.ring_entries, &start.cpus);
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(source) => {
            let _ = start.ready.send(Err(StartError::Ring {
                shard: start.id,
                entries: start.config.ring_entries,
                source,
            }));
            return;
        }
    };
    apply_shard_nice(start.id, start.config.shard_nice);
    // Created here, on the shard's thread: the loop flushes it once per turn.
    let outbox = Rc::new(Outbox::new(start.peers.clone()));
    block_on_batched(
        &runtime,
        || outbox.flush(),
        shard_main(start, outbox.clone()),
    );
}

/// `shard_nice` on this shard's thread (decision 0031). Without the privilege to lower it
/// (CAP_SYS_NICE or RLIMIT_NICE) the shard runs at the inherited priority: a slower tail,
/// not a reason to refuse to start.
///
/// Every shard meets the same missing privilege, so only the first says so: the default
/// (-5) is not an error for an unprivileged broker, and one line per shard would be noise.
fn apply_shard_nice(shard: usize, nice: i32) {
    static NICE_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if nice == 0 {
        return;
    }
    if let Err(e) = super::io_driver::set_thread_nice(nice)
        && !NICE_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(shard, nice, error = %e,
            "shard_nice not applied (lowering it needs CAP_SYS_NICE or LimitNICE=); the shards run at the inherited priority");
    }
}

/// What a shard keeps outside its partitions, opened before them: consumer groups,
/// transactions, its metrics and the delay log (whose replay rebuilds the timing wheel).
fn open_stores(
    start: &ShardStart,
) -> Result<
    (
        crate::group::GroupCoordinator,
        crate::txn::TxnCoordinator,
        Rc<crate::metrics::ShardMetrics>,
        super::delayed::DelayService,
    ),
    String,
> {
    let groups = crate::group::GroupCoordinator::open(
        &start.config.data_dir,
        start.id,
        start.peers.len(),
        &start.config,
    )
    .map_err(|e| format!("consumer groups: {e}"))?;
    let txns =
        crate::txn::TxnCoordinator::open(&start.config.data_dir, start.id, start.peers.len())
            .map_err(|e| format!("transactions: {e}"))?;
    let metrics = Rc::new(crate::metrics::ShardMetrics::new(
        start.id,
        start.config.metrics_enabled,
    ));
    let delays =
        super::delayed::DelayService::open(&start.config.data_dir, start.id, metrics.clone())
            .map_err(|e| format!("delay log: {e}"))?;
    Ok((groups, txns, metrics, delays))
}

/// The shard's copies of the bound listening sockets, registered on its own ring.
fn register_listeners(
    sockets: ShardListeners,
) -> Result<Vec<crate::server::BoundListener>, String> {
    let mut listeners = Vec::with_capacity(sockets.len());
    for (spec, tls, socket) in sockets {
        let socket = compio::net::TcpListener::from_std(socket)
            .map_err(|e| format!("listener {}: {e}", spec.name))?;
        listeners.push(crate::server::BoundListener { spec, tls, socket });
    }
    Ok(listeners)
}

/// The shard's links for transaction traffic between brokers (none on a single node).
fn broker_channel(start: &ShardStart) -> crate::cluster::broker_channel::BrokerChannel {
    let security = start
        .cluster
        .as_ref()
        .and_then(|_| start.config.inter_broker_security().ok())
        .map(std::sync::Arc::new);
    crate::cluster::broker_channel::BrokerChannel::new(start.config.node_id, security)
}

async fn shard_main(start: ShardStart, outbox: Rc<Outbox>) {
    // Start-up phases are timed for the "shard ready" line: a restart's time is time due
    // delayed records wait (issue 18), and operators ask where it goes.
    let began = std::time::Instant::now();
    super::descriptors::install_shard_budget(start.id, start.peers.len(), &start.config);
    let (groups, txns, metrics, delays) = match open_stores(&start) {
        Ok(stores) => stores,
        Err(e) => {
            let _ = start.ready.send(Err(StartError::Shard(start.id, e)));
            return;
        }
    };
    let stores_opened = began.elapsed();
    let broker_channel = broker_channel(&start);
    let high_watermarks =
        super::hw_checkpoint::owned_by(&start.high_watermarks, start.id, start.peers.len());
    let shard = Rc::new(Shard {
        id: start.id,
        core: start.core,
        config: start.config.clone(),
        peers: start.peers,
        outbox,
        metadata: start.metadata,
        metadata_writer: start.writer.map(Rc::new),
        cluster: start.cluster,
        partitions: PartitionTable::default(),
        followers: PartitionTable::default(),
        flush_candidates: Default::default(),
        checkpointed_high_watermarks: std::cell::RefCell::new(high_watermarks),
        groups,
        txns,
        share_states: Default::default(),
        broker_channel,
        metrics,
        request_memory: super::budget::MemoryBudget::new(start.config.shard_produce_memory_bytes),
        timer: super::timer::Timer::start(),
        delays,
        heartbeat: start.heartbeat,
        shutting_down: Cell::new(false),
        shutdown_waiters: Default::default(),
        started: std::time::Instant::now(),
    });
    super::group_offsets::replicate_if_clustered(&shard);
    super::txn_state::replicate_if_clustered(&shard);

    // Serve cross-shard tasks from the start: recovery on other shards may already need us.
    compio::runtime::spawn(super::outbox::serve_inbox(shard.clone(), start.receiver)).detach();

    super::open::open_owned_partitions(&shard).await;
    let partitions_opened = began.elapsed();
    if let Some(inputs) = start.committed {
        super::cluster_apply::spawn_loops(&shard, inputs);
    }
    let maintenance = compio::runtime::spawn(maintenance(shard.clone()));
    let group_deadlines = compio::runtime::spawn(super::deadlines::group_deadlines(shard.clone()));
    let txn_deadlines = compio::runtime::spawn(super::deadlines::txn_deadlines(shard.clone()));
    let cleaner = compio::runtime::spawn(super::cleaner::run(shard.clone()));
    let delayed_delivery = compio::runtime::spawn(super::delayed::run(shard.clone()));
    let checkpoints = compio::runtime::spawn(super::hw_checkpoint::run(shard.clone()));

    let listeners = match register_listeners(start.listeners) {
        Ok(listeners) => listeners,
        Err(e) => {
            let _ = start.ready.send(Err(StartError::Shard(start.id, e)));
            return;
        }
    };
    tracing::info!(
        shard = shard.id,
        core = shard.core,
        // Groups, transactions and the delay log (its replay) opened; then partitions.
        stores_ms = stores_opened.as_millis() as u64,
        partitions_ms = (partitions_opened - stores_opened).as_millis() as u64,
        total_ms = began.elapsed().as_millis() as u64,
        "shard ready"
    );
    let _ = start.ready.send(Ok(start.id));
    drop(start.ready);

    // Connections wait in the listen backlog until every shard has opened its partitions.
    if start.serve_gate.await.is_ok() {
        crate::server::serve(shard.clone(), listeners).await;
    }
    // A background flush still running would persist its state after `close` wrote the
    // clean-shutdown mark and erase it (the next start would then run recovery).
    let _ = maintenance.await;
    let _ = group_deadlines.await;
    let _ = txn_deadlines.await;
    let _ = cleaner.await;
    let _ = delayed_delivery.await;
    // After the loop ended (one writer at a time), before the logs close.
    let _ = checkpoints.await;
    super::hw_checkpoint::write_at_shutdown(&shard).await;
    close_partitions(&shard).await;
    tracing::info!(shard = shard.id, "shard stopped");
}

/// How often a shard wakes for background work (heartbeat, background flush checks). A
/// sleep on the shard's timer, like every other deadline on the shard.
pub const MAINTENANCE_TICK: Duration = Duration::from_millis(100);

/// Background work of one shard: the watchdog heartbeat, the background flush
/// (`flush.ms` / `flush.messages`) and retention. Runs until shutdown, which ends it at once
/// while it sleeps, else after the flush or retention step in progress.
async fn maintenance(shard: Rc<Shard>) {
    use futures_util::FutureExt;
    // One shutdown receiver for the whole loop (each `shutdown_signal` call registers one).
    let mut stop = shard.shutdown_signal().fuse();
    let retention_every =
        Duration::from_millis(shard.config.log_retention_check_interval_ms.max(100));
    let mut last_retention = std::time::Instant::now();
    let mut loop_sampler = crate::metrics::LoopSampler::new();
    let mut group_metrics = super::group_metrics::GroupMetricsState::default();
    // Kept open for the shard's life: `syncfs` reports write-back errors only to
    // descriptors open when they happened (`storage::filesystem_sync`).
    let filesystem_sync =
        crate::storage::filesystem_sync::FilesystemSync::open(&shard.config.data_dir);
    while !shard.shutting_down.get() {
        let mut tick = shard.timer.sleep(MAINTENANCE_TICK).fuse();
        futures_util::select! {
            _ = stop => return,
            _ = tick => {},
        }
        // Only ticks while this shard's loop runs: a stuck shard stops the watchdog pings.
        shard.heartbeat.tick();
        crate::metrics::stage_trace::flush();
        let (busy_ns, idle_ns) = loop_sampler.sample();
        shard.metrics.record_loop(busy_ns, idle_ns);
        group_metrics
            .maybe_refresh(&shard, std::time::Instant::now())
            .await;
        let now = super::now_ms();
        // Only the logs written since their last flush are looked at: an idle partition
        // costs the tick nothing.
        let flushing = super::background_flush::due(&shard, now);
        super::background_flush::run(&shard, &flushing, now, filesystem_sync.as_ref()).await;
        // Shutdown closes the logs (with a final flush): no background work after that.
        if shard.shutting_down.get() {
            return;
        }
        if last_retention.elapsed() >= retention_every {
            last_retention = std::time::Instant::now();
            let mut logs = shard.partitions.all_online();
            logs.extend(shard.followers.all_online());
            let expired = shard.groups.expire_offsets(last_retention).await;
            if expired > 0 {
                tracing::info!(
                    shard = shard.id,
                    expired,
                    "expired committed offsets of empty groups"
                );
            }
            for (topic, partition, p) in &logs {
                if shard.shutting_down.get() {
                    return;
                }
                match p.enforce_retention(now).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(topic, partition, segments = n, "retention deleted segments")
                    }
                    Err(e) => tracing::error!(topic, partition, error = %e, "retention failed"),
                }
            }
        }
    }
}

/// Partitions a shard closes at once at shutdown: each close waits on a few fsyncs (state
/// file, producer snapshot, directory), so one at a time took over 30 s for 3,000
/// partitions; each also holds a few descriptors while it runs.
pub const MAX_CONCURRENT_CLOSES: usize = 32;

/// Closes every partition; in cluster mode a failed close or an offline partition (whose
/// log may not hold what it acknowledged) keeps the node from marking its stop clean.
async fn close_partitions(shard: &Rc<Shard>) {
    use futures_util::StreamExt;
    let mut logs = shard.partitions.all_online();
    logs.extend(shard.followers.all_online());
    let unclean = |shard: &Shard| {
        if let Some(cluster) = &shard.cluster {
            cluster
                .unclean_stop
                .store(true, std::sync::atomic::Ordering::Release);
        }
    };
    if !shard.partitions.offline().is_empty() || !shard.followers.offline().is_empty() {
        unclean(shard);
    }
    futures_util::stream::iter(logs)
        .for_each_concurrent(MAX_CONCURRENT_CLOSES, |(topic, partition, p)| async move {
            if let Err(e) = p.close().await {
                tracing::error!(topic, partition, error = %e, "close failed");
                unclean(shard);
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of tasks that wake one another (longer than the ticks run before a poll), a
    /// timer and a ring operation all complete under the batched loop.
    #[test]
    fn the_batched_loop_runs_task_chains_timers_and_ring_operations() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"ring").unwrap();
        let (sum, read) = block_on_batched(&runtime, || None, async move {
            const HOPS: u64 = 1_000;
            let (first_tx, mut rx) = flume::bounded::<u64>(1);
            for _ in 0..HOPS {
                let (tx, next_rx) = flume::bounded::<u64>(1);
                let from = rx;
                compio::runtime::spawn(async move {
                    if let Ok(v) = from.recv_async().await {
                        let _ = tx.send_async(v + 1).await;
                    }
                })
                .detach();
                rx = next_rx;
            }
            first_tx.send_async(0).await.unwrap();
            compio::time::sleep(Duration::from_millis(5)).await;
            let file = compio::fs::File::open(&path).await.unwrap();
            let compio::BufResult(r, buf) =
                compio::io::AsyncReadAtExt::read_exact_at(&file, Vec::with_capacity(4), 0).await;
            r.unwrap();
            (rx.recv_async().await.unwrap(), buf)
        });
        assert_eq!(sum, 1_000);
        assert_eq!(read, b"ring");
    }
}
