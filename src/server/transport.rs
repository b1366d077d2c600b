//! The byte stream under a connection (decision 0013): the TCP socket itself on PLAINTEXT and
//! SASL_PLAINTEXT listeners, or a rustls session driven over it on SSL and SASL_SSL ones.
//!
//! A TLS connection's reader and writer are separate tasks, like a plaintext one's. The
//! reader feeds ciphertext from its own buffer (one TLS record's worth) to rustls and hands
//! out plaintext; the writer encrypts answers and sends them. Ciphertext leaves rustls and
//! goes to the socket only under the session's send lock, so records the reader must send
//! (alerts, KeyUpdate answers) never interleave with an answer's. Fetched file regions are
//! read into memory and encrypted here: the copy kernel TLS would avoid (`security::tls`).
//!
//! A session moves with its connection to the shard owning the connection's partitions
//! (`TlsHandover`, decision 0004), taken only at a frame boundary with nothing in flight.
//!
//! Owns: the handshake (bounded in time by `connection`, in memory by rustls's own limits and
//! the fixed buffers here), the record I/O and the session's handover. Must not: know
//! requests or frames.

use crate::security::tls::TlsContext;
use crate::security::{Principal, ssl_principal};
use crate::storage::FileRegion;
use compio::BufResult;
use compio::buf::IntoInner;
use compio::driver::op::BufResultExt;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use rustls::ServerConnection;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

/// Ciphertext taken from the socket in one receive: several whole TLS records (each at most
/// 16 KiB of plaintext, its header and the largest expansion rustls accepts). One record per
/// receive made a produce request of N records N receives and N task wake-ups (profiled in
/// perf/RESULTS.md); rustls is fed from this buffer without a further receive until it is
/// empty. Per TLS connection, beside `TLS_SEND_BUFFER_BYTES`.
pub const TLS_READ_BUFFER_BYTES: usize = 64 * 1024;
const _: () = assert!(TLS_READ_BUFFER_BYTES >= 16 * 1024 + 2 * 1024 + 5);
/// Encrypted bytes gathered for one send; also the most rustls may queue unsent
/// (`set_buffer_limit`), so a large answer is encrypted and sent in steps of this.
pub const TLS_SEND_BUFFER_BYTES: usize = 256 * 1024;
/// Fetched record bytes read from a segment file at once on a TLS connection: read into the
/// session's one reusable buffer, encrypted and sent before the next step is read, so a
/// fetch of any size holds at most this much plaintext (and no fresh allocation per fetch).
pub const TLS_FILE_READ_BYTES: usize = 256 * 1024;
/// How long a client may take from connecting to a completed TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection's byte stream. Clones share the socket (and the TLS session).
#[derive(Clone)]
pub enum Transport {
    Plain(TcpStream),
    Tls(Rc<TlsSession>),
}

impl Transport {
    /// The TCP socket under the stream.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(session) => &session.socket,
        }
    }

    /// The TLS session over the socket, if any (shared with this stream's clones).
    pub fn tls_session(&self) -> Option<Rc<TlsSession>> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(session) => Some(session.clone()),
        }
    }

    /// Reads what is available into `buf`'s spare capacity (0: the peer closed).
    pub async fn append(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        match self {
            Transport::Plain(stream) => compio::io::AsyncReadExt::append(stream, buf).await,
            Transport::Tls(session) => session.read_plaintext(buf).await,
        }
    }
}

/// What the reader holds between receives: ciphertext not yet given to rustls, and what
/// rustls said it holds.
struct Inbound {
    cipher: Vec<u8>,
    /// Bytes of `cipher` rustls has taken.
    fed: usize,
    /// Plaintext rustls holds, ready to read.
    plaintext: usize,
    /// The peer sent close_notify.
    peer_closed: bool,
}

