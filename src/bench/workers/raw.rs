//! InitProducerId over a bare, short-lived socket: the one call the benchmark makes that the
//! CLI client does not negotiate (needed for `--idempotence`).
//!
//! Must not: be used on a hot path; it opens a fresh connection per call.

use super::RAW_RESPONSE_BYTES_MAX;
use crate::bench::batch::ProducerIdentity;
use crate::client::ClientError;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, InitProducerIdRequest, InitProducerIdResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::io::{Read, Write};
use std::time::Duration;

/// InitProducerId version this harness speaks when the broker offers it (v0..v4 share the
/// fields it uses).
const INIT_PRODUCER_ID_VERSION_MAX: i16 = 4;

/// Asks `bootstrap` for a producer id (no transactional id) over a short-lived connection.
/// The CLI client does not negotiate InitProducerId, so this speaks it directly.
pub fn init_producer_id(bootstrap: &str) -> Result<ProducerIdentity, String> {
    let addr = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let timeout = Some(Duration::from_millis(
        crate::client::connection::IO_TIMEOUT_MS,
    ));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let versions: ApiVersionsResponse =
        raw_call(&mut stream, &ApiVersionsRequest::default(), 0, 1)?;
    let broker_max = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::InitProducerId as i16)
        .map(|k| k.max_version)
        .ok_or_else(|| {
            format!("{addr} does not offer InitProducerId (needed for --idempotence)")
        })?;
    let version = broker_max.min(INIT_PRODUCER_ID_VERSION_MAX);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = raw_call(&mut stream, &request, version, 2)?;
    if let Some(err) =
        ClientError::from_code(response.error_code, "InitProducerId".to_string(), None)
    {
        return Err(err.to_string());
    }
    Ok(ProducerIdentity {
        producer_id: response.producer_id.0,
        epoch: response.producer_epoch,
    })
}

/// One request and its answer on a blocking socket (no pipelining).
pub(super) fn raw_call<R: Request, T: Decodable>(
    stream: &mut std::net::TcpStream,
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<T, String> {
    let name = format!(
        "{:?}",
        ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
    );
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-bench")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| format!("encode {name} header: {e}"))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| format!("encode {name}: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    stream
        .write_all(&buf)
        .map_err(|e| format!("send {name}: {e}"))?;
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("read {name}: {e}"))?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > RAW_RESPONSE_BYTES_MAX {
        return Err(format!("{name}: response size {size} out of range"));
    }
    let mut body = vec![0u8; size as usize];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("read {name}: {e}"))?;
    let mut body = Bytes::from(body);
    let header_version = ApiKey::try_from(R::KEY)
        .map(|k| k.response_header_version(version))
        .unwrap_or(0);
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|e| format!("decode {name} header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!("{name}: correlation id mismatch"));
    }
    T::decode(&mut body, version).map_err(|e| format!("decode {name} v{version}: {e}"))
}
