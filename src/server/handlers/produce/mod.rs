//! Produce: validate every batch once at the boundary (sizes, magic, CRC-32C), send each
//! partition's bytes to its owning shard, and answer when every append is *produced*
//! (written; and fdatasync'ed first when the partition decides so from the topic's
//! durability policy and the acks). With acks=0 nothing is answered.

use crate::server::access::{may_auto_create, permitted};
use crate::server::authorization::ResourceType;
use crate::server::cluster_view::add_produce_leader_hints;
use crate::server::context::RequestContext;
use crate::server::response::{Reply, encode_frame};
use crate::metadata::quotas::QuotaKey;
use crate::server::{delay_check, quota, timestamp_bounds};
use crate::delay::plan::DelayedRecord;
use crate::shard::topics::ensure_topic;
use crate::metadata::TopicMeta;
use crate::partition::{ACKS_ALL, Partition};
use crate::shard::{Lookup, Shard, now_ms};
use crate::shard::txn_routes;
use crate::storage::batch::{
    BatchError, BatchHeader, BatchSummary, keyless_records, validate_batches,
};
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

mod owners;
use owners::dispatch_on_owners;

/// Produce v12+ is transactions v2's (KIP-890): a transactional append adds its partition to
/// the producer's transaction instead of requiring AddPartitionsToTxn first.
const TRANSACTIONS_V2_SINCE_VERSION: i16 = 12;

/// (batch index, message) of each refused record.
type RecordErrors = Vec<(i32, String)>;

/// Result of one partition's append, sent back from the owning shard.
struct Appended {
    topic_index: usize,
    partition: i32,
    error_code: i16,
    error_message: Option<String>,
    /// Kafka's per-record errors (index of the record in its batch, message), v8+: the
    /// timestamp bounds and the compacted-topic key rule.
    record_errors: RecordErrors,
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
}

struct PendingAppend {
    topic_index: usize,
    topic: String,
    partition: i32,
    records: Bytes,
    /// Records in all batches (from the boundary validation), for the records-in counter.
    record_count: u64,
    /// The producer's acks: with the topic's durability, the partition decides from it
    /// whether the answer waits for fdatasync; acks=all also waits for the in-sync replicas.
    acks: i16,
    /// How long acks=all may wait for the in-sync replicas (the request's `timeout_ms`).
    replication_timeout_ms: i32,
    /// Set when a record asks for delayed delivery: every record of the partition, bound
    /// for the owning shard's delay log instead of the partition (decision 0009).
    delayed: Option<Vec<DelayedRecord>>,
}

