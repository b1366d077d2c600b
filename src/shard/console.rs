//! The shards' answers to the web console's questions (`/v1/topics`, `/v1/groups`,
//! `/v1/messages`): the admin thread hands a question to shard 0, which reads the metadata
//! snapshot and asks each owning shard for its partitions and groups by message.
//!
//! Owns: gathering and shaping those answers within the limits in `admin::console::api`, and
//! the console's topic create/delete (through `shard::topics`, as CreateTopics/DeleteTopics).
//! Must not: change state any other way; read a partition anywhere but on its owning shard.

use super::{Lookup, Shard};
use crate::admin::console::api::{
    ConsoleError, ConsoleQuery, ConsoleWrite, MAX_CONSOLE_GROUPS, MAX_CONSOLE_PARTITIONS,
    MAX_CONSOLE_RECORDS, MessageQuery, Seek,
};
use crate::metadata::ConfigOp;
use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::protocol::Decodable;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

mod messages;

/// One partition as its owning shard sees it.
struct PartitionView {
    topic: String,
    partition: i32,
    shard: usize,
    /// `None` when online; the reason it was refused at open otherwise.
    offline: Option<String>,
    start_offset: i64,
    end_offset: i64,
    size_bytes: u64,
    /// Records waiting in the owning shard's delay log for this partition (issue 18).
    delayed_pending: u64,
}

struct MemberView {
    member_id: String,
    client_id: String,
    host: String,
    /// Topic -> partitions, decoded from a consumer-protocol assignment.
    assignment: BTreeMap<String, Vec<i32>>,
}

/// One group as its coordinating shard sees it.
struct GroupView {
    id: String,
    state: String,
    kind: String,
    protocol_type: String,
    members: Vec<MemberView>,
    /// (topic, partition) -> committed offset
    committed: BTreeMap<(String, i32), i64>,
}

/// Answers `query`; runs on any shard (the admin thread picks shard 0).
pub async fn answer(shard: Rc<Shard>, query: ConsoleQuery) -> Result<Value, ConsoleError> {
    match query {
        ConsoleQuery::Topics => topics(&shard, None).await,
        ConsoleQuery::Topic(name) => topics(&shard, Some(name)).await,
        ConsoleQuery::Groups => groups(&shard).await,
        ConsoleQuery::Messages(q) => messages_on_owner(&shard, q).await,
    }
}

/// Carries out a console change through the same path CreateTopics and DeleteTopics take.
pub async fn write(shard: Rc<Shard>, write: ConsoleWrite) -> Result<Value, ConsoleError> {
    let failed = |e: super::topics::TopicOpError| {
        let message = format!("{} (Kafka error {})", e.message, e.code);
        if e.code == kafka_protocol::ResponseError::TopicAlreadyExists.code() {
            ConsoleError::Conflict(message)
        } else if e.code == kafka_protocol::ResponseError::UnknownTopicOrPartition.code() {
            ConsoleError::NotFound(message)
        } else {
            ConsoleError::BadRequest(message)
        }
    };
    match write {
        ConsoleWrite::CreateTopic { name, partitions } => {
            let topic =
                super::topics::create_topic(&shard, name, partitions, 1, BTreeMap::new(), false)
                    .await
                    .map_err(failed)?;
            Ok(json!({ "created": topic.name, "partitions": topic.partitions }))
        }
        ConsoleWrite::DeleteTopic(name) => {
            let topic = super::topics::delete_topic(&shard, name)
                .await
                .map_err(failed)?;
            Ok(json!({ "deleted": topic.name }))
        }
        ConsoleWrite::AlterTopicConfig { topic, key, value } => {
            let op = match value {
                Some(v) => ConfigOp::Set(v),
                None => ConfigOp::Delete,
            };
            // The IncrementalAlterConfigs path: same validation, same live reconfiguration.
            let changes = vec![(key.clone(), op)];
            let meta = super::topics::alter_topic_config(&shard, topic, changes, true, false)
                .await
                .map_err(failed)?;
            Ok(json!({
                "topic": meta.name,
                "key": key,
                "value": meta.config.get(&key),
                "override": meta.overrides.get(&key),
            }))
        }
    }
}

/// Every shard's partitions (of `topic` only, when given), sorted by topic and partition.
async fn partition_views(shard: &Rc<Shard>, topic: Option<String>) -> Vec<PartitionView> {
    let answers = shard
        .invoke_on_all(move |s| {
            let topic = topic.clone();
            async move {
                let mut views = Vec::new();
                for (name, partition, _) in s.partitions.describe() {
                    if topic.as_ref().is_some_and(|t| *t != name) {
                        continue;
                    }
                    let mut view = PartitionView {
                        topic: name.clone(),
                        partition,
                        shard: s.id,
                        offline: None,
                        start_offset: -1,
                        end_offset: -1,
                        size_bytes: 0,
                        delayed_pending: s.delays.pending_for(&name, partition),
                    };
                    match s.partitions.get(&view.topic, partition) {
                        Lookup::Online(p) => {
                            view.start_offset = p.log_start_offset();
                            view.end_offset = p.high_watermark();
                            view.size_bytes = p.size_bytes();
                        }
                        Lookup::Offline(why) => view.offline = Some(why),
                        Lookup::Missing => continue,
                    }
                    views.push(view);
                }
                views
            }
        })
        .await;
    let mut views: Vec<PartitionView> = answers.into_iter().flatten().flatten().collect();
    views.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    views
}

