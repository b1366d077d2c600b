//! The follower's side of a fetch session (KIP-227), and which partitions a fetch leaves out.
//!
//! A partition the leader refuses (UNKNOWN_TOPIC_OR_PARTITION while a deletion reaches the
//! brokers, NOT_LEADER_OR_FOLLOWER during a leader change, an epoch to check again) is left
//! out of the fetches for `REPLICA_FETCH_BACKOFF` and forgotten in the leader's session,
//! while the leader's other partitions go on being fetched: Kafka's fetcher thread delays
//! only the partitions with errors (`delayPartitions`). The fetcher used to pause whole for
//! any refusal, so deleting one RF=3 topic stalled the acks=all produces of every other
//! partition following the same leader by the pause (the leader answers
//! UNKNOWN_TOPIC_OR_PARTITION for the deleted one until the follower applies the delete too):
//! with the deleted files' page cache freed before the e2e run started, an e2e run at 5,000
//! records/s right after such a delete still peaked at 98-106 ms, against 6-8 ms without a
//! delete (perf/RESULTS.md, "Session 32").

use super::{
    FETCH_LEADER_EPOCH_VERSION, FetchPosition, Fetcher, PartitionKey,
    REPLICA_FETCH_PARTITION_MAX_BYTES, REPLICA_FETCH_RESPONSE_MAX_BYTES, REPLICA_FETCH_WAIT_MAX_MS,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Instant;

/// KIP-227 from the client's side: a full fetch opens the session, later fetches name only
/// the partitions whose fetch offset moved (and forget the ones no longer fetched).
#[derive(Default)]
pub(super) struct Session {
    pub(super) id: i32,
    /// 0: the next fetch is a full one (opening a session).
    pub(super) epoch: i32,
    /// The fetch offset and log start the leader's session holds for each partition.
    pub(super) sent: BTreeMap<PartitionKey, FetchPosition>,
}

impl Session {
    pub(super) fn reset(&mut self) {
        *self = Session::default();
    }
}

/// KIP-227: session epochs run 1..=i32::MAX and wrap to 1.
pub(super) fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

/// Refused partitions and when each may be fetched again. Holds only followed partitions:
/// `retain` drops the others with the fetcher's positions.
#[derive(Default, Debug)]
pub(super) struct Delayed {
    until: BTreeMap<PartitionKey, Instant>,
}

impl Delayed {
    pub(super) fn delay(&mut self, keys: Vec<PartitionKey>, until: Instant) {
        for key in keys {
            self.until.insert(key, until);
        }
    }

    /// Ends the delays due by `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        self.until.retain(|_, until| *until > now);
    }

    pub(super) fn holds(&self, key: &PartitionKey) -> bool {
        self.until.contains_key(key)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&PartitionKey) -> bool) {
        self.until.retain(|key, _| keep(key));
    }
}

impl<A: super::Appender> Fetcher<A> {
    /// Whether any held position is not delayed (else the round waits out the backoff).
    pub(super) fn has_fetchable(&self) -> bool {
        self.offsets.keys().any(|key| !self.delayed.holds(key))
    }

    /// The next Fetch: every position not delayed (a full fetch) or those that moved since
    /// the session last heard of them, and the partitions to forget (no longer followed, or
    /// delayed). Records what the leader's session holds after it.
    pub(super) fn next_request(&mut self, version: i16) -> FetchRequest {
        let full = self.session.epoch == 0;
        let sends_epoch = version >= FETCH_LEADER_EPOCH_VERSION;
        let fetched: BTreeMap<PartitionKey, FetchPosition> = self
            .offsets
            .iter()
            .filter(|(key, _)| !self.delayed.holds(key))
            .map(|(key, position)| (key.clone(), *position))
            .collect();
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (key, position) in &fetched {
            if !full && self.session.sent.get(key) == Some(position) {
                continue;
            }
            let (topic, partition) = key;
            let wanted = FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(if sends_epoch {
                    position.leader_epoch
                } else {
                    -1
                })
                .with_fetch_offset(position.fetch_offset)
                .with_log_start_offset(position.log_start_offset)
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
                if fetched.contains_key(&(topic.clone(), *partition)) {
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
        self.session.sent = fetched;
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
}
