//! Fetch: read file regions from each partition's owning shard and frame them around the
//! record bytes, which then go from the page cache to the socket without a copy (splice
//! from the shard thread or on an io-wq worker, chosen by the connection's writer).
//!
//! The steps, one file each: the partition set through the connection's fetch session
//! (`server::fetch_sessions`), the reads within the byte budget (`read`), the long poll
//! until `min_bytes` or `max_wait_ms` (`long_poll`), the framing (`encode`).

mod encode;
mod long_poll;
mod read;

use crate::metadata::quotas::QuotaKey;
use crate::partition::Isolation;
use crate::server::access::{CLUSTER_RESOURCE_NAME, permitted};
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::server::quota;
use crate::server::fetch_sessions::{SessionPlan, WantedPartition};
use crate::server::response::Reply;
use kafka_protocol::messages::FetchRequest;
use std::time::{Duration, Instant};

/// Longest long-poll we honour, whatever the client asks.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);

pub async fn handle(ctx: &RequestContext<'_>, request: FetchRequest) -> Reply {
    let shard = ctx.shard;
    let plan = match plan(ctx, &request) {
        Ok(plan) => plan,
        Err(code) => return encode::error_reply(ctx, code),
    };
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
    let wait_started = Instant::now();
    let deadline = wait_started + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if ctx.version >= 3 && request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    ctx.connection.borrow_mut().affinity.observe(
        plan.wants
            .iter()
            .filter(|w| !w.topic.is_empty())
            .map(|w| w.owner),
    );
    let isolation = Isolation::from_wire(request.isolation_level);
    let replica = replica_id(ctx, &request);
    let readable = readable(ctx, &plan.wants, replica);
    let reads = long_poll::read_until_enough(
        shard,
        &plan.wants,
        &readable,
        min_bytes,
        max_bytes,
        deadline,
        read::Reader { isolation, replica },
    )
    .await;
    let waited = wait_started.elapsed();
    if !waited.is_zero() {
        shard.metrics.record_fetch_wait(waited.as_nanos() as u64);
    }
    for r in reads.iter().filter(|r| r.error_code != 0) {
        shard.metrics.record_error(ctx.api as i16, r.error_code);
    }
    let fetched = reads.iter().map(|r| r.bytes).sum();
    // Replication is not a consumer: the consumer byte-rate quota does not slow it.
    let throttle_ms = match replica {
        Some(_) => 0,
        None => quota::record_and_throttle(ctx, QuotaKey::ConsumerByteRate, fetched).await,
    };
    if throttle_ms > 0 {
        // Nothing read is sent, so the session does not record it as answered.
        return encode::throttled_reply(ctx, plan.session_id, throttle_ms);
    }
    let answered: Vec<_> = reads.iter().map(|r| r.answered()).collect();
    let include = ctx
        .connection
        .borrow_mut()
        .fetch_sessions
        .record_answer(&plan, &answered);
    encode::encode(ctx, plan.session_id, &plan.wants, reads, &include)
}

/// The follower a replica fetch comes from (issue 17, stage 2): `ReplicaState` from v15,
/// the request's `replica_id` before; `None` for a consumer (-1).
fn replica_id(ctx: &RequestContext<'_>, request: &FetchRequest) -> Option<i32> {
    let id = if ctx.version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// Which wanted partitions the principal may read: a consumer needs READ on the topic
/// (asked once per topic run: wants of one topic are adjacent); a follower needs
/// CLUSTER_ACTION on the cluster, else every partition is TOPIC_AUTHORIZATION_FAILED, as
/// Kafka answers a replica fetch without it.
fn readable(ctx: &RequestContext<'_>, wants: &[WantedPartition], replica: Option<i32>) -> Vec<bool> {
    if replica.is_some() {
        let allowed = permitted(ctx, ResourceType::Cluster, CLUSTER_RESOURCE_NAME);
        return vec![allowed; wants.len()];
    }
    let mut readable: Vec<bool> = Vec::with_capacity(wants.len());
    for (i, want) in wants.iter().enumerate() {
        let same_topic_as_previous = i > 0 && wants[i - 1].topic == want.topic;
        readable.push(if same_topic_as_previous {
            readable[i - 1]
        } else {
            want.topic.is_empty() || permitted(ctx, ResourceType::Topic, &want.topic)
        });
    }
    readable
}

/// The partitions this request reads: by topic name before v13, by topic id from v13, and
/// through the connection's fetch session from v7.
fn plan(ctx: &RequestContext<'_>, request: &FetchRequest) -> Result<SessionPlan, i16> {
    let shard = ctx.shard;
    let snapshot = shard.metadata.load_full();
    let resolve = |name: &str, id: &uuid::Uuid| -> (String, uuid::Uuid) {
        if ctx.version >= 13 {
            match snapshot.topic_by_id(id) {
                Some(t) => (t.name.clone(), t.id),
                None => (String::new(), *id),
            }
        } else {
            let id = snapshot.topic(name).map(|t| t.id).unwrap_or_default();
            (name.to_string(), id)
        }
    };
    let requested: Vec<WantedPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            let (name, id) = resolve(&t.topic.0, &t.topic_id);
            t.partitions.iter().map(move |p| WantedPartition {
                owner: shard.owner_of_partition(&name, p.partition),
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                log_start_offset: p.log_start_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
            })
        })
        .collect();
    let forgotten = request.forgotten_topics_data.iter().flat_map(|f| {
        let (name, _) = resolve(&f.topic.0, &f.topic_id);
        f.partitions.iter().map(move |p| (name.clone(), *p))
    });
    let (session_id, session_epoch) = if ctx.version >= 7 {
        (request.session_id, request.session_epoch)
    } else {
        (0, -1)
    };
    let locate = |topic: &str, partition: i32| {
        let id = snapshot.topic(topic).map(|t| t.id).unwrap_or_default();
        (id, shard.owner_of_partition(topic, partition))
    };
    ctx.connection.borrow_mut().fetch_sessions.plan(
        session_id,
        session_epoch,
        requested,
        forgotten,
        locate,
    )
}