fn partition_json(v: &PartitionView) -> Value {
    json!({
        "partition": v.partition,
        "shard": v.shard,
        "start_offset": v.start_offset,
        "end_offset": v.end_offset,
        "size_bytes": v.size_bytes,
        "delayed_pending": v.delayed_pending,
        "offline": v.offline.is_some(),
        "offline_reason": v.offline,
    })
}

/// `/v1/topics` (every topic, `only` = None) or `/v1/topics/<only>` (one, with configs).
async fn topics(shard: &Rc<Shard>, only: Option<String>) -> Result<Value, ConsoleError> {
    let snapshot = shard.metadata.load_full();
    let mut names: Vec<&String> = match &only {
        Some(name) if snapshot.topics.contains_key(name) => vec![name],
        Some(name) => return Err(ConsoleError::NotFound(format!("no topic {name}"))),
        None => snapshot.topics.keys().collect(),
    };
    names.sort();
    let total = names.len();
    names.truncate(crate::admin::console::api::MAX_CONSOLE_TOPICS);
    let views = partition_views(shard, only.clone()).await;
    let mut by_topic: HashMap<&str, Vec<&PartitionView>> = HashMap::new();
    for v in &views {
        by_topic.entry(v.topic.as_str()).or_default().push(v);
    }
    let mut listed = Vec::with_capacity(names.len());
    for name in names {
        let Some(meta) = snapshot.topics.get(name) else {
            continue;
        };
        let parts = by_topic.get(name.as_str()).map_or(&[][..], |v| &v[..]);
        let mut entry = json!({
            "name": meta.name,
            "id": meta.id.to_string(),
            "partition_count": meta.partitions,
            "size_bytes": parts.iter().map(|p| p.size_bytes).sum::<u64>(),
            "offline_partitions": parts.iter().filter(|p| p.offline.is_some()).count(),
            "end_offset_total": parts.iter().map(|p| p.end_offset.max(0)).sum::<i64>(),
            "delayed_pending_total": parts.iter().map(|p| p.delayed_pending).sum::<u64>(),
            "partitions_truncated": parts.len() > MAX_CONSOLE_PARTITIONS,
            "partitions": parts.iter().take(MAX_CONSOLE_PARTITIONS)
                .map(|p| partition_json(p)).collect::<Vec<_>>(),
        });
        if only.is_some() {
            entry["overrides"] = json!(meta.overrides);
            let effective = serde_json::to_value(&meta.config)
                .map_err(|e| ConsoleError::Unavailable(format!("cannot encode config: {e}")))?;
            entry["effective_config"] = exact_in_javascript(effective);
        }
        listed.push(entry);
    }
    match only {
        Some(_) => listed
            .pop()
            .ok_or_else(|| ConsoleError::NotFound("topic vanished".into())),
        None => Ok(json!({ "total": total, "topics": listed })),
    }
}

/// Integers JavaScript cannot hold exactly (beyond 2^53, e.g. `i64::MAX` meaning "no limit")
/// become strings, so the console shows the value the broker holds.
fn exact_in_javascript(value: Value) -> Value {
    const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, exact_in_javascript(v)))
                .collect(),
        ),
        Value::Number(n) if n.as_i64().is_some_and(|i| i.abs() > MAX_SAFE_INTEGER) => {
            Value::String(n.to_string())
        }
        Value::Number(n) if n.as_u64().is_some_and(|u| u > MAX_SAFE_INTEGER as u64) => {
            Value::String(n.to_string())
        }
        other => other,
    }
}

/// The groups one shard coordinates, with members, assignments and committed offsets.
fn local_groups(shard: &Shard) -> Vec<GroupView> {
    let mut committed: HashMap<String, BTreeMap<(String, i32), i64>> = HashMap::new();
    for (group, topic, partition, offset) in shard.groups.committed_offsets() {
        committed
            .entry(group)
            .or_default()
            .insert((topic, partition), offset);
    }
    let listed = shard
        .groups
        .list_groups(&ListGroupsRequest::default(), std::time::Instant::now());
    listed
        .into_iter()
        .take(MAX_CONSOLE_GROUPS)
        .map(|g| {
            let id = g.group_id.0.to_string();
            let described = shard
                .groups
                .describe_group(&id, 5, std::time::Instant::now());
            let members = described
                .members
                .iter()
                .map(|m| MemberView {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: decode_assignment(&m.member_assignment),
                })
                .collect();
            GroupView {
                committed: committed.remove(&id).unwrap_or_default(),
                id,
                state: g.group_state.to_string(),
                kind: g.group_type.to_string(),
                protocol_type: g.protocol_type.to_string(),
                members,
            }
        })
        .collect()
}

