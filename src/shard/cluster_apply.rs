//! Cluster mode on shard 0: the one loop that applies the metadata log's committed records,
//! in log order, to the metadata snapshot (the only writer of it in cluster mode) and then
//! acts on them (opens the partitions this node leads, deletes, reconfigures); and this
//! node's broker registration with the quorum. Also where start-up chooses between the
//! single-node metadata file and the replicated log.
//! Must not: talk Raft (cluster/ does) or decide placement (the proposer does).

use super::Shard;
use crate::cluster::{ClusterHandle, Committed};
use crate::config::BrokerConfig;
use crate::metadata::format_level::{self, LevelRange};
use crate::metadata::registration::RegisteredBroker;
use crate::metadata::replicated::{Applied, ListenerEndpoint, MetadataRecord, Proposal};
use crate::metadata::replicated_image::ShardImages;
use crate::metadata::{MetadataView, MetadataWriter};
use futures_util::FutureExt;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Applied entries between two snapshots of the state (each snapshot compacts the log).
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 1_000;
/// Producer ids asked of the quorum at once (Kafka's broker asks for blocks of 1,000).
pub const PRODUCER_ID_BLOCK: i64 = 1_000;
/// A new block is asked for when fewer ids than this are left.
const PRODUCER_IDS_LOW_WATER: i64 = PRODUCER_ID_BLOCK / 2;

/// What start-up hands shard 0 in cluster mode.
pub struct ClusterParts {
    pub handle: Arc<ClusterHandle>,
    pub inputs: ClusterInputs,
}

/// The streams shard 0 takes in cluster mode.
pub struct ClusterInputs {
    /// The metadata log's committed entries, in log order.
    pub committed: flume::Receiver<Committed>,
}

/// Starts shard 0's cluster-mode loops: the apply loop, broker registration, the ISR
/// checks, the auto leader rebalance, and on every shard the replica fetchers of the partitions it owns.
pub(super) fn spawn_loops(shard: &Rc<Shard>, inputs: ClusterInputs) {
    compio::runtime::spawn(apply_loop(shard.clone(), inputs.committed)).detach();
    compio::runtime::spawn(registration_loop(shard.clone())).detach();
    let all = shard.clone();
    compio::runtime::spawn(async move {
        all.invoke_on_all(super::replication::start_fetchers).await;
    })
    .detach();
    compio::runtime::spawn(super::replication::isr_loop(shard.clone())).detach();
    compio::runtime::spawn(super::leader_balance::rebalance_loop(shard.clone())).detach();
}

/// The metadata writer and view; in cluster mode also the started controller.
pub fn open_metadata(
    config: &BrokerConfig,
) -> Result<(MetadataWriter, MetadataView, Option<ClusterParts>), String> {
    let voters = config.quorum_voters().map_err(|e| e.to_string())?;
    check_data_dir_mode(&config.data_dir, voters.is_some())?;
    let (Some(voters), Some(controller_listen)) = (voters, config.controller_listen) else {
        let (writer, view) = MetadataWriter::open(&config.data_dir, config.log.clone())
            .map_err(|e| e.to_string())?;
        return Ok((writer, view, None));
    };
    let cluster_id = crate::cluster::cluster_id(&voters);
    let (writer, view) =
        MetadataWriter::open_replicated(&config.data_dir, config.log.clone(), cluster_id)
            .map_err(|e| e.to_string())?;
    let (handle, committed) = crate::cluster::start(crate::cluster::ClusterStart {
        node_id: config.node_id,
        voters,
        controller_listen,
        data_dir: config.data_dir.clone(),
        session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
        heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
        follower_throttled_rate: config.follower_replication_throttled_rate,
        controller_tls: config.controller_tls().map_err(|e| e.to_string())?,
    })?;
    let inputs = ClusterInputs { committed };
    Ok((writer, view, Some(ClusterParts { handle, inputs })))
}

/// A data directory keeps the mode it was made in: a single node's topics are unknown to
/// a quorum, and a cluster node's metadata is in its Raft log, which a single node does
/// not read. Either switch would silently hide every partition on disk, so it is refused.
fn check_data_dir_mode(data_dir: &std::path::Path, cluster_mode: bool) -> Result<(), String> {
    let meta = data_dir.join("meta");
    let single_node_topics = std::fs::read(meta.join("topics.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| {
            v.get("topics")
                .and_then(|t| t.as_array())
                .map(|t| !t.is_empty())
        })
        .unwrap_or(false);
    let raft_log = meta.join("raft").exists();
    if cluster_mode && single_node_topics && !raft_log {
        return Err(format!(
            "{} holds a single node's topics; cluster mode starts from an empty data directory",
            data_dir.display()
        ));
    }
    if !cluster_mode && raft_log {
        return Err(format!(
            "{} belongs to a cluster node (meta/raft): start it with its node_id, \
             controller_quorum_voters and controller_listen",
            data_dir.display()
        ));
    }
    Ok(())
}

