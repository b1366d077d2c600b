//! Fetch's answer: framing from memory around file regions, which the connection's writer
//! sends from the page cache (splice) without a copy.

use super::read::PartitionRead;
use crate::protocol::fetch_encoder::{FetchFraming, PartitionHeader};
use crate::server::context::RequestContext;
use crate::server::fetch_sessions::WantedPartition;
use crate::server::response::{Chunk, Reply};
use bytes::{BufMut, BytesMut};

/// A whole-request error (a bad session): the framing with no topics.
pub(super) fn error_reply(ctx: &RequestContext<'_>, code: i16) -> Reply {
    empty_reply(ctx, code, 0, 0)
}

/// Over the consumer's byte-rate quota: Kafka answers no partitions, only the throttle
/// time (and the session, which the client keeps).
pub(super) fn throttled_reply(ctx: &RequestContext<'_>, session_id: i32, throttle_ms: i32) -> Reply {
    empty_reply(ctx, 0, session_id, throttle_ms)
}

fn empty_reply(ctx: &RequestContext<'_>, code: i16, session_id: i32, throttle_ms: i32) -> Reply {
    let framing = FetchFraming::new(ctx.version);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    framing.begin_throttled(&mut buf, ctx.correlation_id, throttle_ms, code, session_id, 0);
    framing.end(&mut buf);
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Reply::Frame(buf.freeze())
}

pub(super) fn encode(
    ctx: &RequestContext<'_>,
    session_id: i32,
    wants: &[WantedPartition],
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
                    last_stable_offset: read.last_stable_offset,
                    log_start_offset: read.log_start_offset,
                    aborted_transactions: read.aborted_transactions.as_deref(),
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
