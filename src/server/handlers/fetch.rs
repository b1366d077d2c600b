//! Fetch: read file regions from each partition's owning shard and frame them around the
//! record bytes, which then go from the page cache to the socket without a copy (sendfile
//! or splice, chosen by the connection's writer).
//!
//! Long poll: if fewer than `min_bytes` are available, wait until an owning shard reports
//! an append to one of the fetched partitions (then read again) or until `max_wait_ms`
//! passes — never sleep out the wait when data has arrived.
//!
//! Incremental fetch sessions (KIP-227) are kept per connection: the client sends only
//! changed partitions, and we answer only partitions with new data or changed offsets.

use crate::protocol::fetch_encoder::{FetchFraming, PartitionHeader};
use crate::server::connection::ConnectionState;
use crate::server::dispatch::RequestContext;
use crate::server::response::{Chunk, Reply};
use crate::shard::{Lookup, Shard};
use crate::storage::FileRegion;
use bytes::{BufMut, BytesMut};
use futures_util::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::FetchRequest;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Sessions one connection may hold (clients use one; the bound stops abuse).
pub const MAX_FETCH_SESSIONS_PER_CONNECTION: usize = 8;
/// Partitions one fetch session may track.
pub const MAX_PARTITIONS_PER_FETCH_SESSION: usize = 10_000;
/// Longest long-poll we honour, whatever the client asks.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct SessionPartition {
    fetch_offset: i64,
    max_bytes: i32,
    /// What we last told the client, to decide whether the partition changed.
    last_high_watermark: i64,
    last_log_start: i64,
}

struct FetchSession {
    next_epoch: i32,
    partitions: HashMap<(String, i32), SessionPartition>,
}

#[derive(Default)]
pub struct FetchSessions {
    sessions: HashMap<i32, FetchSession>,
}

/// One partition to read, in response order.
struct Want {
    topic: String,
    topic_id: uuid::Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
    /// The shard that owns the partition, worked out once per request.
    owner: usize,
}

/// What the owning shard answered for one partition.
struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    regions: Vec<FileRegion>,
    bytes: usize,
}

impl PartitionRead {
    fn error(code: i16) -> PartitionRead {
        PartitionRead {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            regions: Vec::new(),
            bytes: 0,
        }
    }
}

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

