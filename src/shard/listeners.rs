//! The Kafka listeners' sockets: one SO_REUSEPORT socket per configured listener per shard,
//! bound before any shard thread starts (a busy port is a clean start-up error) and put in
//! the listening state only once every shard has opened its partitions and, in cluster
//! mode, the node has caught up with the metadata quorum (`listen_once_ready`), so the port
//! refuses connections while the broker recovers instead of accepting ones that no shard
//! answers yet, or answering from the state it stopped with.
//!
//! Must not: accept connections (the shards do, in `server::serve`).

use super::start_error::StartError;
use crate::config::BrokerConfig;
use crate::config::listeners::ListenerSpec;
use crate::security::tls::TlsAcceptor;
use std::net::TcpListener;
use std::sync::Arc;

/// Pending connections the kernel queues per listener before refusing.
pub const LISTEN_BACKLOG: i32 = 1024;

/// How long the start-up check waits for an existing listener to answer.
const LISTENER_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);
/// How long a start-up keeps checking before it calls the port taken: after a crash the
/// kernel tears the dead broker's io_uring down asynchronously, and its listening socket
/// (held by a pending accept) can answer for a moment after the process is gone.
const LISTENER_PROBE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// Between two checks while the port still answers: that moment is a few ms after a
/// SIGKILL, and every ms of a restart is time due delayed records wait (issue 18; a 100 ms
/// interval made most restarts in `perf/delay.py` 100 ms slower).
const LISTENER_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Fails if something already accepts connections on `addr`. A connect, not a bind: a
/// bind would also trip over sockets a killed broker left closing on that port, which
/// SO_REUSEADDR/SO_REUSEPORT rightly ignore.
fn probe_exclusive(addr: std::net::SocketAddr) -> Result<(), StartError> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    // A connect that lands on its own source port (a TCP self-connect, possible when the
    // port is in the ephemeral range) is not another listener.
    let answered_by_other = || {
        std::net::TcpStream::connect_timeout(&target, LISTENER_PROBE_TIMEOUT)
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
    };
    let deadline = std::time::Instant::now() + LISTENER_PROBE_PATIENCE;
    let mut taken = addr.port() != 0 && answered_by_other();
    while taken && std::time::Instant::now() < deadline {
        std::thread::sleep(LISTENER_PROBE_INTERVAL);
        taken = answered_by_other();
    }
    if taken {
        return Err(StartError::Listen {
            addr,
            source: std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process already accepts connections on this address",
            ),
        });
    }
    Ok(())
}

/// A listener address claimed by this process for its lifetime: an abstract Unix socket
/// named after the address, which the kernel frees the moment the process exits (no file
/// to clean up after a SIGKILL) and which is scoped to the network namespace, as ports are.
///
/// Why: `probe_exclusive` finds only a listener that already accepts, and the broker's own
/// socket does not listen until its partitions are open (seconds on a big data directory).
/// A second broker started on the same address in that window found the port silent, and
/// its SO_REUSEPORT bind then joined the first broker's sockets: both started, and the
/// kernel split the port's connections between two brokers with different data. Kafka
/// refuses such a start ("address already in use"); with the claim, so does Sluice.
pub(super) struct AddressClaim {
    _socket: std::os::unix::net::UnixDatagram,
}

fn claim_address(addr: std::net::SocketAddr) -> Result<Option<AddressClaim>, StartError> {
    use std::os::linux::net::SocketAddrExt;
    // Port 0 asks the kernel for a port of its own: nothing to share.
    if addr.port() == 0 {
        return Ok(None);
    }
    let fail = |source| StartError::Listen { addr, source };
    let name = format!("sluice-listener/{addr}");
    let unix_addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(fail)?;
    match std::os::unix::net::UnixDatagram::bind_addr(&unix_addr) {
        Ok(socket) => Ok(Some(AddressClaim { _socket: socket })),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(fail(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another sluice process is listening on this address or starting up on it",
        ))),
        Err(e) => Err(fail(e)),
    }
}

