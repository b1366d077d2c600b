//! A connection's reader: request frames off the socket, several small ones per receive.
//!
//! Every receive asks for the rest of the frame being completed plus `READ_AHEAD_BYTES`
//! (behind a small frame) or the next size prefix only (behind a large one): a small
//! request comes whole in one receive (a follower's fetch used to take two, its size prefix
//! and then its body), small requests a client pipelined come out of one receive, and a
//! pipelined large one takes one receive, its body with the next frame's size. Frames are
//! handed out as slices of the received buffer (`Bytes`), so record bytes are read once;
//! only bytes received past a frame are copied, at most `READ_AHEAD_BYTES` at a time: the
//! start of a large frame into a buffer of its exact size, and the next size prefix behind
//! a large frame into a buffer of its own, so a large frame (a produce request) owns its
//! allocation alone and the log patches its batch in place without a copy (a produce
//! request sharing a buffer with other requests is copied whole by `BytesMut::from`: 128
//! KiB of read-ahead cost single-node 16 KiB produce 14 % in session 24, decision 0012).
//!
//! Owns: framing (the size prefix, the frame-size limit), the request memory taken per frame
//! (backpressure: a frame that does not fit the shard's budget stops the reading), pausing
//! at a frame boundary for a move. Must not: look into a request beyond its API key's bytes
//! (the dispatcher's), answer anything.

use super::transport::Transport;
use crate::shard::Shard;
use crate::shard::budget::MemoryPermit;
use bytes::Bytes;
use compio::BufResult;
use futures_util::FutureExt;
use std::cell::Cell;
use std::rc::Rc;

/// A connection with nothing else in flight may always read one request up to this size,
/// even when the shard's request-memory budget is spent: clients keep getting metadata,
/// heartbeats and small fetches answered while big produce frames wait. The memory this
/// allows is bounded by `max_connections` × this.
pub const SMALL_REQUEST_ALLOWANCE_BYTES: usize = 64 * 1024;

/// Bytes one receive asks for beyond the frame it completes: room for a small request
/// whole (a follower's fetch, a heartbeat, Metadata) and for the next frame's size prefix.
/// Small, because whatever lands past a large frame is copied: at most this per receive.
/// Not taken from the request-memory budget; per connection, only while a receive is
/// pending or its frames are queued.
pub const READ_AHEAD_BYTES: usize = 1024;

/// At most this many bytes a receive that waits for a new frame asks for when the
/// connection's previous frame was larger than `READ_AHEAD_BYTES` (it asks for that frame's
/// size: a producer's next request is usually as large, and comes whole in one receive
/// instead of two, the size prefix with 1 KiB and then the rest, each a turn of the shard's
/// loop; session 25, decision 0012). Bounded by the small-request allowance, the memory a
/// connection may already hold without the budget.
pub const NEXT_FRAME_GUESS_MAX_BYTES: usize = SMALL_REQUEST_ALLOWANCE_BYTES;

/// Bytes of the size prefix in front of every request frame.
pub const FRAME_SIZE_BYTES: usize = 4;

/// How the reader stopped.
pub enum ReaderExit {
    /// The socket closed, a frame was invalid, shutdown began, or the dispatcher went away.
    Closed,
    /// Asked to pause: stopped at a frame boundary with these bytes already read (the start
    /// of the next frames, possibly whole ones).
    Paused { prefix: Vec<u8> },
}

/// A request read off the socket, waiting for its turn: its bytes (at least
/// `MIN_FRAME_BYTES`), the memory it holds, and when it was read (for the queue-wait
/// metric).
pub struct ReadRequest {
    pub body: Bytes,
    pub memory: MemoryPermit,
    pub in_flight: InFlight,
    pub read_at: std::time::Instant,
}

/// The smallest frame accepted: a request header's API key, version and correlation id.
const MIN_FRAME_BYTES: usize = 8;

/// Counts a request in the in-flight gauge from the moment it is read until it is answered
/// or dropped with its connection.
pub struct InFlight(Rc<crate::metrics::ShardMetrics>);

impl InFlight {
    fn new(metrics: &Rc<crate::metrics::ShardMetrics>) -> InFlight {
        metrics.in_flight_add(1);
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight_add(-1);
    }
}

/// What the reader starts with: the bytes carried over from another shard (read there past
/// the last request it took), and the largest frame it accepts (lowered by the SASL gate
/// until authentication).
pub struct ReadLimits {
    pub carried: Vec<u8>,
    pub frame_limit: Rc<Cell<usize>>,
}

