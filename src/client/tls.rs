//! The client's side of TLS, for SSL listeners: a rustls client config that trusts the CA
//! certificates of one PEM file, and the byte stream a connection reads and writes (the TCP
//! socket, or a rustls session over it; the handshake runs on the first read or write).
//!
//! Must not: know Kafka requests (`connection` frames them).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A rustls client config trusting the CA certificates in `ca_file` (PEM).
pub fn client_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    client_config_with(ca_file, None)
}

/// `client_config`, presenting the PEM certificate chain and unencrypted key of
/// `certificate` (mutual TLS: the broker takes the principal from it).
pub fn client_config_with(
    ca_file: &Path,
    certificate: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", ca_file.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| fail(&e))? {
        roots
            .add(cert.map_err(|e| fail(&e))?)
            .map_err(|e| fail(&e))?;
    }
    if roots.is_empty() {
        return Err(fail(&"holds no PEM certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match certificate {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let fail = |path: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
            let chain_certs = CertificateDer::pem_file_iter(chain)
                .map_err(|e| fail(chain, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(chain, &e))?;
            if chain_certs.is_empty() {
                return Err(fail(chain, &"holds no PEM certificate"));
            }
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, &e))?;
            builder
                .with_client_auth_cert(chain_certs, key_der)
                .map_err(|e| fail(key, &e))?
        }
    };
    Ok(Arc::new(config))
}

/// A connection's byte stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// `tcp` as is, or wrapped in a TLS session for `host` (checked against the broker's
    /// certificate) when `tls` is given.
    pub fn new(
        tcp: TcpStream,
        host: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> std::io::Result<Stream> {
        let Some(config) = tls else {
            return Ok(Stream::Plain(tcp));
        };
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let session =
            rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
            session, tcp,
        ))))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A TLS session whose writes and reads happen on two threads (the bench's pipelined
/// producer), each with its own clone of the socket. Only the write half sends ciphertext;
/// what the read half's records ask rustls to send goes out with the next write.
type Shared = Arc<std::sync::Mutex<rustls::ClientConnection>>;

/// The write half of a split stream.
pub struct WriteHalf {
    tcp: TcpStream,
    tls: Option<(Shared, Vec<u8>)>,
}

/// The read half of a split stream.
pub struct ReadHalf {
    tcp: TcpStream,
    tls: Option<(Shared, Inbound)>,
}

/// Ciphertext received but not yet taken by rustls (`cipher[start..end]`): rustls takes
/// more only once its decrypted bytes were read.
struct Inbound {
    cipher: Vec<u8>,
    start: usize,
    end: usize,
}

/// Ciphertext the read half takes from the socket at once (one TLS record).
const SPLIT_READ_BUFFER_BYTES: usize = 16 * 1024 + 2 * 1024 + 5;

fn poisoned() -> std::io::Error {
    std::io::Error::other("TLS session lock poisoned")
}

/// Splits an established stream (`Connection::into_stream`: versions negotiated, SASL
/// done, nothing in flight) into halves for two threads.
pub fn split_stream(stream: Stream) -> std::io::Result<(WriteHalf, ReadHalf)> {
    match stream {
        Stream::Plain(tcp) => {
            let read = tcp.try_clone()?;
            Ok((
                WriteHalf { tcp, tls: None },
                ReadHalf {
                    tcp: read,
                    tls: None,
                },
            ))
        }
        Stream::Tls(owned) => {
            let rustls::StreamOwned { conn, sock } = *owned;
            let read = sock.try_clone()?;
            let shared: Shared = Arc::new(std::sync::Mutex::new(conn));
            Ok((
                WriteHalf {
                    tcp: sock,
                    tls: Some((shared.clone(), Vec::new())),
                },
                ReadHalf {
                    tcp: read,
                    tls: Some((
                        shared,
                        Inbound {
                            cipher: vec![0; SPLIT_READ_BUFFER_BYTES],
                            start: 0,
                            end: 0,
                        },
                    )),
                },
            ))
        }
    }
}

impl Write for WriteHalf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some((session, out)) = &mut self.tls else {
            return self.tcp.write(buf);
        };
        let taken = {
            let mut session = session.lock().map_err(|_| poisoned())?;
            let taken = session.writer().write(buf)?;
            while session.wants_write() {
                session.write_tls(out)?;
            }
            taken
        };
        self.tcp.write_all(out)?;
        out.clear();
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((session, inbound)) = &mut self.tls else {
            return self.tcp.read(buf);
        };
        loop {
            {
                let mut session = session.lock().map_err(|_| poisoned())?;
                match session.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if inbound.start < inbound.end {
                    let mut rest = &inbound.cipher[inbound.start..inbound.end];
                    let taken = session.read_tls(&mut rest)?;
                    if taken == 0 {
                        return Ok(0);
                    }
                    inbound.start += taken;
                    session
                        .process_new_packets()
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    continue;
                }
            }
            let n = self.tcp.read(&mut inbound.cipher)?;
            if n == 0 {
                return Ok(0);
            }
            inbound.start = 0;
            inbound.end = n;
        }
    }
}
