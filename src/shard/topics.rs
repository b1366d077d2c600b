//! Topic lifecycle across shards. Every change goes to shard 0 (the metadata writer),
//! which validates and persists it, publishes the new snapshot, and then tells each owning
//! shard to open, reconfigure or delete its partitions. The caller gets the answer after
//! the owners have acted, so a topic is usable as soon as CreateTopics returns.

use super::{Shard, ShardGone, create_partition};
use crate::metadata::dynamic_broker::BrokerConfigLevel;
use crate::metadata::replicated::{Applied, MetadataRecord};
use crate::metadata::{ConfigOp, MetadataError, NewTopicSpec, TopicMeta};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// A metadata change failed: the Kafka error code and a one-line message.
#[derive(Debug, Clone)]
pub struct TopicOpError {
    pub code: i16,
    pub message: String,
}

impl From<MetadataError> for TopicOpError {
    fn from(e: MetadataError) -> Self {
        TopicOpError {
            code: e.kafka_error_code(),
            message: e.to_string(),
        }
    }
}

impl From<ShardGone> for TopicOpError {
    fn from(e: ShardGone) -> Self {
        TopicOpError {
            code: kafka_protocol::ResponseError::BrokerNotAvailable.code(),
            message: e.to_string(),
        }
    }
}

fn writer(shard: &Shard) -> Result<&crate::metadata::MetadataWriter, TopicOpError> {
    shard.metadata_writer.as_deref().ok_or(TopicOpError {
        code: kafka_protocol::ResponseError::NotController.code(),
        message: "metadata writer lives on shard 0".into(),
    })
}

/// Most partitions named in the error message of a creation that failed on some of them.
pub const MAX_FAILED_PARTITIONS_LISTED: usize = 5;

/// Partitions a shard creates at once for one request: each creation is a mkdir and a
/// few small reads of an empty directory; a bound keeps a 1,000-partition request from
/// queueing thousands of operations on the ring at once.
pub const MAX_CONCURRENT_CREATES: usize = 32;

/// Opens partitions `from..` of `topic` on their owning shards (runs on shard 0); see
/// `open_topics_on_owners`.
pub(super) async fn open_on_owners(
    shard: &Rc<Shard>,
    topic: &Arc<TopicMeta>,
    from: i32,
) -> Result<(), TopicOpError> {
    open_topics_on_owners(shard, &[(topic.clone(), from)])
        .await
        .pop()
        .unwrap_or(Ok(()))
}

/// Creates partitions `from..` of each topic on their owning shards (runs on shard 0), one
/// message per owning shard for the whole list. The ones that could not be created stay in
/// metadata but are recorded offline (Metadata shows them without a leader; produce and
/// fetch answer KAFKA_STORAGE_ERROR), and their topic fails with KAFKA_STORAGE_ERROR naming
/// them: never a success for a topic that cannot take writes everywhere. One result per
/// topic, in order.
pub(super) async fn open_topics_on_owners(
    shard: &Rc<Shard>,
    topics: &[(Arc<TopicMeta>, i32)],
) -> Vec<Result<(), TopicOpError>> {
    let snapshot = shard.metadata.load_full();
    let node_id = shard.config.node_id;
    let mut by_owner: BTreeMap<usize, Vec<(usize, Arc<TopicMeta>, i32)>> = BTreeMap::new();
    for (i, (topic, from)) in topics.iter().enumerate() {
        let held_here = (*from..topic.partitions).filter(|&p| {
            snapshot.is_led_by(node_id, &topic.name, p)
                || snapshot.is_followed_by(node_id, &topic.name, p)
        });
        for p in held_here {
            let owner = shard.owner_of_partition(&topic.name, p);
            by_owner
                .entry(owner)
                .or_default()
                .push((i, topic.clone(), p));
        }
    }
    let calls = by_owner.into_iter().map(|(owner, work)| {
        shard.invoke_on(owner, move |s| async move {
            use futures_util::StreamExt;
            futures_util::stream::iter(work)
                .map(|(i, topic, p)| {
                    let s = s.clone();
                    async move {
                        let created = create_partition(&s, &topic.name, p, &topic.config).await;
                        created.err().map(|reason| (i, p, reason))
                    }
                })
                .buffer_unordered(MAX_CONCURRENT_CREATES)
                .filter_map(|failed| async move { failed })
                .collect::<Vec<_>>()
                .await
        })
    });
    let mut failed: Vec<Vec<(i32, String)>> = vec![Vec::new(); topics.len()];
    let mut gone = None;
    for result in futures_util::future::join_all(calls).await {
        match result {
            // A follower copy that cannot be created does not take the partition offline.
            Ok(list) => list
                .into_iter()
                .filter(|(i, p, _)| snapshot.is_led_by(node_id, &topics[*i].0.name, *p))
                .for_each(|(i, p, reason)| failed[i].push((p, reason))),
            Err(e) => gone = Some(TopicOpError::from(e)),
        }
    }
    let mut offline = Vec::new();
    let results = topics
        .iter()
        .zip(failed)
        .map(|((topic, from), mut failed)| {
            if let Some(e) = &gone {
                return Err(e.clone());
            }
            if failed.is_empty() {
                return Ok(());
            }
            failed.sort_by_key(|(p, _)| *p);
            let error = offline_error(topic, *from, &failed);
            offline.extend(
                failed
                    .into_iter()
                    .map(|(p, r)| (topic.name.clone(), p, Some(r))),
            );
            Err(error)
        })
        .collect();
    if let Ok(writer) = writer(shard) {
        writer.set_offline(offline);
    }
    results
}