/// A bound, not yet listening, socket (see `start_listening`).
fn bind_reuseport(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let fail = |source| StartError::Listen { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_reuse_port(true).map_err(fail)?;
    socket.set_tcp_nodelay(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    Ok(socket.into())
}

/// One shard's bound listeners, with what each one is (and its TLS context, if any).
pub(super) type ShardListeners = Vec<(Arc<ListenerSpec>, Option<Arc<TlsAcceptor>>, TcpListener)>;

/// The TLS context every SSL and SASL_SSL listener shares (`None` without such listeners),
/// built before any socket is bound so a bad certificate is a clean start-up error.
fn tls_acceptor(
    config: &BrokerConfig,
    specs: &[Arc<ListenerSpec>],
) -> Result<Option<Arc<TlsAcceptor>>, StartError> {
    if !specs.iter().any(|s| s.protocol.uses_tls()) {
        return Ok(None);
    }
    let acceptor =
        TlsAcceptor::new(&config.tls_settings()).map_err(|e| StartError::Config(e.to_string()))?;
    crate::security::tls::probe_ktls();
    Ok(Some(Arc::new(acceptor)))
}

/// Every configured listener bound once per shard (SO_REUSEPORT), before any thread
/// starts, so a busy port is a clean error; with a duplicate of each socket for
/// `start_listening` (the shards own the originals).
pub(super) fn bind_listeners(
    config: &BrokerConfig,
    shards: usize,
) -> Result<BoundListeners, StartError> {
    let specs: Vec<Arc<ListenerSpec>> = config
        .listener_specs()
        .map_err(|e| StartError::Config(e.to_string()))?
        .into_iter()
        .map(Arc::new)
        .collect();
    let tls = tls_acceptor(config, &specs)?;
    // SO_REUSEPORT would let a second broker silently share a port another process holds:
    // claim each address against other Sluice processes (listening or still starting), then
    // check that nothing else already accepts on it.
    let mut claims = Vec::with_capacity(specs.len());
    for spec in &specs {
        claims.extend(claim_address(spec.bind)?);
        probe_exclusive(spec.bind)?;
    }
    // Bind every listener of every shard before starting any thread, so a busy port is a
    // clean error.
    let mut listeners = Vec::with_capacity(shards);
    let mut to_listen = Vec::with_capacity(shards * specs.len());
    for _ in 0..shards {
        let mut shard_listeners = Vec::with_capacity(specs.len());
        for spec in &specs {
            let acceptor = spec.protocol.uses_tls().then(|| tls.clone()).flatten();
            let socket = bind_reuseport(spec.bind)?;
            let duplicate = socket.try_clone().map_err(|source| StartError::Listen {
                addr: spec.bind,
                source,
            })?;
            to_listen.push(ToListen {
                addr: spec.bind,
                socket: duplicate,
            });
            shard_listeners.push((spec.clone(), acceptor, socket));
        }
        listeners.push(shard_listeners);
    }
    Ok(BoundListeners {
        per_shard: listeners,
        to_listen,
        tls,
        claims,
    })
}

/// What `bind_listeners` hands start-up: each shard's sockets, their duplicates to put in
/// the listening state, the shared TLS context, and the address claims the broker holds
/// until it exits.
pub(super) struct BoundListeners {
    pub per_shard: Vec<ShardListeners>,
    pub to_listen: Vec<ToListen>,
    pub tls: Option<Arc<TlsAcceptor>>,
    pub claims: Vec<AddressClaim>,
}

/// A duplicate descriptor of one shard's bound socket, kept by the main thread until every
/// shard is ready.
pub(super) struct ToListen {
    addr: std::net::SocketAddr,
    socket: TcpListener,
}

/// Puts every shard's socket in the listening state (the duplicates share the socket with
/// the shards' descriptors); the caller drops the duplicates afterwards.
fn start_listening(sockets: &[ToListen]) -> Result<(), StartError> {
    for s in sockets {
        socket2::SockRef::from(&s.socket)
            .listen(LISTEN_BACKLOG)
            .map_err(|source| StartError::Listen {
                addr: s.addr,
                source,
            })?;
    }
    Ok(())
}

/// Every partition of every shard is open (and in cluster mode this node has caught up
/// with the metadata quorum): only now do the sockets listen (before, a connect is refused
/// and clients retry; a connection the kernel queued would wait unanswered through
/// recovery, or be reset if start-up failed) and the shards serve, or a request for a
/// partition another shard is still recovering would be refused.
pub(super) fn listen_once_ready(
    shards: usize,
    cluster: Option<&crate::cluster::ClusterHandle>,
    ready_rx: &std::sync::mpsc::Receiver<Result<usize, StartError>>,
    to_listen: &[ToListen],
    stop_requested: &dyn Fn(std::time::Duration) -> bool,
) -> Result<(), StartError> {
    wait_until_every_shard_is_ready(shards, ready_rx)?;
    if let Some(cluster) = cluster {
        super::catch_up::wait_for_first_catch_up(cluster, stop_requested)?;
    }
    start_listening(to_listen)
}

/// Waits for every shard to report its partitions open (or the first failure).
fn wait_until_every_shard_is_ready(
    shards: usize,
    ready_rx: &std::sync::mpsc::Receiver<Result<usize, StartError>>,
) -> Result<(), StartError> {
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let exited = "a shard thread exited during start-up";
                return Err(StartError::Shard(0, exited.into()));
            }
        }
    }
    Ok(())
}