/// A TLS session on its way to another shard with its connection (decision 0004): the
/// rustls state (keys, sequence numbers, plaintext and partial records it holds) and the
/// ciphertext received but not yet given to it. Taken only when the session is quiet: the
/// reader paused at a frame boundary and the writer sent every answer.
pub struct TlsHandover {
    conn: ServerConnection,
    /// Unfed ciphertext, at most `TLS_READ_BUFFER_BYTES`.
    cipher: Vec<u8>,
    plaintext: usize,
    peer_closed: bool,
    /// The session's empty send and file buffers, reused rather than allocated again.
    outbound: Vec<u8>,
    file_buffer: Vec<u8>,
}

/// One rustls server session over a TCP socket.
pub struct TlsSession {
    socket: TcpStream,
    conn: RefCell<ServerConnection>,
    inbound: RefCell<Inbound>,
    /// The send buffer; holding it is the right to move ciphertext to the socket.
    outbound: futures_util::lock::Mutex<Vec<u8>>,
    /// Fetched file bytes on their way to rustls (`TLS_FILE_READ_BYTES`; only the writer
    /// uses it, taken out across its reads).
    file_buffer: RefCell<Vec<u8>>,
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// Completes a server handshake on `socket` with `config`. Unbounded in time here: the
/// caller races it against `TLS_HANDSHAKE_TIMEOUT`.
pub async fn handshake(
    socket: TcpStream,
    config: std::sync::Arc<rustls::ServerConfig>,
) -> std::io::Result<Rc<TlsSession>> {
    let mut conn = ServerConnection::new(config).map_err(invalid)?;
    conn.set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
    let inbound = Inbound {
        cipher: Vec::with_capacity(TLS_READ_BUFFER_BYTES),
        fed: 0,
        plaintext: 0,
        peer_closed: false,
    };
    let session = TlsSession::over(
        socket,
        conn,
        inbound,
        Vec::with_capacity(TLS_SEND_BUFFER_BYTES),
        Vec::new(),
    );
    while session.conn.borrow().is_handshaking() {
        if !session.receive().await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    // The last flight (TLS 1.2's Finished, TLS 1.3's session tickets).
    session.flush().await?;
    Ok(session)
}

/// The principal a completed handshake proves on an SSL listener: the client certificate's
/// mapped subject, or `User:ANONYMOUS` when the client sent none (`ssl_client_auth` none or
/// requested). `Err` when a certificate maps to no principal (the connection closes).
pub fn certificate_principal(
    session: &TlsSession,
    context: &TlsContext,
) -> Result<Principal, String> {
    let conn = session.conn.borrow();
    match conn.peer_certificates().and_then(|chain| chain.first()) {
        Some(leaf) => ssl_principal::principal_for_certificate(leaf.as_ref(), &context.mapper),
        None => Ok(Principal::anonymous()),
    }
}

impl TlsSession {
    fn over(
        socket: TcpStream,
        conn: ServerConnection,
        inbound: Inbound,
        outbound: Vec<u8>,
        file_buffer: Vec<u8>,
    ) -> Rc<TlsSession> {
        Rc::new(TlsSession {
            socket,
            conn: RefCell::new(conn),
            inbound: RefCell::new(inbound),
            outbound: futures_util::lock::Mutex::new(outbound),
            file_buffer: RefCell::new(file_buffer),
        })
    }

    /// The session's state for another shard, leaving the socket behind (the caller hands
    /// over a duplicate). Given back when something still shares the session or rustls has
    /// ciphertext not sent yet: the connection stays here then.
    pub fn into_handover(session: Rc<TlsSession>) -> Result<TlsHandover, Rc<TlsSession>> {
        if session.conn.borrow().wants_write() {
            return Err(session);
        }
        let session = Rc::try_unwrap(session)?;
        let conn = session.conn.into_inner();
        let Inbound {
            mut cipher,
            fed,
            plaintext,
            peer_closed,
        } = session.inbound.into_inner();
        cipher.drain(..fed.min(cipher.len()));
        let mut outbound = session.outbound.into_inner();
        outbound.clear();
        Ok(TlsHandover {
            conn,
            cipher,
            plaintext,
            peer_closed,
            outbound,
            file_buffer: session.file_buffer.into_inner(),
        })
    }

    /// Resumes a session another shard handed over, on `socket` (its duplicate here).
    pub fn resume(socket: TcpStream, handover: TlsHandover) -> Rc<TlsSession> {
        let TlsHandover {
            conn,
            mut cipher,
            plaintext,
            peer_closed,
            mut outbound,
            file_buffer,
        } = handover;
        outbound.reserve(TLS_SEND_BUFFER_BYTES.saturating_sub(outbound.len()));
        cipher.reserve(TLS_READ_BUFFER_BYTES.saturating_sub(cipher.len()));
        let inbound = Inbound {
            cipher,
            fed: 0,
            plaintext,
            peer_closed,
        };
        TlsSession::over(socket, conn, inbound, outbound, file_buffer)
    }

    /// Gives rustls the next ciphertext (buffered bytes first, else one receive) and sends
    /// what it answers. `false` when the peer closed the socket.
    async fn receive(&self) -> std::io::Result<bool> {
        let fed = match self.feed_buffered() {
            Ok(fed) => fed,
            Err(e) => {
                // rustls queued an alert saying why; the peer deserves it.
                let _ = self.flush().await;
                return Err(e);
            }
        };
        if !fed {
            let mut cipher = std::mem::take(&mut self.inbound.borrow_mut().cipher);
            cipher.clear();
            // A receive cancelled at shutdown took the buffer with it.
            cipher.reserve(TLS_READ_BUFFER_BYTES);
            let BufResult(result, cipher) = (&self.socket).read(cipher).await;
            {
                let mut inbound = self.inbound.borrow_mut();
                inbound.cipher = cipher;
                inbound.fed = 0;
            }
            if result? == 0 {
                return Ok(false);
            }
            if let Err(e) = self.feed_buffered() {
                let _ = self.flush().await;
                return Err(e);
            }
        }
        if self.conn.borrow().wants_write() {
            self.flush().await?;
        }
        Ok(true)
    }

    /// Feeds rustls the buffered ciphertext it can take now; `false` if none was buffered.
    fn feed_buffered(&self) -> std::io::Result<bool> {
        let mut inbound = self.inbound.borrow_mut();
        if inbound.fed >= inbound.cipher.len() {
            return Ok(false);
        }
        let mut conn = self.conn.borrow_mut();
        let mut rest = &inbound.cipher[inbound.fed..];
        let taken = conn.read_tls(&mut rest)?;
        if taken == 0 {
            return Err(invalid("TLS input not accepted"));
        }
        inbound.fed += taken;
        let state = conn.process_new_packets().map_err(invalid)?;
        inbound.plaintext = state.plaintext_bytes_to_read();
        inbound.peer_closed = state.peer_has_closed();
        Ok(true)
    }

    /// Moves decrypted bytes into `buf`'s spare capacity, receiving records until some are
    /// there (0: the peer closed).
    async fn read_plaintext(&self, mut buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        loop {
            let (pending, peer_closed) = {
                let inbound = self.inbound.borrow();
                (inbound.plaintext, inbound.peer_closed)
            };
            let start = buf.len();
            let spare = buf.capacity() - start;
            if spare == 0 {
                return BufResult(Ok(0), buf);
            }
            if pending > 0 {
                // Only the bytes about to be filled are zeroed, never the whole spare room.
                buf.resize(start + pending.min(spare), 0);
                let read = self.conn.borrow_mut().reader().read(&mut buf[start..]);
                return match read {
                    Ok(n) => {
                        buf.truncate(start + n);
                        let mut inbound = self.inbound.borrow_mut();
                        inbound.plaintext = inbound.plaintext.saturating_sub(n);
                        BufResult(Ok(n), buf)
                    }
                    Err(e) => {
                        buf.truncate(start);
                        BufResult(Err(e), buf)
                    }
                };
            }
            if peer_closed {
                return BufResult(Ok(0), buf);
            }
            match self.receive().await {
                Ok(true) => {}
                Ok(false) => return BufResult(Ok(0), buf),
                Err(e) => return BufResult(Err(e), buf),
            }
        }
    }

    /// Sends everything rustls has queued.
    async fn flush(&self) -> std::io::Result<()> {
        let mut out = self.outbound.lock().await;
        self.send_queued(&mut out).await
    }

    /// With the send lock held (`out` is its buffer): moves rustls's queued ciphertext to
    /// the socket, `TLS_SEND_BUFFER_BYTES` at a time.
    async fn send_queued(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        loop {
            {
                let mut conn = self.conn.borrow_mut();
                while conn.wants_write() && out.len() < TLS_SEND_BUFFER_BYTES {
                    conn.write_tls(out)?;
                }
            }
            if out.is_empty() {
                return Ok(());
            }
            let BufResult(result, mut sent) = (&self.socket).write_all(std::mem::take(out)).await;
            sent.clear();
            *out = sent;
            result?;
        }
    }

    /// Encrypts and sends `parts` in order.
    pub async fn send<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> std::io::Result<()> {
        let mut out = self.outbound.lock().await;
        for part in parts {
            let mut rest = part;
            while !rest.is_empty() {
                let taken = match self.conn.borrow_mut().writer().write(rest) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                rest = &rest[taken..];
                if taken == 0 {
                    // rustls's queue is at its limit: send it, then go on.
                    let before = self.conn.borrow().wants_write();
                    self.send_queued(&mut out).await?;
                    if !before {
                        return Err(std::io::Error::other("TLS session refuses data"));
                    }
                }
            }
        }
        self.send_queued(&mut out).await
    }

    /// Sends an answer's pieces: inline bytes as they are, file regions read into memory
    /// first (the copy kernel TLS would save).
    pub async fn send_chunks(&self, chunks: Vec<super::response::Chunk>) -> std::io::Result<()> {
        for chunk in chunks {
            match chunk {
                super::response::Chunk::Inline(bytes) => self.send([bytes.as_ref()]).await?,
                super::response::Chunk::File(region) => self.send_region(&region).await?,
            }
        }
        Ok(())
    }

    /// Reads `region` in steps of `TLS_FILE_READ_BYTES` into the session's reusable buffer
    /// (io_uring; from the page cache this is the one copy kTLS would also make) and
    /// encrypts and sends each step before reading the next.
    async fn send_region(&self, region: &FileRegion) -> std::io::Result<()> {
        // Taken out across the awaits; a send cancelled at shutdown just drops it.
        let mut buf = std::mem::take(&mut *self.file_buffer.borrow_mut());
        buf.reserve_exact(TLS_FILE_READ_BYTES);
        let len = u64::from(region.len);
        let mut done = 0u64;
        while done < len {
            let step = (len - done).min(TLS_FILE_READ_BYTES as u64) as usize;
            buf.clear();
            while buf.len() < step {
                let filled = buf.len();
                let op = compio::driver::op::ReadAt::new(
                    std::sync::Arc::clone(&region.fd),
                    region.position + done + filled as u64,
                    compio::buf::IoBuf::slice(buf, filled..step),
                );
                let done_op = compio::runtime::submit(op).await.into_inner();
                // SAFETY: the kernel wrote the `n` bytes the read returned into the slice,
                // which is what `map_advanced` marks initialised (as compio's own read_at).
                let BufResult(read, slice) = unsafe { done_op.map_advanced() };
                buf = slice.into_inner();
                if read? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{} ends inside a fetched region", region.path.display()),
                    ));
                }
            }
            self.send([buf.as_slice()]).await?;
            done += step as u64;
        }
        *self.file_buffer.borrow_mut() = buf;
        Ok(())
    }
}
