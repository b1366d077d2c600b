//! Replica placement calls on `Client`: AlterPartitionReassignments and
//! ListPartitionReassignments (KIP-455), ElectLeaders (KIP-460). Each goes to the
//! connection `Client` picks for admin calls and returns broker errors by name.
//!
//! Must not: keep cluster state of its own; it asks `Client` and invalidates what it changed.

use super::admin::ADMIN_TIMEOUT_MS;
use super::cluster::Client;
use super::error::{ClientError, Result};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// Kafka's ElectionType: the first replica of each partition.
const PREFERRED: i8 = 0;

/// A reassignment in progress as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Target replicas first, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// One partition's answer to ElectLeaders: `None` elected, else the broker's error.
pub type ElectionOutcome = (i32, Option<ClientError>);

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn ids(brokers: &[BrokerId]) -> Vec<i32> {
    brokers.iter().map(|b| b.0).collect()
}

impl Client {
    /// Moves `topic`-`partition` to `replicas` (the first one preferred as leader), or with
    /// `None` cancels the reassignment in progress.
    pub fn reassign_partition(
        &mut self,
        topic: &str,
        partition: i32,
        replicas: Option<&[i32]>,
    ) -> Result<()> {
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_partition_index(partition)
                            .with_replicas(
                                replicas.map(|r| r.iter().copied().map(BrokerId).collect()),
                            ),
                    ]),
            ]);
        let response = self.admin_connection()?.call(&request)?;
        let context = format!("reassign {topic}-{partition}");
        if let Some(err) = ClientError::from_code(
            response.error_code,
            context.clone(),
            response.error_message.as_deref(),
        ) {
            return Err(err);
        }
        let answer = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| ClientError::Invalid(format!("{context}: no answer for it")))?;
        if let Some(err) =
            ClientError::from_code(answer.error_code, context, answer.error_message.as_deref())
        {
            return Err(err);
        }
        self.invalidate_topic(topic);
        Ok(())
    }

    /// The reassignments in progress, of `topic` only or of every topic.
    pub fn list_reassignments(
        &mut self,
        topic: Option<(&str, &[i32])>,
    ) -> Result<Vec<OngoingReassignment>> {
        let topics = topic.map(|(t, partitions)| {
            vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(name(t))
                    .with_partition_indexes(partitions.to_vec()),
            ]
        });
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topics(topics);
        let response = self.admin_connection()?.call(&request)?;
        if let Some(err) = ClientError::from_code(
            response.error_code,
            "list partition reassignments",
            response.error_message.as_deref(),
        ) {
            return Err(err);
        }
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OngoingReassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect())
    }

    /// Preferred leader election for `partitions` of `topic` (every partition of every
    /// topic when `None`; then only the ones elected or failing are reported).
    pub fn elect_preferred_leaders(
        &mut self,
        topic: Option<(&str, &[i32])>,
    ) -> Result<Vec<(String, ElectionOutcome)>> {
        let wanted = topic.map(|(t, partitions)| {
            vec![
                TopicPartitions::default()
                    .with_topic(name(t))
                    .with_partitions(partitions.to_vec()),
            ]
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(PREFERRED)
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
            .with_topic_partitions(wanted);
        let response = self.admin_connection()?.call(&request)?;
        if let Some(err) = ClientError::from_code(response.error_code, "elect leaders", None) {
            return Err(err);
        }
        let mut out = Vec::new();
        for t in &response.replica_election_results {
            for p in &t.partition_result {
                let err = ClientError::from_code(
                    p.error_code,
                    format!("elect leader of {}-{}", t.topic.0, p.partition_id),
                    p.error_message.as_deref(),
                );
                out.push((t.topic.0.to_string(), (p.partition_id, err)));
            }
            self.invalidate_topic(&t.topic.0);
        }
        Ok(out)
    }
}