fn partition_error(
    topic_index: usize,
    partition: i32,
    code: i16,
    message: Option<String>,
) -> Appended {
    Appended {
        topic_index,
        partition,
        error_code: code,
        error_message: message,
        record_errors: Vec::new(),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

fn batch_error_code(e: &BatchError) -> i16 {
    e.kafka_error_code()
}

pub async fn handle(ctx: &RequestContext<'_>, request: ProduceRequest) -> Reply {
    let shard = ctx.shard;
    // Take the request apart now: every string in it points into the request buffer, and
    // the record bytes can only be patched in place once nothing else refers to it.
    let ProduceRequest {
        acks,
        timeout_ms,
        topic_data,
        transactional_id,
        ..
    } = request;
    let transactional_id = transactional_id.map(|t| t.0.to_string());
    let transactional = transactional_id.is_some();
    let mut results: Vec<Appended> = Vec::new();
    let mut pending: Vec<PendingAppend> = Vec::new();
    // Counted against the producer's byte-rate quota, like Kafka's request size.
    let mut produced_bytes = 0usize;
    let topic_names: Vec<String> = topic_data.iter().map(|t| t.name.0.to_string()).collect();

    // Kafka refuses every partition of a transactional request whose id the principal may
    // not write, before looking at topics.
    let id_refused = transactional_id
        .as_deref()
        .is_some_and(|id| !permitted(ctx, ResourceType::TransactionalId, id));
    for (topic_index, topic_data) in topic_data.into_iter().enumerate() {
        let name = &topic_names[topic_index];
        let topic = if acks != -1 && acks != 0 && acks != 1 {
            Err(ResponseError::InvalidRequiredAcks.code())
        } else if id_refused {
            Err(ResponseError::TransactionalIdAuthorizationFailed.code())
        } else if !permitted(ctx, ResourceType::Topic, name) {
            Err(ResponseError::TopicAuthorizationFailed.code())
        } else {
            let auto_create = may_auto_create(ctx, name);
            ensure_topic(shard, name, auto_create).await.map_err(|e| e.code)
        };
        for partition_data in topic_data.partition_data {
            produced_bytes += partition_data.records.as_ref().map_or(0, |r| r.len());
            let p = partition_data.index;
            let checked = match &topic {
                Ok(topic) => check_partition(
                    topic,
                    topic_index,
                    p,
                    partition_data.records,
                    transactional,
                    acks,
                ),
                Err(code) => Err(partition_error(topic_index, p, *code, None)),
            };
            match checked {
                Ok(append) => pending.push(PendingAppend {
                    replication_timeout_ms: timeout_ms,
                    ..append
                }),
                Err(refused) => results.push(refused),
            }
        }
    }

    if let Some(transactional_id) = &transactional_id
        && !pending.is_empty()
    {
        let implicit_add = ctx.version >= TRANSACTIONS_V2_SINCE_VERSION;
        pending =
            verify_transactional(shard, transactional_id, implicit_add, pending, &mut results)
                .await;
    }

    // Stage one, *dispatched*: every append has its offsets and its place in its log's
    // write queue. The connection may then dispatch the next request while these become
    // durable, so pipelined acks=all requests share one fdatasync.
    let produced = dispatch_on_owners(shard, pending, ctx.connection, transactional).await;
    let throttle_ms =
        quota::record_and_throttle(ctx, QuotaKey::ProducerByteRate, produced_bytes).await;
    let metrics = shard.metrics.clone();
    let api_key = ctx.api as i16;
    let (correlation_id, version) = (ctx.correlation_id, ctx.version);
    let header_version = ctx.api.response_header_version(version);
    let snapshot = shard.metadata.load_full();
    let listener = ctx.connection.borrow().listener.clone();
    // Stage two, *produced*: the answer once every append is written (and synced).
    let answer = async move {
        results.extend(produced.await);
        for r in results.iter().filter(|r| r.error_code != 0) {
            metrics.record_error(api_key, r.error_code);
        }
        if acks == 0 {
            return Reply::None;
        }
        let mut body = response(topic_names, results).with_throttle_time_ms(throttle_ms);
        add_produce_leader_hints(&snapshot, listener.as_deref(), version, &mut body);
        match encode_frame(correlation_id, header_version, &body, version) {
            Ok(frame) => Reply::Frame(frame),
            Err(e) => Reply::Close(format!("Produce v{version}: {e}")),
        }
    };
    Reply::Deferred(Box::pin(answer))
}

/// The boundary checks of one partition's records (structure and CRC exactly once, sizes,
/// transactional markers).
fn check_partition(
    topic: &TopicMeta,
    topic_index: usize,
    p: i32,
    records: Option<Bytes>,
    transactional: bool,
    acks: i16,
) -> Result<PendingAppend, Appended> {
    let refuse = |code: i16, message: Option<String>| partition_error(topic_index, p, code, message);
    if p < 0 || p >= topic.partitions {
        return Err(refuse(ResponseError::UnknownTopicOrPartition.code(), None));
    }
    let Some(records) = records else {
        return Err(refuse(ResponseError::InvalidRecord.code(), None));
    };
    let batches = validate_batches(&records)
        .map_err(|e| refuse(batch_error_code(&e), Some(e.to_string())))?;
    if let Some(big) = batches
        .iter()
        .find(|b| b.size_bytes() > topic.config.max_message_bytes as usize)
    {
        return Err(refuse(
            ResponseError::MessageTooLarge.code(),
            Some(format!(
                "batch of {} bytes exceeds max.message.bytes {}",
                big.size_bytes(),
                topic.config.max_message_bytes
            )),
        ));
    }
    if let Err(refused) = timestamp_bounds::check(&topic.config, &records, &batches, now_ms()) {
        let mut answer = refuse(ResponseError::InvalidTimestamp.code(), Some(refused.message));
        answer.record_errors = refused.record_errors;
        return Err(answer);
    }
    if topic.config.cleanup_policy.compacts() {
        reject_keyless_records(&topic.name, p, &records, &batches).map_err(|(message, errors)| {
            Appended {
                record_errors: errors,
                ..refuse(ResponseError::InvalidRecord.code(), Some(message))
            }
        })?;
    }
    if batches.iter().any(|b| b.header.is_control()) {
        return Err(refuse(
            ResponseError::InvalidRecord.code(),
            Some("control batches are written by the transaction coordinator only".into()),
        ));
    }
    if batches.iter().any(|b| b.header.is_transactional() != transactional) {
        let why = if transactional {
            "a transactional producer sends only transactional batches"
        } else {
            "transactional batches need a transactional id"
        };
        return Err(refuse(ResponseError::InvalidRecord.code(), Some(why.into())));
    }
    let delayed = delay_check::check(topic, &records, &batches, transactional, now_ms())
        .map_err(|refused| Appended {
            record_errors: refused.record_errors,
            ..refuse(ResponseError::InvalidRecord.code(), Some(refused.message))
        })?;
    Ok(PendingAppend {
        topic_index,
        topic: topic.name.clone(),
        partition: p,
        records,
        record_count: batches
            .iter()
            .map(|b| b.header.record_count.max(0) as u64)
            .sum(),
        acks,
        replication_timeout_ms: 0,
        delayed,
    })
}

/// Transactional appends go only to partitions the producer's open transaction holds, and
/// only from its current epoch (Kafka's produce-time verification, KIP-890); with
/// `implicit_add` (transactions v2) the partitions join the transaction here. One call to
/// the id's coordinator per request; refused partitions never reach a log.
async fn verify_transactional(
    shard: &Rc<Shard>,
    transactional_id: &str,
    implicit_add: bool,
    pending: Vec<PendingAppend>,
    results: &mut Vec<Appended>,
) -> Vec<PendingAppend> {
    // Every batch was checked to be transactional; one producer sends the whole request.
    let producer = pending
        .first()
        .and_then(|a| BatchHeader::parse(&a.records).ok())
        .map(|h| (h.producer_id, h.producer_epoch));
    let Some((producer_id, epoch)) = producer else {
        return pending;
    };
    let partitions: Vec<(String, i32)> = pending
        .iter()
        .map(|a| (a.topic.clone(), a.partition))
        .collect();
    // At the id's coordinator: this broker's shard, or another broker (cluster mode).
    let verdicts = txn_routes::verify_produce(
        shard,
        transactional_id,
        implicit_add,
        (producer_id, epoch),
        partitions,
    )
    .await;
    let mut allowed = Vec::with_capacity(pending.len());
    for (append, verdict) in pending.into_iter().zip(verdicts) {
        match verdict {
            Ok(()) => allowed.push(append),
            // Produce has no PRODUCER_FENCED: a stale epoch is INVALID_PRODUCER_EPOCH.
            Err(e) => results.push(partition_error(
                append.topic_index,
                append.partition,
                e.code(0, i16::MAX),
                Some(e.to_string()),
            )),
        }
    }
    allowed
}

/// Kafka's rule for compacted topics: every record needs a key, else the partition's whole
/// append is refused with INVALID_RECORD and one record error per keyless record.
fn reject_keyless_records(
    topic: &str,
    partition: i32,
    records: &[u8],
    batches: &[BatchSummary],
) -> Result<(), (String, RecordErrors)> {
    let mut errors = Vec::new();
    for batch in batches {
        let bytes = &records[batch.position..];
        let Some(keyless) = keyless_records(bytes, &batch.header) else {
            let message = format!("malformed records in the batch at offset {}", batch.header.base_offset);
            return Err((message, Vec::new()));
        };
        errors.extend(keyless.into_iter().map(|index| {
            let message = format!(
                "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
            );
            (index, message)
        }));
    }
    if errors.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
        .collect();
    let message = format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    );
    Err((message, errors))
}

/// The ProduceResponse for every partition's result, topics in request order.
fn response(topic_names: Vec<String>, results: Vec<Appended>) -> ProduceResponse {
    let mut responses: Vec<TopicProduceResponse> = topic_names
        .into_iter()
        .map(|n| {
            TopicProduceResponse::default().with_name(kafka_protocol::messages::TopicName(
                StrBytes::from_string(n),
            ))
        })
        .collect();
    for r in results {
        let mut partition = PartitionProduceResponse::default()
            .with_index(r.partition)
            .with_error_code(r.error_code)
            .with_base_offset(r.base_offset)
            .with_log_append_time_ms(r.log_append_time_ms)
            .with_log_start_offset(r.log_start_offset);
        if let Some(m) = r.error_message {
            partition = partition.with_error_message(Some(StrBytes::from_string(m)));
        }
        if !r.record_errors.is_empty() {
            partition = partition.with_record_errors(
                r.record_errors
                    .into_iter()
                    .map(|(index, message)| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(index)
                            .with_batch_index_error_message(Some(StrBytes::from_string(message)))
                    })
                    .collect(),
            );
        }
        responses[r.topic_index].partition_responses.push(partition);
    }
    ProduceResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(0)
}

