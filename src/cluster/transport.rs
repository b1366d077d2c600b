//! The controllers' transport: a small framed TCP protocol between controller listeners.
//!
//! A frame is `[u32 length][u32 crc32c][u8 kind][payload]` (little endian): kind 1 a Raft
//! message (protobuf), kind 2 a broker heartbeat (the sender's node id). Each peer gets one
//! outgoing connection, written by its own thread from a bounded queue; a full queue or a
//! broken connection drops frames, which Raft tolerates (it retransmits). Incoming
//! connections each get a reader thread that checks every frame and hands it to the
//! controller. Everything here is blocking I/O on plain threads, away from the shards.
//! With `controller_security_protocol = SSL` every connection is mutual TLS (rustls over
//! the same blocking socket): a peer without a certificate the trust store vouches for, or
//! (with an authorizer) one that is not a super user, never gets a frame through.
//! Must not: interpret Raft messages (the controller does).

use crate::config::controller_security::ControllerTls;
use protobuf::Message as _;
use raft::eraftpb::Message;
use rustls::{ClientConnection, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KIND_RAFT: u8 = 1;
const KIND_HEARTBEAT: u8 = 2;
/// Largest frame accepted: a snapshot of the whole metadata image travels in one message.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Frames waiting for one peer before new ones are dropped.
pub const MAX_QUEUED_FRAMES_PER_PEER: usize = 4096;
/// Incoming controller connections at once (peers reconnect; anything more is refused).
pub const MAX_INBOUND_CONNECTIONS: usize = 32;
/// How long a connect or a write to a peer may take before the peer counts as unreachable.
const PEER_IO_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed connect, frames for that peer are dropped for this long.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// How long a TLS handshake may take, either way (a peer that stalls in it holds one of the
/// `MAX_INBOUND_CONNECTIONS` slots no longer than this).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The same refused peer is logged again (at warn) at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// What arrives from the other controllers.
pub enum Inbound {
    Raft(Box<Message>),
    Heartbeat { from: i32 },
}

fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    let length = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

pub fn raft_frame(message: &Message) -> Vec<u8> {
    encode(KIND_RAFT, &message.write_to_bytes().unwrap_or_default())
}

pub fn heartbeat_frame(node_id: i32) -> Vec<u8> {
    encode(KIND_HEARTBEAT, &node_id.to_le_bytes())
}

/// Reads one frame; `Err` on a closed socket or a bad frame (the connection is dropped).
fn read_frame(stream: &mut impl Read) -> Result<Inbound, String> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).map_err(|e| e.to_string())?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length == 0 || length > MAX_FRAME_BYTES {
        return Err(format!("frame of {length} bytes"));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    if crc32c::crc32c(&body) != crc {
        return Err("frame checksum mismatch".into());
    }
    match body[0] {
        KIND_RAFT => Message::parse_from_bytes(&body[1..])
            .map(|m| Inbound::Raft(Box::new(m)))
            .map_err(|e| e.to_string()),
        KIND_HEARTBEAT => match body[1..] {
            [a, b, c, d] => Ok(Inbound::Heartbeat {
                from: i32::from_le_bytes([a, b, c, d]),
            }),
            _ => Err("heartbeat frame of the wrong size".into()),
        },
        kind => Err(format!("unknown frame kind {kind}")),
    }
}

/// Drives a handshake on a blocking socket to its end, within `TLS_HANDSHAKE_TIMEOUT`.
fn handshake<S: rustls::SideData>(
    conn: &mut rustls::ConnectionCommon<S>,
    socket: &mut TcpStream,
) -> Result<(), String> {
    let deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
    let _ = socket.set_read_timeout(Some(TLS_HANDSHAKE_TIMEOUT));
    let _ = socket.set_write_timeout(Some(TLS_HANDSHAKE_TIMEOUT));
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err("TLS handshake timed out".into());
        }
        conn.complete_io(socket).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The TLS side of an accepted connection: handshake, then the peer's certificate must be
/// one `tls` admits. Reads after it block as long as the peer is quiet (a live peer sends
/// a heartbeat or Raft message every tick; a dead one's socket is closed by its kernel).
fn accept_tls(
    mut socket: TcpStream,
    tls: &ControllerTls,
) -> Result<StreamOwned<ServerConnection, TcpStream>, String> {
    let mut conn = ServerConnection::new(tls.server.clone()).map_err(|e| e.to_string())?;
    handshake(&mut conn, &mut socket)?;
    let leaf = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no client certificate")?;
    tls.admit(leaf.as_ref())?;
    let _ = socket.set_read_timeout(None);
    Ok(StreamOwned::new(conn, socket))
}

/// Reads frames from one accepted connection until it closes or `deliver` refuses.
fn read_connection(
    socket: TcpStream,
    tls: Option<&ControllerTls>,
    deliver: &impl Fn(Inbound) -> bool,
    last_refusal: &std::sync::Mutex<Option<Instant>>,
) {
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().ok();
    let mut reader: Box<dyn Read> = match tls {
        None => Box::new(socket),
        Some(tls) => match accept_tls(socket, tls) {
            Ok(stream) => Box::new(stream),
            Err(why) => {
                let mut last = last_refusal.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                    *last = Some(Instant::now());
                    tracing::warn!(?peer, %why, "controller connection refused");
                }
                return;
            }
        },
    };
    while let Ok(inbound) = read_frame(&mut reader) {
        if !deliver(inbound) {
            break;
        }
    }
}