/// Applies committed records until the controller stops (runs on shard 0).
pub(super) async fn apply_loop(shard: Rc<Shard>, committed: flume::Receiver<Committed>) {
    let (Some(writer), Some(cluster)) = (shard.metadata_writer.clone(), shard.cluster.clone())
    else {
        return;
    };
    let mut last_snapshot = 0u64;
    while let Ok(item) = committed.recv_async().await {
        match item {
            Committed::Entry { index, data } if data.is_empty() => writer.mark_applied(index),
            Committed::Entry { index, data } => {
                let proposal = match Proposal::decode(&data) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(index, error = %e, "undecodable metadata record skipped");
                        continue;
                    }
                };
                // The state before the record: a replica it removes must still hear of it.
                let before = shard.metadata.load_full();
                let result = writer
                    .apply_record(index, &proposal.record)
                    .map_err(|e| (e.kafka_error_code(), e.to_string()));
                publish_format_level(&shard, &cluster);
                let result = match result {
                    Ok(applied) => act_on(&shard, applied, &before).await,
                    Err(e) => Err(e),
                };
                // Applied and acted on (the leaderships it ended are deposed): this start may
                // serve. Here rather than where it was proposed, which may have timed out.
                if result.is_ok() && registers_this_start(&proposal.record, &cluster) {
                    cluster
                        .registered_since_start
                        .store(true, Ordering::Release);
                }
                if proposal.origin == cluster.node_id && proposal.sequence != 0 {
                    cluster.complete(proposal.sequence, result);
                }
                if index >= last_snapshot + SNAPSHOT_EVERY_ENTRIES {
                    let images = ShardImages {
                        group_offsets: super::group_offsets::gather(&shard).await,
                        txn_states: super::txn_state::gather(&shard).await,
                        group_memberships: super::group_membership::gather(&shard).await,
                        share_states: super::share_state::gather(&shard).await,
                        share_state_epochs: super::share_state::gather_epochs(&shard),
                    };
                    cluster.compact(index, writer.encode_image(images));
                    last_snapshot = index;
                }
            }
            Committed::Snapshot { index, image } => match writer.install_image(&image) {
                Ok(installed) => {
                    last_snapshot = index;
                    publish_format_level(&shard, &cluster);
                    super::group_offsets::install(&shard, installed.group_offsets).await;
                    super::txn_state::install(&shard, installed.txn_states).await;
                    super::group_membership::install(&shard, installed.group_memberships).await;
                    super::share_state::install(
                        &shard,
                        installed.share_states,
                        installed.share_state_epochs,
                    )
                    .await;
                    reconcile_partitions(&shard, installed.topics).await;
                }
                Err(e) => tracing::error!(index, error = %e, "metadata snapshot not installed"),
            },
            Committed::Dropped { sequence } => cluster.complete(
                sequence,
                Err((
                    kafka_protocol::ResponseError::NotController.code(),
                    "no metadata quorum leader is known yet".into(),
                )),
            ),
        }
    }
}

/// Whether `record` is this start's own registration (one naming its incarnation).
fn registers_this_start(record: &MetadataRecord, cluster: &ClusterHandle) -> bool {
    matches!(record, MetadataRecord::RegisterBroker { id, incarnation: Some(incarnation), .. }
        if *id == cluster.node_id && *incarnation == cluster.incarnation)
}

/// Hands the applied finalized format level to `ClusterHandle::propose` (decision 0027),
/// before the proposer of a `FinalizeFeature` hears its answer.
fn publish_format_level(shard: &Shard, cluster: &ClusterHandle) {
    let level = shard
        .metadata
        .load()
        .cluster
        .as_ref()
        .map_or(format_level::LEGACY_LEVEL, |c| c.format_level());
    cluster
        .format_level
        .store(level, std::sync::atomic::Ordering::Release);
}

