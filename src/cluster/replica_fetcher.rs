//! Replica fetchers (issue 17, stage 2, decision 0012): a follower copies its partitions
//! from their leaders with Kafka's own Fetch protocol, one thread and one connection per
//! leader broker, all the partitions it follows from that leader in one fetch session
//! (KIP-227), so the cost of an idle partition is nothing and a busy one adds its bytes only.
//!
//! Owns: the connection to the leader, the session's state, each followed partition's fetch
//! offset between rounds. The shard layer appends what comes back (`ReplicaWork`, answered
//! with each partition's new log end offset) and the metadata snapshot says which partitions
//! this node follows from whom. Must not: touch partitions or logs (the shards do), or decide
//! leadership (the metadata log does).

use crate::client::{ClientError, Connection, ConnectionConfig};
use crate::metadata::{MetadataSnapshot, MetadataView};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Kafka's `replica.fetch.wait.max.ms`: how long the leader may hold a fetch with no new data.
pub const REPLICA_FETCH_WAIT_MAX_MS: i32 = 500;
/// Kafka's `replica.fetch.max.bytes`: per partition, per fetch (the first batch always whole).
pub const REPLICA_FETCH_PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Kafka's `replica.fetch.response.max.bytes`: the whole answer.
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// Kafka's `replica.fetch.backoff.ms`: the pause after a failed fetch or with nothing to do.
pub const REPLICA_FETCH_BACKOFF: Duration = Duration::from_millis(100);
/// Longest a fetcher waits for its shard to append an answer before it drops the session
/// and starts again (a shard that stopped: the node is shutting down).
pub const REPLICA_APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Fetch answers the shard layer may have queued from all fetchers together (each fetcher
/// has at most one in flight, so this only bounds a burst at start-up).
pub const MAX_QUEUED_REPLICA_WORK: usize = 64;
/// The Fetch version the fetcher speaks: the highest `crate::client` negotiates, in which
/// the follower names itself with the request's `replica_id` (v15+ use `ReplicaState`; the
/// leader's handler takes both).
pub const REPLICA_FETCH_VERSION_MAX: i16 = 12;

/// One partition's part of a fetch answer, for the shard that owns it.
#[derive(Debug)]
pub struct ReplicaItem {
    pub topic: String,
    pub partition: i32,
    /// The leader's record batches from this partition's fetch offset (None: only asking
    /// for the partition's log end offset).
    pub records: Option<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The leader's OffsetForLeaderEpoch answer (epoch, end offset) for this replica's
    /// newest epoch: the shard truncates the log's divergent tail first (KIP-101/279).
    pub truncate: Option<(i32, i64)>,
}

/// A follower partition's log end and newest leader epoch after the shard applied its
/// item; `None` when this node does not hold it as a follower (not opened yet, offline,
/// or no longer a follower).
pub type ReplicaPosition = Option<ReplicaEnd>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaEnd {
    pub log_end_offset: i64,
    pub latest_epoch: i32,
}

/// A fetch answer handed to the shard layer; answered in item order.
pub struct ReplicaWork {
    pub leader: i32,
    pub items: Vec<ReplicaItem>,
    pub reply: flume::Sender<Vec<ReplicaPosition>>,
}

/// Starts one fetcher thread per other voter: every broker is a voter (combined mode), so
/// these are every leader this node may follow. They run until `stop` is set.
pub fn start(
    node_id: i32,
    leaders: Vec<i32>,
    metadata: MetadataView,
    shards: flume::Sender<ReplicaWork>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    for leader in leaders.into_iter().filter(|&id| id != node_id) {
        let fetcher = Fetcher {
            node_id,
            leader,
            metadata: metadata.clone(),
            shards: shards.clone(),
            stop: stop.clone(),
            connection: None,
            session: Session::default(),
            offsets: BTreeMap::new(),
            seen: None,
            followed: Vec::new(),
            unchecked: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("sluice-fetch-{leader}"))
            .spawn(move || fetcher.run())
            .map_err(|e| format!("replica fetcher for broker {leader}: {e}"))?;
    }
    Ok(())
}

type PartitionKey = (String, i32);

/// KIP-227 from the client's side: a full fetch opens the session, later fetches name only
/// the partitions whose fetch offset moved (and forget the ones no longer followed).
#[derive(Default)]
struct Session {
    id: i32,
    /// 0: the next fetch is a full one (opening a session).
    epoch: i32,
    /// The fetch offset the leader's session holds for each partition.
    sent: BTreeMap<PartitionKey, i64>,
}

impl Session {
    fn reset(&mut self) {
        *self = Session::default();
    }
}

struct Fetcher {
    node_id: i32,
    leader: i32,
    metadata: MetadataView,
    shards: flume::Sender<ReplicaWork>,
    stop: Arc<AtomicBool>,
    connection: Option<Connection>,
    session: Session,
    /// Followed partitions from this leader and the next offset to fetch.
    offsets: BTreeMap<PartitionKey, i64>,
    /// The metadata snapshot `followed` was computed from (recomputed only when it changes:
    /// a scan over every assignment per fetch would grow with the cluster's partitions).
    seen: Option<Arc<MetadataSnapshot>>,
    followed: Vec<PartitionKey>,
    /// Newly followed partitions (a start, or a new leader) with their log end and newest
    /// epoch: each asks the leader OffsetForLeaderEpoch and truncates before it fetches.
    unchecked: Vec<(PartitionKey, ReplicaEnd)>,
}

impl Fetcher {
    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.round() {
                Ok(true) => {}
                Ok(false) => std::thread::sleep(REPLICA_FETCH_BACKOFF),
                Err(message) => {
                    tracing::debug!(leader = self.leader, %message, "replica fetch failed");
                    self.connection = None;
                    self.session.reset();
                    std::thread::sleep(REPLICA_FETCH_BACKOFF);
                }
            }
        }
    }

    /// One fetch and its append. `Ok(false)`: nothing to fetch from this leader now.
    fn round(&mut self) -> Result<bool, String> {
        let Some(address) = self.refresh_followed()? else {
            return Ok(false);
        };
        if self.offsets.is_empty() && self.unchecked.is_empty() {
            return Ok(false);
        }
        if self.connection.is_none() {
            let config = ConnectionConfig {
                client_id: format!("sluice-replica-{}", self.node_id),
                ..ConnectionConfig::default()
            };
            let connection = Connection::connect(&address, &config).map_err(|e| e.to_string())?;
            self.session.reset();
            self.connection = Some(connection);
        }
        if !self.unchecked.is_empty() {
            self.truncate_unchecked()?;
        }
        if self.offsets.is_empty() {
            return Ok(false);
        }
        let request = self.next_request();
        let Some(connection) = self.connection.as_mut() else {
            return Ok(false);
        };
        let response = connection
            .call(&request)
            .map_err(|e: ClientError| e.to_string())?;
        // A refused partition stays in the session and is answered at once on every
        // fetch: back off rather than spin until metadata moves it.
        let refused = self.take_answer(response)?;
        Ok(!refused)
    }

    /// Brings `offsets` in line with the metadata: partitions newly followed from this
    /// leader get their log end offset from the shards, the others are dropped. Returns the
    /// leader's address (None while it is fenced or unknown).
    fn refresh_followed(&mut self) -> Result<Option<String>, String> {
        let snapshot = self.metadata.load_full();
        let Some(cluster) = snapshot.cluster.as_deref() else {
            return Ok(None);
        };
        let address = match cluster.brokers.get(&self.leader) {
            Some(b) if !b.fenced => format!("{}:{}", b.host, b.port),
            _ => {
                self.offsets.clear();
                return Ok(None);
            }
        };
        if !self
            .seen
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &snapshot))
        {
            self.followed = cluster.followed_from(self.node_id, self.leader);
            self.seen = Some(snapshot.clone());
        }
        let followed = &self.followed;
        self.offsets
            .retain(|key, _| followed.binary_search(key).is_ok());
        let new: Vec<ReplicaItem> = followed
            .iter()
            .filter(|key| !self.offsets.contains_key(*key))
            .map(|(topic, partition)| ReplicaItem {
                topic: topic.clone(),
                partition: *partition,
                records: None,
                high_watermark: -1,
                log_start_offset: -1,
                truncate: None,
            })
            .collect();
        self.unchecked.clear();
        if !new.is_empty() {
            let keys: Vec<PartitionKey> =
                new.iter().map(|i| (i.topic.clone(), i.partition)).collect();
            let positions = self.hand_to_shards(new)?;
            for (key, position) in keys.into_iter().zip(positions) {
                if let Some(end) = position {
                    self.unchecked.push((key, end));
                }
            }
        }
        Ok(Some(address))
    }

    fn next_request(&mut self) -> FetchRequest {
        let full = self.session.epoch == 0;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for ((topic, partition), offset) in &self.offsets {
            if !full && self.session.sent.get(&(topic.clone(), *partition)) == Some(offset) {
                continue;
            }
            let wanted = FetchPartition::default()
                .with_partition(*partition)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(REPLICA_FETCH_PARTITION_MAX_BYTES);
            match topics.last_mut() {
                Some(last) if last.topic.0.as_str() == topic => last.partitions.push(wanted),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![wanted]),
                ),
            }
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        if !full {
            for (topic, partition) in self.session.sent.keys() {
                if self.offsets.contains_key(&(topic.clone(), *partition)) {
                    continue;
                }
                match forgotten.last_mut() {
                    Some(last) if last.topic.0.as_str() == topic => {
                        last.partitions.push(*partition)
                    }
                    _ => forgotten.push(
                        ForgottenTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
        }
        self.session.sent = self.offsets.clone();
        FetchRequest::default()
            .with_replica_id(BrokerId(self.node_id))
            .with_max_wait_ms(REPLICA_FETCH_WAIT_MAX_MS)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_RESPONSE_MAX_BYTES)
            .with_isolation_level(0)
            .with_session_id(self.session.id)
            .with_session_epoch(self.session.epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten)
    }

    /// Hands the answer's records to the shards and moves each fetch offset to the new log
    /// end; advances or resets the session. Returns whether the leader refused a partition.
    fn take_answer(&mut self, response: FetchResponse) -> Result<bool, String> {
        const RECHECK: [i16; 3] = [
            ResponseError::OffsetOutOfRange.code(),
            ResponseError::FencedLeaderEpoch.code(),
            ResponseError::UnknownLeaderEpoch.code(),
        ];
        const SESSION_LOST: [i16; 2] = [
            ResponseError::FetchSessionIdNotFound.code(),
            ResponseError::InvalidFetchSessionEpoch.code(),
        ];
        if SESSION_LOST.contains(&response.error_code) {
            self.session.reset();
            return Ok(false);
        }
        if response.error_code != 0 {
            return Err(format!("fetch answered error {}", response.error_code));
        }
        if response.session_id == 0 {
            // The leader keeps no session for us (its cache is full): fetch in full.
            self.session.reset();
        } else {
            self.session.id = response.session_id;
            self.session.epoch = next_epoch(self.session.epoch);
        }
        let mut items = Vec::new();
        let mut refused = false;
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for p in topic.partitions {
                if RECHECK.contains(&p.error_code) {
                    // The leader's log is not where ours says (a newer epoch truncated past
                    // our end, or epochs moved): check and truncate again before fetching.
                    self.offsets.remove(&(name.clone(), p.partition_index));
                }
                if p.error_code != 0 {
                    refused = true;
                    tracing::debug!(leader = self.leader, topic = %name, partition = p.partition_index, error = p.error_code, "replica fetch refused");
                    continue;
                }
                items.push(ReplicaItem {
                    topic: name.clone(),
                    partition: p.partition_index,
                    records: p.records.filter(|r| !r.is_empty()),
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                    truncate: None,
                });
            }
        }
        let carrying: Vec<ReplicaItem> =
            items.into_iter().filter(|i| i.records.is_some()).collect();
        if carrying.is_empty() {
            return Ok(refused);
        }
        let keys: Vec<PartitionKey> = carrying
            .iter()
            .map(|i| (i.topic.clone(), i.partition))
            .collect();
        let positions = self.hand_to_shards(carrying)?;
        for (key, position) in keys.into_iter().zip(positions) {
            match position {
                Some(end) => {
                    self.offsets.insert(key, end.log_end_offset);
                }
                None => {
                    self.offsets.remove(&key);
                }
            }
        }
        Ok(refused)
    }

    /// KIP-101/279 for the newly followed partitions: asks the leader where each one's
    /// newest epoch ends in its log, has the shards truncate past it, and starts fetching
    /// from the new log end. A partition the leader refuses (not the leader yet, an epoch
    /// it does not know) is checked again at the next round.
    fn truncate_unchecked(&mut self) -> Result<(), String> {
        let unchecked = std::mem::take(&mut self.unchecked);
        let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
        for ((topic, partition), end) in &unchecked {
            let wanted = OffsetForLeaderPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(-1)
                .with_leader_epoch(end.latest_epoch);
            match topics.last_mut() {
                Some(last) if last.topic.0.as_str() == topic => last.partitions.push(wanted),
                _ => topics.push(
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![wanted]),
                ),
            }
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.node_id))
            .with_topics(topics);
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        let response = connection
            .call(&request)
            .map_err(|e: ClientError| e.to_string())?;
        let mut answers: BTreeMap<PartitionKey, (i32, i64)> = BTreeMap::new();
        for topic in response.topics {
            let name = topic.topic.0.to_string();
            for p in topic.partitions {
                if p.error_code == 0 {
                    answers.insert((name.clone(), p.partition), (p.leader_epoch, p.end_offset));
                } else {
                    tracing::debug!(leader = self.leader, topic = %name, partition = p.partition, error = p.error_code, "leader epoch check refused");
                }
            }
        }
        let items: Vec<ReplicaItem> = unchecked
            .iter()
            .filter_map(|(key, _)| {
                let answer = answers.get(key)?;
                Some(ReplicaItem {
                    topic: key.0.clone(),
                    partition: key.1,
                    records: None,
                    high_watermark: -1,
                    log_start_offset: -1,
                    truncate: Some(*answer),
                })
            })
            .collect();
        let keys: Vec<PartitionKey> = items
            .iter()
            .map(|i| (i.topic.clone(), i.partition))
            .collect();
        let positions = self.hand_to_shards(items)?;
        for (key, position) in keys.into_iter().zip(positions) {
            if let Some(end) = position {
                self.offsets.insert(key, end.log_end_offset);
            }
        }
        // Refused ones are not in `offsets`: the next round's refresh checks them again.
        Ok(())
    }

    fn hand_to_shards(&self, items: Vec<ReplicaItem>) -> Result<Vec<ReplicaPosition>, String> {
        let (reply, answer) = flume::bounded(1);
        let work = ReplicaWork {
            leader: self.leader,
            items,
            reply,
        };
        self.shards
            .send_timeout(work, REPLICA_APPEND_TIMEOUT)
            .map_err(|_| "the shards stopped taking replica appends".to_string())?;
        answer
            .recv_timeout(REPLICA_APPEND_TIMEOUT)
            .map_err(|_| "no answer from the shards to a replica append".to_string())
    }
}

/// KIP-227: session epochs run 1..=i32::MAX and wrap to 1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}
