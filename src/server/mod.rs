//! The Kafka endpoint of one shard: accept loop, connections, dispatch, handlers.
//!
//! Owns: sockets and the request/response cycle. Each shard accepts on its own
//! SO_REUSEPORT listener and serves those connections itself; partition work goes to the
//! owning shard through `Shard::invoke_on`. Must not: touch another shard's state directly.

pub mod access;
pub mod affinity;
pub mod authorization;
pub mod broker_configs;
pub mod cluster_view;
pub mod config_resources;
pub mod config_sources;
mod connection;
mod connection_quota;
pub mod connection_state;
pub mod context;
pub mod delay_check;
pub mod dispatch;
pub mod features;
pub mod fetch_sessions;
mod file_send;
pub mod handlers;
pub mod quota;
pub mod refusals;
pub mod registry;
mod request_quota;
mod request_reader;
pub mod response;
mod routing;
pub mod sasl;
mod sasl_gate;
pub mod share;
pub mod share_close;
pub mod share_dlq;
pub mod share_opened;
pub mod timestamp_bounds;
mod transport;
pub mod views;

use crate::config::listeners::ListenerSpec;
use crate::shard::Shard;
use futures_util::FutureExt;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for connections to finish the request they are serving.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the shutdown drain looks at the open connection count.
const SHUTDOWN_DRAIN_CHECK: Duration = Duration::from_millis(10);
/// How long the accept loop pauses after a failed accept (EMFILE and friends).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

thread_local! {
    /// Connections open on this shard (each shard thread has its own count).
    static OPEN_CONNECTIONS: Cell<u32> = const { Cell::new(0) };
}

/// Connections currently open on the calling shard.
pub fn open_connections() -> u32 {
    OPEN_CONNECTIONS.with(Cell::get)
}

/// Each shard's equal share of the broker-wide connection limit.
fn per_shard_connection_limit(shard: &Shard) -> u32 {
    (shard.config.max_connections as usize).div_ceil(shard.count()) as u32
}

/// Runs a connection task on this shard, counted in `open_connections` while it lives.
fn spawn_connection(serve: impl std::future::Future<Output = ()> + 'static) {
    OPEN_CONNECTIONS.with(|c| c.set(c.get() + 1));
    compio::runtime::spawn(async move {
        serve.await;
        OPEN_CONNECTIONS.with(|c| c.set(c.get().saturating_sub(1)));
    })
    .detach();
}

/// Takes over a connection another shard hands this one (it owns the connection's
/// partitions). Refused, and given back, when this shard is at its connection limit or
/// shutting down (boxed: the refusal is rare and the handover large).
pub fn adopt(
    shard: Rc<Shard>,
    handover: connection::Handover,
) -> Result<(), Box<connection::Handover>> {
    if shard.shutting_down.get() || open_connections() >= per_shard_connection_limit(&shard) {
        return Err(Box::new(handover));
    }
    let connection::Handover {
        socket,
        prefix,
        state,
        tls,
    } = handover;
    let stream = match compio::net::TcpStream::from_std(socket.into()) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(shard = shard.id, error = %e, "could not adopt a connection; closing it");
            return Ok(());
        }
    };
    spawn_connection(connection::resume(shard, stream, prefix, state, tls));
    Ok(())
}

/// One listener as a shard serves it: what it is (name, protocol, advertised address) and
/// this shard's SO_REUSEPORT socket for it.
pub struct BoundListener {
    pub spec: Arc<ListenerSpec>,
    /// SSL and SASL_SSL listeners: the TLS context their handshakes start from.
    pub tls: Option<Arc<crate::security::tls::TlsAcceptor>>,
    pub socket: compio::net::TcpListener,
}

/// Accepts connections on every listener until shutdown, then waits (bounded) for them to
/// drain.
pub async fn serve(shard: Rc<Shard>, listeners: Vec<BoundListener>) {
    futures_util::future::join_all(
        listeners
            .into_iter()
            .map(|listener| accept_loop(shard.clone(), listener)),
    )
    .await;
    let deadline = std::time::Instant::now() + SHUTDOWN_DRAIN_TIMEOUT;
    while open_connections() > 0 && std::time::Instant::now() < deadline {
        shard.timer.sleep(SHUTDOWN_DRAIN_CHECK).await;
    }
}

/// Accepts connections on one listener until shutdown.
async fn accept_loop(shard: Rc<Shard>, listener: BoundListener) {
    let per_shard_limit = per_shard_connection_limit(&shard);
    loop {
        let accepted = {
            let mut stop = shard.shutdown_signal().fuse();
            let mut accept = std::pin::pin!(listener.socket.accept().fuse());
            futures_util::select! {
                _ = stop => break,
                result = accept => result,
            }
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(shard = shard.id, listener = %listener.spec.name, error = %e, "accept failed");
                shard.timer.sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if open_connections() >= per_shard_limit {
            tracing::warn!(shard = shard.id, %peer, limit = shard.config.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        }
        match connection_quota::admit(&shard, &listener.spec, peer.ip()).await {
            connection_quota::Admission::Serve(wait) if wait.is_zero() => {}
            connection_quota::Admission::Serve(wait) => {
                // Over the broker's or listener's creation rate: this connection, and the
                // listener's next accept on this shard, wait until the rate is back under.
                let mut stop = shard.shutdown_signal().fuse();
                let mut sleep = std::pin::pin!(shard.timer.sleep(wait).fuse());
                futures_util::select! {
                    _ = stop => break,
                    _ = sleep => {},
                }
            }
            connection_quota::Admission::CloseAfter(throttle) => {
                tracing::debug!(shard = shard.id, %peer, ?throttle, "connection over its IP's creation rate; closing it after the throttle");
                connection_quota::close_after(&shard, stream, throttle);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        spawn_connection(connection::run(
            shard.clone(),
            stream,
            listener.spec.clone(),
            listener.tls.clone(),
        ));
    }
    stop_listening(&listener);
}

/// Takes the listener out of the listening state at once, as Kafka closes its acceptors
/// first on shutdown. Dropping it is not enough: the ring's pending accept keeps the socket
/// open until io_uring's teardown, which the kernel may finish after the process exits
/// (see `shard::listeners`), and a client connecting meanwhile would be queued on a socket
/// nobody serves, then reset, instead of refused.
fn stop_listening(listener: &BoundListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown(2) on a descriptor this listener owns and keeps open for the call.
    let done = unsafe { libc::shutdown(listener.socket.as_raw_fd(), libc::SHUT_RDWR) };
    if done != 0 {
        tracing::debug!(listener = %listener.spec.name, error = %std::io::Error::last_os_error(), "listener shutdown");
    }
}
