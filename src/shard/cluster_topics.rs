//! Topic changes in cluster mode: checked against the applied state, placed over the live
//! brokers (Kafka's default placement: replicas on consecutive brokers from a random start,
//! the first one leading), then proposed to the metadata quorum. The answer comes once this
//! node has applied the record, so a created topic is usable when CreateTopics returns.
//! Must not: change the snapshot itself (only the applied log does, `cluster_apply`).

use super::Shard;
use super::topics::TopicOpError;
use crate::metadata::replicated::{Applied, MetadataRecord, place_replicas};
use crate::metadata::{MetadataError, TopicMeta};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// Kafka's `default.replication.factor`: what CreateTopics' -1 and auto-creation get.
pub const DEFAULT_REPLICATION_FACTOR: usize = 1;

/// Proposes `record` and waits for this node to apply it.
pub async fn propose(shard: &Rc<Shard>, record: MetadataRecord) -> Result<Applied, TopicOpError> {
    let Some(cluster) = shard.cluster.as_ref() else {
        return Err(TopicOpError {
            code: ResponseError::NotController.code(),
            message: "not in cluster mode".into(),
        });
    };
    cluster
        .propose(record)
        .await
        .map_err(|(code, message)| TopicOpError { code, message })
}

fn live_brokers(shard: &Shard) -> Vec<i32> {
    shard
        .metadata
        .load()
        .cluster
        .as_ref()
        .map(|c| c.live_brokers())
        .unwrap_or_default()
}

/// Kafka's INVALID_REPLICATION_FACTOR wording.
fn too_few_brokers(factor: usize, live: usize) -> TopicOpError {
    TopicOpError {
        code: ResponseError::InvalidReplicationFactor.code(),
        message: format!(
            "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only {live} broker(s) are registered."
        ),
    }
}

fn placement(
    shard: &Shard,
    partitions: i32,
    from: i32,
    factor: usize,
) -> Result<Vec<Vec<i32>>, TopicOpError> {
    let live = live_brokers(shard);
    let start = if live.is_empty() {
        0
    } else {
        rand::random_range(0..live.len())
    };
    place_replicas(&live, partitions, from, factor, start)
        .ok_or_else(|| too_few_brokers(factor, live.len()))
}

/// `(partitions, replication factor, overrides, validate_only)` of a CreateTopics entry.
pub type CreateTopicArgs = (i32, i16, BTreeMap<String, String>, bool);

pub async fn create_topic(
    shard: &Rc<Shard>,
    name: String,
    (partitions, replication_factor, overrides, validate_only): CreateTopicArgs,
) -> Result<Arc<TopicMeta>, TopicOpError> {
    let factor = match replication_factor {
        -1 => DEFAULT_REPLICATION_FACTOR,
        f if f < 1 => {
            return Err(MetadataError::InvalidReplicationFactor(f).into());
        }
        f => usize::try_from(f).unwrap_or(usize::MAX),
    };
    // Name, count, existence and configs, checked against the applied state on shard 0.
    let checked_name = name.clone();
    let checked_overrides = overrides.clone();
    let validated = shard
        .invoke_on(0, move |s| async move {
            let writer = s.metadata_writer.as_deref().ok_or(TopicOpError {
                code: ResponseError::NotController.code(),
                message: "metadata writer lives on shard 0".into(),
            })?;
            writer
                .create_topic(&checked_name, partitions, -1, checked_overrides, true)
                .map_err(TopicOpError::from)
        })
        .await??;
    let replicas = placement(shard, partitions, 0, factor)?;
    if validate_only {
        return Ok(validated);
    }
    let record = MetadataRecord::CreateTopic {
        name: name.clone(),
        id: uuid::Uuid::new_v4(),
        replicas,
        overrides,
    };
    match propose(shard, record).await? {
        Applied::Opened { topic, .. } => Ok(topic),
        _ => Err(MetadataError::UnknownTopic(name).into()),
    }
}

pub async fn delete_topic(shard: &Rc<Shard>, name: String) -> Result<Arc<TopicMeta>, TopicOpError> {
    if shard.metadata.load().topic(&name).is_none() {
        return Err(MetadataError::UnknownTopic(name).into());
    }
    match propose(shard, MetadataRecord::DeleteTopic { name: name.clone() }).await? {
        Applied::Deleted(topic) => Ok(topic),
        _ => Err(MetadataError::UnknownTopic(name).into()),
    }
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    name: String,
    total: i32,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicOpError> {
    let snapshot = shard.metadata.load_full();
    let topic = snapshot
        .topic(&name)
        .cloned()
        .ok_or_else(|| TopicOpError::from(MetadataError::UnknownTopic(name.clone())))?;
    let checked_name = name.clone();
    let validated = shard
        .invoke_on(0, move |s| async move {
            let writer = s.metadata_writer.as_deref().ok_or(TopicOpError {
                code: ResponseError::NotController.code(),
                message: "metadata writer lives on shard 0".into(),
            })?;
            writer
                .create_partitions(&checked_name, total, true)
                .map_err(TopicOpError::from)
        })
        .await??;
    let factor = snapshot
        .cluster
        .as_ref()
        .map_or(1, |c| c.replicas(&name, 0).len().max(1));
    let new_replicas = placement(shard, total, topic.partitions, factor)?;
    if validate_only {
        return Ok(validated);
    }
    let record = MetadataRecord::CreatePartitions {
        name: name.clone(),
        new_replicas,
    };
    match propose(shard, record).await? {
        Applied::Opened { topic, .. } => Ok(topic),
        _ => Err(MetadataError::UnknownTopic(name).into()),
    }
}
