//! Cluster mode, stage 1 (issue 17, decision 0008): the Raft metadata quorum every node
//! takes part in (KRaft's combined mode: each node is a controller voter and a broker).
//!
//! Owns: the controller thread (`controller`: tikv's `raft` library driven by our loop),
//! its durable storage (`log_store`), the framed TCP transport between controller
//! listeners (`transport`), the replica fetchers that copy followed partitions from their
//! leaders (`replica_fetcher`, stage 2), the links shards use for transaction traffic
//! between brokers (`broker_channel`, decision 0022), and `ClusterHandle`, through which
//! shards propose records and
//! read the quorum's state. Committed entries go, in log order, to one apply loop on shard 0
//! (`shard::cluster_apply`), the only writer of the metadata snapshot in cluster mode.
//! Must not: apply records or touch partitions (shard layer), or run on a single node.

pub mod broker_channel;
pub mod clean_stop;
pub mod controller;
mod leader_link;
mod link_stream;
pub mod log_store;
pub mod replica_fetcher;
pub mod throttle;
pub mod transport;

use crate::config::quorum::QuorumVoter;
use crate::metadata::replicated::{Applied, MetadataRecord, Proposal};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a proposer waits for its record to be committed and applied before answering
/// REQUEST_TIMED_OUT (a leader that died with the proposal, a partitioned quorum).
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Proposals one node may have waiting at once; more are answered NOT_CONTROLLER, which
/// clients retry after a back-off.
pub const MAX_PENDING_PROPOSALS: usize = 1024;

/// Kafka node ids start at 0; Raft reserves 0 for "nobody".
pub fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or(0) + 1
}

/// What the controller hands the state machine, in log order.
#[derive(Debug)]
pub enum Committed {
    Entry {
        index: u64,
        data: Vec<u8>,
    },
    /// The whole state at `index` (restart from a snapshot, or a leader's snapshot).
    Snapshot {
        index: u64,
        image: Vec<u8>,
    },
    /// A proposal this node made was not accepted (no leader known, log full).
    Dropped {
        sequence: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VoterStatus {
    pub id: i32,
    /// Leader only: the highest log index known replicated on this voter.
    pub matched: u64,
    pub recent_active: bool,
}

/// The quorum as this node sees it, for DescribeQuorum, DescribeCluster and `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumStatus {
    pub leader: Option<i32>,
    pub term: u64,
    pub commit: u64,
    pub last_index: u64,
    pub is_leader: bool,
    pub voters: Vec<VoterStatus>,
}

/// A record's answer: what it changed, or the Kafka error code and message.
pub type ProposalResult = Result<Applied, (i16, String)>;

/// Shared by every shard of a cluster-mode node.
pub struct ClusterHandle {
    pub node_id: i32,
    pub voters: Vec<QuorumVoter>,
    pub status: Arc<ArcSwap<QuorumStatus>>,
    events: flume::Sender<controller::ControllerEvent>,
    next_sequence: AtomicU64,
    waiters: Mutex<HashMap<u64, futures_channel::oneshot::Sender<ProposalResult>>>,
    /// Set at shutdown: the shards' replica fetchers stop after their current round.
    pub replication_stop: Arc<AtomicBool>,
    /// Set by a controlled shutdown: this broker does not register (unfence) itself again.
    pub leaving: AtomicBool,
    /// Set once this node applied a `CatchUp` record it proposed after its start: every
    /// record committed before the start is applied, so its state is no older than the
    /// cluster's was then (until this, it coordinates no group: `shard::group_offsets`).
    pub caught_up_since_start: AtomicBool,
    /// The finalized metadata format level as last applied here (decision 0027): a record
    /// of a later level is refused before it is proposed.
    pub format_level: AtomicI16,
    /// Kafka's `follower.replication.throttled.rate` over every shard's replica fetchers.
    pub follower_throttle: throttle::ReplicaThrottle,
    /// This start of the process, as its registration names it (random, like Kafka's
    /// incarnation id): a registration with another one is a later or earlier start.
    pub incarnation: u64,
    /// Set once this start's registration is applied here. Until then the node serves no
    /// partition as its leader (`Shard::led`): its metadata may still name it leader in an
    /// epoch begun before it stopped, which its registration is what ends.
    pub registered_since_start: AtomicBool,
    /// The last start's clean stop (`clean_stop::take`), named in this start's
    /// registration.
    pub clean_stop: Option<clean_stop::Mark>,
    /// Set by a shard that could not close a partition cleanly or holds one offline: this
    /// stop writes no clean-stop mark.
    pub unclean_stop: AtomicBool,
    data_dir: std::path::PathBuf,
}

fn not_controller(message: &str) -> (i16, String) {
    (
        kafka_protocol::ResponseError::NotController.code(),
        message.to_string(),
    )
}

impl ClusterHandle {
    /// Proposes `record` and waits until this node has applied it (and acted on it).
    pub async fn propose(&self, record: MetadataRecord) -> ProposalResult {
        let finalized = self.format_level.load(Ordering::Acquire);
        crate::metadata::format_level::check_record_level(&record, finalized)
            .map_err(|e| (e.kafka_error_code(), e.to_string()))?;
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = futures_channel::oneshot::channel();
        {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if waiters.len() >= MAX_PENDING_PROPOSALS {
                return Err(not_controller("too many metadata changes in flight"));
            }
            waiters.insert(sequence, tx);
        }
        let data = Proposal {
            origin: self.node_id,
            sequence,
            record,
        }
        .encode();
        let event = controller::ControllerEvent::Propose { sequence, data };
        if self.events.send_async(event).await.is_err() {
            self.forget(sequence);
            return Err(not_controller("the controller has stopped"));
        }
        match compio::time::timeout(PROPOSAL_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(not_controller("the controller has stopped")),
            Err(_) => {
                self.forget(sequence);
                Err((
                    kafka_protocol::ResponseError::RequestTimedOut.code(),
                    "the metadata change was not committed in time".into(),
                ))
            }
        }
    }

