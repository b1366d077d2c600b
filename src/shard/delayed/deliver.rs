//! The delivery loop of one shard's delay service: takes what the wheel says is due, reads
//! those records back from the delay log, and appends them to their partitions, each
//! partition's records as one batch of the shard's delivery producer, under the
//! intent → append → done protocol of decision 0009 (exactly once across crashes).
//!
//! Owns: rounds (bounded by `ROUND_RECORDS_MAX` / `DELIVERY_BATCH_BYTES_MAX`), sequences of
//! the delivery producer, retrying deliveries whose append failed, dropping records whose
//! topic was deleted. Must not: append anything whose intent is not synced first.

use crate::shard::sequences::NextSequence;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::FutureExt;

use super::{Inner, tick_of};
use crate::delay::delivery::{
    DeliveryProducer, DeliveryRecord, build_delivery_batch, sequence_reached,
};
use crate::delay::log::{self as delay_log, Frame, FrameRef, INTENT_RECORDS_MAX, Intent};
use crate::delay::{DELIVERY_PRODUCER_EPOCH, DELIVERY_PRODUCER_ID_BASE};
use crate::partition::ACKS_ALL;
use crate::shard::{Lookup, Shard, now_ms};
use crate::storage::batch::add_sequence;

/// Records one round takes from the wheel (the rest wait for the next round, moments later).
pub const ROUND_RECORDS_MAX: usize = 16 * 1024;
/// Bytes of records one delivery batch carries at most (a single larger record goes alone).
pub const DELIVERY_BATCH_BYTES_MAX: usize = 512 * 1024;
/// Reads of delay log frames one round keeps in flight at once.
const READS_IN_FLIGHT_MAX: usize = 256;
/// How long a failed delivery, or a record of a partition with one, waits before a retry.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What an append of one delivery came to.
enum Appended {
    Done,
    /// The topic or partition no longer exists: the records have nowhere to go.
    Gone,
    Failed(String),
}

/// How often a shard looks whether its delay log grew enough for a new pending-index
/// checkpoint.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Log bytes written and synced since the last checkpoint's cut that make a new one worth
/// its cost: a restart replays at most about this much log besides the checkpoint (a few
/// ms), and a checkpoint, O(pending records) on a blocking thread (~24 bytes each, written
/// and synced), is not rewritten twice a second while deliveries add only their small
/// intent and `DONE` frames (session 13: 9 MB per shard every 500 ms at 380,000 pending).
pub const CHECKPOINT_AFTER_BYTES: u64 = 4 * 1024 * 1024;

/// Runs until shutdown: recovers unfinished deliveries, then delivers as records fall due;
/// meanwhile takes the delay log's checkpoints.
pub async fn run(shard: Rc<Shard>) {
    futures_util::join!(deliver(shard.clone()), checkpoints(shard));
}

/// Takes a checkpoint (`delay::checkpoint`) once the log's synced end moved
/// `CHECKPOINT_AFTER_BYTES` past the last one's cut (looked at every `CHECKPOINT_EVERY`).
/// A failed one (a segment deleted under it, a full disk) is logged and taken again next
/// time: the previous one stays valid.
async fn checkpoints(shard: Rc<Shard>) {
    let mut stop = shard.shutdown_signal().fuse();
    let inner = shard.delays.inner.clone();
    let dir = inner.writer.dir().to_path_buf();
    // The cut replay started from: a restart does not rewrite the checkpoint it just read
    // while it delivers the records that fell due during the restart.
    let mut last = inner.checkpoint_cut;
    loop {
        let mut sleep = shard
            .timer
            .sleep_until(Instant::now() + CHECKPOINT_EVERY)
            .fuse();
        futures_util::select! {
            _ = stop => return,
            _ = sleep => {},
        }
        if shard.shutting_down.get() || inner.writer.failure().is_some() {
            return;
        }
        let cut = inner.writer.synced();
        if !checkpoint_due(last, cut) {
            continue;
        }
        let started = Instant::now();
        let dir = dir.clone();
        let taken =
            compio::runtime::spawn_blocking(move || crate::delay::checkpoint::take(&dir, cut))
                .await;
        match taken {
            Ok(Ok(pending)) => {
                last = cut;
                tracing::debug!(
                    shard = inner.shard_id,
                    cut,
                    pending,
                    took_ms = started.elapsed().as_millis() as u64,
                    "delay log checkpoint taken"
                );
            }
            Ok(Err(e)) => {
                tracing::debug!(shard = inner.shard_id, error = %e, "delay log checkpoint not taken; retrying later")
            }
            Err(_) => tracing::warn!(
                shard = inner.shard_id,
                "delay log checkpoint thread panicked"
            ),
        }
    }
}

