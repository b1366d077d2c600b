//! Replica fetchers (issue 17, decision 0012): a follower copies its partitions from their
//! leaders with Kafka's own Fetch protocol. Each shard runs, on its own compio loop, one
//! fetcher task per other broker for the follower partitions it owns (Kafka's
//! `num.replica.fetchers`, one per core), all of them in one fetch session (KIP-227), so an
//! idle partition costs nothing and a busy one adds its bytes only. The answer is appended
//! where it is received: no thread, no hand-off to another loop, no copy of the records when
//! the answer carries one partition.
//!
//! Owns: the connection to the leader, the session's state, each followed partition's fetch
//! offset between rounds. The shard layer appends what comes back (`Appender`, answered with
//! each partition's new log end offset) and the metadata snapshot says which partitions
//! this node follows from whom. Must not: touch partitions or logs (the shards do), or decide
//! leadership (the metadata log does).

use super::leader_link::LeaderLink;
use crate::config::inter_broker::InterBrokerSecurity;
use crate::metadata::{MetadataSnapshot, MetadataView};
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod failures;
mod session;
#[cfg(test)]
mod tests;

use failures::FailureLog;
use session::{Delayed, Session, next_epoch};

/// Kafka's `replica.fetch.wait.max.ms`: how long the leader may hold a fetch with no new data.
pub const REPLICA_FETCH_WAIT_MAX_MS: i32 = 500;
/// Kafka's `replica.fetch.max.bytes`: per partition, per fetch (the first batch always whole).
pub const REPLICA_FETCH_PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Kafka's `replica.fetch.response.max.bytes`: the whole answer.
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// Kafka's `replica.fetch.backoff.ms`: the pause after a failed fetch or with nothing to do.
pub const REPLICA_FETCH_BACKOFF: Duration = Duration::from_millis(100);
/// Kafka's `reconnect.backoff.max.ms`: failures in a row double the pause up to this (a
/// leader refusing the follower's login is not asked again ten times a second).
pub const REPLICA_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The same failure is logged again (at warn) at most this often.
pub const REPLICA_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// One partition's part of a fetch answer, for the shard that owns it.
#[derive(Debug)]
pub struct ReplicaItem {
    pub topic: String,
    pub partition: i32,
    /// The leader's record batches from this partition's fetch offset (None: only asking
    /// for the partition's log end offset). The log takes this buffer as it is.
    pub records: Option<BytesMut>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The leader's OffsetForLeaderEpoch answer (epoch, end offset) for this replica's
    /// newest epoch: the shard truncates the log's divergent tail first (KIP-101/279).
    pub truncate: Option<(i32, i64)>,
    /// The leader's log start, when it passed this replica's log end (retention or
    /// DeleteRecords while the replica was away): the shard empties the log and starts it
    /// there (Kafka's `truncateFullyAndStartAt`).
    pub reset_to: Option<i64>,
    /// Who answered, for an item carrying a leader's answer (None: a position query).
    pub source: Option<AnswerSource>,
}

/// Where and when a leader's answer was asked for. The shard applies it only while the
/// partition still has that leader in that leader epoch and, for records, its log still
/// ends at the fetch offset asked for (Kafka's fetcher checks the same before it appends):
/// an answer that was in flight while leadership moved (a paused leader answering its
/// parked fetches on resuming, with batches its successor never had) or while another
/// fetcher truncated or extended the log would otherwise be appended after a gap, or over
/// records of the new leader, leaving a hole or a divergent record in the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerSource {
    pub leader: i32,
    pub leader_epoch: i32,
    /// The log end the fetch asked from (records only).
    pub fetch_offset: Option<i64>,
}

impl ReplicaItem {
    fn position_query(topic: &str, partition: i32) -> ReplicaItem {
        ReplicaItem {
            topic: topic.to_string(),
            partition,
            records: None,
            high_watermark: -1,
            log_start_offset: -1,
            truncate: None,
            reset_to: None,
            source: None,
        }
    }
}