fn error_reply(ctx: &RequestContext<'_>, code: i16) -> Reply {
    let framing = FetchFraming::new(ctx.version);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    framing.begin(&mut buf, ctx.correlation_id, code, 0, 0);
    framing.end(&mut buf);
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Reply::Frame(buf.freeze())
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    state: &mut ConnectionState,
    request: FetchRequest,
) -> Reply {
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

    // Work out the partition set, through the session if there is one.
    let sessions = &mut state.fetch_sessions.sessions;
    let session_epoch = if ctx.version >= 7 {
        request.session_epoch
    } else {
        -1
    };
    let mut session_id = if ctx.version >= 7 {
        request.session_id
    } else {
        0
    };
    let mut incremental = false;
    let mut wants: Vec<Want> = Vec::new();
    let requested: Vec<Want> = request
        .topics
        .iter()
        .flat_map(|t| {
            let (name, id) = resolve(&t.topic.0, &t.topic_id);
            t.partitions.iter().map(move |p| Want {
                owner: shard.owner_of_partition(&name, p.partition),
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            })
        })
        .collect();

    if session_epoch == -1 {
        // Sessionless full fetch; a final epoch also closes the named session.
        if session_id != 0 {
            sessions.remove(&session_id);
        }
        session_id = 0;
        wants = requested;
    } else if session_epoch == 0 {
        // A new full session (replacing any the client had).
        if session_id != 0 {
            sessions.remove(&session_id);
        }
        session_id = 0;
        if sessions.len() < MAX_FETCH_SESSIONS_PER_CONNECTION
            && requested.len() <= MAX_PARTITIONS_PER_FETCH_SESSION
        {
            let mut id: i32 = rand::random::<i32>() & i32::MAX;
            while id == 0 || sessions.contains_key(&id) {
                id = rand::random::<i32>() & i32::MAX;
            }
            let partitions = requested
                .iter()
                .map(|w| {
                    (
                        (w.topic.clone(), w.partition),
                        SessionPartition {
                            fetch_offset: w.fetch_offset,
                            max_bytes: w.max_bytes,
                            last_high_watermark: -1,
                            last_log_start: -1,
                        },
                    )
                })
                .collect();
            sessions.insert(
                id,
                FetchSession {
                    next_epoch: 1,
                    partitions,
                },
            );
            session_id = id;
        }
        wants = requested;
    } else {
        let Some(session) = sessions.get_mut(&session_id) else {
            return error_reply(ctx, FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.next_epoch != session_epoch {
            return error_reply(ctx, INVALID_FETCH_SESSION_EPOCH);
        }
        session.next_epoch = session.next_epoch.checked_add(1).unwrap_or(1);
        incremental = true;
        for w in &requested {
            let entry = session
                .partitions
                .entry((w.topic.clone(), w.partition))
                .or_insert(SessionPartition {
                    fetch_offset: w.fetch_offset,
                    max_bytes: w.max_bytes,
                    last_high_watermark: -1,
                    last_log_start: -1,
                });
            entry.fetch_offset = w.fetch_offset;
            entry.max_bytes = w.max_bytes;
        }
        for forgotten in &request.forgotten_topics_data {
            let (name, _) = resolve(&forgotten.topic.0, &forgotten.topic_id);
            for p in &forgotten.partitions {
                session.partitions.remove(&(name.clone(), *p));
            }
        }
        if session.partitions.len() > MAX_PARTITIONS_PER_FETCH_SESSION {
            sessions.remove(&session_id);
            return error_reply(ctx, ResponseError::InvalidRequest.code());
        }
        let mut keys: Vec<_> = session.partitions.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for ((topic, partition), sp) in keys {
            wants.push(Want {
                owner: shard.owner_of_partition(topic, *partition),
                topic: topic.clone(),
                topic_id: snapshot.topic(topic).map(|t| t.id).unwrap_or_default(),
                partition: *partition,
                fetch_offset: sp.fetch_offset,
                max_bytes: sp.max_bytes,
            });
        }
    }

    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if ctx.version >= 3 && request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let wait_started = Instant::now();
    state.affinity.observe(
        wants
            .iter()
            .filter(|w| !w.topic.is_empty())
            .map(|w| w.owner),
    );
    let mut reads = read_all(shard, &wants, max_bytes).await;
    loop {
        let available: usize = reads.iter().map(|r| r.bytes).sum();
        let any_error = reads.iter().any(|r| r.error_code != 0);
        if available >= min_bytes.max(1)
            || any_error
            || Instant::now() >= deadline
            || wants.is_empty()
        {
            break;
        }
        let seen: Vec<i64> = reads.iter().map(|r| r.high_watermark).collect();
        wait_for_append(shard, &wants, &seen, deadline).await;
        if shard.shutting_down.get() {
            break;
        }
        reads = read_all(shard, &wants, max_bytes).await;
    }
    let waited = wait_started.elapsed();
    if !waited.is_zero() {
        shard.metrics.record_fetch_wait(waited.as_nanos() as u64);
    }
    for r in reads.iter().filter(|r| r.error_code != 0) {
        shard.metrics.record_error(ctx.api as i16, r.error_code);
    }

    // Incremental sessions: answer only partitions that changed, and remember what we said.
    let mut include: Vec<bool> = vec![true; wants.len()];
    if session_id != 0
        && let Some(session) = sessions.get_mut(&session_id)
    {
        for (i, (w, r)) in wants.iter().zip(&reads).enumerate() {
            if let Some(sp) = session.partitions.get_mut(&(w.topic.clone(), w.partition)) {
                let changed = r.bytes > 0
                    || r.error_code != 0
                    || sp.last_high_watermark != r.high_watermark
                    || sp.last_log_start != r.log_start_offset;
                if incremental && !changed {
                    include[i] = false;
                }
                sp.last_high_watermark = r.high_watermark;
                sp.last_log_start = r.log_start_offset;
            }
        }
    }

    encode(ctx, session_id, &wants, reads, &include)
}

/// Reads every wanted partition from its owner, sharing the response-wide byte budget in
/// request order (the first partition with data always gets at least one whole batch).
async fn read_all(shard: &Rc<Shard>, wants: &[Want], max_bytes: usize) -> Vec<PartitionRead> {
    let calls = wants.iter().map(|w| {
        let owner = w.owner;
        let topic = w.topic.clone();
        let (partition, offset) = (w.partition, w.fetch_offset);
        let limit = w.max_bytes.max(0) as u32;
        async move {
            if topic.is_empty() {
                return PartitionRead::error(ResponseError::UnknownTopicId.code());
            }
            shard
                .invoke_on(owner, move |s| async move {
                    read_local(&s, &topic, partition, offset, limit).await
                })
                .await
                .unwrap_or_else(|_| PartitionRead::error(ResponseError::BrokerNotAvailable.code()))
        }
    });
    let mut reads = futures_util::future::join_all(calls).await;
    // Enforce the response-wide max_bytes by dropping whole partitions past the budget.
    let mut used = 0usize;
    for r in reads.iter_mut() {
        if r.bytes == 0 {
            continue;
        }
        if used > 0 && used + r.bytes > max_bytes {
            r.regions.clear();
            r.bytes = 0;
            continue;
        }
        used += r.bytes;
    }
    reads
}

async fn read_local(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: u32,
) -> PartitionRead {
    let (log, metrics) = match shard.partitions.get(topic, partition) {
        Lookup::Online(log, metrics) => (log, metrics),
        Lookup::Offline(_) => return PartitionRead::error(ResponseError::KafkaStorageError.code()),
        Lookup::Missing => {
            let exists = shard
                .metadata
                .load()
                .topic(topic)
                .is_some_and(|t| partition >= 0 && partition < t.partitions);
            return PartitionRead::error(if exists {
                ResponseError::NotLeaderOrFollower.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            });
        }
    };
    match log.read(offset, max_bytes).await {
        Ok(slice) => {
            let regions = slice.regions;
            let bytes: usize = regions.iter().map(|r| r.len as usize).sum();
            // Records are counted from the batch headers' last offset, not decoded.
            metrics.record_out(bytes as u64, slice.record_count);
            PartitionRead {
                error_code: 0,
                high_watermark: slice.high_watermark,
                log_start_offset: slice.log_start_offset,
                regions,
                bytes,
            }
        }
        Err(e) => PartitionRead {
            error_code: e.kafka_error_code(),
            high_watermark: log.high_watermark(),
            log_start_offset: log.log_start_offset(),
            regions: Vec::new(),
            bytes: 0,
        },
    }
}

/// Waits until any wanted partition's owner reports an append, or the deadline passes.
/// The waiters left on owner shards are cancelled when this returns.
/// `seen` holds the high watermark each read saw: an append that landed between that read
/// and the registration on the owner shard must wake us at once, not after the timeout.
async fn wait_for_append(shard: &Rc<Shard>, wants: &[Want], seen: &[i64], deadline: Instant) {
    let mut cancels = Vec::with_capacity(wants.len());
    let mut waits = Vec::with_capacity(wants.len());
    for (w, &seen_high_watermark) in wants.iter().zip(seen) {
        let owner = w.owner;
        let (cancel_tx, cancel_rx) = futures_channel::oneshot::channel::<()>();
        cancels.push(cancel_tx);
        let topic = w.topic.clone();
        let partition = w.partition;
        waits.push(Box::pin(
            shard
                .invoke_on(owner, move |s| async move {
                    let Lookup::Online(log, _) = s.partitions.get(&topic, partition) else {
                        return;
                    };
                    // Checked and registered without an await in between: no lost wake-up.
                    if log.high_watermark() != seen_high_watermark {
                        return;
                    }
                    let mut appended = std::pin::pin!(log.wait_for_append().fuse());
                    let mut cancelled = cancel_rx.fuse();
                    futures_util::select! {
                        _ = appended => {},
                        _ = cancelled => {},
                    }
                })
                .map(|_| ()),
        ));
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut any = futures_util::future::select_all(waits).fuse();
    let mut timeout = std::pin::pin!(compio::time::sleep(remaining).fuse());
    let mut stop = shard.shutdown_signal().fuse();
    futures_util::select! {
        _ = any => {},
        _ = timeout => {},
        _ = stop => {},
    }
    drop(cancels);
}

fn encode(
    ctx: &RequestContext<'_>,
    session_id: i32,
    wants: &[Want],
    reads: Vec<PartitionRead>,
    include: &[bool],
) -> Reply {
    let framing = FetchFraming::new(ctx.version);
    // Group consecutive partitions of the same topic, in request order.
    let mut topics: Vec<(usize, usize)> = Vec::new(); // (start, end) indices into wants
    for (i, w) in wants.iter().enumerate() {
        if !include[i] {
            continue;
        }
        match topics.last_mut() {
            Some((_, end)) if wants[*end - 1].topic == w.topic && *end == i => *end = i + 1,
            _ => topics.push((i, i + 1)),
        }
    }
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // size, patched below
    let mut total: usize = 0;
    framing.begin(&mut buf, ctx.correlation_id, 0, session_id, topics.len());
    let mut reads: Vec<Option<PartitionRead>> = reads.into_iter().map(Some).collect();
    for (start, end) in topics {
        let w = &wants[start];
        framing.begin_topic(&mut buf, &w.topic, &w.topic_id, end - start);
        for i in start..end {
            let Some(read) = reads[i].take() else {
                continue;
            };
            framing.begin_partition(
                &mut buf,
                &PartitionHeader {
                    partition_index: wants[i].partition,
                    error_code: read.error_code,
                    high_watermark: read.high_watermark,
                    last_stable_offset: read.high_watermark,
                    log_start_offset: read.log_start_offset,
                },
                read.bytes,
            );
            if read.bytes > 0 {
                total += buf.len();
                chunks.push(Chunk::Inline(buf.split().freeze()));
                for region in read.regions {
                    total += region.len as usize;
                    chunks.push(Chunk::File(region));
                }
            }
            framing.end_partition(&mut buf);
        }
        framing.end_topic(&mut buf);
    }
    framing.end(&mut buf);
    total += buf.len();
    chunks.push(Chunk::Inline(buf.freeze()));
    let size = (total - 4) as i32;
    // Patch the frame size into the first inline chunk.
    if let Some(Chunk::Inline(first)) = chunks.first_mut() {
        let mut patched = BytesMut::from(&first[..]);
        patched[0..4].copy_from_slice(&size.to_be_bytes());
        *first = patched.freeze();
    }
    if chunks.len() == 1
        && let Some(Chunk::Inline(frame)) = chunks.pop()
    {
        return Reply::Frame(frame);
    }
    Reply::Chunks(chunks)
}