/// The log grew `CHECKPOINT_AFTER_BYTES` from cut `last` to `cut` (a newer segment counts as
/// enough: the old one was full).
fn checkpoint_due(last: u64, cut: u64) -> bool {
    if cut <= last {
        return false;
    }
    delay_log::segment_of(cut) != delay_log::segment_of(last)
        || delay_log::offset_of(cut) - delay_log::offset_of(last) >= CHECKPOINT_AFTER_BYTES
}

/// The delivery loop.
async fn deliver(shard: Rc<Shard>) {
    let mut stop = shard.shutdown_signal().fuse();
    let inner = shard.delays.inner.clone();
    // The round whose intents are synced and whose appends have not run yet: its appends
    // run while the next round reads its records and syncs its intents (decision 0009,
    // "Pipelined rounds"), so a round's critical path is one fdatasync, not two.
    let mut synced: Option<Prepared> = None;
    loop {
        if shard.shutting_down.get() || inner.writer.failure().is_some() {
            return;
        }
        if synced.is_none() {
            // Retries go in sequence order: never while a later round's appends wait.
            retry_unresolved(&shard, &inner).await;
        }
        let now_tick = tick_of(inner.origin_ms, now_ms());
        let mut due = Vec::new();
        {
            let mut wheel = inner.wheel.borrow_mut();
            wheel.advance(now_tick, |_, frame| due.push(frame));
        }
        if due.is_empty() {
            if let Some(round) = synced.take() {
                finish_round(&shard, &inner, round).await;
                inner.writer.delete_released_prefix();
                inner.metrics.set_delayed_pending(inner.pending() as u64);
                continue;
            }
            let next = inner.wheel.borrow().next_tick();
            let wait = match next {
                Some(tick) => Duration::from_millis(tick.saturating_sub(now_tick)),
                None => RETRY_AFTER,
            };
            // Unresolved deliveries are retried at least every RETRY_AFTER.
            let wait = wait.min(RETRY_AFTER);
            let mut sleep = shard.timer.sleep_until(Instant::now() + wait).fuse();
            let mut rearm = Rearm { inner: &inner }.fuse();
            futures_util::select! {
                _ = stop => return,
                _ = sleep => {},
                _ = rearm => {},
            }
            continue;
        }
        inner.delivering.set(inner.delivering.get() + due.len());
        for round in due.chunks(ROUND_RECORDS_MAX) {
            let previous = synced.take();
            let sequences_after = previous
                .as_ref()
                .map(Prepared::sequences_after)
                .unwrap_or_default();
            let finish_previous = async {
                if let Some(previous) = previous {
                    finish_round(&shard, &inner, previous).await;
                }
            };
            let (prepared, ()) = futures_util::join!(
                prepare_round(&shard, &inner, round, &sequences_after),
                finish_previous
            );
            synced = prepared;
        }
        inner.writer.delete_released_prefix();
        inner.metrics.set_delayed_pending(inner.pending() as u64);
    }
}

/// Completes when a store indexed new records (they may be due before the loop's sleep
/// ends).
struct Rearm<'a> {
    inner: &'a Inner,
}

