//! The raw Kafka protocol for tests that must control the exact bytes on the wire: a plain
//! TCP connection that frames requests encoded with the `kafka-protocol` crate and decodes
//! the framed answers, plus RecordBatch v2 building.
//!
//! Every step is fallible (`Result<_, String>` with context) so tests against a broker that
//! may be killed at any moment can treat errors as values; `call` is the panicking form for
//! tests where any failure is a test failure. Test files add their own operations with an
//! `impl RawConn` block of their own (see `tests/reliability/mod.rs`).

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Default for how long one read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response frame accepted.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Client id sent in request headers unless a test names its own.
pub const DEFAULT_CLIENT_ID: &str = "sluice-tests";

/// One raw connection to a broker; requests get increasing correlation ids from 1.
pub struct RawConn {
    pub stream: TcpStream,
    client_id: &'static str,
    correlation_id: i32,
}

impl RawConn {
    /// Connects with the default client id and `IO_TIMEOUT` for reads and writes.
    pub fn connect(addr: &str) -> Result<RawConn, String> {
        Self::connect_with(addr, DEFAULT_CLIENT_ID, IO_TIMEOUT)
    }

    /// Connects sending `client_id` in every request header, with `io_timeout` for reads
    /// and writes.
    pub fn connect_with(
        addr: &str,
        client_id: &'static str,
        io_timeout: Duration,
    ) -> Result<RawConn, String> {
        let stream = connect_timeout(addr)?;
        stream
            .set_read_timeout(Some(io_timeout))
            .map_err(|e| format!("read timeout: {e}"))?;
        stream
            .set_write_timeout(Some(io_timeout))
            .map_err(|e| format!("write timeout: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(RawConn {
            stream,
            client_id,
            correlation_id: 0,
        })
    }

    /// Writes bytes as they are (hand-made or deliberately broken frames included).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends `request` at `version`; returns the correlation id to `receive` it with.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, String> {
        self.correlation_id += 1;
        let framed = encode_request(request, version, self.correlation_id, self.client_id)?;
        self.send_raw(&framed)
            .map_err(|e| format!("send key {} v{version}: {e}", R::KEY))?;
        Ok(self.correlation_id)
    }

    /// One response frame, without its size prefix.
    pub fn read_frame(&mut self) -> Result<Bytes, String> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("read response size: {e}"))?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|n| (4..=RESPONSE_BYTES_MAX).contains(n))
            .ok_or_else(|| format!("bad response size {len}"))?;
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("read response body: {e}"))?;
        Ok(Bytes::from(body))
    }

    /// Reads and decodes the answer to the request sent with `correlation_id`.
    pub fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response, String> {
        let frame = self.read_frame()?;
        decode_response::<R>(frame, version, correlation_id)
    }

    /// Sends `request` and decodes its answer.
    pub fn try_call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let id = self.send(request, version)?;
        self.receive::<R>(version, id)
    }

    /// Sends `request` and decodes its answer; any failure fails the test.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.try_call(request, version)
            .unwrap_or_else(|e| panic!("API key {} v{version}: {e}", R::KEY))
    }
}

/// A TCP connection to `addr` (`host:port`; a name is resolved), within `CONNECT_TIMEOUT`
/// per address tried.
fn connect_timeout(addr: &str) -> Result<TcpStream, String> {
    let mut last = format!("connect {addr}: resolves to no address");
    for sock in addr
        .to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
    {
        match TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    Err(last)
}

/// Opens a connection as `client_id`, sends one request and returns its decoded answer; any
/// failure fails the test.
pub fn call_once<R: Request>(
    addr: &str,
    client_id: &'static str,
    request: &R,
    version: i16,
) -> R::Response {
    RawConn::connect_with(addr, client_id, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"))
        .call(request, version)
}

/// The framed bytes (size prefix included) of `request` at `version`.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| format!("encode header: {e}"))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| format!("encode key {} v{version}: {e}", R::KEY))?;
    Ok(frame(&[&buf[..]]))
}

/// `parts` concatenated behind a big-endian i32 size prefix, as Kafka frames everything.
pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// Decodes a response frame (size prefix removed): the header must carry `correlation_id`
/// and the body must use every byte.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, String> {
    let what = format!("response to key {} v{version}", R::KEY);
    let header = ResponseHeader::decode(
        &mut frame,
        <R::Response as HeaderVersion>::header_version(version),
    )
    .map_err(|e| format!("{what}: header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "{what}: correlation id {} != {correlation_id}",
            header.correlation_id
        ));
    }
    let response =
        R::Response::decode(&mut frame, version).map_err(|e| format!("{what}: body: {e}"))?;
    if frame.has_remaining() {
        return Err(format!(
            "{what}: {} bytes left after the body",
            frame.remaining()
        ));
    }
    Ok(response)
}

/// A plain (non-idempotent, non-transactional) record at `offset`: no key, no headers, no
/// producer. Tests change fields with `Record { key: ..., ..plain_record(..) }`.
pub fn plain_record(offset: i64, timestamp: i64, value: Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key: None,
        value: Some(value),
        headers: Default::default(),
    }
}

/// `records` as uncompressed RecordBatch v2 bytes. Encoding records a test built cannot
/// fail; an error here is a test bug.
pub fn encode_batch(records: &[Record]) -> BytesMut {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap_or_else(|e| panic!("encode a test record batch: {e}"));
    buf
}

/// A Produce request carrying one batch for one partition.
pub fn produce_request(topic: &str, partition: i32, batch: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ])
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// DescribeAcls selecting every stored binding (ANY everywhere; the nullable string filters
/// must be null, not the empty strings the crate's defaults hold).
pub fn describe_all_acls_request() -> kafka_protocol::messages::DescribeAclsRequest {
    const ANY: i8 = 1;
    kafka_protocol::messages::DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// A share member's connection, kept between its requests: a share session ends with the
/// connection that opened it (KIP-932, as Kafka's share-session cache does on a
/// disconnect), so a member must not open a connection per request. One broker at a time;
/// asking another broker, or a failed call, closes it (a new one opens for the next call).
#[derive(Default)]
pub struct MemberConn {
    open: Option<(String, RawConn)>,
}

impl MemberConn {
    pub fn try_call<R: Request>(
        &mut self,
        addr: &str,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let conn = match self.open.take() {
            Some((at, conn)) if at == addr => conn,
            _ => RawConn::connect(addr)?,
        };
        let (_, conn) = self.open.insert((addr.to_string(), conn));
        let answered = conn.try_call(request, version);
        if answered.is_err() {
            self.open = None;
        }
        answered
    }

    /// As `try_call`, once more on a new connection if the open one failed (its broker
    /// restarted); a second failure fails the test.
    pub fn call<R: Request>(&mut self, addr: &str, request: &R, version: i16) -> R::Response {
        self.try_call(addr, request, version)
            .or_else(|_| self.try_call(addr, request, version))
            .unwrap_or_else(|e| panic!("API key {} v{version}: {e}", R::KEY))
    }
}
