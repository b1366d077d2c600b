//! Request dispatch: parse the header, check the API and version against the registry,
//! then let the registry decode the body and run the API's handler. `decode_request` is the
//! same path without a shard, for fuzzers and tests.

use super::connection_state::ConnectionState;
use super::context::RequestContext;
use super::handlers;
use super::registry::supported_range;
use super::response::Reply;
use super::routing;
use crate::protocol::alloc_guard::decode_guarded;
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use std::cell::RefCell;
use std::rc::Rc;

/// Bytes every request header version starts with: key, version, correlation id.
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;

/// A request frame whose header was read and whose API and version are served.
struct Parsed {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<String>,
    body: Bytes,
}

/// Why a frame is not dispatched: a reply that closes the connection, or a refusal that
/// still answers (an unserved ApiVersions or pre-0.11 Produce version).
enum Refusal {
    Close(String),
    Answer(Reply),
}

/// Reads the header of `frame` (size prefix removed) and checks the API and version.
fn parse(frame: Bytes) -> Result<Parsed, Refusal> {
    if frame.len() < REQUEST_HEADER_FIXED_BYTES {
        return Err(Refusal::Close(format!(
            "frame of {} bytes is shorter than a header",
            frame.len()
        )));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api) = ApiKey::try_from(raw_key) else {
        return Err(Refusal::Close(format!("unknown API key {raw_key}")));
    };
    let Some((min, max)) = supported_range(api) else {
        return Err(Refusal::Close(format!("API {api:?} is not served")));
    };
    if api == ApiKey::Produce && (0..min).contains(&version) {
        return Err(legacy_produce(version, correlation_id, &frame));
    }
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return Err(Refusal::Answer(
                handlers::api_versions::unsupported_version(correlation_id),
            ));
        }
        return Err(Refusal::Close(format!(
            "{api:?} v{version} is not served ({min}..={max})"
        )));
    }
    let mut body = frame;
    let header_version = api.request_header_version(version);
    let header = decode_guarded(|| RequestHeader::decode(&mut body, header_version))
        .map_err(|e| Refusal::Close(format!("malformed request header: {e}")))?;
    // Copy the client id out and drop the header: its strings point into the frame buffer.
    let client_id = header.client_id.map(|s| s.to_string());
    Ok(Parsed {
        api,
        version,
        correlation_id,
        client_id,
        body,
    })
}

/// Pre-0.11 clients: a proper refusal instead of a dropped connection. Header v1: key,
/// version, correlation id, then a nullable client id string.
fn legacy_produce(version: i16, correlation_id: i32, frame: &Bytes) -> Refusal {
    let rest = frame.slice(REQUEST_HEADER_FIXED_BYTES..);
    if rest.len() < 2 {
        return Refusal::Close("truncated request header".into());
    }
    let client_id_len = i16::from_be_bytes([rest[0], rest[1]]).max(0) as usize;
    if rest.len() < 2 + client_id_len {
        return Refusal::Close("truncated request header".into());
    }
    let body = rest.slice(2 + client_id_len..);
    Refusal::Answer(handlers::produce_legacy::handle(
        version,
        correlation_id,
        body,
    ))
}

/// Serves one request frame (size prefix removed) on `shard`.
pub async fn dispatch(
    shard: &Rc<Shard>,
    connection: &RefCell<ConnectionState>,
    frame: Bytes,
) -> Reply {
    let parsed = match parse(frame) {
        Ok(parsed) => parsed,
        Err(Refusal::Close(why)) => return Reply::Close(why),
        Err(Refusal::Answer(reply)) => return reply,
    };
    let ctx = RequestContext {
        shard,
        api: parsed.api,
        version: parsed.version,
        correlation_id: parsed.correlation_id,
        client_id: parsed.client_id,
        connection,
    };
    if super::request_quota::measured(&ctx) {
        return super::request_quota::route_measured(&ctx, parsed.body).await;
    }
    routing::route(&ctx, parsed.body).await
}

/// What a decoded request frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRequest {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// Body bytes the codec did not consume (dispatch ignores them too).
    pub trailing_bytes: usize,
}

/// Decodes one request frame (size prefix removed) as `dispatch` does, without running a
/// handler: it must reject what dispatch rejects (short frames, unknown keys, unserved
/// versions, malformed headers and bodies) with an error and never panic.
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, String> {
    let parsed = match parse(frame) {
        Ok(parsed) => parsed,
        Err(Refusal::Close(why)) => return Err(why),
        Err(Refusal::Answer(_)) => return Err("refused with an answer".into()),
    };
    let trailing_bytes = routing::decode_only(parsed.api, parsed.body, parsed.version)?;
    Ok(DecodedRequest {
        api: parsed.api,
        version: parsed.version,
        correlation_id: parsed.correlation_id,
        trailing_bytes,
    })
}