/// One partition's append on its owning shard; `on_dispatched` as in `Partition::append`.
async fn append_one(
    shard: &Rc<Shard>,
    a: PendingAppend,
    now: i64,
    on_dispatched: impl FnOnce(),
) -> Appended {
    let partition = match shard.led(&a.topic, a.partition) {
        Lookup::Online(partition) => partition,
        Lookup::Offline(why) => {
            return partition_error(
                a.topic_index,
                a.partition,
                ResponseError::KafkaStorageError.code(),
                Some(why),
            );
        }
        // Metadata says it exists but the owner has not opened it yet (creation in flight).
        Lookup::Missing => {
            return partition_error(
                a.topic_index,
                a.partition,
                ResponseError::NotLeaderOrFollower.code(),
                None,
            );
        }
    };
    if let Some(delayed) = &a.delayed {
        on_dispatched();
        return store_delayed(shard, &partition, &a, delayed).await;
    }
    if a.acks == ACKS_ALL && !partition.has_enough_replicas() {
        let code = ResponseError::NotEnoughReplicas.code();
        return partition_error(a.topic_index, a.partition, code, None);
    }
    // The log patches base offsets in place. When this partition's bytes are the only
    // reference to the request buffer (one partition per request) that costs nothing;
    // when several partitions share it, `BytesMut::from` makes the one copy.
    let records = BytesMut::from(a.records);
    let started = std::time::Instant::now();
    let traced = crate::metrics::stage_trace::enabled().then(|| {
        let key = crate::metrics::stage_trace::key(&a.topic, a.partition);
        (key, crate::metrics::stage_trace::now_ns())
    });
    let appended = partition
        .append(records, a.record_count, a.acks, now, on_dispatched)
        .await;
    shard
        .metrics
        .record_append(started.elapsed().as_nanos() as u64);
    if let (Some((key, from)), Ok(outcome)) = (traced, &appended) {
        crate::metrics::stage_trace::mark("pw", key, outcome.last_offset + 1, from, 0);
    }
    if let Ok(outcome) = &appended
        && a.acks == ACKS_ALL
        && let Err(code) =
            replicated(shard, &partition, outcome.last_offset + 1, a.replication_timeout_ms).await
    {
        return partition_error(a.topic_index, a.partition, code, None);
    }
    if let (Some((key, _)), Ok(outcome)) = (traced, &appended) {
        crate::metrics::stage_trace::mark("pa", key, outcome.last_offset + 1, 0, 0);
    }
    match appended {
        // A retried duplicate answers with the original offsets, like a new append.
        Ok(outcome) => Appended {
            topic_index: a.topic_index,
            partition: a.partition,
            error_code: 0,
            error_message: None,
            record_errors: Vec::new(),
            base_offset: outcome.base_offset,
            log_append_time_ms: outcome.log_append_time_ms,
            log_start_offset: outcome.log_start_offset,
        },
        Err(e) => partition_error(
            a.topic_index,
            a.partition,
            e.kafka_error_code(),
            Some(e.to_string()),
        ),
    }
}

