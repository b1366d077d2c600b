//! One blocking TCP connection to one broker: length-prefixed framing, correlation ids,
//! ApiVersions negotiation and in-order pipelining (`send` / `receive`, or `call` for both).
//!
//! Must not: know about topics, partitions or retries; that is `cluster.rs`' job. A failed
//! read or write leaves the connection unusable (`is_broken`): the caller drops it.

use super::error::{ClientError, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest response frame accepted; a bigger length prefix means a confused peer.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// Requests that may be outstanding on one connection before `send` refuses more.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 4096;
/// How long to wait for a TCP connect.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long a single read or write may block. Must exceed any Fetch `max_wait_ms` and
/// Produce `timeout_ms` the client sends.
pub const IO_TIMEOUT_MS: u64 = 35_000;
/// `client.id` sent in every request header unless the caller picks another.
pub const DEFAULT_CLIENT_ID: &str = "sluice-cli";

/// Versions this client implements for each API, as (key, name, min, max). The crate can
/// encode every version; the cap is what the client code fills in and reads correctly.
/// Minimums: Produce 3 / Fetch 4 are the first versions carrying RecordBatch v2.
pub const CLIENT_API_VERSIONS: &[(ApiKey, &str, i16, i16)] = &[
    (ApiKey::Produce, "Produce", 3, 9),
    (ApiKey::Fetch, "Fetch", 4, 12),
    (ApiKey::ListOffsets, "ListOffsets", 1, 7),
    (ApiKey::Metadata, "Metadata", 1, 12),
    (ApiKey::OffsetCommit, "OffsetCommit", 2, 8),
    (ApiKey::OffsetFetch, "OffsetFetch", 1, 7),
    (ApiKey::FindCoordinator, "FindCoordinator", 0, 4),
    (ApiKey::JoinGroup, "JoinGroup", 0, 7),
    (ApiKey::Heartbeat, "Heartbeat", 0, 4),
    (ApiKey::LeaveGroup, "LeaveGroup", 0, 4),
    (ApiKey::SyncGroup, "SyncGroup", 0, 5),
    (ApiKey::DescribeGroups, "DescribeGroups", 0, 5),
    (ApiKey::ListGroups, "ListGroups", 0, 5),
    (ApiKey::ApiVersions, "ApiVersions", 0, 3),
    (ApiKey::CreateTopics, "CreateTopics", 0, 7),
    (ApiKey::DeleteTopics, "DeleteTopics", 0, 6),
    (ApiKey::DescribeConfigs, "DescribeConfigs", 0, 4),
    (ApiKey::AlterConfigs, "AlterConfigs", 0, 2),
    (ApiKey::CreatePartitions, "CreatePartitions", 0, 3),
    (ApiKey::DeleteGroups, "DeleteGroups", 0, 2),
    (ApiKey::DescribeTransactions, "DescribeTransactions", 0, 0),
    (ApiKey::ListTransactions, "ListTransactions", 0, 1),
    (
        ApiKey::DescribeUserScramCredentials,
        "DescribeUserScramCredentials",
        0,
        0,
    ),
    (
        ApiKey::AlterUserScramCredentials,
        "AlterUserScramCredentials",
        0,
        0,
    ),
    (ApiKey::DescribeCluster, "DescribeCluster", 0, 1),
    (ApiKey::DescribeQuorum, "DescribeQuorum", 0, 2),
    // `sluice cluster features --upgrade` (KIP-584); v1 answers per feature.
    (ApiKey::UpdateFeatures, "UpdateFeatures", 1, 1),
    // `sluice topic reassign|elect-leaders|describe` (KIP-455, KIP-460).
    (
        ApiKey::AlterPartitionReassignments,
        "AlterPartitionReassignments",
        0,
        0,
    ),
    (
        ApiKey::ListPartitionReassignments,
        "ListPartitionReassignments",
        0,
        0,
    ),
    (ApiKey::ElectLeaders, "ElectLeaders", 0, 2),
    (ApiKey::DescribeAcls, "DescribeAcls", 1, 3),
    // A follower's truncation check (its replica fetcher); v3 names the replica.
    (ApiKey::OffsetForLeaderEpoch, "OffsetForLeaderEpoch", 3, 4),
    (ApiKey::CreateAcls, "CreateAcls", 1, 3),
    (ApiKey::DeleteAcls, "DeleteAcls", 1, 3),
    (ApiKey::SaslHandshake, "SaslHandshake", 1, 1),
    (ApiKey::SaslAuthenticate, "SaslAuthenticate", 0, 2),
    (ApiKey::ShareGroupDescribe, "ShareGroupDescribe", 1, 1),
    (
        ApiKey::DescribeShareGroupOffsets,
        "DescribeShareGroupOffsets",
        0,
        0,
    ),
];

/// The name of an API key for messages ("Produce"), or "Unknown".
pub fn api_name(key: i16) -> &'static str {
    CLIENT_API_VERSIONS
        .iter()
        .find(|(k, ..)| *k as i16 == key)
        .map(|(_, name, ..)| *name)
        .unwrap_or("Unknown")
}