/// A follower partition's log end and newest leader epoch after the shard applied its
/// item; `None` when this node does not hold it as a follower (not opened yet, offline,
/// or no longer a follower), when the item was a stale answer (`AnswerSource`), or when
/// its truncation needs another round (KIP-279): the fetcher then forgets the partition,
/// and follows it again, if it still does, from an OffsetForLeaderEpoch check.
pub type ReplicaPosition = Option<ReplicaEnd>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaEnd {
    pub log_end_offset: i64,
    /// Reported to the leader with each fetch (Fetch v5+): its DeleteRecords waits for it.
    pub log_start_offset: i64,
    pub latest_epoch: i32,
}

/// What the next fetch asks for one partition: where to read from, the follower's own log
/// start (the leader's DeleteRecords is done when every live replica's passed it), and the
/// leader epoch the position was checked under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FetchPosition {
    fetch_offset: i64,
    log_start_offset: i64,
    /// Sent as the fetch's `current_leader_epoch` (KIP-320), so a leader whose epoch is
    /// another refuses the fetch itself (FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH). A
    /// new epoch in the metadata, even of the same leader, drops the position: the
    /// partition is checked again (OffsetForLeaderEpoch, KIP-101) before it is fetched, as
    /// Kafka's follower does on every leader epoch change; the leader may have lost and
    /// regained leadership while this replica kept a tail it never had.
    leader_epoch: i32,
}

/// Fetch v9 brought `current_leader_epoch`; older versions send -1 (not checked).
const FETCH_LEADER_EPOCH_VERSION: i16 = 9;

/// What a fetcher needs from the shard it runs on.
pub trait Appender {
    /// Whether this shard owns the partition (each shard fetches only its own).
    fn owns(&self, topic: &str, partition: i32) -> bool;
    /// Applies the items (appends, truncations, log-end queries); answers in item order.
    fn apply(&self, items: Vec<ReplicaItem>) -> impl Future<Output = Vec<ReplicaPosition>>;
    /// The shard is stopping: the fetcher ends.
    fn stopping(&self) -> bool;
}

/// Runs the fetcher of one leader broker on the current shard until `stop` is set or the
/// shard stops.
pub async fn run<A: Appender>(
    node_id: i32,
    leader: i32,
    security: Arc<InterBrokerSecurity>,
    metadata: MetadataView,
    appender: A,
    stop: Arc<AtomicBool>,
) {
    let mut fetcher = Fetcher::new(node_id, leader, security, metadata, appender);
    let mut failures = FailureLog::default();
    while !stop.load(Ordering::Relaxed) && !fetcher.appender.stopping() {
        match fetcher.round().await {
            Ok(true) => failures.in_a_row = 0,
            Ok(false) => {
                failures.in_a_row = 0;
                compio::time::sleep(REPLICA_FETCH_BACKOFF).await
            }
            Err(message) => {
                failures.note(leader, &message);
                fetcher.link = None;
                fetcher.session.reset();
                compio::time::sleep(failures.backoff()).await;
            }
        }
    }
}

type PartitionKey = (String, i32);

struct Fetcher<A> {
    node_id: i32,
    leader: i32,
    /// The inter-broker listener and its client security (decision 0021).
    security: Arc<InterBrokerSecurity>,
    metadata: MetadataView,
    appender: A,
    link: Option<LeaderLink>,
    session: Session,
    /// Partitions the leader refused, left out of fetches until their backoff ends.
    delayed: Delayed,
    /// Followed partitions from this leader and the next offset to fetch.
    offsets: BTreeMap<PartitionKey, FetchPosition>,
    /// The metadata snapshot `followed` was computed from (recomputed only when it changes:
    /// a scan over every assignment per fetch would grow with the cluster's partitions).
    seen: Option<Arc<MetadataSnapshot>>,
    followed: Vec<PartitionKey>,
    /// Newly followed partitions (a start, or a new leader) with their log end and newest
    /// epoch: each asks the leader OffsetForLeaderEpoch and truncates before it fetches.
    unchecked: Vec<(PartitionKey, ReplicaEnd)>,
    /// The leader's log start each partition's last answer carried: an answer with no
    /// records but a newer start (DeleteRecords, retention on an idle partition) still
    /// moves the follower's start.
    leader_starts: BTreeMap<PartitionKey, i64>,
}

