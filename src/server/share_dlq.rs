//! Dead-letter queues for share groups (KIP-1191): a share group with
//! `errors.deadletterqueue.topic.name` set writes each record it gives up on — REJECTed by a
//! member, or delivered `share.delivery.count.limit` times — onto that topic before the
//! record is archived. The dead-letter record carries Kafka's `__dlq.errors.*` headers
//! (source topic, partition, offset, group, delivery count, why) and, when
//! `errors.deadletterqueue.copy.record.enable` is true, the source record's key and value;
//! its timestamp is the time it was written. It goes to partition `source partition mod
//! dead-letter partitions`, as Kafka does.
//!
//! Exactly once across crashes (decision 0015): a record to dead-letter is first written
//! durably as ARCHIVING in the share-state log (with the acknowledgement that caused it);
//! then an *intent* — the records of one dead-letter batch and the base sequence of the
//! group's dead-letter producer on the dead-letter partition — is written durably; then the
//! batch is appended with that producer id and sequence (acks=all); then the records become
//! ARCHIVED, durably. A crash before the intent is durable appends nothing; a crash after
//! it retries the same batch with the same sequence, which the dead-letter partition's
//! idempotent-producer state answers as a duplicate if the first append landed (or is
//! already past, if it no longer remembers the batch). One intent at a time per group and
//! partition, so the producer's sequences reach the partition in order.
//!
//! Owns: the forwarding loop, the target checks (prefix, topic flag, auto-creation), the
//! dead-letter batch's bytes. Must not: change record states itself (`partition::share`).

use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use crate::config::group_config::{DeadLetterTarget, dead_letter_target};
use crate::delay::delivery::{DeliveryProducer, DeliveryRecord, build_delivery_batch};
use crate::delay::plan::put_varint;
use crate::partition::share::{DeadLetter, DeadLetterStep, DlqIntent};
use crate::partition::{ACKS_ALL, Isolation, Partition};
use crate::shard::{Lookup, Shard, now_ms};
use crate::storage::batch::{BatchHeader, RECORD_BATCH_HEADER_BYTES, add_sequence, read_varint};
use crate::storage::codec::{self, CODEC_NONE};

/// Producer ids of dead-letter producers: `DLQ_PRODUCER_ID_BASE` + 48 bits of a hash of
/// (group, topic, partition), below the delay service's delivery producers and far above
/// anything InitProducerId hands out.
pub const DLQ_PRODUCER_ID_BASE: i64 = 0x7ffe_0000_0000_0000;
const DLQ_PRODUCER_ID_MASK: i64 = 0x0000_ffff_ffff_ffff;
pub const DLQ_PRODUCER_EPOCH: i16 = 0;
const _: () =
    assert!(DLQ_PRODUCER_ID_BASE + DLQ_PRODUCER_ID_MASK < crate::delay::DELIVERY_PRODUCER_ID_BASE);

/// Kafka's dead-letter context headers (`ShareGroupDLQStateManager`).
pub const HEADER_TOPIC: &str = "__dlq.errors.topic";
pub const HEADER_PARTITION: &str = "__dlq.errors.partition";
pub const HEADER_OFFSET: &str = "__dlq.errors.offset";
pub const HEADER_GROUP: &str = "__dlq.errors.group";
pub const HEADER_DELIVERY_COUNT: &str = "__dlq.errors.delivery.count";
pub const HEADER_MESSAGE: &str = "__dlq.errors.message";

/// The topic config that lets share groups write onto a topic as their dead-letter topic.
pub const TOPIC_ENABLE_KEY: &str = "errors.deadletterqueue.group.enable";

/// How long a failed dead-letter append waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Failed attempts in a row after which forwarding stops until the share-partition is
/// touched again (a fetch or an acknowledgement restarts it): a bound on a dead target's
/// cost.
const ATTEMPTS_MAX: u32 = 30;
/// Bytes read from the source partition to find one record to copy (its batch is read
/// whole whatever this says).
const COPY_READ_BYTES: u32 = 64 * 1024;
/// Largest decompressed batch a copy decodes.
const COPY_DECOMPRESSED_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The group's dead-letter producer id for one source partition (FNV-1a, stable across
/// versions and restarts: a retried intent must use the same id).
pub fn dlq_producer_id(group_id: &str, topic: &str, partition: i32) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(group_id.as_bytes());
    eat(&[0]);
    eat(topic.as_bytes());
    eat(&[0]);
    eat(&partition.to_le_bytes());
    DLQ_PRODUCER_ID_BASE + (hash as i64 & DLQ_PRODUCER_ID_MASK)
}

/// Where one share-partition's dead letters go now.
struct Target {
    topic: String,
    partition: i32,
    copy_record: bool,
}

