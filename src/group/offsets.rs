//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and retention (KIP-211), plus
//! the pure helpers that shape OffsetFetch across its versions.
//!
//! Owns: which commits and deletions are accepted and the wire answers to them; an answer
//! says "done" only after the records are durable. Must not: write files itself (records go
//! through `enqueue` to `offset_log_writer`) or hold the `groups` borrow across an `.await`.

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::{GroupCoordinator, MAX_GROUPS_PER_SHARD};
use super::offset_log::{LogRecord, OffsetEntry};
use super::offset_log_writer::{WriteAck, WriteError};
use super::state::{Group, GroupState};
use super::wire::sb;

/// Kafka's `offset.metadata.max.bytes`: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;
/// Kafka's longest legal topic name; longer names never reach the offsets log (whose
/// records are bounded by `offset_log::MAX_RECORD_PAYLOAD_BYTES`).
pub const MAX_TOPIC_NAME_BYTES: usize = 249;

/// Topics and their partitions asked for by OffsetFetch; `None` at the use site means all.
pub type TopicPartitions = Vec<(String, Vec<i32>)>;

/// A partition of an OffsetCommit: accepted for the log, or refused with an error code.
type PartitionOutcome = (i32, Result<(), i16>);

/// Per topic of an OffsetCommit: each partition's outcome, in request order.
type CommitOutcome = Vec<(TopicName, Vec<PartitionOutcome>)>;

/// Per topic of an OffsetDelete: each partition's error code (0: deleted, or had nothing).
type DeleteDecisions = Vec<(TopicName, Vec<(i32, i16)>)>;