impl<A: Appender> Fetcher<A> {
    /// A fetcher following nothing yet, with no link to its leader.
    fn new(
        node_id: i32,
        leader: i32,
        security: Arc<InterBrokerSecurity>,
        metadata: MetadataView,
        appender: A,
    ) -> Fetcher<A> {
        Fetcher {
            node_id,
            leader,
            security,
            metadata,
            appender,
            link: None,
            session: Session::default(),
            delayed: Delayed::default(),
            offsets: BTreeMap::new(),
            seen: None,
            followed: Vec::new(),
            unchecked: Vec::new(),
            leader_starts: BTreeMap::new(),
        }
    }

    /// One fetch and its append. `Ok(false)`: nothing to fetch from this leader now.
    async fn round(&mut self) -> Result<bool, String> {
        let Some((host, port)) = self.refresh_followed().await? else {
            return Ok(false);
        };
        if self.offsets.is_empty() && self.unchecked.is_empty() {
            return Ok(false);
        }
        if self.link.is_none() {
            let link = LeaderLink::connect(&host, port, self.node_id, &self.security).await?;
            self.session.reset();
            self.link = Some(link);
        }
        if !self.unchecked.is_empty() {
            self.truncate_unchecked().await?;
        }
        self.delayed.expire(Instant::now());
        if !self.has_fetchable() {
            return Ok(false);
        }
        let Some(version) = self.link.as_ref().map(|link| link.fetch_version) else {
            return Ok(false);
        };
        let request = self.next_request(version);
        let Some(link) = self.link.as_mut() else {
            return Ok(false);
        };
        // The metadata the request's partitions were chosen under (`refresh_followed`).
        let asked_under = self.seen.clone();
        crate::metrics::stage_trace::mark("fq", 0, self.leader as i64, 0, 0);
        let response = link.call(&request, version).await?;
        crate::metrics::stage_trace::mark("fv", 0, self.leader as i64, 0, 0);
        // A refused partition would be answered at once on every fetch: it sits out the
        // backoff, out of the session, while the others go on (`session`).
        let refused = self.take_answer(response, asked_under.as_deref()).await?;
        self.delayed
            .delay(refused, Instant::now() + REPLICA_FETCH_BACKOFF);
        Ok(true)
    }

    /// Brings `offsets` in line with the metadata: partitions of this shard newly followed
    /// from this leader get their log end offset from the shard, the others are dropped.
    /// Returns the leader's endpoint on the inter-broker listener (None while it is fenced
    /// or unknown; an error when it has no such listener).
    async fn refresh_followed(&mut self) -> Result<Option<(String, i32)>, String> {
        let snapshot = self.metadata.load_full();
        let Some(cluster) = snapshot.cluster.as_deref() else {
            return Ok(None);
        };
        let listener = self.security.listener.as_str();
        let address = match cluster.brokers.get(&self.leader) {
            Some(b) if !b.fenced => match b.endpoint(Some(listener)) {
                Some((host, port)) => (host.to_string(), port),
                None => {
                    self.offsets.clear();
                    return Err(format!(
                        "broker {} has no listener {listener} (inter_broker_listener_name)",
                        self.leader
                    ));
                }
            },
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
            let appender = &self.appender;
            self.followed = cluster
                .followed_from(self.node_id, self.leader)
                .into_iter()
                .filter(|(topic, partition)| appender.owns(topic, *partition))
                .collect();
            self.offsets.retain(|(topic, partition), p| {
                cluster.leader_epoch(topic, *partition) == p.leader_epoch
            });
            self.seen = Some(snapshot.clone());
        }
        let followed = &self.followed;
        self.offsets
            .retain(|key, _| followed.binary_search(key).is_ok());
        self.leader_starts
            .retain(|key, _| followed.binary_search(key).is_ok());
        self.delayed
            .retain(|key| followed.binary_search(key).is_ok());
        self.unchecked.clear();
        let new: Vec<PartitionKey> = followed
            .iter()
            .filter(|key| !self.offsets.contains_key(*key))
            .cloned()
            .collect();
        if !new.is_empty() {
            let items = new
                .iter()
                .map(|(topic, partition)| ReplicaItem::position_query(topic, *partition))
                .collect();
            let positions = self.appender.apply(items).await;
            for (key, position) in new.into_iter().zip(positions) {
                if let Some(end) = position {
                    self.unchecked.push((key, end));
                }
            }
        }
        Ok(Some(address))
    }

