//! DeleteRecords: advance a partition's log start offset (whole segments below it are
//! removed by the owning shard). Offset -1 means "up to the high watermark". With
//! followers, the answer waits until every replica on a live broker has moved its log start
//! there too (Kafka's DelayedDeleteRecords and low watermark), bounded by the request's
//! `timeout_ms`: a record deleted and acknowledged as such must not come back when a lagging
//! replica is elected.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::partition::Partition;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::Shard;
use futures_util::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

/// The longest a DeleteRecords waits for the followers, whatever its `timeout_ms` asks
/// (the admin clients' default `request.timeout.ms` is 30 s).
pub const DELETE_RECORDS_WAIT_MAX: Duration = Duration::from_secs(300);
/// A waiting DeleteRecords looks again at least this often, since a follower's broker being
/// fenced (which takes it out of the low watermark) wakes no waiter.
const LOW_WATERMARK_RECHECK: Duration = Duration::from_millis(250);

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let shard = ctx.shard;
    let wait = Duration::from_millis(request.timeout_ms.max(0) as u64).min(DELETE_RECORDS_WAIT_MAX);
    let mut topics = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let deletable = permitted(ctx, ResourceType::Topic, &name);
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let (partition, offset) = (p.partition_index, p.offset);
            let owner = shard.owner_of_partition(&name, partition);
            let topic_name = name.clone();
            let denied = (ResponseError::TopicAuthorizationFailed.code(), -1);
            let (code, low) = if !deletable {
                denied
            } else {
                shard
                    .invoke_on(owner, move |s| async move {
                        delete_on_owner(&s, &topic_name, partition, offset, wait).await
                    })
                    .await
                    .unwrap_or((ResponseError::BrokerNotAvailable.code(), -1))
            };
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(partition)
                    .with_low_watermark(low)
                    .with_error_code(code),
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}

/// On the partition's owning shard: (error code, low watermark).
async fn delete_on_owner(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
    wait: Duration,
) -> (i16, i64) {
    let p = match shard.led_partition(topic, partition) {
        Ok(p) => p,
        Err(e) => return (e.code(), -1),
    };
    // The partition resolves -1 to its high watermark and refuses offsets past it
    // (OFFSET_OUT_OF_RANGE).
    let start = match p.delete_records(offset).await {
        Ok(start) => start,
        Err(e) => return (e.kafka_error_code(), -1),
    };
    // What every replica must reach: the requested offset (its log start may already be
    // past it, from retention or an earlier DeleteRecords).
    let required = if offset < 0 { start } else { start.min(offset) };
    wait_for_low_watermark(shard, &p, required, wait).await
}

/// Waits until the low watermark reaches `required`: (0, it), or REQUEST_TIMED_OUT with
/// where it got to, or NOT_LEADER_OR_FOLLOWER when this node lost the leadership.
async fn wait_for_low_watermark(
    shard: &Rc<Shard>,
    p: &Partition,
    required: i64,
    wait: Duration,
) -> (i16, i64) {
    let deadline = Instant::now() + wait;
    loop {
        let Some(set) = p.replicas() else {
            return (0, p.low_watermark(|_| true));
        };
        // Listening before looking: a follower's fetch between the two still wakes us.
        let moved = set.wait_starts_moved();
        let low = {
            let metadata = shard.metadata.load();
            let cluster = metadata.cluster.as_deref();
            p.low_watermark(|id| cluster.is_none_or(|c| c.is_live(id)))
        };
        if set.deposed() {
            return (ResponseError::NotLeaderOrFollower.code(), -1);
        }
        if low >= required {
            return (0, low);
        }
        let now = Instant::now();
        if now >= deadline {
            return (ResponseError::RequestTimedOut.code(), low);
        }
        let recheck = shard
            .timer
            .sleep_until(deadline.min(now + LOW_WATERMARK_RECHECK));
        futures_util::select! {
            _ = moved.fuse() => {},
            _ = recheck.fuse() => {},
        }
    }
}
