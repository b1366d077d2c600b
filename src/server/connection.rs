//! One client connection: frames in, responses out, in request order.
//!
//! Kafka clients pipeline requests but the protocol requires responses in request order;
//! like Kafka, we serve one request at a time per connection, which also keeps a producer's
//! batches for one partition in order. Record bytes are read once from the socket into the
//! request buffer; fetched record bytes never enter user space (spliced from the shard thread when
//! they are in the page cache, else splice file → pipe → socket on an io-wq worker).

use super::connection_state::ConnectionState;
use super::dispatch;
use super::file_send::{SplicePipe, socket_status_flags, write_all, write_chunks};
use super::request_reader::{InFlight, ReadLimits, ReadRequest, ReaderExit, read_requests};
use super::response::Reply;
use super::sasl::SaslSession;
use super::sasl_gate::SaslGate;
use super::transport::{self, Transport};
use crate::config::listeners::{ListenerSpec, SecurityProtocol};
use crate::security::tls::TlsAcceptor;
use crate::shard::Shard;
use crate::shard::budget::MemoryPermit;
use compio::BufResult;
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;
use futures_util::FutureExt;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// A connection on its way to another shard, taken at a frame boundary with nothing in
/// flight: the socket (a duplicate descriptor, so the old shard's ring can close its own),
/// the bytes read past the last request taken (the start of the next frames), the connection state, and on SSL and
/// SASL_SSL listeners the TLS session (its keys and what it has buffered).
pub struct Handover {
    pub socket: socket2::Socket,
    pub prefix: Vec<u8>,
    pub state: ConnectionState,
    pub tls: Option<transport::TlsHandover>,
}

/// Serves a connection `listener` accepted; `tls` is the listener's TLS context (SSL and
/// SASL_SSL listeners), whose handshake comes first.
pub async fn run(
    shard: Rc<Shard>,
    stream: TcpStream,
    listener: Arc<ListenerSpec>,
    tls: Option<Arc<TlsAcceptor>>,
) {
    shard.metrics.connection_opened();
    let protocol = listener.protocol;
    let mut state = ConnectionState {
        peer_ip: stream.peer_addr().ok().map(|addr| addr.ip()),
        sasl: SaslSession::for_protocol(protocol),
        listener: Some(listener),
        ..ConnectionState::default()
    };
    let transport = match tls {
        None => Transport::Plain(stream),
        Some(acceptor) => match secure(&shard, stream, &acceptor, protocol, &mut state).await {
            Some(transport) => transport,
            None => {
                shard.metrics.connection_closed();
                return;
            }
        },
    };
    serve(shard, transport, Vec::new(), state).await;
}

/// The TLS handshake of a connection on an SSL or SASL_SSL listener, within
/// `TLS_HANDSHAKE_TIMEOUT`; on an SSL listener the connection then speaks for its client
/// certificate's principal. `None`: the handshake failed and the socket is shut.
async fn secure(
    shard: &Rc<Shard>,
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    protocol: SecurityProtocol,
    state: &mut ConnectionState,
) -> Option<Transport> {
    let context = acceptor.current();
    let closer = stream.clone();
    let handshake = {
        let mut stop = shard.shutdown_signal().fuse();
        let mut timeout =
            std::pin::pin!(shard.timer.sleep(transport::TLS_HANDSHAKE_TIMEOUT).fuse());
        let mut handshake =
            std::pin::pin!(transport::handshake(stream, context.server_config(protocol)).fuse());
        futures_util::select! {
            r = handshake => r.map_err(|e| e.to_string()),
            _ = timeout => Err("the TLS handshake timed out".to_string()),
            _ = stop => Err("shutting down".to_string()),
        }
    };
    let secured = handshake.and_then(|session| {
        if protocol == SecurityProtocol::Ssl {
            state.principal = transport::certificate_principal(&session, &context)?;
        }
        Ok(session)
    });
    match secured {
        // The connection may move to the shard owning its partitions like a plaintext one:
        // the session goes with it (`transport::TlsHandover`).
        Ok(session) => Some(Transport::Tls(session)),
        Err(why) => {
            tracing::debug!(shard = shard.id, %why, "closing connection: TLS");
            let _ = socket2::SockRef::from(&closer).shutdown(std::net::Shutdown::Both);
            None
        }
    }
}