impl GroupCoordinator {
    /// OffsetCommit (v2–v9). Acknowledged only after the records are fdatasync'ed.
    pub async fn offset_commit(
        &self,
        request: OffsetCommitRequest,
        now: Instant,
    ) -> OffsetCommitResponse {
        let group_id = request.group_id.0.to_string();
        let wall = self.wall_ms(now);
        let (outcome, ack) = {
            let mut groups = self.inner.groups.borrow_mut();
            let check = self.check_commit(&mut groups, &group_id, &request, now);
            let (outcome, records) = commit_records(&check, request.topics, wall);
            let ack = match (&check, groups.get_mut(&group_id)) {
                (Ok(()), Some(g)) if !records.is_empty() => Some(self.enqueue(g, records)),
                _ => None,
            };
            (outcome, ack)
        };
        let durable = match ack {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(r) => r,
                Err(_) => Err(WriteError::unavailable("offsets log writer stopped")),
            },
        };
        if let Err(e) = &durable {
            tracing::warn!(group = %group_id, error = %e, "offset commit not durable");
        }
        offset_commit_response(outcome, durable.map_err(|e| e.code))
    }

    /// Whether this commit may write at all: the group's membership rules, or — for a
    /// standalone consumer (no group management, generation < 0) — creating the group.
    fn check_commit(
        &self,
        groups: &mut HashMap<String, Group>,
        group_id: &str,
        request: &OffsetCommitRequest,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let taken = if group_id.is_empty() {
            Ok(None)
        } else {
            // Cluster mode: a group taken over loads its stored members first, so their
            // commits keep their generation (decision 0024).
            self.take_over(groups, group_id, now)
        };
        if group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else if let Err(e) = taken {
            Err(e)
        } else if let Some(g) = groups.get_mut(group_id) {
            g.check_commit(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
                now,
            )
        } else if request.generation_id_or_member_epoch < 0 {
            // A standalone consumer (no group management) may commit to a new group.
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                tracing::warn!(group = %group_id, "refusing a new group: {MAX_GROUPS_PER_SHARD} groups on this shard");
                Err(ResponseError::CoordinatorNotAvailable)
            } else if let Some(mut g) = self.new_group(group_id) {
                g.coordinator_epoch = taken.ok().flatten();
                groups.insert(group_id.to_string(), g);
                Ok(())
            } else {
                Err(ResponseError::InvalidGroupId)
            }
        } else {
            Err(ResponseError::IllegalGeneration)
        }
    }

    /// Committed offsets of one group, in the v8+ shape. `topics: None` means all.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<TopicPartitions>,
    ) -> OffsetFetchResponseGroup {
        if let Err(e) = self.check_coordinator(group_id) {
            return OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(sb(group_id)))
                .with_error_code(e.code());
        }
        let groups = self.inner.groups.borrow();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        let entry = |e: Option<&OffsetEntry>, partition: i32| match e {
            Some(e) => OffsetFetchResponsePartitions::default()
                .with_partition_index(partition)
                .with_committed_offset(e.offset)
                .with_committed_leader_epoch(e.leader_epoch)
                .with_metadata(Some(sb(&e.metadata))),
            None => OffsetFetchResponsePartitions::default()
                .with_partition_index(partition)
                .with_committed_offset(-1)
                .with_committed_leader_epoch(-1)
                .with_metadata(Some(StrBytes::default())),
        };
        let topics: Vec<OffsetFetchResponseTopics> = match topics {
            None => offsets
                .into_iter()
                .flat_map(|o| o.iter())
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(parts.iter().map(|(p, e)| entry(Some(e), *p)).collect())
                })
                .collect(),
            Some(wanted) => wanted
                .into_iter()
                .map(|(topic, partitions)| {
                    let committed = offsets.and_then(|o| o.get(&topic));
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(sb(&topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| entry(committed.and_then(|c| c.get(&p)), p))
                                .collect(),
                        )
                })
                .collect(),
        };
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(sb(group_id)))
            .with_topics(topics)
            .with_error_code(0)
    }

    /// OffsetFetch when every group in it lives on this shard (tests, single shard).
    pub fn offset_fetch(&self, request: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let groups = offset_fetch_wanted(request, version)
            .into_iter()
            .map(|(g, topics)| self.fetch_offsets(&g, topics))
            .collect();
        offset_fetch_response(groups, version)
    }

    /// OffsetDelete: partitions of topics the group's members subscribe to are refused with
    /// GROUP_SUBSCRIBED_TO_TOPIC (a non-consumer group with members: NON_EMPTY_GROUP); the
    /// rest are deleted durably (tombstones fdatasync'ed) before answering.
    pub async fn offset_delete(
        &self,
        request: OffsetDeleteRequest,
        now: Instant,
    ) -> OffsetDeleteResponse {
        let group_id = request.group_id.0.to_string();
        if let Err(e) = self.check_coordinator(&group_id) {
            return OffsetDeleteResponse::default().with_error_code(e.code());
        }
        let wall = self.wall_ms(now);
        let planned = {
            let mut groups = self.inner.groups.borrow_mut();
            match groups.get_mut(&group_id) {
                None => Err(ResponseError::GroupIdNotFound),
                Some(g) => self.queue_offset_deletes(g, &request, wall),
            }
        };
        let (decisions, rx) = match planned {
            Ok(planned) => planned,
            Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
        };
        let durable = match rx {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(r) => r.map_err(|e| e.code),
                Err(_) => Err(ResponseError::CoordinatorNotAvailable.code()),
            },
        };
        offset_delete_response(decisions, durable)
    }

    /// Decides each requested partition and queues tombstones for the committed ones.
    /// Err: the whole request is refused (NON_EMPTY_GROUP).
    fn queue_offset_deletes(
        &self,
        g: &mut Group,
        request: &OffsetDeleteRequest,
        wall: i64,
    ) -> Result<(DeleteDecisions, Option<WriteAck>), ResponseError> {
        // Kafka: a non-empty group may only drop offsets of topics it does not
        // consume; a non-consumer group that has members may drop none.
        let subscribed = g.subscribed_topics();
        if g.has_members() && subscribed.is_none() {
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut decisions = Vec::new();
        let mut records = Vec::new();
        for t in &request.topics {
            let topic = t.name.0.as_str();
            let refused = subscribed.as_ref().is_some_and(|s| s.contains(topic));
            let mut parts = Vec::new();
            for p in &t.partitions {
                if refused {
                    parts.push((
                        p.partition_index,
                        ResponseError::GroupSubscribedToTopic.code(),
                    ));
                    continue;
                }
                let committed = g
                    .offsets
                    .get(topic)
                    .is_some_and(|ps| ps.contains_key(&p.partition_index));
                if committed {
                    records.push(LogRecord::DeletePartition {
                        topic: topic.to_string(),
                        partition: p.partition_index,
                        at_ms: wall,
                    });
                }
                parts.push((p.partition_index, 0));
            }
            decisions.push((t.name.clone(), parts));
        }
        let rx = (!records.is_empty()).then(|| self.enqueue(g, records));
        Ok((decisions, rx))
    }

    /// Deletes offsets of Empty groups older than `offsets_retention_ms` (KIP-211: counted
    /// from the later of the commit and the moment the group became empty). Returns how
    /// many offsets were removed.
    pub async fn expire_offsets(&self, now: Instant) -> usize {
        let wall = self.wall_ms(now);
        let retention = self.inner.offsets_retention_ms;
        let mut waits = Vec::new();
        let mut expired_total = 0;
        {
            let mut groups = self.inner.groups.borrow_mut();
            for g in groups.values_mut() {
                // In cluster mode only the coordinator knows whether the group has members.
                let elsewhere = self.check_coordinator(&g.id).is_err();
                if g.state != GroupState::Empty || g.has_members() || elsewhere {
                    continue;
                }
                let base_ms = g.empty_since_ms.unwrap_or(i64::MIN);
                let records: Vec<LogRecord> = g
                    .offsets
                    .iter()
                    .flat_map(|(topic, parts)| {
                        parts
                            .iter()
                            .filter(|(_, e)| {
                                e.commit_ms.max(base_ms).saturating_add(retention) <= wall
                            })
                            .map(|(p, e)| LogRecord::ExpirePartition {
                                topic: topic.clone(),
                                partition: *p,
                                commit_ms: e.commit_ms,
                            })
                    })
                    .collect();
                if records.is_empty() {
                    continue;
                }
                expired_total += records.len();
                waits.push(self.enqueue(g, records));
            }
        }
        for rx in waits {
            if let Ok(Err(e)) = rx.await {
                tracing::warn!(error = %e, "offset expiry not written; retried next time");
            }
        }
        expired_total
    }
}