/// acks=all with followers (Kafka's delayed produce): waits, on the shard's timer wheel,
/// until the high watermark reaches `end_offset`; REQUEST_TIMED_OUT when `timeout_ms`
/// passes first, NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below
/// `min.insync.replicas` meanwhile, NOT_LEADER_OR_FOLLOWER when a newer leader epoch took
/// the partition away (a deposed leader never acknowledges).
async fn replicated(
    shard: &Rc<Shard>,
    partition: &Partition,
    end_offset: i64,
    timeout_ms: i32,
) -> Result<(), i16> {
    use futures_util::FutureExt;
    if partition.replicas().is_none() {
        return Ok(());
    }
    let timeout = std::time::Duration::from_millis(timeout_ms.max(0) as u64);
    let mut expired = shard.timer.sleep(timeout).fuse();
    let mut caught_up = std::pin::pin!(partition.wait_replicated(end_offset).fuse());
    use crate::partition::Replication;
    let done = futures_util::select! {
        ended = caught_up => ended,
        _ = expired => match partition.replicas() {
            Some(set) if set.deposed() => Replication::NotLeader,
            _ if partition.high_watermark() >= end_offset => Replication::Done,
            _ => return Err(ResponseError::RequestTimedOut.code()),
        },
    };
    match done {
        Replication::Done => Ok(()),
        Replication::NotEnoughReplicas => Err(ResponseError::NotEnoughReplicasAfterAppend.code()),
        Replication::NotLeader => Err(ResponseError::NotLeaderOrFollower.code()),
    }
}

/// The delay path of one partition's append: the records go to the owning shard's delay log
/// (synced when the topic's durability and the acks would sync an append) and the answer
/// carries offset -1: accepted, offset assigned at delivery (decision 0009).
async fn store_delayed(
    shard: &Rc<Shard>,
    partition: &crate::partition::Partition,
    a: &PendingAppend,
    delayed: &[DelayedRecord],
) -> Appended {
    let sync = partition.syncs_appends_with(a.acks);
    match shard.delays.store(&a.topic, a.partition, delayed, sync).await {
        Ok(()) => Appended {
            topic_index: a.topic_index,
            partition: a.partition,
            error_code: 0,
            error_message: None,
            record_errors: Vec::new(),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        },
        Err(e) => {
            let code = match e {
                crate::shard::delayed::DelayError::Full(_) => ResponseError::PolicyViolation,
                crate::shard::delayed::DelayError::Log(_) => ResponseError::KafkaStorageError,
            };
            partition_error(a.topic_index, a.partition, code.code(), Some(e.to_string()))
        }
    }
}