/// KAFKA_STORAGE_ERROR for a topic some of whose new partitions (`failed`, by index) could
/// not be created, naming the first few.
fn offline_error(topic: &TopicMeta, from: i32, failed: &[(i32, String)]) -> TopicOpError {
    let listed: Vec<String> = failed
        .iter()
        .take(MAX_FAILED_PARTITIONS_LISTED)
        .map(|(p, reason)| format!("{p}: {reason}"))
        .collect();
    let message = format!(
        "{} of {} partitions of topic `{}` could not be created and are offline ({}{})",
        failed.len(),
        topic.partitions - from,
        topic.name,
        listed.join("; "),
        if failed.len() > listed.len() {
            "; ..."
        } else {
            ""
        }
    );
    TopicOpError {
        code: kafka_protocol::ResponseError::KafkaStorageError.code(),
        message,
    }
}

/// Creates the topics of one CreateTopics request: validated and persisted together on the
/// metadata writer (one metadata write), then their partitions created on the owning
/// shards, one message per shard. One result per topic, in order. In cluster mode each
/// topic goes through the metadata quorum on its own (`create_topic`).
pub async fn create_topics(
    shard: &Rc<Shard>,
    specs: Vec<NewTopicSpec>,
    validate_only: bool,
) -> Vec<Result<Arc<TopicMeta>, TopicOpError>> {
    if shard.cluster.is_some() {
        let mut results = Vec::with_capacity(specs.len());
        for spec in specs {
            let NewTopicSpec {
                name,
                partitions,
                replication_factor,
                overrides,
            } = spec;
            results.push(
                create_topic(
                    shard,
                    name,
                    partitions,
                    replication_factor,
                    overrides,
                    validate_only,
                )
                .await,
            );
        }
        return results;
    }
    let count = specs.len();
    let answered = shard
        .invoke_on(0, move |s| async move {
            let writer = match writer(&s) {
                Ok(writer) => writer,
                Err(e) => return vec![Err(e); count],
            };
            let created: Vec<Result<Arc<TopicMeta>, TopicOpError>> = writer
                .create_topics(specs, validate_only)
                .into_iter()
                .map(|r| r.map_err(TopicOpError::from))
                .collect();
            if validate_only {
                return created;
            }
            let new: Vec<(Arc<TopicMeta>, i32)> = created
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|t| (t.clone(), 0)))
                .collect();
            let mut opened = open_topics_on_owners(&s, &new).await.into_iter();
            created
                .into_iter()
                .map(|r| r.and_then(|t| opened.next().unwrap_or(Ok(())).map(|()| t)))
                .collect()
        })
        .await;
    match answered {
        Ok(results) => results,
        Err(e) => vec![Err(TopicOpError::from(e)); count],
    }
}