/// Settings shared by every connection a client opens.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub client_id: String,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    /// SSL and SASL_SSL listeners: the TLS client config (`tls::client_config`); `None`
    /// is no TLS.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// SASL_PLAINTEXT and SASL_SSL listeners: the credentials every new connection
    /// authenticates with (`sasl::authenticate`) after ApiVersions.
    pub sasl: Option<super::sasl::SaslConfig>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: DEFAULT_CLIENT_ID.to_string(),
            connect_timeout: Duration::from_millis(CONNECT_TIMEOUT_MS),
            io_timeout: Duration::from_millis(IO_TIMEOUT_MS),
            tls: None,
            sasl: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    correlation_id: i32,
    api_key: i16,
    version: i16,
}

/// A connected, version-negotiated broker connection.
pub struct Connection {
    stream: super::tls::Stream,
    addr: String,
    client_id: StrBytes,
    correlation_id_next: i32,
    in_flight: VecDeque<InFlight>,
    /// Negotiated version per API key (highest both sides support).
    versions: HashMap<i16, i16>,
    write_buf: BytesMut,
    broken: bool,
    io_timeout: Duration,
}

impl Connection {
    /// Connects to `addr` (HOST:PORT) and negotiates API versions.
    pub fn connect(addr: &str, config: &ConnectionConfig) -> Result<Connection> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let candidates: Vec<SocketAddr> = addr.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last_err =
            std::io::Error::new(std::io::ErrorKind::NotFound, "address resolved to nothing");
        let mut stream = None;
        for candidate in candidates {
            match TcpStream::connect_timeout(&candidate, config.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last_err))?;
        stream.set_nodelay(true).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(config.io_timeout))
            .map_err(connect_err)?;
        stream
            .set_write_timeout(Some(config.io_timeout))
            .map_err(connect_err)?;
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let stream =
            super::tls::Stream::new(stream, host, config.tls.as_ref()).map_err(connect_err)?;
        let mut conn = Connection {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            correlation_id_next: 1,
            in_flight: VecDeque::new(),
            versions: HashMap::new(),
            write_buf: BytesMut::with_capacity(64 * 1024),
            broken: false,
            io_timeout: config.io_timeout,
        };
        conn.negotiate_versions()?;
        if let Some(sasl) = &config.sasl {
            super::sasl::authenticate(&mut conn, sasl)?;
        }
        Ok(conn)
    }

    /// The byte stream of a connection with nothing in flight (a pipelined producer
    /// takes it over once versions are negotiated and SASL is done).
    pub fn into_stream(self) -> super::tls::Stream {
        self.stream
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True after an i/o or framing failure; the connection must be dropped.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Requests sent whose responses have not been received yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The version that will be used for `R`, or `UnsupportedApi`.
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        self.version_for_key(R::KEY)
    }

    /// The negotiated version for an API key, or `UnsupportedApi`.
    pub fn version_for_key(&self, key: i16) -> Result<i16> {
        self.versions.get(&key).copied().ok_or_else(|| {
            let (min, max) = CLIENT_API_VERSIONS
                .iter()
                .find(|(k, ..)| *k as i16 == key)
                .map(|(_, _, min, max)| (*min, *max))
                .unwrap_or((-1, -1));
            ClientError::UnsupportedApi {
                addr: self.addr.clone(),
                api: api_name(key),
                client_min: min,
                client_max: max,
            }
        })
    }

    /// Sends and waits for the matching response. Responses already in flight are an error
    /// here: use `receive` to drain them first.
    pub fn call<R: Request>(&mut self, request: &R) -> Result<R::Response> {
        if !self.in_flight.is_empty() {
            return Err(ClientError::Invalid(format!(
                "call({}) on {} with {} pipelined responses pending",
                api_name(R::KEY),
                self.addr,
                self.in_flight.len()
            )));
        }
        self.send(request)?;
        let (_, response) = self.receive::<R>()?;
        Ok(response)
    }

    /// Writes one request and returns its correlation id; the response must later be read
    /// with `receive::<R>()` (responses arrive in send order).
    pub fn send<R: Request>(&mut self, request: &R) -> Result<i32> {
        let version = self.version_of::<R>()?;
        self.send_versioned(request, version, true)
    }

    /// Writes a request the broker will not answer (Produce with acks=0).
    pub fn send_without_response<R: Request>(&mut self, request: &R) -> Result<i32> {
        let version = self.version_of::<R>()?;
        self.send_versioned(request, version, false)
    }

    /// Reads the next response, which must belong to a request of type `R`.
    pub fn receive<R: Request>(&mut self) -> Result<(i32, R::Response)> {
        let Some(pending) = self.in_flight.front().copied() else {
            return Err(ClientError::Invalid(format!(
                "receive({}) on {} with no request in flight",
                api_name(R::KEY),
                self.addr
            )));
        };
        if pending.api_key != R::KEY {
            return Err(ClientError::Invalid(format!(
                "receive({}) on {} but the oldest request in flight is {}",
                api_name(R::KEY),
                self.addr,
                api_name(pending.api_key)
            )));
        }
        let mut frame = self.read_frame(pending.api_key)?;
        self.in_flight.pop_front();
        let header_version = ApiKey::try_from(pending.api_key)
            .map(|k| k.response_header_version(pending.version))
            .unwrap_or(0);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(|e| self.protocol_error(pending.api_key, format!("response header: {e}")))?;
        if header.correlation_id != pending.correlation_id {
            self.broken = true;
            return Err(self.protocol_error(
                pending.api_key,
                format!(
                    "correlation id {} does not match expected {}",
                    header.correlation_id, pending.correlation_id
                ),
            ));
        }
        let response = R::Response::decode(&mut frame, pending.version).map_err(|e| {
            self.protocol_error(
                pending.api_key,
                format!("decode v{} response: {e}", pending.version),
            )
        })?;
        Ok((pending.correlation_id, response))
    }

    fn send_versioned<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        expects_response: bool,
    ) -> Result<i32> {
        if self.broken {
            return Err(ClientError::Closed {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
            });
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT_REQUESTS {
            return Err(ClientError::Invalid(format!(
                "{} requests already in flight on {} (MAX_IN_FLIGHT_REQUESTS)",
                self.in_flight.len(),
                self.addr
            )));
        }
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        self.write_buf.clear();
        self.write_buf.put_i32(0); // length placeholder, patched below
        header
            .encode(&mut self.write_buf, R::header_version(version))
            .map_err(|e| self.protocol_error(R::KEY, format!("encode header: {e}")))?;
        request
            .encode(&mut self.write_buf, version)
            .map_err(|e| self.protocol_error(R::KEY, format!("encode v{version} request: {e}")))?;
        let body_len = self.write_buf.len() - 4;
        let body_len = i32::try_from(body_len)
            .map_err(|_| self.protocol_error(R::KEY, format!("request of {body_len} bytes")))?;
        self.write_buf[..4].copy_from_slice(&body_len.to_be_bytes());
        if let Err(source) = self.stream.write_all(&self.write_buf) {
            self.broken = true;
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
                source,
            });
        }
        if expects_response {
            self.in_flight.push_back(InFlight {
                correlation_id,
                api_key: R::KEY,
                version,
            });
        }
        Ok(correlation_id)
    }

    fn read_frame(&mut self, api_key: i16) -> Result<Bytes> {
        let mut size = [0u8; 4];
        self.read_exact(&mut size, api_key)?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            self.broken = true;
            return Err(self.protocol_error(
                api_key,
                format!(
                    "response size {size} outside 0..={MAX_RESPONSE_BYTES} (MAX_RESPONSE_BYTES)"
                ),
            ));
        }
        let mut body = vec![0u8; size as usize];
        self.read_exact(&mut body, api_key)?;
        Ok(Bytes::from(body))
    }

    fn read_exact(&mut self, buf: &mut [u8], api_key: i16) -> Result<()> {
        match self.stream.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.broken = true;
                Err(ClientError::Closed {
                    addr: self.addr.clone(),
                    api: api_name(api_key),
                })
            }
            // A socket read timeout surfaces as WouldBlock (EAGAIN) on Linux.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                self.broken = true;
                Err(ClientError::Timeout(format!(
                    "no {} response from {} within {} ms",
                    api_name(api_key),
                    self.addr,
                    self.io_timeout.as_millis()
                )))
            }
            Err(source) => {
                self.broken = true;
                Err(ClientError::Io {
                    addr: self.addr.clone(),
                    api: api_name(api_key),
                    source,
                })
            }
        }
    }

    fn protocol_error(&self, api_key: i16, detail: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            api: api_name(api_key),
            detail,
        }
    }

    /// ApiVersions v3 first; a broker that does not know v3 answers UNSUPPORTED_VERSION in
    /// the v0 format (KIP-511), so fall back to v0.
    fn negotiate_versions(&mut self) -> Result<()> {
        const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        self.send_versioned(&request, 3, true)?;
        let response = match self.receive::<ApiVersionsRequest>() {
            Ok((_, r)) if r.error_code != UNSUPPORTED_VERSION => r,
            Ok(_) => self.api_versions_v0()?,
            Err(ClientError::Protocol { .. }) if !self.broken => self.api_versions_v0()?,
            Err(e) => return Err(e),
        };
        self.apply_api_versions(&response)
    }

    fn api_versions_v0(&mut self) -> Result<ApiVersionsResponse> {
        self.send_versioned(&ApiVersionsRequest::default(), 0, true)?;
        Ok(self.receive::<ApiVersionsRequest>()?.1)
    }

    fn apply_api_versions(&mut self, response: &ApiVersionsResponse) -> Result<()> {
        if let Some(err) = ClientError::from_code(
            response.error_code,
            format!("ApiVersions from {}", self.addr),
            None,
        ) {
            return Err(err);
        }
        for broker in &response.api_keys {
            let Some((key, _, min, max)) = CLIENT_API_VERSIONS
                .iter()
                .find(|(k, ..)| *k as i16 == broker.api_key)
            else {
                continue;
            };
            let crate_range = ApiKey::valid_versions(key);
            let low = (*min).max(broker.min_version).max(crate_range.min);
            let high = (*max).min(broker.max_version).min(crate_range.max);
            if low <= high {
                self.versions.insert(broker.api_key, high);
            }
        }
        Ok(())
    }
}