    fn forget(&self, sequence: u64) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.remove(&sequence);
    }

    /// Answers the proposer's waiter (called by the apply loop on shard 0).
    pub fn complete(&self, sequence: u64, result: ProposalResult) {
        let waiter = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            waiters.remove(&sequence)
        };
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    }

    /// Hands the controller a snapshot of the applied state at `index`.
    pub fn compact(&self, index: u64, image: Vec<u8>) {
        let _ = self
            .events
            .try_send(controller::ControllerEvent::Compact { index, image });
    }

    pub fn leader(&self) -> Option<i32> {
        self.status.load().leader
    }

    /// Whether this node has applied everything its controller knows to be committed
    /// (false while a restarted node replays the log: its metadata is stale).
    pub fn caught_up(&self, applied_index: u64) -> bool {
        let status = self.status.load();
        status.leader.is_some() && applied_index >= status.commit
    }

    pub fn shutdown(&self) {
        self.replication_stop.store(true, Ordering::Relaxed);
        let _ = self.events.send(controller::ControllerEvent::Shutdown);
    }

    /// After every shard stopped: the clean-stop mark at `broker_epoch` (this node's
    /// registration as last applied here), unless this start never registered or a shard
    /// reported a partition not closed cleanly.
    pub fn mark_clean_stop(&self, broker_epoch: i64) {
        // A start that never registered holds the last start's epoch, which may have ended
        // in a crash: vouching for it would let the next start skip that crash's elections.
        if !self.registered_since_start.load(Ordering::Acquire) {
            tracing::info!("this start never registered: no clean-stop mark");
            return;
        }
        if self.unclean_stop.load(Ordering::Acquire) {
            tracing::warn!("a partition did not close cleanly: no clean-stop mark");
            return;
        }
        let mark = clean_stop::Mark {
            epoch: broker_epoch,
            incarnation: self.incarnation,
        };
        if let Err(e) = clean_stop::write(&self.data_dir, mark) {
            tracing::warn!(error = %e, "clean-stop mark not written: the next start counts as after a crash");
        }
    }
}

/// The cluster id every node derives from the same voter list (no formatting step needed).
pub fn cluster_id(voters: &[QuorumVoter]) -> String {
    let mut ids: Vec<String> = voters
        .iter()
        .map(|v| format!("{}@{}", v.id, v.address()))
        .collect();
    ids.sort();
    let digest = crc32c::crc32c(ids.join(",").as_bytes());
    let second = crc32c::crc32c_append(digest, b"sluice-cluster");
    format!("sluice-{digest:08x}{second:08x}")
}