impl Future for Rearm<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.rearm.replace(false) {
            return Poll::Ready(());
        }
        self.inner.driver.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// Puts records back into the wheel to be tried again after `RETRY_AFTER`.
fn retry_later(inner: &Inner, frames: impl IntoIterator<Item = FrameRef>) {
    let at = tick_of(inner.origin_ms, now_ms() + RETRY_AFTER.as_millis() as i64);
    let mut wheel = inner.wheel.borrow_mut();
    for frame in frames {
        if let Err(e) = wheel.insert(at, frame) {
            tracing::error!(error = %e, "delayed record not re-indexed until restart");
        }
    }
}

/// One partition's share of a round.
struct Group {
    topic: String,
    partition: i32,
    frames: Vec<(FrameRef, Vec<u8>)>,
}

/// Reads the due records back from the log and groups them by partition (due order kept).
/// Records of a partition with an unresolved delivery, or unreadable now, wait for later.
async fn read_and_group(inner: &Inner, due: &[FrameRef]) -> Vec<Group> {
    let blocked: Vec<(String, i32)> = inner
        .unresolved
        .borrow()
        .iter()
        .map(|(_, i)| (i.topic.clone(), i.partition))
        .collect();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, i32), usize> = HashMap::new();
    let mut later = Vec::new();
    // The round's reads run together (the ring takes them in one submission): a round
    // waits for the slowest read, not for their sum.
    let mut read = Vec::with_capacity(due.len());
    for chunk in due.chunks(READS_IN_FLIGHT_MAX) {
        let reads = chunk
            .iter()
            .map(|frame| inner.writer.read(frame.position, frame.len));
        read.extend(futures_util::future::join_all(reads).await);
    }
    for (&frame, bytes) in due.iter().zip(read) {
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(position = frame.position, error = %e, "delay log read failed; retrying later");
                later.push(frame);
                continue;
            }
        };
        let Some(Frame::Pending(p)) = delay_log::decode_frame(&bytes) else {
            tracing::error!(
                position = frame.position,
                "delay log frame unreadable; record dropped"
            );
            inner
                .writer
                .release(delay_log::segment_of(frame.position), 1);
            continue;
        };
        let key = (p.topic.to_string(), p.partition);
        if blocked.contains(&key) {
            later.push(frame);
            continue;
        }
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                topic: key.0.clone(),
                partition: key.1,
                frames: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].frames.push((frame, bytes));
    }
    retry_later(inner, later);
    groups
}

/// A round whose intents are written and synced; its appends are still to run.
struct Prepared {
    /// Records the round took from the wheel (for the `delivering` count).
    taken: usize,
    /// Each intent: where its frame is, what it says, and its records' frames and bytes.
    intents: Vec<(FrameRef, Intent, Piece)>,
}

/// A delivery batch's records: each one's frame in the delay log and its bytes.
type Piece = Vec<(FrameRef, Vec<u8>)>;

impl Prepared {
    /// The delivery producer's next sequence on each partition this round appends to, once
    /// its appends are done: the next round starts there instead of asking the partition,
    /// whose state does not have this round's batches yet.
    fn sequences_after(&self) -> HashMap<(String, i32), i32> {
        let mut next = HashMap::new();
        for (_, intent, piece) in &self.intents {
            let after = add_sequence(intent.base_sequence, piece.len() as i32);
            next.insert((intent.topic.clone(), intent.partition), after);
        }
        next
    }
}