/// Reads frames until the socket closes, a frame is invalid, shutdown begins, or the
/// connection stops taking them. Each frame first takes its size from the shard's request
/// memory budget: when that is spent, this stops reading the socket (backpressure).
///
/// When `pause` is set it stops at the next frame boundary and returns the bytes it already
/// holds, so the connection can move to another shard without losing a byte.
pub async fn read_requests(
    shard: Rc<Shard>,
    mut stream: Transport,
    tx: flume::Sender<ReadRequest>,
    pause: Rc<Cell<bool>>,
    limits: ReadLimits,
) -> ReaderExit {
    let ReadLimits {
        carried,
        frame_limit,
    } = limits;
    // Received bytes not yet handed out; they always start at a frame boundary.
    let mut held = Bytes::from(carried);
    // What a receive for a new frame asks for beyond its size prefix: the previous frame's
    // size (see `NEXT_FRAME_GUESS_MAX_BYTES`).
    let mut next_guess = READ_AHEAD_BYTES;
    loop {
        if pause.get() {
            return ReaderExit::Paused {
                prefix: held.to_vec(),
            };
        }
        if held.len() < FRAME_SIZE_BYTES {
            // Wait for the next frame's size; an idle connection closes at shutdown.
            let received = {
                let mut stop = shard.shutdown_signal().fuse();
                let mut read = std::pin::pin!(
                    receive(&shard, &mut stream, held, FRAME_SIZE_BYTES, next_guess).fuse()
                );
                futures_util::select! {
                    _ = stop => return ReaderExit::Closed,
                    r = read => r,
                }
            };
            match received {
                Some(more) => held = more,
                None => return ReaderExit::Closed,
            }
            continue;
        }
        let Some(size) = frame_size(&held, frame_limit.get()) else {
            tracing::debug!(shard = shard.id, "closing connection: bad frame size");
            return ReaderExit::Closed;
        };
        // The channel holds what is read but not yet answered (the one being served has
        // left it): with nothing queued, a small request skips the budget.
        let memory = if size <= SMALL_REQUEST_ALLOWANCE_BYTES && tx.is_empty() {
            shard.request_memory.unmetered()
        } else {
            shard.request_memory.acquire(size as u64).await
        };
        let frame_end = FRAME_SIZE_BYTES + size;
        if held.len() < frame_end {
            match receive(&shard, &mut stream, held, frame_end, 0).await {
                Some(more) => held = more,
                None => return ReaderExit::Closed,
            }
        }
        next_guess = size.clamp(READ_AHEAD_BYTES, NEXT_FRAME_GUESS_MAX_BYTES);
        let mut frame = held.split_to(frame_end);
        if frame_end > READ_AHEAD_BYTES && !held.is_empty() {
            // The read-ahead behind a large frame goes to a buffer of its own, so the
            // frame's allocation is its alone (see the module comment).
            held = Bytes::copy_from_slice(&held);
        }
        let request = ReadRequest {
            body: frame.split_off(FRAME_SIZE_BYTES),
            memory,
            in_flight: InFlight::new(&shard.metrics),
            read_at: std::time::Instant::now(),
        };
        if tx.send_async(request).await.is_err() {
            return ReaderExit::Closed;
        }
    }
}

/// The size of the frame at the start of `held` (which holds its size prefix), if it is
/// one this connection accepts: at least `MIN_FRAME_BYTES`, at most `frame_limit`.
fn frame_size(held: &[u8], frame_limit: usize) -> Option<usize> {
    let size = i32::from_be_bytes([held[0], held[1], held[2], held[3]]);
    let size = usize::try_from(size).ok()?;
    (MIN_FRAME_BYTES..=frame_limit)
        .contains(&size)
        .then_some(size)
}

/// Receives until at least `needed` bytes are held, `held` first, into a buffer of
/// `needed` plus the read-ahead: `READ_AHEAD_BYTES` behind a small frame, only the next size
/// prefix behind a large one (what lands past a large frame is copied, so a pipelined
/// produce request takes one receive, its body and the next size, and no copy of record
/// bytes). A receive for a new frame's size prefix asks for `next_guess` past it instead
/// (the previous frame's size, at least `READ_AHEAD_BYTES`). `None`: the peer closed or the
/// receive failed.
async fn receive(
    shard: &Shard,
    stream: &mut Transport,
    held: Bytes,
    needed: usize,
    next_guess: usize,
) -> Option<Bytes> {
    let ahead = if needed == FRAME_SIZE_BYTES {
        next_guess.max(READ_AHEAD_BYTES)
    } else if needed > READ_AHEAD_BYTES {
        FRAME_SIZE_BYTES
    } else {
        READ_AHEAD_BYTES
    };
    let mut buffer = Vec::with_capacity(needed + ahead);
    buffer.extend_from_slice(&held);
    drop(held);
    while buffer.len() < needed {
        shard.metrics.record_request_receive();
        let BufResult(result, back) = stream.append(buffer).await;
        buffer = back;
        if !matches!(result, Ok(n) if n > 0) {
            return None;
        }
    }
    Some(Bytes::from(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_size_outside_the_limits_is_refused() {
        let prefix = |size: i32| size.to_be_bytes();
        assert_eq!(frame_size(&prefix(8), 100), Some(8));
        assert_eq!(frame_size(&prefix(100), 100), Some(100));
        assert_eq!(frame_size(&prefix(7), 100), None);
        assert_eq!(frame_size(&prefix(101), 100), None);
        assert_eq!(frame_size(&prefix(-1), 100), None);
        assert_eq!(frame_size(&prefix(i32::MIN), 100), None);
    }
}