/// Validates each partition of an OffsetCommit and builds the records of the accepted ones.
/// Every partition gets the group-level refusal when `check` failed.
fn commit_records(
    check: &Result<(), ResponseError>,
    topics: Vec<OffsetCommitRequestTopic>,
    wall: i64,
) -> (CommitOutcome, Vec<LogRecord>) {
    let mut outcome: CommitOutcome = Vec::new();
    let mut records = Vec::new();
    for topic in topics {
        let name = topic.name.0.to_string();
        let mut parts = Vec::new();
        for p in topic.partitions {
            let result = match check {
                Err(e) => Err(e.code()),
                Ok(()) => {
                    let metadata = p
                        .committed_metadata
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    if name.is_empty() || name.len() > MAX_TOPIC_NAME_BYTES {
                        Err(ResponseError::InvalidTopicException.code())
                    } else if metadata.len() > MAX_OFFSET_METADATA_BYTES {
                        Err(ResponseError::OffsetMetadataTooLarge.code())
                    } else {
                        records.push(LogRecord::Commit {
                            topic: name.clone(),
                            partition: p.partition_index,
                            entry: OffsetEntry {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata,
                                commit_ms: wall,
                            },
                        });
                        Ok(())
                    }
                }
            };
            parts.push((p.partition_index, result));
        }
        outcome.push((topic.name, parts));
    }
    (outcome, records)
}

/// The OffsetCommit answer: accepted partitions carry the write's error when it did not
/// become durable (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT: the
/// client retries).
fn offset_commit_response(
    outcome: CommitOutcome,
    durable: Result<(), i16>,
) -> OffsetCommitResponse {
    let topics = outcome
        .into_iter()
        .map(|(name, parts)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(partition, result)| {
                            let error_code = match (result, durable) {
                                (Err(c), _) | (Ok(()), Err(c)) => c,
                                (Ok(()), Ok(())) => 0,
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(partition)
                                .with_error_code(error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// The OffsetDelete answer: partitions that were to be deleted carry the write's error
/// when the tombstones did not become durable.
fn offset_delete_response(
    decisions: DeleteDecisions,
    durable: Result<(), i16>,
) -> OffsetDeleteResponse {
    let topics = decisions
        .into_iter()
        .map(|(name, parts)| {
            OffsetDeleteResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(partition, code)| {
                            let code = match durable {
                                Err(failed) if code == 0 => failed,
                                _ => code,
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(partition)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default()
        .with_error_code(0)
        .with_topics(topics)
}

/// The (group, topics) pairs an OffsetFetch asks for, from either the v1–v7 single-group
/// form or the v8+ batched form. `None` topics means "all committed".
pub fn offset_fetch_wanted(
    request: &OffsetFetchRequest,
    version: i16,
) -> Vec<(String, Option<TopicPartitions>)> {
    if version >= 8 {
        request
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                (g.group_id.0.to_string(), topics)
            })
            .collect()
    } else {
        let topics = request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        vec![(request.group_id.0.to_string(), topics)]
    }
}

/// Builds the OffsetFetch answer in the request's version from per-group results.
pub fn offset_fetch_response(
    groups: Vec<OffsetFetchResponseGroup>,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let Some(group) = groups.into_iter().next() else {
        return OffsetFetchResponse::default();
    };
    let topics = group
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(p.metadata)
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.error_code = group.error_code;
    }
    response
}