/// Serves a connection another shard handed over (see `affinity`).
pub async fn resume(
    shard: Rc<Shard>,
    stream: TcpStream,
    prefix: Vec<u8>,
    state: ConnectionState,
    tls: Option<transport::TlsHandover>,
) {
    shard.metrics.connection_moved_in();
    serve(shard, transport_for(stream, tls), prefix, state).await;
}

/// The byte stream over a socket a connection moved with: its TLS session resumed when it
/// came with one.
fn transport_for(stream: TcpStream, tls: Option<transport::TlsHandover>) -> Transport {
    match tls {
        None => Transport::Plain(stream),
        Some(tls) => Transport::Tls(transport::TlsSession::resume(stream, tls)),
    }
}

async fn serve(
    shard: Rc<Shard>,
    mut stream: Transport,
    mut prefix: Vec<u8>,
    mut state: ConnectionState,
) {
    loop {
        let (target, handover) = match serve_requests(&shard, stream, prefix, state).await {
            Ended::Closed => break,
            Ended::Moving { target, handover } => (target, handover),
            Ended::Staying(stay) => {
                (stream, prefix, state) = (stay.stream, stay.prefix, stay.state);
                state.affinity.reset(true);
                continue;
            }
        };
        let moved = shard
            .invoke_on(target, move |owner| async move {
                super::adopt(owner, *handover)
            })
            .await;
        let back = match moved {
            Ok(Ok(())) => break,
            Ok(Err(refused)) => refused,
            // The target is shutting down: the handover (and its socket) went with it.
            Err(_) => break,
        };
        // The target was full: keep serving here, and stop trying to move.
        match TcpStream::from_std(back.socket.into()) {
            Ok(s) => stream = transport_for(s, back.tls),
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "could not take a connection back; closing it");
                break;
            }
        }
        prefix = back.prefix;
        state = back.state;
        state.affinity.reset(true);
    }
    shard.metrics.connection_closed();
}

/// How `serve_requests` ended.
enum Ended {
    Closed,
    /// Every request read so far is answered; the connection goes to shard `target`.
    Moving {
        target: usize,
        handover: Box<Handover>,
    },
    /// Paused for a move that cannot be made (the TLS session was not quiet): every
    /// request read so far is answered, and the connection goes on here.
    Staying(Box<Staying>),
}

/// A paused connection that stays on its shard.
struct Staying {
    stream: Transport,
    prefix: Vec<u8>,
    state: ConnectionState,
}

/// Ready answers the writer may send with one vectored write. On loopback every send also
/// delivers to, and wakes, the client, so pipelined answers that complete together (one
/// group commit, one coalesced file write) go out in one send.
pub const MAX_ANSWERS_PER_WRITE: usize = 16;

/// An answer on its way to the socket, in request order, with what the metrics need.
struct Outgoing {
    reply: Reply,
    answered: Answered,
}

/// Everything about a request but its answer: timings for the metrics, and the memory and
/// in-flight count it holds until its answer is written.
struct Answered {
    api_key: i16,
    read_at: std::time::Instant,
    started: std::time::Instant,
    handled: std::time::Instant,
    _memory: MemoryPermit,
    _in_flight: InFlight,
}

impl Answered {
    /// Records the request's latency; dropping `self` releases its memory and in-flight slot.
    fn record(self, shard: &Shard) {
        shard.metrics.record_request(
            self.api_key,
            (self.started - self.read_at).as_nanos() as u64,
            (self.handled - self.started).as_nanos() as u64,
            self.read_at.elapsed().as_nanos() as u64,
        );
        if crate::metrics::stage_trace::enabled() {
            let now = crate::metrics::stage_trace::now_ns();
            let ns = |at: std::time::Instant| now - at.elapsed().as_nanos() as i64;
            let (read, started) = (ns(self.read_at), ns(self.started));
            let handled = ns(self.handled);
            let key = self.api_key as u64;
            crate::metrics::stage_trace::mark("rs", key, read, started, handled);
        }
    }
}