    /// Appends the answer's records on this shard and moves each fetch offset to the new
    /// log end; advances or resets the session. Returns the partitions the leader refused.
    async fn take_answer(
        &mut self,
        response: FetchResponse,
        asked_under: Option<&MetadataSnapshot>,
    ) -> Result<Vec<PartitionKey>, String> {
        let Some(answer) = self.read_answer(response)? else {
            return Ok(Vec::new());
        };
        let epochs = asked_under.and_then(|s| s.cluster.as_deref());
        let source = |topic: &str, partition: i32, fetch_offset: Option<i64>| {
            Some(AnswerSource {
                leader: self.leader,
                leader_epoch: epochs.map_or(-1, |c| c.leader_epoch(topic, partition)),
                fetch_offset,
            })
        };
        // The decoded response is gone: each partition's records are the only views left
        // of the received frame, so the log takes the first of them without a copy, and
        // the next after the previous one is copied out (an answer of one partition, the
        // steady state of a busy partition, is never copied).
        let mut items = Vec::with_capacity(answer.carrying.len());
        for raw in answer.carrying {
            let records = raw
                .records
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            // The key moves into the item: no copy of the topic name per answer.
            let key = (raw.topic, raw.partition);
            let asked_from = self.offsets.get(&key).map(|p| p.fetch_offset);
            items.push(ReplicaItem {
                source: source(&key.0, key.1, asked_from),
                topic: key.0,
                partition: key.1,
                records: Some(records),
                high_watermark: raw.high_watermark,
                log_start_offset: raw.log_start_offset,
                truncate: None,
                reset_to: None,
            });
        }
        for ((topic, partition), leader_start) in answer.behind_log_start {
            items.push(ReplicaItem {
                reset_to: Some(leader_start),
                source: source(&topic, partition, None),
                ..ReplicaItem::position_query(&topic, partition)
            });
        }
        for ((topic, partition), leader_start, high_watermark) in answer.idle {
            items.push(ReplicaItem {
                log_start_offset: leader_start.unwrap_or(-1),
                high_watermark,
                source: source(&topic, partition, None),
                ..ReplicaItem::position_query(&topic, partition)
            });
        }
        if items.is_empty() {
            return Ok(answer.refused);
        }
        self.apply_and_advance(items).await;
        Ok(answer.refused)
    }

    /// Has the shard apply `items` and moves each partition's fetch offset to its new log
    /// end; a partition the shard no longer holds as a follower is dropped from `offsets`.
    async fn apply_and_advance(&mut self, items: Vec<ReplicaItem>) {
        // Every item here carries a leader's answer: its source names the epoch it was
        // asked under, which the new position keeps.
        let keys: Vec<(PartitionKey, i32)> = items
            .iter()
            .map(|i| {
                let epoch = i.source.map_or(-1, |s| s.leader_epoch);
                ((i.topic.clone(), i.partition), epoch)
            })
            .collect();
        let positions = self.appender.apply(items).await;
        for ((key, leader_epoch), position) in keys.into_iter().zip(positions) {
            match position {
                Some(end) => {
                    if crate::metrics::stage_trace::enabled() {
                        let k = crate::metrics::stage_trace::key(&key.0, key.1);
                        let end_offset = end.log_end_offset;
                        crate::metrics::stage_trace::mark("fw", k, end_offset, 0, 0);
                    }
                    let position = FetchPosition {
                        fetch_offset: end.log_end_offset,
                        log_start_offset: end.log_start_offset,
                        leader_epoch,
                    };
                    self.offsets.insert(key, position);
                }
                None => {
                    self.offsets.remove(&key);
                }
            }
        }
    }

