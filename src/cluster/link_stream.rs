//! The byte stream under a follower's link to its leader (decision 0021): the TCP socket on
//! a PLAINTEXT or SASL_PLAINTEXT inter-broker listener, or a rustls client session driven
//! over it on SSL and SASL_SSL. The link has one request in flight and one task, so the
//! session needs no lock: a write encrypts and sends the request, a read receives records
//! until plaintext is there (answering what rustls must answer, e.g. KeyUpdate, on the way).
//!
//! Owns: the client handshake (bounded in time by the caller) and the record I/O. Must not:
//! know requests or frames (`leader_link` does). The rustls config comes from the
//! `inter_broker_*` keys (`config::inter_broker`, built with the CLI's `client::tls`).

use compio::BufResult;
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::sync::Arc;

/// Ciphertext taken from the socket in one receive (several TLS records).
pub const LINK_TLS_READ_BYTES: usize = 64 * 1024;
const _: () = assert!(LINK_TLS_READ_BYTES >= 16 * 1024 + 2 * 1024 + 5);
/// Ciphertext gathered for one send.
pub const LINK_TLS_SEND_BYTES: usize = 64 * 1024;
/// Plaintext handed out per read: the spare room zeroed for rustls to fill is bounded by
/// this, not by the frame's whole size.
const LINK_TLS_PLAINTEXT_STEP_BYTES: usize = 64 * 1024;

pub(super) enum LinkStream {
    Plain(TcpStream),
    Tls(Box<TlsLink>),
}

/// A rustls client session over the link's socket.
pub(super) struct TlsLink {
    socket: TcpStream,
    conn: ClientConnection,
    /// Ciphertext received, `cipher[fed..]` not yet taken by rustls.
    cipher: Vec<u8>,
    fed: usize,
    /// Ciphertext on its way to the socket (reused).
    out: Vec<u8>,
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl LinkStream {
    /// Completes a TLS client handshake on `socket`, checking the leader's certificate
    /// against `host` (its advertised host on the inter-broker listener). Unbounded in time
    /// here: the caller races it against its connect timeout.
    pub(super) async fn tls(
        socket: TcpStream,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> std::io::Result<LinkStream> {
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(config, name).map_err(invalid)?;
        let mut link = TlsLink {
            socket,
            conn,
            cipher: Vec::with_capacity(LINK_TLS_READ_BYTES),
            fed: 0,
            out: Vec::with_capacity(LINK_TLS_SEND_BYTES),
        };
        while link.conn.is_handshaking() {
            link.send_queued().await?;
            if link.conn.is_handshaking() && !link.receive().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        link.send_queued().await?;
        Ok(LinkStream::Tls(Box::new(link)))
    }

    /// Sends all of `buf` (encrypted on a TLS link).
    pub(super) async fn write_all(
        &mut self,
        buf: bytes::BytesMut,
    ) -> BufResult<(), bytes::BytesMut> {
        match self {
            LinkStream::Plain(stream) => stream.write_all(buf).await,
            LinkStream::Tls(link) => {
                let written = match link.conn.writer().write_all(&buf) {
                    Ok(()) => link.send_queued().await,
                    Err(e) => Err(e),
                };
                BufResult(written, buf)
            }
        }
    }

    /// Reads what is available into `buf`'s spare capacity (0: the leader closed).
    pub(super) async fn append(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        match self {
            LinkStream::Plain(stream) => stream.append(buf).await,
            LinkStream::Tls(link) => link.read_plaintext(buf).await,
        }
    }
}

impl TlsLink {
    /// Moves everything rustls has queued to the socket.
    async fn send_queued(&mut self) -> std::io::Result<()> {
        while self.conn.wants_write() {
            self.out.clear();
            while self.conn.wants_write() && self.out.len() < LINK_TLS_SEND_BYTES {
                self.conn.write_tls(&mut self.out)?;
            }
            let BufResult(sent, out) = self.socket.write_all(std::mem::take(&mut self.out)).await;
            self.out = out;
            sent?;
        }
        Ok(())
    }

    /// Gives rustls the next ciphertext (what is buffered, else one receive) and sends what
    /// it answers. `false` when the leader closed the socket.
    async fn receive(&mut self) -> std::io::Result<bool> {
        if self.fed >= self.cipher.len() {
            let mut cipher = std::mem::take(&mut self.cipher);
            cipher.clear();
            cipher.reserve(LINK_TLS_READ_BYTES);
            let BufResult(read, cipher) = self.socket.read(cipher).await;
            self.cipher = cipher;
            self.fed = 0;
            if read? == 0 {
                return Ok(false);
            }
        }
        let mut rest = &self.cipher[self.fed..];
        let taken = self.conn.read_tls(&mut rest)?;
        if taken == 0 {
            // Only asked with no plaintext pending: rustls refusing input is a broken session.
            return Err(invalid("TLS input not accepted"));
        }
        self.fed += taken;
        if let Err(e) = self.conn.process_new_packets() {
            // rustls queued an alert saying why; the leader deserves it.
            let _ = self.send_queued().await;
            return Err(invalid(e));
        }
        self.send_queued().await?;
        Ok(true)
    }

    async fn read_plaintext(&mut self, mut buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        loop {
            let start = buf.len();
            let room = (buf.capacity() - start).min(LINK_TLS_PLAINTEXT_STEP_BYTES);
            if room == 0 {
                return BufResult(Ok(0), buf);
            }
            buf.resize(start + room, 0);
            match self.conn.reader().read(&mut buf[start..]) {
                Ok(n) => {
                    buf.truncate(start + n);
                    return BufResult(Ok(n), buf);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    buf.truncate(start);
                    match self.receive().await {
                        Ok(true) => {}
                        Ok(false) => return BufResult(Ok(0), buf),
                        Err(e) => return BufResult(Err(e), buf),
                    }
                }
                Err(e) => {
                    buf.truncate(start);
                    return BufResult(Err(e), buf);
                }
            }
        }
    }
}
