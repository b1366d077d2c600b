//! The admin side of the broker: the HTTP listener for metrics, health, readiness, status and
//! the web console, systemd notification and watchdog, and process signal flags.
//!
//! Owns: one plain std thread accepting on `admin_listen` (blocking I/O is fine: it is off the
//! hot path) and short-lived per-connection threads, bounded by [`MAX_ADMIN_CONNECTIONS`].
//! Must not: touch shard state. Everything it shows comes from an [`AdminSource`] that the
//! server implements with cross-shard messages.

pub mod console;
pub mod http;
pub mod systemd;

use crate::metrics::{BrokerInfo, PROMETHEUS_CONTENT_TYPE, ShardSnapshot, render_prometheus};
use console::api::{ConsoleError, ConsoleQuery, ConsoleWrite};
use http::{READ_TIMEOUT, Request, RequestError, Response, WRITE_TIMEOUT, read_request};
use serde::Serialize;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// Admin connections served at once; more are answered 503 and closed.
pub const MAX_ADMIN_CONNECTIONS: usize = 16;

/// How long to wait for a client to close after its response, and how much of an unread
/// request body to swallow meanwhile.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// How long an [`AdminSource`] should wait for each shard's answer before leaving it out
/// (a stuck shard must not hang `/metrics`; the watchdog reports it).
pub const ADMIN_COLLECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the admin listener shows. Implemented by the server; each call may message every shard,
/// so implementations should bound their wait (a stuck shard must not hang `/metrics` forever).
pub trait AdminSource: Send + Sync {
    /// One snapshot per shard (`ShardMetrics::snapshot()` run on each shard thread).
    fn collect(&self) -> Vec<ShardSnapshot>;
    /// The `/v1/status` document; [`status_document`] builds the standard one.
    fn status(&self) -> serde_json::Value;
    /// True once recovery is done and the Kafka listeners accept connections.
    fn ready(&self) -> bool;
    /// Version, node id, uptime.
    fn broker_info(&self) -> BrokerInfo;
    /// The console's JSON answer to `query` (see [`console::api`] for the limits). Sources
    /// without shards behind them (tools, tests) answer that there is nothing to show.
    fn console(&self, query: &ConsoleQuery) -> Result<serde_json::Value, ConsoleError> {
        let _ = query;
        Err(ConsoleError::Unavailable(
            "this admin listener has no broker behind it".into(),
        ))
    }
    /// Carries out a console change (create or delete a topic); only called when
    /// [`console_read_only`](Self::console_read_only) is false.
    fn console_write(&self, write: &ConsoleWrite) -> Result<serde_json::Value, ConsoleError> {
        let _ = write;
        Err(ConsoleError::Unavailable(
            "this admin listener has no broker behind it".into(),
        ))
    }
    /// True when the console may only look (`console_read_only`).
    fn console_read_only(&self) -> bool {
        true
    }
}

/// One shard's line in `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    pub shard: usize,
    /// The CPU the shard thread is pinned to.
    pub core: usize,
    pub connections: i64,
    pub partitions: Vec<PartitionStatus>,
    /// Descriptors the shard holds for segment files, and its budget.
    pub open_files: u64,
    pub open_file_limit: u64,
    /// Partitions this shard could not open or took offline: never served.
    pub offline_partitions: Vec<OfflinePartitionStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfflinePartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub segments: u64,
    pub size_bytes: u64,
}

impl ShardStatus {
    /// The status line of the shard that produced `snapshot`, pinned to `core`.
    pub fn from_snapshot(snapshot: &ShardSnapshot, core: usize) -> ShardStatus {
        ShardStatus {
            shard: snapshot.shard_id,
            core,
            connections: snapshot.connections,
            partitions: snapshot
                .partitions
                .iter()
                .map(|p| PartitionStatus {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    log_start_offset: p.log_start_offset,
                    log_end_offset: p.log_end_offset,
                    segments: p.segments,
                    size_bytes: p.size_bytes,
                })
                .collect(),
            open_files: snapshot.storage.open_files,
            open_file_limit: snapshot.storage.open_file_limit,
            offline_partitions: snapshot
                .storage
                .offline_partitions
                .iter()
                .map(|(topic, partition, reason)| OfflinePartitionStatus {
                    topic: topic.clone(),
                    partition: *partition,
                    reason: reason.clone(),
                })
                .collect(),
        }
    }
}