/// Does on this node what an applied record asks: partitions it leads are opened, deleted
/// topics' files removed, new configs handed to the owning shards.
async fn act_on(
    shard: &Rc<Shard>,
    applied: Applied,
    before: &crate::metadata::MetadataSnapshot,
) -> crate::cluster::ProposalResult {
    match &applied {
        Applied::Opened { topic, from } => {
            super::topics::open_on_owners(shard, topic, *from)
                .await
                .map_err(|e| (e.code, e.message))?;
        }
        Applied::Deleted(topic) => delete_everywhere(shard, topic.name.clone()).await,
        Applied::Reconfigured(topics) => {
            super::topics::reconfigure_on_owners(shard, topics.clone()).await
        }
        Applied::ProducerIds {
            broker,
            start,
            count,
        } => {
            if *broker == shard.config.node_id
                && let Some(writer) = shard.metadata_writer.as_deref()
            {
                writer.take_producer_id_block(*start, *count);
            }
        }
        Applied::Partitions(changes) => {
            super::failover::apply_partition_changes(shard, changes, Some(before)).await
        }
        Applied::Brokers | Applied::Security(_) => {}
        Applied::GroupOffsets { group, changes } => {
            super::group_offsets::apply(shard, group.clone(), changes.clone()).await
        }
        Applied::GroupMembership { group, membership } => {
            super::group_membership::apply(shard, group.clone(), membership.clone()).await
        }
        Applied::TxnState {
            metadata,
            base_version,
        } => super::txn_state::apply(shard, metadata.clone(), *base_version).await?,
        Applied::ShareState(change) => super::share_state::apply(shard, change.clone()).await?,
        Applied::ShareStateReset(reset) => {
            super::share_state::apply_reset(shard, reset.clone()).await?
        }
    }
    Ok(applied)
}

async fn delete_everywhere(shard: &Rc<Shard>, name: String) {
    shard
        .invoke_on_all(move |owner| {
            let name = name.clone();
            async move {
                owner.forget_checkpointed_topic(&name);
                owner.share_states.forget_topic(&name);
                let mut removed = owner.partitions.remove_topic(&name);
                removed.extend(owner.followers.remove_topic(&name));
                for (partition, p) in removed {
                    if let Err(e) = p.delete().await {
                        tracing::error!(topic = %name, partition, error = %e, "deleting partition files failed");
                    }
                }
            }
        })
        .await;
}

/// After a snapshot replaced the state: open what this node now leads, delete what no
/// longer exists.
async fn reconcile_partitions(shard: &Rc<Shard>, topics: Vec<Arc<crate::metadata::TopicMeta>>) {
    for topic in &topics {
        if let Err(e) = super::topics::open_on_owners(shard, topic, 0).await {
            tracing::warn!(topic = %topic.name, error = %e.message, "partitions offline after a snapshot");
        }
    }
    let snapshot = shard.metadata.load_full();
    let stale = shard
        .invoke_on_all(move |owner| {
            let snapshot = snapshot.clone();
            async move {
                let mut held = owner.partitions.all_online();
                held.extend(owner.followers.all_online());
                let mut names: Vec<String> = held
                    .into_iter()
                    .map(|(topic, _, _)| topic)
                    .filter(|topic| snapshot.topic(topic).is_none())
                    .collect();
                names.dedup();
                names
            }
        })
        .await;
    let mut names: Vec<String> = stale.into_iter().flatten().flatten().collect();
    names.sort();
    names.dedup();
    for name in names {
        delete_everywhere(shard, name).await;
    }
    // Leaders may have changed since the partitions were opened: each takes its role.
    let snapshot = shard.metadata.load_full();
    let node = shard.config.node_id;
    let held: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| (0..t.partitions).map(move |p| (t.name.clone(), p)))
        .filter(|(t, p)| {
            snapshot
                .cluster
                .as_ref()
                .is_some_and(|c| c.replicas(t, *p).contains(&node))
        })
        .collect();
    super::failover::apply_partition_changes(shard, &held, None).await;
}

/// What this broker registers: the inter-broker listener's advertised `host:port` and
/// every listener's advertised endpoint (Kafka's RegisterBrokerRecord `EndPoints`).
fn registered_endpoints(
    config: &BrokerConfig,
) -> Result<(String, i32, Vec<ListenerEndpoint>), crate::config::ConfigError> {
    let specs = config.listener_specs()?;
    let inter_broker = config.inter_broker_security()?;
    let endpoints: Vec<ListenerEndpoint> = specs
        .iter()
        .map(|s| ListenerEndpoint {
            name: s.name.clone(),
            host: s.advertised_host.clone(),
            port: s.advertised_port,
            security_protocol: s.protocol.name().to_string(),
        })
        .collect();
    let (host, port) = endpoints
        .iter()
        .find(|e| e.name == inter_broker.listener)
        .map(|e| (e.host.clone(), e.port))
        .unwrap_or_else(|| config.advertised_address());
    Ok((host, port, endpoints))
}