async fn serve_requests(
    shard: &Rc<Shard>,
    stream: Transport,
    prefix: Vec<u8>,
    state: ConnectionState,
) -> Ended {
    let state = RefCell::new(state);
    // Read ahead up to the in-flight limit while earlier requests are served; requests are
    // dispatched one at a time, in order, so a producer's batches stay ordered. Answers
    // that wait (produce waiting for durability) go to the writer, which sends them in
    // request order while the next requests are dispatched.
    let in_flight_max = (shard.config.max_in_flight_requests_per_connection as usize).max(1);
    let (tx, rx) = flume::bounded::<ReadRequest>(in_flight_max - 1);
    let (out_tx, out_rx) = flume::bounded::<Outgoing>(in_flight_max);
    // Dropping the handles cancels the reader and the writer when this connection ends.
    let pause = Rc::new(Cell::new(false));
    let frame_limit = Rc::new(Cell::new(shard.config.max_request_bytes as usize));
    // SASL listeners only: PLAINTEXT connections pay nothing per request for it.
    let sasl_gate = SaslGate::for_connection(&state, &shard.config, &frame_limit);
    let limits = ReadLimits {
        carried: prefix,
        frame_limit,
    };
    let reader = compio::runtime::spawn(read_requests(
        shard.clone(),
        stream.clone(),
        tx,
        pause.clone(),
        limits,
    ));
    let closer = stream.socket().clone();
    // Handed over if the connection moves (the reader and writer have finished by then).
    let tls_session = stream.tls_session();
    // The writer drops `writer_gone` when it stops (a closing answer, a failed write).
    // (Fused by `fuse()`, not by the receiver itself: a receiver whose sender was dropped
    // reports itself terminated and `select!` would never see it complete.)
    let (writer_gone, writer_stopped) = futures_channel::oneshot::channel::<()>();
    let mut writer_stopped = writer_stopped.fuse();
    let writer = compio::runtime::spawn(write_replies(shard.clone(), stream, out_rx, writer_gone));
    let mut moving_to = None;
    loop {
        let next = {
            let mut next = std::pin::pin!(rx.recv_async().fuse());
            let mut unauthenticated =
                std::pin::pin!(authentication_overdue(shard, sasl_gate.as_ref(), &state).fuse());
            futures_util::select! {
                r = next => r,
                _ = writer_stopped => break,
                _ = unauthenticated => break,
            }
        };
        let Ok(request) = next else { break };
        if sasl_gate
            .as_ref()
            .is_some_and(|g| g.refuses(&state, &request.body, shard.id))
        {
            break;
        }
        let outgoing = serve_one(shard, &state, request).await;
        if out_tx.send_async(outgoing).await.is_err() {
            break;
        }
        wait_out_throttle(shard, &state).await;
        if shard.shutting_down.get() {
            break;
        }
        if sasl_gate
            .as_ref()
            .is_some_and(|g| g.closes_after_reply(&state, shard.id))
        {
            break;
        }
        let target = state.borrow().affinity.move_target(shard.id);
        if moving_to.is_none()
            && let Some(target) = target
        {
            // The reader stops at the next frame boundary; what it read before is still
            // served here, in order, and the channel then closes.
            moving_to = Some(target);
            state.borrow_mut().affinity.moving();
            pause.set(true);
        }
    }
    // Let the writer finish the answers already dispatched, then close (or move).
    drop(out_tx);
    let drained = matches!(writer.await, Ok(true));
    let reader_exit = match moving_to {
        Some(_) if drained && !shard.shutting_down.get() => reader.await.ok(),
        _ => None,
    };
    end_or_hand_over(
        shard,
        closer,
        tls_session,
        moving_to,
        reader_exit,
        state.into_inner(),
    )
}