/// Accepts controller connections on `listener` and hands every frame to `deliver`; with
/// `tls`, only over mutual TLS from an admitted peer.
pub fn serve_inbound(
    listener: TcpListener,
    tls: Option<Arc<ControllerTls>>,
    deliver: impl Fn(Inbound) -> bool + Send + Sync + Clone + 'static,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let last_refusal = Arc::new(std::sync::Mutex::new(None));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.load(Ordering::Acquire) >= MAX_INBOUND_CONNECTIONS {
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (slot, deliver) = (active.clone(), deliver.clone());
        let (tls, last_refusal) = (tls.clone(), last_refusal.clone());
        let spawned = std::thread::Builder::new()
            .name("sluice-ctl-in".into())
            .spawn(move || {
                read_connection(stream, tls.as_deref(), &deliver, &last_refusal);
                slot.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            // The closure (and the slot it would give back) is gone with the failed spawn.
            active.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("cannot start a controller connection thread");
        }
    }
}

/// The sending side of one peer: queue frames with `send`; a thread writes them.
#[derive(Clone)]
pub struct PeerLink {
    queue: flume::Sender<Vec<u8>>,
}

/// Where one peer is and how to reach it.
pub struct PeerAddress {
    pub id: i32,
    /// The voter entry's host: the name its certificate must carry under TLS.
    pub host: String,
    /// `host:port`.
    pub address: String,
}

impl PeerLink {
    pub fn start(peer: PeerAddress, tls: Option<Arc<ControllerTls>>) -> PeerLink {
        let (queue, frames) = flume::bounded::<Vec<u8>>(MAX_QUEUED_FRAMES_PER_PEER);
        let spawned = std::thread::Builder::new()
            .name(format!("sluice-ctl-out-{}", peer.id))
            .spawn(move || write_to_peer(&peer, tls.as_deref(), &frames));
        if spawned.is_err() {
            tracing::warn!("cannot start the controller link thread");
        }
        PeerLink { queue }
    }

    /// Queues a frame; dropped when the queue is full (the peer is slow or away).
    pub fn send(&self, frame: Vec<u8>) {
        let _ = self.queue.try_send(frame);
    }
}

fn connect_tcp(address: &str) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for addr in addresses {
        match TcpStream::connect_timeout(&addr, PEER_IO_TIMEOUT) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// A connection to `peer`, over mutual TLS when `tls` is given; writes time out after
/// `PEER_IO_TIMEOUT`.
fn connect(peer: &PeerAddress, tls: Option<&ControllerTls>) -> Result<Box<dyn Write>, String> {
    let mut socket = connect_tcp(&peer.address)?;
    let Some(tls) = tls else {
        let _ = socket.set_write_timeout(Some(PEER_IO_TIMEOUT));
        return Ok(Box::new(socket));
    };
    let name = rustls::pki_types::ServerName::try_from(peer.host.clone())
        .map_err(|e| format!("{}: {e}", peer.host))?;
    let mut conn = ClientConnection::new(tls.client.clone(), name).map_err(|e| e.to_string())?;
    handshake(&mut conn, &mut socket)?;
    let _ = socket.set_write_timeout(Some(PEER_IO_TIMEOUT));
    Ok(Box::new(StreamOwned::new(conn, socket)))
}

fn write_to_peer(
    peer: &PeerAddress,
    tls: Option<&ControllerTls>,
    frames: &flume::Receiver<Vec<u8>>,
) {
    let mut stream: Option<Box<dyn Write>> = None;
    let mut retry_at = Instant::now();
    let mut reported = false;
    while let Ok(frame) = frames.recv() {
        if stream.is_none() {
            if Instant::now() < retry_at {
                continue;
            }
            match connect(peer, tls) {
                Ok(connected) => {
                    stream = Some(connected);
                    reported = false;
                }
                Err(why) => {
                    retry_at = Instant::now() + RECONNECT_BACKOFF;
                    if !reported {
                        tracing::debug!(peer_id = peer.id, address = %peer.address, %why,
                            "controller peer unreachable");
                        reported = true;
                    }
                    continue;
                }
            }
        }
        // A TLS stream holds what `write_all` gave it until the flush.
        if let Some(s) = stream.as_mut()
            && (s.write_all(&frame).is_err() || s.flush().is_err())
        {
            stream = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_a_socket_and_bad_ones_close_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = flume::unbounded::<i32>();
        std::thread::spawn(move || {
            serve_inbound(listener, None, move |inbound| match inbound {
                Inbound::Heartbeat { from } => tx.send(from).is_ok(),
                Inbound::Raft(m) => tx.send(-(m.from as i32)).is_ok(),
            })
        });
        let link = PeerLink::start(
            PeerAddress {
                id: 9,
                host: "127.0.0.1".into(),
                address: addr.to_string(),
            },
            None,
        );
        link.send(heartbeat_frame(7));
        let message = Message {
            from: 3,
            ..Default::default()
        };
        link.send(raft_frame(&message));
        let timeout = Duration::from_secs(5);
        assert_eq!(rx.recv_timeout(timeout), Ok(7));
        assert_eq!(rx.recv_timeout(timeout), Ok(-3));
        // A frame with a wrong checksum ends that connection: nothing is delivered.
        let mut raw = TcpStream::connect(addr).unwrap();
        let mut bad = heartbeat_frame(5);
        bad[4] ^= 1;
        raw.write_all(&bad).unwrap();
        raw.write_all(&heartbeat_frame(6)).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    }
}
