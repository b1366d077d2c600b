//! The controller thread: drives the Raft library (tikv `raft`, sans-IO) for the metadata
//! quorum. It ticks the node, steps messages from the transport, proposes records, persists
//! each Ready (entries and hard state fdatasync'ed before the messages that depend on them
//! leave), and hands committed entries, in log order, to the state machine on shard 0. As
//! the leader it also tracks broker heartbeats and proposes fencing when one goes silent.
//! Must not: apply records itself (shard 0's writer is the only writer of the snapshot).

use super::log_store::{DurableLog, MAX_UNCOMPACTED_ENTRIES};
use super::transport::{self, Inbound, PeerAddress, PeerLink};
use super::{Committed, QuorumStatus, VoterStatus, raft_id};
use crate::config::quorum::QuorumVoter;
use crate::metadata::replicated::{MetadataRecord, Proposal};
use arc_swap::ArcSwap;
use raft::eraftpb::{Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One Raft tick. Elections time out after `ELECTION_TICKS` (1 s, Kafka's
/// `controller.quorum.election.timeout.ms`), leaders heartbeat every `HEARTBEAT_TICKS`.
pub const TICK: Duration = Duration::from_millis(100);
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
/// Raft messages, proposals and heartbeats queued for the controller thread.
pub const MAX_QUEUED_EVENTS: usize = 8192;
/// Bytes of entries one append message may carry.
const MAX_APPEND_BYTES: u64 = 1024 * 1024;
/// Append messages in flight to one follower.
const MAX_INFLIGHT_APPENDS: usize = 256;

pub enum ControllerEvent {
    Inbound(Inbound),
    /// A record from this node's state machine side; `sequence` names its waiter (0: none).
    Propose {
        sequence: u64,
        data: Vec<u8>,
    },
    /// The state machine applied everything up to `index`: snapshot it and compact the log.
    Compact {
        index: u64,
        image: Vec<u8>,
    },
    Shutdown,
}

pub struct ControllerStart {
    pub node_id: i32,
    pub voters: Vec<QuorumVoter>,
    pub store: DurableLog,
    pub events: flume::Receiver<ControllerEvent>,
    pub committed: flume::Sender<Committed>,
    pub status: Arc<ArcSwap<QuorumStatus>>,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Mutual TLS to the other controllers (`controller_security_protocol = SSL`).
    pub tls: Option<Arc<crate::config::controller_security::ControllerTls>>,
}

struct Controller {
    node_id: i32,
    node: RawNode<DurableLog>,
    peers: HashMap<u64, PeerLink>,
    committed: flume::Sender<Committed>,
    status: Arc<ArcSwap<QuorumStatus>>,
    voters: Vec<QuorumVoter>,
    session_timeout: Duration,
    /// Leader only: when each broker was last heard from, and the fencing state this
    /// leader has proposed for it.
    last_heartbeat: HashMap<i32, Instant>,
    proposed_fenced: HashMap<i32, bool>,
    leader_since: Option<Instant>,
    /// Proposals made since the leader last changed, oldest first. A proposal forwarded to a
    /// leader that then dies is lost without a word; when the leader changes, these are
    /// answered `Dropped` (retriable) instead of leaving their proposers to time out.
    /// Ones already applied were answered then, so their `Dropped` is ignored.
    in_flight: std::collections::VecDeque<(u64, Instant)>,
    last_leader: u64,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Runs the controller until `Shutdown` (or every sender is gone).
pub fn run(start: ControllerStart) -> Result<(), String> {
    let applied = start.store.snapshot_index();
    if applied > 0 {
        let image = start.store.snapshot_data().to_vec();
        let _ = start.committed.send(Committed::Snapshot {
            index: applied,
            image,
        });
    }
    let config = raft::Config {
        id: raft_id(start.node_id),
        election_tick: ELECTION_TICKS,
        heartbeat_tick: HEARTBEAT_TICKS,
        applied,
        max_size_per_msg: MAX_APPEND_BYTES,
        max_inflight_msgs: MAX_INFLIGHT_APPENDS,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    config.validate().map_err(|e| e.to_string())?;
    let node = RawNode::new(&config, start.store, &logger()).map_err(|e| e.to_string())?;
    let peers = start
        .voters
        .iter()
        .filter(|v| v.id != start.node_id)
        .map(|v| {
            let peer = PeerAddress {
                id: v.id,
                host: v.host.clone(),
                address: v.address(),
            };
            (raft_id(v.id), PeerLink::start(peer, start.tls.clone()))
        })
        .collect();
    let mut controller = Controller {
        node_id: start.node_id,
        node,
        peers,
        committed: start.committed,
        status: start.status,
        voters: start.voters,
        session_timeout: start.session_timeout,
        last_heartbeat: HashMap::new(),
        proposed_fenced: HashMap::new(),
        leader_since: None,
        in_flight: std::collections::VecDeque::new(),
        last_leader: 0,
    };
    let mut next_tick = Instant::now() + TICK;
    let mut next_heartbeat = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_heartbeat {
            let frame = transport::heartbeat_frame(controller.node_id);
            for link in controller.peers.values() {
                link.send(frame.clone());
            }
            next_heartbeat = now + start.heartbeat_interval;
        }
        let wait = next_tick.saturating_duration_since(now);
        match start.events.recv_timeout(wait) {
            Ok(ControllerEvent::Shutdown) | Err(flume::RecvTimeoutError::Disconnected) => break,
            Ok(event) => controller.handle(event)?,
            Err(flume::RecvTimeoutError::Timeout) => {}
        }
        // Drain whatever else is queued before the next Ready, so one fsync covers it all.
        while let Ok(event) = start.events.try_recv() {
            match event {
                ControllerEvent::Shutdown => return Ok(()),
                event => controller.handle(event)?,
            }
        }
        if Instant::now() >= next_tick {
            controller.node.tick();
            controller.check_brokers();
            next_tick += TICK;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + TICK;
            }
        }
        controller.on_ready()?;
        controller.drop_proposals_of_a_lost_leader();
        controller.publish_status();
    }
    Ok(())
}

impl Controller {
    fn handle(&mut self, event: ControllerEvent) -> Result<(), String> {
        match event {
            ControllerEvent::Inbound(Inbound::Raft(message)) => {
                // A message from a node that is not a voter, or stale, is simply ignored.
                let _ = self.node.step(*message);
            }
            ControllerEvent::Inbound(Inbound::Heartbeat { from }) => {
                self.last_heartbeat.insert(from, Instant::now());
            }
            ControllerEvent::Propose { sequence, data } => {
                let full = self.node.store().uncompacted_entries() >= MAX_UNCOMPACTED_ENTRIES;
                if full || self.node.propose(Vec::new(), data).is_err() {
                    let _ = self.committed.send(Committed::Dropped { sequence });
                } else if sequence != 0 {
                    let now = Instant::now();
                    while self
                        .in_flight
                        .front()
                        .is_some_and(|(_, at)| now.duration_since(*at) > super::PROPOSAL_TIMEOUT)
                    {
                        self.in_flight.pop_front();
                    }
                    self.in_flight.push_back((sequence, now));
                }
            }
            ControllerEvent::Compact { index, image } => {
                self.node
                    .mut_store()
                    .compact(index, image)
                    .map_err(|e| e.to_string())?;
            }
            ControllerEvent::Shutdown => {}
        }
        Ok(())
    }

    fn send(&self, messages: Vec<Message>) {
        for message in messages {
            if let Some(link) = self.peers.get(&message.to) {
                link.send(transport::raft_frame(&message));
            }
        }
    }

    fn deliver(&self, entries: Vec<Entry>) {
        for entry in entries {
            // Configuration changes are not used (the voter set is static). Empty entries
            // (a new leader's) are handed on too: they move the applied index, which tells
            // a restarted node when it has caught up with the log.
            if entry.get_entry_type() != EntryType::EntryNormal {
                continue;
            }
            let _ = self.committed.send(Committed::Entry {
                index: entry.index,
                data: entry.data.to_vec(),
            });
        }
    }

    fn on_ready(&mut self) -> Result<(), String> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut ready = self.node.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let (index, image) = (snapshot.get_metadata().index, snapshot.get_data().to_vec());
            self.node
                .mut_store()
                .install_snapshot(snapshot)
                .map_err(|e| e.to_string())?;
            let _ = self.committed.send(Committed::Snapshot { index, image });
        }
        self.node
            .mut_store()
            .persist(ready.entries(), ready.hs())
            .map_err(|e| e.to_string())?;
        self.send(ready.take_persisted_messages());
        self.deliver(ready.take_committed_entries());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit);
        }
        self.send(light.take_messages());
        self.deliver(light.take_committed_entries());
        self.node.advance_apply();
        Ok(())
    }

    /// When the leader changed, every proposal made before may have gone to the old one.
    fn drop_proposals_of_a_lost_leader(&mut self) {
        let leader = self.node.raft.leader_id;
        if leader == self.last_leader {
            return;
        }
        self.last_leader = leader;
        for (sequence, _) in self.in_flight.drain(..) {
            let _ = self.committed.send(Committed::Dropped { sequence });
        }
    }

    /// Leader only: a broker silent for the session timeout is fenced, one heard again is
    /// unfenced. Each leader proposes a change once per transition it sees.
    fn check_brokers(&mut self) {
        let now = Instant::now();
        if self.node.raft.state != StateRole::Leader {
            self.leader_since = None;
            self.proposed_fenced.clear();
            return;
        }
        let since = *self.leader_since.get_or_insert(now);
        self.last_heartbeat.insert(self.node_id, now);
        let mut records = Vec::new();
        for voter in &self.voters {
            let heard = self.last_heartbeat.get(&voter.id).copied();
            let alive = heard.is_some_and(|t| now.duration_since(t) < self.session_timeout);
            // A new leader gives every broker one session to be heard before fencing it.
            if !alive && now.duration_since(since) < self.session_timeout {
                continue;
            }
            if self.proposed_fenced.get(&voter.id) != Some(&!alive) {
                self.proposed_fenced.insert(voter.id, !alive);
                records.push(if alive {
                    MetadataRecord::UnfenceBroker { id: voter.id }
                } else {
                    MetadataRecord::FenceBroker { id: voter.id }
                });
            }
        }
        for record in records {
            let proposal = Proposal {
                origin: self.node_id,
                sequence: 0,
                record,
            };
            let _ = self.node.propose(Vec::new(), proposal.encode());
        }
    }

    fn publish_status(&self) {
        let raft = &self.node.raft;
        let leader = (raft.leader_id != 0).then(|| raft.leader_id as i32 - 1);
        let voters = self
            .voters
            .iter()
            .map(|v| {
                let progress = raft.prs().get(raft_id(v.id));
                VoterStatus {
                    id: v.id,
                    matched: progress.map_or(0, |p| p.matched),
                    recent_active: progress.is_some_and(|p| p.recent_active),
                }
            })
            .collect();
        let status = QuorumStatus {
            leader,
            term: raft.term,
            commit: raft.raft_log.committed,
            last_index: raft.raft_log.last_index(),
            is_leader: raft.state == StateRole::Leader,
            voters,
        };
        if **self.status.load() != status {
            self.status.store(Arc::new(status));
        }
    }
}