/// Reads a round's records, groups them by partition, gives each delivery batch its
/// sequence and writes and syncs every intent of the round (step 1 of decision 0009).
/// `None` when nothing is left to append (or the intents could not be written).
async fn prepare_round(
    shard: &Rc<Shard>,
    inner: &Rc<Inner>,
    due: &[FrameRef],
    sequences_after: &HashMap<(String, i32), i32>,
) -> Option<Prepared> {
    let groups = read_and_group(inner, due).await;
    let mut intents = Vec::new();
    for group in groups {
        let key = (group.topic.clone(), group.partition);
        let known = sequences_after.get(&key).copied();
        let sequence = match known {
            Some(sequence) => Some(sequence),
            None => next_sequence(shard, inner, &group.topic, group.partition).await,
        };
        let Some(mut sequence) = sequence else {
            retry_later(inner, group.frames.iter().map(|(f, _)| *f));
            continue;
        };
        for piece in split_batches(group.frames) {
            let count = piece.len() as i32;
            let intent = Intent {
                topic: group.topic.clone(),
                partition: group.partition,
                base_sequence: sequence,
                records: piece.iter().map(|(f, _)| *f).collect(),
            };
            sequence = add_sequence(sequence, count);
            intents.push((intent, piece));
        }
    }
    if intents.is_empty() {
        inner
            .delivering
            .set(inner.delivering.get().saturating_sub(due.len()));
        return None;
    }
    // Every intent of the round, synced once.
    let mut frames = Vec::new();
    let mut offsets = Vec::with_capacity(intents.len());
    for (intent, _) in &intents {
        let offset = frames.len() as u64;
        let len = delay_log::encode_intent(&mut frames, intent);
        offsets.push((offset, len));
    }
    let first = inner.writer.stage(frames, intents.len() as u64, true);
    if let Err(e) = inner.writer.flush().await {
        tracing::error!(error = %e, "delivery intents not written; delivery stops");
        return None;
    }
    let intents = intents
        .into_iter()
        .zip(offsets)
        .map(|((intent, piece), (offset, len))| {
            let at = FrameRef {
                position: first + offset,
                len,
            };
            (at, intent, piece)
        })
        .collect();
    Some(Prepared {
        taken: due.len(),
        intents,
    })
}

/// Steps 2 and 3 of decision 0009 for a prepared round: the appends, every partition at
/// once, then `DONE` frames (synced by a later round's intent sync). A partition with an
/// unresolved delivery (an earlier round's append failed meanwhile) is not appended to: its
/// intent joins the unresolved ones, retried in sequence order.
async fn finish_round(shard: &Rc<Shard>, inner: &Rc<Inner>, round: Prepared) {
    let blocked: Vec<(String, i32)> = inner
        .unresolved
        .borrow()
        .iter()
        .map(|(_, i)| (i.topic.clone(), i.partition))
        .collect();
    let appends = round.intents.into_iter().map(|(at, intent, piece)| {
        let waits = blocked.contains(&(intent.topic.clone(), intent.partition));
        async move {
            let outcome = if waits {
                Appended::Failed("an earlier delivery to the partition is unresolved".into())
            } else {
                append_intent(shard, inner, &intent, &piece).await
            };
            (at, intent, piece, outcome)
        }
    });
    let results = futures_util::future::join_all(appends).await;
    for (at, intent, piece, outcome) in results {
        settle(inner, at, intent, &piece, outcome);
    }
    inner
        .delivering
        .set(inner.delivering.get().saturating_sub(round.taken));
    let _ = inner.writer.flush().await;
}