/// A consumer-protocol assignment as topic -> partitions; other protocols show nothing.
fn decode_assignment(raw: &bytes::Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut out = BTreeMap::new();
    if raw.len() < 2 {
        return out;
    }
    let version = i16::from_be_bytes([raw[0], raw[1]]);
    let mut body = raw.slice(2..);
    let decoded = kafka_protocol::messages::ConsumerProtocolAssignment::decode(
        &mut body,
        version.clamp(0, 3),
    );
    if let Ok(assignment) = decoded {
        for t in assignment.assigned_partitions {
            out.insert(t.topic.0.to_string(), t.partitions);
        }
    }
    out
}

/// `/v1/groups`: every group, its members and its lag per committed partition.
async fn groups(shard: &Rc<Shard>) -> Result<Value, ConsoleError> {
    let answers = shard
        .invoke_on_all(|s| async move { local_groups(&s) })
        .await;
    let mut groups: Vec<GroupView> = answers.into_iter().flatten().flatten().collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    let total = groups.len();
    groups.truncate(MAX_CONSOLE_GROUPS);
    let ends: HashMap<(String, i32), i64> = partition_views(shard, None)
        .await
        .into_iter()
        .filter(|v| v.offline.is_none())
        .map(|v| ((v.topic, v.partition), v.end_offset))
        .collect();
    let listed: Vec<Value> = groups
        .iter()
        .map(|g| {
            let offsets: Vec<Value> = g
                .committed
                .iter()
                .take(MAX_CONSOLE_PARTITIONS)
                .map(|((topic, partition), offset)| {
                    let end = ends.get(&(topic.clone(), *partition)).copied();
                    json!({
                        "topic": topic,
                        "partition": partition,
                        "committed_offset": offset,
                        "end_offset": end,
                        "lag": end.map(|e| (e - offset).max(0)),
                    })
                })
                .collect();
            let members: Vec<Value> = g
                .members
                .iter()
                .map(|m| {
                    json!({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                           "assignment": m.assignment})
                })
                .collect();
            json!({
                "group_id": g.id,
                "state": g.state,
                "type": g.kind,
                "protocol_type": g.protocol_type,
                "members": members,
                "offsets": offsets,
                "total_lag": offsets.iter().filter_map(|o| o["lag"].as_i64()).sum::<i64>(),
            })
        })
        .collect();
    Ok(json!({ "total": total, "groups": listed }))
}

/// `/v1/messages`: a page read on the partition's owning shard.
async fn messages_on_owner(shard: &Rc<Shard>, q: MessageQuery) -> Result<Value, ConsoleError> {
    let snapshot = shard.metadata.load_full();
    let Some(meta) = snapshot.topics.get(&q.topic) else {
        return Err(ConsoleError::NotFound(format!("no topic {}", q.topic)));
    };
    if q.partition >= meta.partitions {
        return Err(ConsoleError::NotFound(format!(
            "topic {} has {} partitions; there is no partition {}",
            q.topic, meta.partitions, q.partition
        )));
    }
    let owner = shard.owner_of_partition(&q.topic, q.partition);
    shard
        .invoke_on(owner, move |s| async move {
            let partition = match s.partitions.get(&q.topic, q.partition) {
                Lookup::Online(p) => p,
                Lookup::Offline(why) => {
                    return Err(ConsoleError::Unavailable(format!(
                        "partition offline: {why}"
                    )));
                }
                Lookup::Missing => {
                    return Err(ConsoleError::NotFound("partition not open".into()));
                }
            };
            let start = match q.seek {
                Seek::Offset(offset) => offset.max(partition.log_start_offset()),
                Seek::Timestamp(ts) => match partition.offset_for_timestamp(ts).await {
                    Ok(Some((offset, _))) => offset,
                    Ok(None) => partition.high_watermark(),
                    Err(e) => return Err(ConsoleError::Unavailable(e.to_string())),
                },
            };
            let page =
                messages::read_page(&partition, start, q.max_bytes, MAX_CONSOLE_RECORDS).await?;
            Ok(json!({
                "topic": q.topic,
                "partition": q.partition,
                "start_offset": partition.log_start_offset(),
                "end_offset": partition.high_watermark(),
                "seek_offset": start,
                "next_offset": page.next_offset,
                "records": page.records,
            }))
        })
        .await
        .map_err(|e| ConsoleError::Unavailable(e.to_string()))?
}
