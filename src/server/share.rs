//! What ShareFetch and ShareAcknowledge share (KIP-932): the share-session step on the
//! group's coordinator shard, and acknowledging, releasing and acquiring records on each
//! partition's owning shard.
//!
//! Owns: the hops and the mapping of partition results to Kafka error codes. Must not:
//! hold share state itself (the group coordinator and `partition::share` do).

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::config::group_config::ShareGroupConfig;
use crate::group::share::sessions::{SessionPartition, SessionUpdate};
use crate::partition::share::{AckError, AcquiredRange, ShareAcquire, ShareError};
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::{Lookup, Shard};

/// The group's share configs (GROUP config resource over Kafka's defaults).
pub fn share_config(shard: &Shard, group_id: &str) -> ShareGroupConfig {
    let metadata = shard.metadata.load();
    ShareGroupConfig::with_overrides(metadata.group_configs.get(group_id).map(|c| &**c))
}

/// A topic's name from its id (None: unknown id).
pub fn topic_name(shard: &Shard, topic_id: &Uuid) -> Option<String> {
    shard
        .metadata
        .load()
        .topic_by_id(topic_id)
        .map(|t| t.name.clone())
}

/// The share-session step, on the group's shard (see `group::share::sessions`).
pub async fn update_session(
    shard: &Rc<Shard>,
    group_id: &str,
    member_id: &str,
    epoch: i32,
    add: Vec<SessionPartition>,
    forget: Vec<SessionPartition>,
    may_open: bool,
) -> Result<Vec<SessionPartition>, ResponseError> {
    let owner = shard.owner_of_group(group_id);
    let (group, member) = (group_id.to_string(), member_id.to_string());
    shard
        .invoke_on(owner, move |s| async move {
            s.groups.share_session_update(
                &group,
                SessionUpdate {
                    member_id: &member,
                    epoch,
                    add: &add,
                    forget: &forget,
                    may_open,
                    now: Instant::now(),
                },
            )
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
}

/// One partition of a share request, resolved.
#[derive(Clone)]
pub struct SharePartitionRef {
    pub group_id: String,
    pub member_id: String,
    pub topic: String,
    pub partition: i32,
    pub config: ShareGroupConfig,
}

fn lookup_error(lookup: &Lookup) -> ResponseError {
    match lookup {
        Lookup::Offline(_) => ResponseError::KafkaStorageError,
        _ => ResponseError::UnknownTopicOrPartition,
    }
}

/// Applies acknowledgement batches on the partition's shard; the partition's
/// acknowledge error code (0 when all applied).
pub async fn acknowledge(
    shard: &Rc<Shard>,
    at: SharePartitionRef,
    batches: Vec<(i64, i64, Vec<i8>)>,
) -> i16 {
    let owner = shard.owner_of_partition(&at.topic, at.partition);
    shard
        .invoke_on(owner, move |s| async move {
            let p = match s.partitions.get(&at.topic, at.partition) {
                Lookup::Online(p) => p,
                other => return lookup_error(&other).code(),
            };
            let outcome = p.share_acknowledge(
                &at.group_id,
                &at.member_id,
                &batches,
                &at.config,
                Instant::now(),
            );
            match outcome.await {
                Ok(Ok(())) => 0,
                Ok(Err(AckError::InvalidRecordState)) => ResponseError::InvalidRecordState.code(),
                Ok(Err(AckError::InvalidRequest)) => ResponseError::InvalidRequest.code(),
                Err(e) => share_error(&e).code(),
            }
        })
        .await
        .unwrap_or(ResponseError::UnknownServerError.code())
}

fn share_error(e: &ShareError) -> ResponseError {
    match e {
        ShareError::TooManyGroups => ResponseError::GroupMaxSizeReached,
        ShareError::Storage(crate::storage::StorageError::OffsetOutOfRange { .. }) => {
            ResponseError::OffsetOutOfRange
        }
        ShareError::Storage(_) | ShareError::Io(_) => ResponseError::KafkaStorageError,
    }
}

/// Releases a member's records on one partition (its session closed).
pub async fn release_member(shard: &Rc<Shard>, at: SharePartitionRef) {
    let owner = shard.owner_of_partition(&at.topic, at.partition);
    let _ = shard
        .invoke_on(owner, move |s| async move {
            if let Lookup::Online(p) = s.partitions.get(&at.topic, at.partition) {
                p.share_release_member(&at.group_id, &at.member_id, &at.config);
            }
        })
        .await;
}

/// What one partition handed a member.
#[derive(Default)]
pub struct Acquired {
    pub ranges: Vec<AcquiredRange>,
    pub records: Bytes,
}

impl Acquired {
    pub fn record_count(&self) -> usize {
        self.ranges
            .iter()
            .map(|r| (r.last_offset - r.first_offset + 1) as usize)
            .sum()
    }
}

/// Acquires records for a member on the partition's shard, with their batches' bytes.
pub async fn acquire(
    shard: &Rc<Shard>,
    at: SharePartitionRef,
    max_records: usize,
    max_bytes: u32,
) -> Result<Acquired, ResponseError> {
    let owner = shard.owner_of_partition(&at.topic, at.partition);
    shard
        .invoke_on(owner, move |s| async move {
            let p = match s.partitions.get(&at.topic, at.partition) {
                Lookup::Online(p) => p,
                other => return Err(lookup_error(&other)),
            };
            let request = ShareAcquire {
                group_id: &at.group_id,
                member_id: &at.member_id,
                config: at.config,
                max_records,
                max_bytes,
            };
            let acquired = p
                .share_acquire(&request, Instant::now())
                .await
                .map_err(|e| share_error(&e))?;
            // The batches are copied into the answer (ShareFetch's encoder has no
            // file-region path yet, unlike Fetch's).
            let mut records = Vec::new();
            for region in &acquired.regions {
                let bytes = region
                    .read_to_vec()
                    .await
                    .map_err(|_| ResponseError::KafkaStorageError)?;
                records.extend_from_slice(&bytes);
            }
            Ok(Acquired {
                ranges: acquired.ranges,
                records: Bytes::from(records),
            })
        })
        .await
        .unwrap_or(Err(ResponseError::UnknownServerError))
}

/// What ShareFetch and ShareAcknowledge check first: a group and member id, then READ on the
/// group and on every topic the request names (one code for the request: a member is
/// refused whole rather than served a part of its session). The (group, member) ids.
pub fn member_permitted(
    ctx: &RequestContext<'_>,
    group_id: Option<&str>,
    member_id: Option<&str>,
    topic_ids: impl IntoIterator<Item = Uuid>,
) -> Result<(String, String), ResponseError> {
    let group_id = group_id.unwrap_or_default().to_string();
    let member_id = member_id.unwrap_or_default().to_string();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    if member_id.is_empty() {
        return Err(ResponseError::UnknownMemberId);
    }
    if !permitted(ctx, ResourceType::Group, &group_id) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let snapshot = ctx.shard.metadata.load();
    let unreadable = topic_ids.into_iter().any(|id| {
        snapshot
            .topic_by_id(&id)
            .is_some_and(|topic| !permitted(ctx, ResourceType::Topic, &topic.name))
    });
    if unreadable {
        return Err(ResponseError::TopicAuthorizationFailed);
    }
    Ok((group_id, member_id))
}