/// Registers this broker (its advertised listeners) with the quorum, and again whenever
/// the applied state lacks it or names another address (runs on shard 0 until shutdown).
pub(super) async fn registration_loop(shard: Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    let interval = Duration::from_millis(shard.config.broker_heartbeat_interval_ms);
    let own = match registered_endpoints(&shard.config) {
        Ok((host, port, endpoints)) => OwnRegistration {
            host,
            port,
            endpoints,
            format_levels: LevelRange::of_this_node(
                shard.config.upgrade_test_max_metadata_format_level,
            ),
        },
        Err(e) => {
            // Checked at start-up (`BrokerConfig::validate`): not reached with a loaded config.
            tracing::error!(error = %e, "broker not registered: its listeners do not resolve");
            return;
        }
    };
    let mut stop = shard.shutdown_signal().fuse();
    while !shard.shutting_down.get() {
        let registered = shard
            .metadata
            .load()
            .cluster
            .as_ref()
            .and_then(|c| c.brokers.get(&cluster.node_id).cloned());
        // Not while this node is leaving.
        let current = cluster.leaving.load(Ordering::Relaxed)
            || own.is_current(registered.as_ref(), &cluster);
        if current {
            refill_producer_ids(&shard, &cluster).await;
            bootstrap_format_level(&shard, &cluster).await;
        }
        let wait = if !current && cluster.leader().is_some() {
            match cluster.propose(own.record(registered, &cluster)).await {
                Err((code, message)) if code == UNSUPPORTED_VERSION => refused_exit(&message),
                Ok(_) => {
                    // Applied here (and acted on): the leaderships this node still holds
                    // are this start's to serve.
                    cluster
                        .registered_since_start
                        .store(true, Ordering::Release);
                    let (host, port) = (&own.host, own.port);
                    tracing::info!(node_id = cluster.node_id, %host, port, "broker registered");
                    refill_producer_ids(&shard, &cluster).await;
                    interval
                }
                Err((_, message)) => {
                    tracing::debug!(%message, "broker registration not committed yet");
                    Duration::from_millis(100)
                }
            }
        } else {
            // Until a leader is known, look again soon: registration is what start-up waits on.
            if current {
                interval
            } else {
                Duration::from_millis(100)
            }
        };
        let mut tick = shard.timer.sleep(wait).fuse();
        futures_util::select! {
            _ = stop => return,
            _ = tick => {},
        }
    }
}

/// What this node registers: its advertised listeners and the format levels it reads.
struct OwnRegistration {
    host: String,
    port: i32,
    endpoints: Vec<ListenerEndpoint>,
    format_levels: LevelRange,
}

impl OwnRegistration {
    /// Whether the applied `registered` is this start's, as it would register now. Kafka's
    /// broker registers at every start: a registration left by an earlier start is not this
    /// one's (`apply_register_broker` ends that start's leaderships if it crashed). A fenced
    /// registration (heartbeats lost) is renewed.
    fn is_current(&self, registered: Option<&RegisteredBroker>, cluster: &ClusterHandle) -> bool {
        let registered_since_start = cluster.registered_since_start.load(Ordering::Acquire);
        registered.is_some_and(|b| {
            let this_start = match b.incarnation {
                Some(incarnation) => incarnation == cluster.incarnation,
                // Registered by this start below format level 5: once the level allows,
                // registered again to name its incarnation.
                None => registered_since_start && !names_incarnation(cluster),
            };
            b.host == self.host
                && b.port == self.port
                && b.endpoints == self.endpoints
                && b.format_levels == self.format_levels
                && !b.fenced
                && this_start
        })
    }

    /// The registration to propose, `registered` being the applied one.
    fn record(
        &self,
        registered: Option<RegisteredBroker>,
        cluster: &ClusterHandle,
    ) -> MetadataRecord {
        let named = names_incarnation(cluster);
        // The registration taken over cleanly: this start's own (naming its incarnation at
        // last), or the one the last start stopped cleanly at (its clean-stop mark).
        let (previous_epoch, previous_incarnation) =
            if cluster.registered_since_start.load(Ordering::Acquire) {
                let own = registered.filter(|b| b.incarnation.is_none());
                (own.map(|b| b.epoch), None)
            } else {
                let mark = cluster.clean_stop;
                (mark.map(|m| m.epoch), mark.map(|m| m.incarnation))
            };
        MetadataRecord::RegisterBroker {
            id: cluster.node_id,
            host: self.host.clone(),
            port: self.port,
            endpoints: self.endpoints.clone(),
            format_levels: self.format_levels,
            incarnation: named.then_some(cluster.incarnation),
            previous_epoch: previous_epoch.filter(|_| named),
            previous_incarnation: previous_incarnation.filter(|_| named),
        }
    }
}