/// The standard `/v1/status` document:
/// `{"version", "node_id", "uptime_seconds", "io_driver", "ready", "shards": [ShardStatus]}`
/// (`io_driver` is null until the shards run).
pub fn status_document(
    info: &BrokerInfo,
    ready: bool,
    shards: &[ShardStatus],
) -> serde_json::Value {
    serde_json::json!({
        "version": info.version,
        "node_id": info.node_id,
        "uptime_seconds": info.uptime_seconds,
        "io_driver": info.io_driver,
        "ready": ready,
        "shards": shards,
    })
}

/// The running admin listener. Dropping the handle leaves the listener running (like a
/// `JoinHandle`); call [`shutdown`](Self::shutdown) to stop it.
#[must_use = "dropping the handle detaches the listener; keep it to shut it down"]
pub struct AdminHandle {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// The bound address (the real port when `admin_listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the accept loop and waits for it (requests being answered finish on their own).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own.
        let _ = TcpStream::connect_timeout(&wake_address(self.local_addr), READ_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wake_address(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// Binds `addr` and serves the admin routes on a thread named `sluice-admin`. Start it after
/// recovery has begun (so `/v1/health` answers during recovery and `/v1/ready` says 503).
pub fn spawn_admin_server(
    addr: SocketAddr,
    source: Arc<dyn AdminSource>,
) -> io::Result<AdminHandle> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind admin listener {addr}: {e}")))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| io::Error::new(e.kind(), format!("admin listener {addr}: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || accept_loop(listener, source, thread_stop))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("admin listener {addr}: spawn thread: {e}"),
            )
        })?;
    tracing::info!(%local_addr, "admin listener up");
    Ok(AdminHandle {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

/// Decrements the live-connection count however the connection thread ends (even a panic).
struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, source: Arc<dyn AdminSource>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                tracing::warn!("admin accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_ADMIN_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = Response::text(503, "too many admin connections\n").write_to(&mut stream);
            continue;
        }
        let slot = ConnectionSlot(Arc::clone(&active));
        let source = Arc::clone(&source);
        let spawned = std::thread::Builder::new()
            .name("sluice-admin-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve_connection(&mut stream, source.as_ref());
            });
        if let Err(e) = spawned {
            tracing::warn!("admin: cannot spawn connection thread: {e}");
        }
    }
}