/// Splits a partition's due records into batches of at most `INTENT_RECORDS_MAX` records
/// and `DELIVERY_BATCH_BYTES_MAX` bytes.
fn split_batches(frames: Vec<(FrameRef, Vec<u8>)>) -> Vec<Vec<(FrameRef, Vec<u8>)>> {
    let mut out: Vec<Vec<(FrameRef, Vec<u8>)>> = Vec::new();
    let mut bytes = 0usize;
    for frame in frames {
        let len = frame.1.len();
        let full = out.last().is_none_or(|last| {
            last.len() >= INTENT_RECORDS_MAX || bytes + len > DELIVERY_BATCH_BYTES_MAX
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += len;
        if let Some(last) = out.last_mut() {
            last.push(frame);
        }
    }
    out
}

/// Records the outcome of one delivery: done (or dropped) → DONE frame and released
/// frames; failed → kept as unresolved, retried with the same sequence.
fn settle(
    inner: &Inner,
    at: FrameRef,
    intent: Intent,
    piece: &[(FrameRef, Vec<u8>)],
    outcome: Appended,
) {
    match outcome {
        Appended::Done | Appended::Gone => {
            if matches!(outcome, Appended::Gone) {
                tracing::warn!(
                    topic = intent.topic,
                    partition = intent.partition,
                    records = piece.len(),
                    "delayed records dropped: their partition no longer exists"
                );
                inner.metrics.record_delayed_dropped(piece.len() as u64);
            } else {
                let now = now_ms();
                let lateness = piece
                    .iter()
                    .filter_map(|(_, bytes)| match delay_log::decode_frame(bytes) {
                        Some(Frame::Pending(p)) => {
                            let late_ms = u64::try_from(now.saturating_sub(p.due_ms)).unwrap_or(0);
                            Some(late_ms.saturating_mul(1_000_000))
                        }
                        _ => None,
                    });
                inner.metrics.record_delivered(lateness);
                if let Some(opened) = inner.opened.take() {
                    tracing::info!(
                        shard = inner.shard_id,
                        records = piece.len(),
                        since_open_ms = opened.elapsed().as_millis() as u64,
                        "first delivery since the delay log was opened"
                    );
                }
            }
            inner.settled(&intent.topic, intent.partition, piece.len() as u64);
            let mut frames = Vec::with_capacity(32);
            delay_log::encode_done(&mut frames, at.position);
            inner.writer.stage(frames, 0, false);
            inner.writer.release(delay_log::segment_of(at.position), 1);
            for (frame, _) in piece {
                inner
                    .writer
                    .release(delay_log::segment_of(frame.position), 1);
            }
        }
        Appended::Failed(why) => {
            tracing::warn!(
                topic = intent.topic,
                partition = intent.partition,
                error = why,
                "delayed delivery failed; retrying with the same sequence"
            );
            inner.unresolved.borrow_mut().push((at, intent));
        }
    }
}

/// Appends the deliveries whose intent is written but whose append never completed (after
/// a restart, or after a failure), with their original sequences.
async fn retry_unresolved(shard: &Rc<Shard>, inner: &Rc<Inner>) {
    let pending = std::mem::take(&mut *inner.unresolved.borrow_mut());
    if pending.is_empty() {
        return;
    }
    let mut settled_any = false;
    for (at, intent) in pending {
        let mut piece = Vec::with_capacity(intent.records.len());
        let mut readable = true;
        // An intent's reads run together, as a round's do: a restart retries the intents
        // the crash left unresolved before any new round, so their reads (up to
        // `INTENT_RECORDS_MAX` each) are on every overdue record's path.
        for chunk in intent.records.chunks(READS_IN_FLIGHT_MAX) {
            let reads = chunk
                .iter()
                .map(|frame| inner.writer.read(frame.position, frame.len));
            let read = futures_util::future::join_all(reads).await;
            for (&frame, bytes) in chunk.iter().zip(read) {
                match bytes {
                    Ok(bytes) => piece.push((frame, bytes)),
                    Err(e) => {
                        tracing::error!(position = frame.position, error = %e, "delay log read failed");
                        readable = false;
                    }
                }
            }
            if !readable {
                break;
            }
        }
        let outcome = if readable {
            append_intent(shard, inner, &intent, &piece).await
        } else {
            Appended::Failed("delay log read failed".into())
        };
        settled_any |= !matches!(outcome, Appended::Failed(_));
        settle(inner, at, intent, &piece, outcome);
    }
    if settled_any {
        let _ = inner.writer.flush().await;
    }
}

/// Builds the delivery batch of an intent and appends it on the partition's owner.
async fn append_intent(
    shard: &Rc<Shard>,
    inner: &Inner,
    intent: &Intent,
    piece: &[(FrameRef, Vec<u8>)],
) -> Appended {
    let mut records = Vec::with_capacity(piece.len());
    for (_, bytes) in piece {
        match delay_log::decode_frame(bytes) {
            Some(Frame::Pending(p)) => records.push(DeliveryRecord {
                timestamp_ms: p.timestamp_ms,
                tail: p.tail,
            }),
            _ => return Appended::Failed("delay log frame unreadable".into()),
        }
    }
    let producer = DeliveryProducer {
        producer_id: DELIVERY_PRODUCER_ID_BASE + inner.shard_id as i64,
        epoch: DELIVERY_PRODUCER_EPOCH,
        base_sequence: intent.base_sequence,
    };
    let batch = build_delivery_batch(&records, producer);
    let count = records.len() as u64;
    let last_sequence = add_sequence(intent.base_sequence, records.len() as i32 - 1);
    let (topic, partition) = (intent.topic.clone(), intent.partition);
    let owner = shard.owner_of_partition(&topic, partition);
    let shard_id = inner.shard_id;
    let call = shard.invoke_on(owner, move |s| async move {
        let delivery = (shard_id, last_sequence);
        append_on_owner(&s, &topic, partition, batch, count, delivery).await
    });
    match call.await {
        Ok(outcome) => outcome,
        Err(e) => Appended::Failed(e.to_string()),
    }
}

/// `delivery`: the delivering shard and the batch's last sequence. A batch the partition's
/// delivery producer state is already at or past was appended before (a retried intent
/// whose `DONE` was lost in a crash): it is done, whether or not the partition still
/// remembers the batch among its last five (the sequences on a partition are assigned by one
/// shard only, in order, and the partition accepts them only in order).
async fn append_on_owner(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    batch: BytesMut,
    count: u64,
    delivery: (usize, i32),
) -> Appended {
    let (shard_id, last_sequence) = delivery;
    let producer_id = DELIVERY_PRODUCER_ID_BASE + shard_id as i64;
    match shard.led(topic, partition) {
        Lookup::Online(p)
            if p.producer_states().iter().any(|state| {
                state.producer_id == producer_id
                    && sequence_reached(state.last_sequence, last_sequence)
            }) =>
        {
            Appended::Done
        }
        Lookup::Online(p) => match p.append(batch, count, ACKS_ALL, now_ms(), || {}).await {
            Ok(_) => Appended::Done,
            Err(e) => Appended::Failed(e.to_string()),
        },
        Lookup::Offline(why) => Appended::Failed(why),
        Lookup::Missing => {
            let exists = shard
                .metadata
                .load()
                .topic(topic)
                .is_some_and(|t| partition < t.partitions);
            if exists {
                Appended::Failed("partition not open yet".into())
            } else {
                Appended::Gone
            }
        }
    }
}

/// The delivery producer's next sequence on a partition (its last one + 1 in the
/// partition's producer state; 0 when the partition does not know it). `None` when the
/// owner cannot answer now. Missing partitions are settled by the append (dropped or retried).
async fn next_sequence(
    shard: &Rc<Shard>,
    inner: &Inner,
    topic: &str,
    partition: i32,
) -> Option<i32> {
    let producer_id = DELIVERY_PRODUCER_ID_BASE + inner.shard_id as i64;
    match crate::shard::sequences::next_sequence(shard, topic, partition, producer_id).await {
        NextSequence::Known(sequence) => Some(sequence),
        NextSequence::Missing => Some(0),
        NextSequence::Unavailable => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delay::log::position;

    #[test]
    fn a_checkpoint_is_due_after_enough_log_or_a_new_segment() {
        let step = CHECKPOINT_AFTER_BYTES;
        assert!(!checkpoint_due(position(2, 100), position(2, 100)));
        assert!(!checkpoint_due(
            position(2, 100),
            position(2, 100 + step - 1)
        ));
        assert!(checkpoint_due(position(2, 100), position(2, 100 + step)));
        assert!(checkpoint_due(position(2, 100), position(3, 10)));
        assert!(checkpoint_due(0, position(0, step)));
        assert!(!checkpoint_due(position(3, 10), position(2, 100 + step)));
    }
}