pub async fn create_topic(
    shard: &Rc<Shard>,
    name: String,
    partitions: i32,
    replication_factor: i16,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicOpError> {
    if shard.cluster.is_some() {
        let overrides_and_checks = (partitions, replication_factor, overrides, validate_only);
        return super::cluster_topics::create_topic(shard, name, overrides_and_checks).await;
    }
    shard
        .invoke_on(0, move |s| async move {
            let topic = writer(&s)?.create_topic(
                &name,
                partitions,
                replication_factor,
                overrides,
                validate_only,
            )?;
            if !validate_only {
                open_on_owners(&s, &topic, 0).await?;
            }
            Ok(topic)
        })
        .await?
}

pub async fn delete_topic(shard: &Rc<Shard>, name: String) -> Result<Arc<TopicMeta>, TopicOpError> {
    if shard.cluster.is_some() {
        return super::cluster_topics::delete_topic(shard, name).await;
    }
    shard
        .invoke_on(0, move |s| async move {
            let topic = writer(&s)?.delete_topic(&name)?;
            let deleted_name = topic.name.clone();
            s.invoke_on_all(move |owner| {
                let name = deleted_name.clone();
                async move {
                    for (partition, p) in owner.partitions.remove_topic(&name) {
                        if let Err(e) = p.delete().await {
                            tracing::error!(topic = %name, partition, error = %e, "deleting partition files failed");
                        }
                    }
                }
            })
            .await;
            Ok(topic)
        })
        .await?
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    name: String,
    total: i32,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicOpError> {
    if shard.cluster.is_some() {
        return super::cluster_topics::create_partitions(shard, name, total, validate_only).await;
    }
    shard
        .invoke_on(0, move |s| async move {
            let before = s
                .metadata
                .load()
                .topic(&name)
                .map(|t| t.partitions)
                .unwrap_or(0);
            let topic = writer(&s)?.create_partitions(&name, total, validate_only)?;
            if !validate_only {
                open_on_owners(&s, &topic, before).await?;
            }
            Ok(topic)
        })
        .await?
}

pub async fn alter_topic_config(
    shard: &Rc<Shard>,
    name: String,
    changes: Vec<(String, ConfigOp)>,
    incremental: bool,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicOpError> {
    if shard.cluster.is_some() && !validate_only {
        let record = MetadataRecord::AlterTopicConfig {
            name: name.clone(),
            changes,
            incremental,
        };
        return match super::cluster_topics::propose(shard, record).await? {
            Applied::Reconfigured(mut topics) => topics
                .pop()
                .ok_or_else(|| MetadataError::UnknownTopic(name).into()),
            _ => Err(MetadataError::UnknownTopic(name).into()),
        };
    }
    shard
        .invoke_on(0, move |s| async move {
            let topic =
                writer(&s)?.alter_topic_config(&name, &changes, incremental, validate_only)?;
            if !validate_only {
                reconfigure_on_owners(&s, vec![topic.clone()]).await;
            }
            Ok(topic)
        })
        .await?
}

/// Tells every shard the new effective config of `topics`; each updates the partitions it
/// owns (one owner per partition, so no partition is touched from two shards).
pub(super) async fn reconfigure_on_owners(shard: &Rc<Shard>, topics: Vec<Arc<TopicMeta>>) {
    if topics.is_empty() {
        return;
    }
    let topics = Arc::new(topics);
    shard
        .invoke_on_all(move |owner| {
            let topics = topics.clone();
            async move {
                for altered in topics.iter() {
                    for p in 0..altered.partitions {
                        for table in [&owner.partitions, &owner.followers] {
                            if let super::table::Lookup::Online(online) =
                                table.get(&altered.name, p)
                            {
                                online.update_config(altered.config.clone());
                                if let Some(set) = online.replicas() {
                                    let min = super::open::min_insync_replicas(altered);
                                    set.set_min_insync_replicas(min);
                                }
                            }
                        }
                    }
                }
            }
        })
        .await;
}

/// Edits the dynamic broker configs (BROKER resource) on the metadata writer, then applies
/// the new defaults to every partition of every topic that has no override of its own.
pub async fn alter_broker_config(
    shard: &Rc<Shard>,
    level: BrokerConfigLevel,
    changes: Vec<(String, ConfigOp)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), TopicOpError> {
    if shard.cluster.is_some() && level == BrokerConfigLevel::PerBroker {
        // Every node applies the log alike: a per-broker level would reach all brokers.
        return Err(TopicOpError {
            code: kafka_protocol::ResponseError::InvalidRequest.code(),
            message: "per-broker dynamic configs are not replicated in cluster mode yet: set \
                      the cluster default (resource name \"\") instead"
                .into(),
        });
    }
    if shard.cluster.is_some() && !validate_only {
        let record = MetadataRecord::AlterBrokerConfig {
            level,
            changes,
            incremental,
        };
        return super::cluster_topics::propose(shard, record)
            .await
            .map(|_| ());
    }
    shard
        .invoke_on(0, move |s| async move {
            let changed =
                writer(&s)?.alter_broker_config(level, &changes, incremental, validate_only)?;
            reconfigure_on_owners(&s, changed).await;
            Ok(())
        })
        .await?
}

/// Sets or deletes configs of one group (GROUP config resource) on the metadata writer.
/// The group coordinator reads them from the metadata snapshot on every heartbeat.
pub async fn alter_group_config(
    shard: &Rc<Shard>,
    group: String,
    changes: Vec<(String, ConfigOp)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), TopicOpError> {
    if shard.cluster.is_some() && !validate_only {
        let record = MetadataRecord::AlterGroupConfig {
            group,
            changes,
            incremental,
        };
        return super::cluster_topics::propose(shard, record)
            .await
            .map(|_| ());
    }
    shard
        .invoke_on(0, move |s| async move {
            writer(&s)?.alter_group_config(&group, &changes, incremental, validate_only)?;
            Ok(())
        })
        .await?
}

/// The topic's metadata, creating it with broker defaults first when auto-creation is on
/// (Kafka's `auto.create.topics.enable`).
pub async fn ensure_topic(
    shard: &Rc<Shard>,
    name: &str,
    allow_auto_create: bool,
) -> Result<Arc<TopicMeta>, TopicOpError> {
    if let Some(topic) = shard.metadata.load().topic(name) {
        return Ok(topic.clone());
    }
    if !(allow_auto_create && shard.config.auto_create_topics) {
        return Err(MetadataError::UnknownTopic(name.to_string()).into());
    }
    // A cluster node still replaying the metadata log (just restarted) does not know every
    // topic yet: creating one would be refused for want of live brokers it has not applied
    // yet (INVALID_REPLICATION_FACTOR, which producers do not retry). Kafka's answer while a
    // topic is not available yet, as Metadata gives (`handlers::metadata`), is retried.
    if shard.replaying_metadata() {
        return Err(TopicOpError {
            code: kafka_protocol::ResponseError::LeaderNotAvailable.code(),
            message: format!("{name}: this broker is still catching up with the metadata log"),
        });
    }
    match create_topic(
        shard,
        name.to_string(),
        shard.config.default_partitions,
        1,
        BTreeMap::new(),
        false,
    )
    .await
    {
        Ok(topic) => Ok(topic),
        // Another connection created it first: fine.
        Err(e) if e.code == kafka_protocol::ResponseError::TopicAlreadyExists.code() => {
            shard.metadata.load().topic(name).cloned().ok_or(e)
        }
        Err(e) => Err(e),
    }
}

fn invalid_assignment(message: String) -> TopicOpError {
    TopicOpError {
        code: kafka_protocol::ResponseError::InvalidReplicaAssignment.code(),
        message,
    }
}

/// Kafka's check of one manually assigned partition's replica list on a cluster whose only
/// registered broker is `node_id`: not empty, every broker registered and named once, and
/// as many replicas as the partitions before it (`replication_factor`, once known).
pub fn check_partition_assignment(
    node_id: i32,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), TopicOpError> {
    if replicas.is_empty() {
        return Err(invalid_assignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    for (i, broker) in replicas.iter().enumerate() {
        if *broker != node_id {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
        if replicas[..i].contains(broker) {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
    }
    match replication_factor {
        Some(expected) if replicas.len() != expected => Err(invalid_assignment(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {expected} replica(s).",
            replicas.len()
        ))),
        _ => Ok(()),
    }
}

/// CreateTopics' manual assignments, `(partition index, replicas)` in request order: the
/// indexes must run 0, 1, 2, ... and every list pass `check_partition_assignment`. Returns
/// the partition count they describe.
pub fn check_topic_assignments(
    node_id: i32,
    assignments: &[(i32, Vec<i32>)],
) -> Result<i32, TopicOpError> {
    let mut count: i32 = 0;
    let mut replication_factor = None;
    for (index, replicas) in assignments {
        if *index != count {
            return Err(invalid_assignment(
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        check_partition_assignment(node_id, replicas, replication_factor)?;
        replication_factor = Some(replicas.len());
        count = count.saturating_add(1);
    }
    Ok(count)
}

/// CreatePartitions' manual assignments for `additional` new partitions of a topic whose
/// partitions each have one replica.
pub fn check_new_partition_assignments(
    node_id: i32,
    additional: i32,
    assignments: &[Vec<i32>],
) -> Result<(), TopicOpError> {
    if usize::try_from(additional).ok() != Some(assignments.len()) {
        return Err(invalid_assignment(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    for replicas in assignments {
        check_partition_assignment(node_id, replicas, Some(1))?;
    }
    Ok(())
}