/// Dispatches one request read off the socket: its reply, with the timings and the memory
/// and in-flight slot it holds until written.
async fn serve_one(
    shard: &Rc<Shard>,
    state: &RefCell<ConnectionState>,
    request: ReadRequest,
) -> Outgoing {
    let ReadRequest {
        body,
        memory,
        in_flight,
        read_at,
    } = request;
    let api_key = i16::from_be_bytes([body[0], body[1]]);
    let started = std::time::Instant::now();
    let reply = dispatch::dispatch(shard, state, body).await;
    Outgoing {
        reply,
        answered: Answered {
            api_key,
            read_at,
            started,
            handled: std::time::Instant::now(),
            _memory: memory,
            _in_flight: in_flight,
        },
    }
}

/// The connection's end once its answers are written: handed to `moving_to` when the reader
/// paused at a frame boundary for the move, else shut down. A TLS session that is not quiet
/// (rustls still has ciphertext to send) stays here instead.
fn end_or_hand_over(
    shard: &Rc<Shard>,
    closer: TcpStream,
    tls_session: Option<Rc<transport::TlsSession>>,
    moving_to: Option<usize>,
    reader_exit: Option<ReaderExit>,
    state: ConnectionState,
) -> Ended {
    if let Some(target) = moving_to
        && let Some(ReaderExit::Paused { prefix }) = reader_exit
    {
        let tls = match tls_session.map(transport::TlsSession::into_handover) {
            None => None,
            Some(Ok(tls)) => Some(tls),
            Some(Err(session)) => {
                return Ended::Staying(Box::new(Staying {
                    stream: Transport::Tls(session),
                    prefix,
                    state,
                }));
            }
        };
        match socket2::SockRef::from(&closer).try_clone() {
            Ok(socket) => {
                return Ended::Moving {
                    target,
                    handover: Box::new(Handover {
                        socket,
                        prefix,
                        state,
                        tls,
                    }),
                };
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "could not hand a connection over; closing it");
            }
        }
    }
    // A read still pending in the ring holds the descriptor open: shut the socket down so
    // the peer sees the close now and the pending read completes.
    let _ = socket2::SockRef::from(&closer).shutdown(std::net::Shutdown::Both);
    super::share_close::connection_closed(shard, state.share_sessions);
    Ended::Closed
}

/// Writes answers in request order; a deferred answer is awaited in its turn. Answers
/// queued behind it that are ready too are gathered into the same write. `true` when it
/// stopped because every answer was written and the channel closed.
async fn write_replies(
    shard: Rc<Shard>,
    mut stream: Transport,
    rx: flume::Receiver<Outgoing>,
    _gone: futures_channel::oneshot::Sender<()>,
) -> bool {
    let mut pipe: Option<SplicePipe> = None;
    // Fetched record bytes that are in the page cache are spliced from this thread, with the
    // socket non-blocking for that answer only. Without its flags every fetch takes the
    // io-wq splice path.
    let socket_flags = socket_status_flags(stream.socket()).ok();
    let mut frames: Vec<bytes::Bytes> = Vec::with_capacity(MAX_ANSWERS_PER_WRITE);
    let mut answered: Vec<Answered> = Vec::with_capacity(MAX_ANSWERS_PER_WRITE);
    // Taken off the queue while gathering but not ready yet: the next in line.
    let mut held: Option<Outgoing> = None;
    loop {
        let mut outgoing = match held.take() {
            Some(o) => o,
            None => match rx.recv_async().await {
                Ok(o) => o,
                Err(_) => return true,
            },
        };
        if let Reply::Deferred(answer) = outgoing.reply {
            outgoing.reply = answer.await;
            outgoing.answered.handled = std::time::Instant::now();
        }
        let written = match outgoing.reply {
            Reply::None | Reply::Frame(_) => {
                gather_ready(outgoing, &rx, &mut held, &mut frames, &mut answered);
                let written = write_frames(&mut stream, &mut frames).await;
                for a in answered.drain(..) {
                    a.record(&shard);
                }
                written
            }
            Reply::Chunks(chunks) => {
                let written = match &mut stream {
                    Transport::Plain(stream) => {
                        write_chunks(&shard, stream, &mut pipe, socket_flags, chunks).await
                    }
                    Transport::Tls(session) => session.send_chunks(chunks).await,
                };
                outgoing.answered.record(&shard);
                written
            }
            Reply::Deferred(_) => Err(std::io::Error::other("an answer deferred twice")),
            Reply::Close(reason) => {
                tracing::debug!(shard = shard.id, %reason, "closing connection");
                return false;
            }
        };
        if let Err(e) = written {
            tracing::debug!(shard = shard.id, error = %e, "write failed; closing connection");
            return false;
        }
    }
}