/// Where this process numbers its proposals from. The log keeps the proposals of this
/// node's earlier runs with their (origin, sequence); replayed after a restart, an old
/// entry whose sequence a new proposal also had would complete that proposal before it
/// was even applied (seen: the start-up catch-up "done" while the commits before it were
/// still being replayed, so a restarted coordinator served offsets older than the ones
/// acknowledged). A random start in [1, 2^63) makes a reused number as likely as two
/// random 63-bit draws meeting.
fn first_sequence() -> u64 {
    (rand::random::<u64>() >> 1).max(1)
}

pub struct ClusterStart {
    pub node_id: i32,
    pub voters: Vec<QuorumVoter>,
    pub controller_listen: std::net::SocketAddr,
    pub data_dir: std::path::PathBuf,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// `follower_replication_throttled_rate`, bytes per second.
    pub follower_throttled_rate: u64,
    /// Mutual TLS between the controllers (`controller_security_protocol = SSL`).
    pub controller_tls: Option<Arc<crate::config::controller_security::ControllerTls>>,
}

/// Opens the Raft storage, binds the controller listener and starts the controller
/// thread. Returns the handle and the stream of committed entries for shard 0.
pub fn start(
    start: ClusterStart,
) -> Result<(Arc<ClusterHandle>, flume::Receiver<Committed>), String> {
    let store_dir = start.data_dir.join("meta").join("raft");
    let voter_ids: Vec<u64> = start.voters.iter().map(|v| raft_id(v.id)).collect();
    let store = log_store::DurableLog::open(Path::new(&store_dir), &voter_ids)
        .map_err(|e| e.to_string())?;
    let listener = std::net::TcpListener::bind(start.controller_listen)
        .map_err(|e| format!("controller_listen {}: {e}", start.controller_listen))?;
    let (events_tx, events_rx) = flume::bounded(controller::MAX_QUEUED_EVENTS);
    let (committed_tx, committed_rx) = flume::unbounded();
    let status = Arc::new(ArcSwap::from_pointee(QuorumStatus::default()));
    let inbound_events = events_tx.clone();
    let inbound_tls = start.controller_tls.clone();
    std::thread::Builder::new()
        .name("sluice-ctl-listen".into())
        .spawn(move || {
            transport::serve_inbound(listener, inbound_tls, move |inbound| {
                inbound_events
                    .send(controller::ControllerEvent::Inbound(inbound))
                    .is_ok()
            })
        })
        .map_err(|e| e.to_string())?;
    let run = controller::ControllerStart {
        node_id: start.node_id,
        voters: start.voters.clone(),
        store,
        events: events_rx,
        committed: committed_tx,
        status: status.clone(),
        session_timeout: start.session_timeout,
        heartbeat_interval: start.heartbeat_interval,
        tls: start.controller_tls.clone(),
    };
    std::thread::Builder::new()
        .name("sluice-controller".into())
        .spawn(move || {
            if let Err(e) = controller::run(run) {
                // Raft storage that cannot be written must not keep voting: stop whole, as
                // a panic does, so the service manager restarts the node and recovery runs.
                tracing::error!(error = %e, "metadata controller failed: aborting the node");
                std::process::abort();
            }
        })
        .map_err(|e| e.to_string())?;
    let handle = Arc::new(ClusterHandle {
        node_id: start.node_id,
        voters: start.voters,
        status,
        events: events_tx,
        next_sequence: AtomicU64::new(first_sequence()),
        waiters: Mutex::new(HashMap::new()),
        replication_stop: Arc::new(AtomicBool::new(false)),
        leaving: AtomicBool::new(false),
        caught_up_since_start: AtomicBool::new(false),
        format_level: AtomicI16::new(crate::metadata::format_level::LEGACY_LEVEL),
        follower_throttle: throttle::ReplicaThrottle::new(start.follower_throttled_rate),
        incarnation: rand::random(),
        registered_since_start: AtomicBool::new(false),
        clean_stop: clean_stop::take(&start.data_dir),
        unclean_stop: AtomicBool::new(false),
        data_dir: start.data_dir,
    });
    Ok((handle, committed_rx))
}