    /// The partitions of an answer that carry records, and whether any was refused. Takes
    /// the decoded response by value so that nothing of it outlives this call but the
    /// records themselves. `None`: the session was lost (the next fetch opens one).
    fn read_answer(&mut self, response: FetchResponse) -> Result<Option<Answer>, String> {
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
            return Ok(None);
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
        let mut answer = Answer {
            carrying: Vec::new(),
            behind_log_start: Vec::new(),
            idle: Vec::new(),
            refused: Vec::new(),
        };
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for p in topic.partitions {
                let key = (name.clone(), p.partition_index);
                if p.error_code == ResponseError::OffsetOutOfRange.code()
                    && self
                        .offsets
                        .get(&key)
                        .is_some_and(|ours| p.log_start_offset > ours.fetch_offset)
                {
                    // The leader no longer has the records we need next (retention moved
                    // its log start past our end while we were away): no truncation can
                    // help, we start over at its log start (Kafka's follower does the same
                    // after a ListOffsets; a Sluice leader's error answer carries it).
                    answer.behind_log_start.push((key, p.log_start_offset));
                    continue;
                }
                if RECHECK.contains(&p.error_code) {
                    // The leader's log is not where ours says (a newer epoch truncated past
                    // our end, or epochs moved): check and truncate again before fetching.
                    self.offsets.remove(&key);
                }
                if p.error_code != 0 {
                    answer.refused.push(key);
                    tracing::debug!(leader = self.leader, topic = %name, partition = p.partition_index, error = p.error_code, "replica fetch refused");
                    continue;
                }
                let start_moved = self
                    .leader_starts
                    .insert(key.clone(), p.log_start_offset)
                    .is_none_or(|before| p.log_start_offset > before);
                let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                    // No records, but news: the session names a partition only when
                    // something moved, so the high watermark goes to the shard too (an
                    // idle follower's stays current for a promotion or a checkpoint).
                    let moved_start =
                        (start_moved && p.log_start_offset > 0).then_some(p.log_start_offset);
                    if moved_start.is_some() || p.high_watermark > 0 {
                        answer.idle.push((key, moved_start, p.high_watermark));
                    }
                    continue;
                };
                answer.carrying.push(Fetched {
                    topic: name.clone(),
                    partition: p.partition_index,
                    records,
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                });
            }
        }
        Ok(Some(answer))
    }

    /// KIP-101/279 for the newly followed partitions: asks the leader where each one's
    /// newest epoch ends in its log, has the shard truncate past it, and starts fetching
    /// from the new log end. A partition the leader refuses (not the leader yet, an epoch
    /// it does not know) is checked again at the next round.
    async fn truncate_unchecked(&mut self) -> Result<(), String> {
        let unchecked = std::mem::take(&mut self.unchecked);
        let asked_under = self.seen.as_deref().and_then(|s| s.cluster.as_deref());
        let epoch_of = |topic: &str, partition: i32| {
            asked_under.map_or(-1, |c| c.leader_epoch(topic, partition))
        };
        let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
        for ((topic, partition), end) in &unchecked {
            let wanted = OffsetForLeaderPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(epoch_of(topic, *partition))
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
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let version = link.epoch_check_version;
        let response = link.call(&request, version).await?;
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
                    truncate: Some(*answer),
                    source: Some(AnswerSource {
                        leader: self.leader,
                        leader_epoch: epoch_of(&key.0, key.1),
                        fetch_offset: None,
                    }),
                    ..ReplicaItem::position_query(&key.0, key.1)
                })
            })
            .collect();
        self.apply_and_advance(items).await;
        // Refused ones are not in `offsets`: the next round's refresh checks them again.
        Ok(())
    }
}

/// The records of one partition of an answer, still a view of the received frame.
struct Fetched {
    topic: String,
    partition: i32,
    records: Bytes,
    high_watermark: i64,
    log_start_offset: i64,
}

struct Answer {
    carrying: Vec<Fetched>,
    /// Partitions whose next offset is below the leader's log start, with that start.
    behind_log_start: Vec<(PartitionKey, i64)>,
    /// Partitions answered without records: the leader's log start when it moved, and
    /// its high watermark.
    idle: Vec<(PartitionKey, Option<i64>, i64)>,
    /// Partitions answered with an error.
    refused: Vec<PartitionKey>,
}
