//! TLS connections move to the shard that owns their partitions like plaintext ones
//! (`src/server/affinity.rs`, decisions 0004 and 0013): the rustls session goes with the
//! socket. Producers of one partition over mutual TLS (half on TLS 1.2, half on 1.3) all end
//! up on that partition's shard, every answer comes back in order through the moved
//! session, and the log holds every record once, in each connection's order.
//!
//! Before session 17 a TLS connection stayed on the shard that accepted it, and a producer
//! the kernel handed to the other shard paid a cross-shard hop per request: the slow mode
//! of issue 20's bimodal TLS produce figures (perf/RESULTS.md, "TLS, session 17").

mod reliability;
mod support;

use bytes::Bytes;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::protocol::Request;
use reliability::{PRODUCE_VERSION, RawConn, batch, produce_request, read_all};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sluice::server::affinity::MOVE_AFTER_REQUESTS;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use support::tls::Certs;
use support::wire::{IO_TIMEOUT, RESPONSE_BYTES_MAX, decode_response, encode_request};
use support::{Broker, wait_connections_on_one_shard};

/// With two shards, the kernel almost surely hands some of these to each (the assertions
/// hold either way; on a build that pins TLS connections the test fails unless all six
/// landed on the owner, 1 in 64).
const CONNECTIONS: usize = 6;
/// Requests each connection pipelines: several times the streak that triggers a move, so
/// some are read ahead when it starts and some arrive after it.
const REQUESTS_PER_CONNECTION: usize = 4 * MOVE_AFTER_REQUESTS as usize;
/// Metrics are snapshots a shard refreshes every few seconds.
const METRICS_WAIT: Duration = Duration::from_secs(20);

fn acks_for(request: usize) -> i16 {
    [1, -1, 1, 0][request % 4]
}

/// A client config trusting the test CA and presenting the client certificate, offering
/// only `version`.
fn client_config(
    certs: &Certs,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.path("ca.pem")).expect("read ca.pem") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add the CA");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.path("client.pem"))
            .expect("read client.pem")
            .map(|c| c.expect("a client certificate"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(certs.path("client.key")).expect("read client.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    Arc::new(config)
}

/// One Kafka connection over TLS: framed requests out, framed answers in.
struct TlsConn {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    correlation_id: i32,
}

impl TlsConn {
    fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> TlsConn {
        let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to the SSL listener");
        socket
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        socket
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        let _ = socket.set_nodelay(true);
        let name = ServerName::try_from("localhost").expect("server name");
        let conn = rustls::ClientConnection::new(config, name).expect("client session");
        let mut stream = rustls::StreamOwned::new(conn, socket);
        // Complete the handshake before pipelining.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("TLS handshake");
        }
        TlsConn {
            stream,
            correlation_id: 0,
        }
    }

    fn send<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        self.correlation_id += 1;
        let framed = encode_request(request, version, self.correlation_id, "tls-affinity")
            .expect("encode request");
        self.stream.write_all(&framed).expect("send over TLS");
        self.stream.flush().expect("flush over TLS");
        self.correlation_id
    }

    fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response, String> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("read response size: {e}"))?;
        let len = usize::try_from(i32::from_be_bytes(len))
            .ok()
            .filter(|n| (4..=RESPONSE_BYTES_MAX).contains(n))
            .ok_or("bad response size")?;
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("read response body: {e}"))?;
        decode_response::<R>(Bytes::from(body), version, correlation_id)
    }
}

#[test]
fn one_partition_tls_connections_move_to_its_shard_and_lose_nothing() {
    let certs = Certs::make();
    let toml = format!("{}cores = \"2\"\n", certs.broker_toml("required"));
    let (broker, ports) = Broker::start_with_listeners(&["SSL"], &toml);
    let ssl_port = ports[0];
    RawConn::connect(&broker.bootstrap())
        .expect("connect")
        .create_topic("moving", 1, &[])
        .expect("create topic");

    let versions = [&rustls::version::TLS12, &rustls::version::TLS13];
    let mut conns: Vec<TlsConn> = (0..CONNECTIONS)
        .map(|c| TlsConn::connect(ssl_port, client_config(&certs, versions[c % 2])))
        .collect();
    // Pipelined without reading, the connections taking turns.
    let mut answers: Vec<Vec<i32>> = vec![Vec::new(); CONNECTIONS];
    for request in 0..REQUESTS_PER_CONNECTION {
        for (c, conn) in conns.iter_mut().enumerate() {
            let value = format!("c{c} r{request}").into_bytes();
            let acks = acks_for(request);
            let request = produce_request("moving", 0, batch(&[value], None, 1), acks);
            let id = conn.send(&request, PRODUCE_VERSION);
            if acks != 0 {
                answers[c].push(id);
            }
        }
    }
    for (c, conn) in conns.iter_mut().enumerate() {
        let mut last = -1;
        for &id in &answers[c] {
            let r = conn
                .receive::<ProduceRequest>(PRODUCE_VERSION, id)
                .unwrap_or_else(|e| panic!("connection {c}, answer {id}: {e}"));
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "connection {c}, answer {id}");
            assert!(p.base_offset > last, "connection {c}: offsets go forward");
            last = p.base_offset;
        }
    }

    // Every TLS connection is now on the owner's shard, none on the other.
    wait_connections_on_one_shard(broker.admin_port, CONNECTIONS, METRICS_WAIT);

    // The moved sessions still carry traffic both ways.
    for (c, conn) in conns.iter_mut().enumerate() {
        let value = format!("c{c} r{REQUESTS_PER_CONNECTION}").into_bytes();
        let request = produce_request("moving", 0, batch(&[value], None, 1), 1);
        let id = conn.send(&request, PRODUCE_VERSION);
        let r = conn
            .receive::<ProduceRequest>(PRODUCE_VERSION, id)
            .unwrap_or_else(|e| panic!("connection {c} after the move: {e}"));
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }

    // The log holds every record once (acks=0 ones too), each connection's in its order.
    let mut reader = RawConn::connect(&broker.bootstrap()).expect("connect");
    let (batches, high_watermark, _) =
        read_all(&mut reader, "moving", 0, 0).expect("read the partition back");
    let per_connection = REQUESTS_PER_CONNECTION + 1;
    assert_eq!(high_watermark, (CONNECTIONS * per_connection) as i64);
    let mut next_request: HashMap<usize, usize> = HashMap::new();
    for record in batches.iter().flat_map(|b| &b.records) {
        let value = record.2.clone().expect("a value");
        let text = String::from_utf8(value.to_vec()).expect("utf-8 value");
        let (c, r) = text
            .strip_prefix('c')
            .and_then(|t| t.split_once(" r"))
            .and_then(|(c, r)| Some((c.parse::<usize>().ok()?, r.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("unexpected value {text:?}"));
        let expected = next_request.entry(c).or_insert(0);
        assert_eq!(r, *expected, "connection {c}: requests in order, each once");
        *expected += 1;
    }
    for c in 0..CONNECTIONS {
        assert_eq!(
            next_request.get(&c),
            Some(&per_connection),
            "connection {c}"
        );
    }
}