/// Why the dead-letter topic cannot take records.
enum Refusal {
    /// Never will as configured (Kafka's `validateDlqTopic` failures): the records are
    /// archived without a dead letter, as Kafka does, and a warning is logged.
    Permanent(String),
    /// May later (the topic being created, a partition not open yet): try again.
    Transient(String),
}

/// Starts the group's dead-letter forwarding for this partition (this shard owns it) if
/// records wait and none runs; returns at once.
pub fn forward_dead_letters(
    shard: &Rc<Shard>,
    p: &Partition,
    topic: &str,
    partition: i32,
    group_id: &str,
) {
    if !p.share_has_dead_letters(group_id) {
        return;
    }
    let Some(claim) = p.share_dead_letter_claim(group_id) else {
        return;
    };
    let (shard, topic, group) = (Rc::clone(shard), topic.to_string(), group_id.to_string());
    compio::runtime::spawn(async move {
        let _claim = claim;
        forward(&shard, &topic, partition, &group).await;
    })
    .detach();
}

async fn forward(shard: &Rc<Shard>, topic: &str, partition: i32, group: &str) {
    let mut failures = 0u32;
    while failures < ATTEMPTS_MAX && !shard.shutting_down.get() {
        let Lookup::Online(p) = shard.led(topic, partition) else {
            return;
        };
        let target = resolve_target(shard, group, partition).await;
        let step = match p.share_dead_letter_step(group, None).await {
            Ok(DeadLetterStep::NeedSequence) => {
                // A permanent refusal archives without a dead letter: any sequence will do.
                let sequence = match &target {
                    Ok(t) => {
                        next_sequence(shard, t, dlq_producer_id(group, topic, partition)).await
                    }
                    Err(Refusal::Permanent(_)) => Some(0),
                    Err(Refusal::Transient(_)) => None,
                };
                match sequence {
                    Some(seq) => p.share_dead_letter_step(group, Some(seq)).await,
                    None => Ok(DeadLetterStep::NeedSequence),
                }
            }
            other => other,
        };
        let outcome = match step {
            Ok(DeadLetterStep::Idle) => return,
            Ok(DeadLetterStep::NeedSequence) => {
                Err("dead-letter partition not available".to_string())
            }
            Ok(DeadLetterStep::Append(intent, letters)) => match &target {
                Ok(t) => append(shard, &p, t, (topic, partition, group), &intent, &letters).await,
                Err(Refusal::Permanent(why)) => {
                    tracing::warn!(group, topic, partition, records = letters.len(), reason = %why,
                        "share group's dead-letter topic refused; archiving without dead letters");
                    Ok(())
                }
                Err(Refusal::Transient(why)) => Err(why.clone()),
            },
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                crash_if_armed();
                failures = 0;
                if let Err(e) = p.share_dead_letter_done(group).await {
                    tracing::warn!(group, topic, partition, error = %e, "dead-letter state not written");
                    failures += 1;
                    compio::time::sleep(RETRY_AFTER).await;
                }
            }
            Err(why) => {
                failures += 1;
                tracing::debug!(group, topic, partition, reason = %why, "dead-letter append failed; retrying");
                compio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// The crash-injection hook of the dead-letter crash test: with `SLUICE_FAULT_DLQ_CRASH`
/// set to `after_append`, the broker SIGKILLs itself right after a dead-letter append and
/// before its records are archived, the window the intent's sequence makes exactly once.
/// Read once; inert unless set.
pub const FAULT_ENV: &str = "SLUICE_FAULT_DLQ_CRASH";

fn crash_if_armed() {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ARMED.get_or_init(|| std::env::var(FAULT_ENV).is_ok_and(|v| v == "after_append")) {
        return;
    }
    tracing::error!("{FAULT_ENV}: killing the broker after a dead-letter append");
    // SAFETY: sends a signal to this very process; nothing is read from or written to memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort();
}

/// Kafka's checks of a share group's dead-letter topic, made when records go there (the
/// configs are dynamic): a name, not internal, with the broker's prefix; an existing topic
/// must have `errors.deadletterqueue.group.enable`; a missing one is created only with
/// `errors_deadletterqueue_auto_create_topics_enable`.
async fn resolve_target(shard: &Rc<Shard>, group: &str, partition: i32) -> Result<Target, Refusal> {
    let metadata = shard.metadata.load();
    let Some(DeadLetterTarget { topic, copy_record }) =
        dead_letter_target(metadata.group_configs.get(group).map(|c| &**c))
    else {
        return Err(Refusal::Permanent(format!(
            "Configured DLQ topic name in share group: {group} is empty."
        )));
    };
    if topic.starts_with("__") {
        return Err(Refusal::Permanent(format!(
            "Configured DLQ topic name in share group: {group} cannot start with __, topic: {topic}."
        )));
    }
    let prefix = &shard.config.errors_deadletterqueue_topic_name_prefix;
    if !prefix.is_empty() && !topic.starts_with(prefix.as_str()) {
        return Err(Refusal::Permanent(format!(
            "Configured DLQ topic name does not comply with the DLQ topic prefix in share group: {group}, topic: {topic}, prefix: {prefix}."
        )));
    }
    // What the topic looks like, read before any await (the snapshot is not held across one).
    let found = metadata.topic(&topic).map(|meta| {
        (
            meta.config.get(TOPIC_ENABLE_KEY).as_deref() == Some("true"),
            meta.partitions,
        )
    });
    drop(metadata);
    match found {
        Some((false, _)) => Err(Refusal::Permanent(format!(
            "DLQ is not enabled on configured DLQ topic for share group: {group}, topic: {topic}."
        ))),
        Some((true, partitions)) if partitions > 0 => Ok(Target {
            partition: partition.rem_euclid(partitions),
            topic,
            copy_record,
        }),
        Some(_) => Err(Refusal::Transient(format!(
            "DLQ topic {topic} has no partitions"
        ))),
        None if shard
            .config
            .errors_deadletterqueue_auto_create_topics_enable =>
        {
            let overrides = [(TOPIC_ENABLE_KEY.to_string(), "true".to_string())].into();
            let created = crate::shard::topics::create_topic(
                shard,
                topic.clone(),
                shard.config.default_partitions,
                -1,
                overrides,
                false,
            )
            .await;
            Err(Refusal::Transient(match created {
                Ok(_) => format!("DLQ topic {topic} created"),
                Err(e) => format!("DLQ topic {topic} not created: {}", e.message),
            }))
        }
        None => Err(Refusal::Permanent(format!(
            "DLQ topic does not exist and auto create is disabled on cluster for share group: {group}, topic: {topic}."
        ))),
    }
}

/// The dead-letter producer's next sequence on the target partition (0 when the partition
/// does not know it); None when its owner cannot answer now or it is missing.
async fn next_sequence(shard: &Rc<Shard>, target: &Target, producer_id: i64) -> Option<i32> {
    match crate::shard::sequences::next_sequence(
        shard,
        &target.topic,
        target.partition,
        producer_id,
    )
    .await
    {
        crate::shard::sequences::NextSequence::Known(sequence) => Some(sequence),
        _ => None,
    }
}

/// Builds the intent's dead-letter batch and appends it on the target partition's owner.
async fn append(
    shard: &Rc<Shard>,
    source: &Partition,
    target: &Target,
    (topic, partition, group): (&str, i32, &str),
    intent: &DlqIntent,
    letters: &[DeadLetter],
) -> Result<(), String> {
    if letters.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut tails: Vec<BytesMut> = Vec::with_capacity(letters.len());
    for letter in letters {
        let key_value = if target.copy_record {
            read_key_value(source, letter.offset).await?
        } else {
            None
        };
        tails.push(dead_letter_tail(
            key_value.as_deref(),
            topic,
            partition,
            group,
            letter,
        ));
    }
    let records: Vec<DeliveryRecord<'_>> = tails
        .iter()
        .map(|tail| DeliveryRecord {
            timestamp_ms: now,
            tail,
        })
        .collect();
    let producer_id = dlq_producer_id(group, topic, partition);
    let batch = build_delivery_batch(
        &records,
        DeliveryProducer {
            producer_id,
            epoch: DLQ_PRODUCER_EPOCH,
            base_sequence: intent.base_sequence,
        },
    );
    let count = records.len() as u64;
    let last_sequence = add_sequence(intent.base_sequence, records.len() as i32 - 1);
    let owner = shard.owner_of_partition(&target.topic, target.partition);
    let (dlq_topic, dlq_partition) = (target.topic.clone(), target.partition);
    let call = shard.invoke_on(owner, move |s| async move {
        let p = match s.led(&dlq_topic, dlq_partition) {
            Lookup::Online(p) => p,
            Lookup::Offline(why) => return Err(why),
            Lookup::Missing => return Err("dead-letter partition not open".to_string()),
        };
        // Already at or past the batch: a retried intent whose first append landed.
        let landed = p.producer_states().iter().any(|state| {
            state.producer_id == producer_id
                && crate::delay::delivery::sequence_reached(state.last_sequence, last_sequence)
        });
        if landed {
            return Ok(());
        }
        p.append(batch, count, ACKS_ALL, now_ms(), || {})
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    call.await.map_err(|e| e.to_string())?
}

/// A dead-letter record's bytes from its key length on: the source record's key and value
/// (copied) or null ones, then the context headers.
fn dead_letter_tail(
    key_value: Option<&[u8]>,
    topic: &str,
    partition: i32,
    group: &str,
    letter: &DeadLetter,
) -> BytesMut {
    let mut b = BytesMut::with_capacity(256 + key_value.map_or(0, <[u8]>::len));
    match key_value {
        Some(kv) => b.put_slice(kv),
        None => {
            put_varint(&mut b, -1); // key
            put_varint(&mut b, -1); // value
        }
    }
    let partition = partition.to_string();
    let offset = letter.offset.to_string();
    let count = letter.delivery_count.to_string();
    let headers: [(&str, &[u8]); 6] = [
        (HEADER_TOPIC, topic.as_bytes()),
        (HEADER_PARTITION, partition.as_bytes()),
        (HEADER_OFFSET, offset.as_bytes()),
        (HEADER_GROUP, group.as_bytes()),
        (HEADER_DELIVERY_COUNT, count.as_bytes()),
        (HEADER_MESSAGE, letter.cause.message().as_bytes()),
    ];
    put_varint(&mut b, headers.len() as i64);
    for (key, value) in headers {
        put_varint(&mut b, key.len() as i64);
        b.put_slice(key.as_bytes());
        put_varint(&mut b, value.len() as i64);
        b.put_slice(value);
    }
    b
}

/// The source record's key and value, as their record encodes them (key length, key,
/// value length, value); None when the record is gone (retention) or is not found.
async fn read_key_value(source: &Partition, offset: i64) -> Result<Option<Vec<u8>>, String> {
    let slice = match source
        .read(offset, COPY_READ_BYTES, Isolation::ReadUncommitted)
        .await
    {
        Ok(s) => s,
        Err(crate::storage::StorageError::OffsetOutOfRange { .. }) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    for region in &slice.regions {
        let bytes = region.read_to_vec().await.map_err(|e| e.to_string())?;
        if let Some(kv) = key_value_in(&bytes, offset) {
            return Ok(Some(kv));
        }
    }
    Ok(None)
}

/// Finds the record at `offset` in stored batches and returns its key-and-value bytes.
fn key_value_in(batches: &[u8], offset: i64) -> Option<Vec<u8>> {
    let mut at = 0usize;
    while at < batches.len() {
        let header = BatchHeader::parse_at(batches, at).ok()?;
        let end = at.checked_add(header.size_bytes())?;
        let batch = batches.get(at..end)?;
        at = end;
        if header.is_control() || offset < header.base_offset || offset > header.last_offset() {
            continue;
        }
        let section = batch.get(RECORD_BATCH_HEADER_BYTES..)?;
        let mut plain = Vec::new();
        let records: &[u8] = if header.compression() == CODEC_NONE {
            section
        } else {
            codec::decompress(
                header.compression(),
                section,
                COPY_DECOMPRESSED_BYTES_MAX,
                &mut plain,
            )
            .ok()?;
            &plain
        };
        return record_key_value(records, &header, offset);
    }
    None
}

fn record_key_value(records: &[u8], header: &BatchHeader, offset: i64) -> Option<Vec<u8>> {
    let mut at = 0usize;
    for _ in 0..header.record_count.max(0) {
        let length = usize::try_from(read_varint(records, &mut at)?).ok()?;
        let end = at.checked_add(length).filter(|e| *e <= records.len())?;
        let record = &records[..end];
        let mut p = at + 1; // attributes
        read_varint(record, &mut p)?; // timestamp delta
        let offset_delta = read_varint(record, &mut p)?;
        if header.base_offset + offset_delta == offset {
            let key_value_start = p;
            for _ in 0..2 {
                let len = read_varint(record, &mut p)?;
                if len > 0 {
                    p = p
                        .checked_add(usize::try_from(len).ok()?)
                        .filter(|e| *e <= end)?;
                }
            }
            return Some(record[key_value_start..p].to_vec());
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_producer_ids_are_stable_distinct_and_in_their_range() {
        let a = dlq_producer_id("g", "t", 0);
        assert_eq!(a, dlq_producer_id("g", "t", 0));
        assert_ne!(a, dlq_producer_id("g", "t", 1));
        assert_ne!(a, dlq_producer_id("g2", "t", 0));
        assert_ne!(dlq_producer_id("ab", "c", 0), dlq_producer_id("a", "bc", 0));
        for id in [a, dlq_producer_id("x", "y", 7)] {
            assert!((DLQ_PRODUCER_ID_BASE..crate::delay::DELIVERY_PRODUCER_ID_BASE).contains(&id));
        }
    }
}