/// Whether the finalized format level lets a registration name its start.
fn names_incarnation(cluster: &ClusterHandle) -> bool {
    cluster.format_level.load(Ordering::Acquire) >= format_level::INCARNATION_LEVEL
}

/// On the quorum leader of a fresh cluster: finalize the level every voter reads once all
/// registered (decision 0027, `ClusterState::bootstrap_target`).
async fn bootstrap_format_level(shard: &Rc<Shard>, cluster: &ClusterHandle) {
    if cluster.leader() != Some(cluster.node_id) || shard.replaying_metadata() {
        return;
    }
    let voters: Vec<i32> = cluster.voters.iter().map(|v| v.id).collect();
    let target = shard
        .metadata
        .load()
        .cluster
        .as_ref()
        .and_then(|c| c.bootstrap_target(&voters));
    let Some(level) = target else {
        return;
    };
    let record = MetadataRecord::FinalizeFeature {
        name: format_level::FEATURE.to_string(),
        level,
    };
    match cluster.propose(record).await {
        Ok(_) => tracing::info!(level, "new cluster: {} bootstrapped", format_level::FEATURE),
        Err((_, message)) => tracing::debug!(%message, "format level bootstrap not applied"),
    }
}

const UNSUPPORTED_VERSION: i16 = kafka_protocol::ResponseError::UnsupportedVersion.code();

/// The quorum refused this broker's registration because its binary cannot read the
/// finalized metadata format level (decision 0027): running on would skip records and
/// diverge, so the process stops with the reason (Kafka's broker stops likewise).
fn refused_exit(message: &str) -> ! {
    tracing::error!(%message, "broker registration refused: stopping");
    eprintln!("sluice: broker registration refused: {message}");
    std::process::exit(REGISTRATION_REFUSED_EXIT_CODE)
}

/// sysexits' EX_CONFIG: what to fix is the binary or its configuration, not a retry.
const REGISTRATION_REFUSED_EXIT_CODE: i32 = 78;

/// Runs `controlled_shutdown` on shard 0 from the thread stopping the broker, waiting at
/// most `timeout` for it.
pub(super) fn controlled_shutdown_within(broker: &super::BrokerHandle, timeout: Duration) {
    let (tx, rx) = flume::bounded(1);
    let task: super::ShardTask = Box::new(move |shard: Rc<Shard>| {
        Box::pin(async move {
            controlled_shutdown(&shard).await;
            let _ = tx.send(());
        })
    });
    if broker.send(0, task) {
        let _ = rx.recv_timeout(timeout);
    }
}

/// Controlled shutdown (Kafka's BrokerHeartbeat `wantShutDown`): the quorum fences this
/// broker and elects other in-sync replicas for the partitions it leads; this node applies
/// that (deposing its leaderships) before the proposal answers, so no acks=all write is
/// acknowledged here afterwards. Bounded by the caller.
async fn controlled_shutdown(shard: &Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    cluster
        .leaving
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let registered = shard
        .metadata
        .load()
        .cluster
        .as_ref()
        .and_then(|c| c.brokers.get(&cluster.node_id).map(|b| b.epoch));
    let record = MetadataRecord::ControlledShutdown {
        id: cluster.node_id,
        epoch: registered.filter(|_| names_incarnation(&cluster)),
    };
    match cluster.propose(record).await {
        Ok(_) => tracing::info!(
            node_id = cluster.node_id,
            "controlled shutdown: leaderships moved"
        ),
        Err((_, message)) => {
            tracing::warn!(%message, "controlled shutdown not committed: stopping anyway")
        }
    }
}

/// Asks the quorum for this broker's next block of producer ids when few are left: every
/// broker hands out ids from its own blocks, so no two producers anywhere share one.
async fn refill_producer_ids(shard: &Rc<Shard>, cluster: &ClusterHandle) {
    let left = shard
        .metadata_writer
        .as_deref()
        .map_or(i64::MAX, MetadataWriter::producer_ids_left);
    if left >= PRODUCER_IDS_LOW_WATER {
        return;
    }
    let record = MetadataRecord::AllocateProducerIds {
        broker: cluster.node_id,
        count: PRODUCER_ID_BLOCK,
    };
    if let Err((_, message)) = cluster.propose(record).await {
        tracing::debug!(%message, "producer id block not committed yet");
    }
}