fn serve_connection(stream: &mut TcpStream, source: &dyn AdminSource) {
    let response = match read_request(stream) {
        Ok(request) => route(&request, source),
        Err(RequestError::Malformed(why)) => Response::text(400, format!("bad request: {why}\n")),
        Err(RequestError::TooLarge) => Response::text(431, "request head too large\n"),
        Err(RequestError::Incomplete) => return,
    };
    if let Err(e) = response.write_to(stream) {
        tracing::debug!("admin: writing response failed: {e}");
        return;
    }
    // Half-close, then drain what the client still sends (a body we never read) until it
    // closes: closing with unread input would reset the connection and lose the response.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(DRAIN_TIMEOUT));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN_BYTES {
        match std::io::Read::read(stream, &mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Maps a request to its response. Public so tests can route without sockets.
pub fn route(request: &Request, source: &dyn AdminSource) -> Response {
    if let Some(response) = console::route(request, source) {
        return response;
    }
    let known = matches!(
        request.path.as_str(),
        "/metrics" | "/v1/health" | "/v1/ready" | "/v1/status"
    );
    if !known {
        return Response::text(404, format!("no such path {}\n", request.path));
    }
    if request.method != "GET" {
        let mut r = Response::text(405, "only GET is allowed\n");
        r.headers.push(("Allow", "GET"));
        return r;
    }
    match request.path.as_str() {
        "/metrics" => {
            let text = render_prometheus(&source.collect(), &source.broker_info());
            Response {
                status: 200,
                content_type: PROMETHEUS_CONTENT_TYPE,
                body: text.into_bytes(),
                headers: Vec::new(),
            }
        }
        "/v1/health" => Response::text(200, "ok\n"),
        "/v1/ready" => {
            if source.ready() {
                Response::text(200, "ready\n")
            } else {
                Response::text(503, "not ready\n")
            }
        }
        _ => match serde_json::to_vec_pretty(&source.status()) {
            Ok(body) => Response {
                status: 200,
                content_type: "application/json",
                body,
                headers: Vec::new(),
            },
            Err(e) => Response::text(500, format!("cannot encode status: {e}\n")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ShardMetrics;
    use std::io::{Read, Write};
    use std::time::Instant;

    struct FakeSource {
        ready: AtomicBool,
        started: Instant,
    }

    impl AdminSource for FakeSource {
        fn collect(&self) -> Vec<ShardSnapshot> {
            let m = ShardMetrics::new(0, true);
            m.partition("orders", 0).record_in(123, 4);
            vec![m.snapshot()]
        }
        fn status(&self) -> serde_json::Value {
            let shards: Vec<ShardStatus> = self
                .collect()
                .iter()
                .map(|s| ShardStatus::from_snapshot(s, 5))
                .collect();
            status_document(&self.broker_info(), self.ready(), &shards)
        }
        fn ready(&self) -> bool {
            self.ready.load(Ordering::SeqCst)
        }
        fn broker_info(&self) -> BrokerInfo {
            BrokerInfo::new(7, self.started)
        }
    }

    fn get(addr: SocketAddr, raw: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    #[test]
    fn serves_every_route_over_tcp() {
        let source = Arc::new(FakeSource {
            ready: AtomicBool::new(false),
            started: Instant::now(),
        });
        let handle = spawn_admin_server(
            "127.0.0.1:0".parse().unwrap(),
            source.clone() as Arc<dyn AdminSource>,
        )
        .unwrap();
        let addr = handle.local_addr();
        assert_ne!(addr.port(), 0);

        let (status, head, body) = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, 200);
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        assert!(
            body.contains("sluice_partition_bytes_in_total{topic=\"orders\",partition=\"0\"} 123"),
            "{body}"
        );
        assert_eq!(get(addr, "GET /v1/health HTTP/1.1\r\n\r\n").0, 200);
        assert_eq!(get(addr, "GET /v1/ready HTTP/1.1\r\n\r\n").0, 503);
        source.ready.store(true, Ordering::SeqCst);
        assert_eq!(get(addr, "GET /v1/ready HTTP/1.0\r\n\r\n").0, 200);
        let (status, _, body) = get(addr, "GET /v1/status HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["node_id"], 7);
        assert_eq!(json["shards"][0]["core"], 5);
        assert_eq!(json["shards"][0]["partitions"][0]["topic"], "orders");
        assert_eq!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").0, 404);
        let (status, head, _) = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, 405);
        assert!(head.contains("Allow: GET"));
        assert_eq!(get(addr, "GARBAGE\r\n\r\n").0, 400);
        // A body we never read must not reset the connection before the answer arrives.
        let body = "x".repeat(30_000);
        let post = format!(
            "POST /metrics HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(get(addr, &post).0, 405);
        handle.shutdown();
        assert!(
            TcpStream::connect(addr).is_err(),
            "listener closed after shutdown"
        );
    }

    #[test]
    fn console_routes_serve_assets_and_refuse_bad_queries() {
        let source = FakeSource {
            ready: AtomicBool::new(true),
            started: Instant::now(),
        };
        let call = |method: &str, target: &str| {
            let head = format!("{method} {target} HTTP/1.1");
            route(&http::parse_head(head.as_bytes()).unwrap(), &source)
        };
        for (target, kind) in [
            ("/", "text/html"),
            ("/console", "text/html"),
            ("/console/console.js", "text/javascript"),
            ("/console/console.css", "text/css"),
        ] {
            let r = call("GET", target);
            assert_eq!(
                (r.status, r.content_type.split(';').next()),
                (200, Some(kind))
            );
            assert!(!r.body.is_empty(), "{target}");
        }
        let bad = call("GET", "/v1/messages?topic=t&offset=nope");
        assert_eq!(bad.status, 400);
        let error: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
        assert_eq!(error["error"], "offset is not a valid number: \"nope\"");
        // A source with no broker behind it says so instead of inventing an answer.
        assert_eq!(call("GET", "/v1/topics").status, 503);
        // Writes: refused while the source is read-only, whatever the request carries.
        assert_eq!(call("DELETE", "/v1/topics/orders").status, 403);
        assert_eq!(call("POST", "/v1/topics?name=x").status, 403);
        assert_eq!(call("PUT", "/v1/topics/orders").status, 405);
        assert_eq!(call("GET", "/console/nope.js").status, 404);
    }

    #[test]
    fn bind_errors_name_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let source = Arc::new(FakeSource {
            ready: AtomicBool::new(true),
            started: Instant::now(),
        });
        let err = spawn_admin_server(addr, source).err().unwrap();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