/// Takes `first` (a frame or no answer) and every answer queued behind it that is a frame
/// or no answer and is ready now, in order, up to `MAX_ANSWERS_PER_WRITE`. The first one
/// that is not ready, or needs a splice, is left in `held`.
fn gather_ready(
    first: Outgoing,
    rx: &flume::Receiver<Outgoing>,
    held: &mut Option<Outgoing>,
    frames: &mut Vec<bytes::Bytes>,
    answered: &mut Vec<Answered>,
) {
    let mut next = Some(first);
    while let Some(mut outgoing) = next.take() {
        if let Reply::Deferred(answer) = &mut outgoing.reply {
            match answer.now_or_never() {
                Some(reply) => {
                    outgoing.reply = reply;
                    outgoing.answered.handled = std::time::Instant::now();
                }
                None => {
                    *held = Some(outgoing);
                    return;
                }
            }
        }
        match outgoing.reply {
            Reply::Frame(frame) => frames.push(frame),
            Reply::None => {}
            _ => {
                *held = Some(outgoing);
                return;
            }
        }
        answered.push(outgoing.answered);
        if answered.len() < MAX_ANSWERS_PER_WRITE {
            next = rx.try_recv().ok();
        }
    }
}

/// Sends `frames` (emptied) with one write, vectored when there are several (over TLS:
/// encrypted together, then sent in steps of `TLS_SEND_BUFFER_BYTES`).
async fn write_frames(
    stream: &mut Transport,
    frames: &mut Vec<bytes::Bytes>,
) -> std::io::Result<()> {
    let stream = match stream {
        Transport::Plain(stream) => stream,
        Transport::Tls(session) => {
            let sent = session.send(frames.iter().map(|f| f.as_ref())).await;
            frames.clear();
            return sent;
        }
    };
    match frames.len() {
        0 => Ok(()),
        1 => {
            let frame = frames.pop().unwrap_or_default();
            write_all(stream, frame).await
        }
        _ => {
            let BufResult(result, back) = stream.write_vectored_all(std::mem::take(frames)).await;
            *frames = back;
            frames.clear();
            result
        }
    }
}

/// A client over its quota was answered with its throttle time; like Kafka's muted channel
/// (KIP-219) the connection serves nothing more until the throttle passes (or shutdown).
async fn wait_out_throttle(shard: &Rc<Shard>, state: &RefCell<ConnectionState>) {
    let Some(until) = state.borrow_mut().throttled_until.take() else {
        return;
    };
    let mut stop = shard.shutdown_signal().fuse();
    let mut sleep = std::pin::pin!(shard.timer.sleep_until(until).fuse());
    futures_util::select! {
        _ = stop => {},
        _ = sleep => {},
    }
}

/// Completes when a connection on a SASL listener has not authenticated in time; never
/// for other connections.
async fn authentication_overdue(
    shard: &Rc<Shard>,
    gate: Option<&SaslGate>,
    state: &RefCell<ConnectionState>,
) {
    match gate.and_then(|gate| gate.deadline(state)) {
        Some(deadline) => shard.timer.sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
