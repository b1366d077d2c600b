//! `decode_request`: the frame → header → body decode path of `server::dispatch`, without a
//! shard, so fuzzers and tests can drive it. It must reject what dispatch rejects (short
//! frames, unknown keys, unserved versions, malformed headers and bodies) with an error and
//! never panic. Must not: run handlers or touch state.

use super::supported_range;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

/// Bytes every request header version starts with: key, version, correlation id.
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;

/// What a decoded request frame said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRequest {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// Body bytes the codec did not consume (dispatch ignores them too).
    pub trailing_bytes: usize,
}

fn body<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<(), String> {
    super::alloc_guard::decode_guarded(|| T::decode(buf, version))
        .map(drop)
        .map_err(|e| format!("malformed request body: {e}"))
}

/// Decodes one request frame (size prefix already removed) as `server::dispatch` does.
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, String> {
    if frame.len() < REQUEST_HEADER_FIXED_BYTES {
        return Err(format!(
            "frame of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
    let (min, max) = supported_range(api).ok_or_else(|| format!("API {api:?} is not served"))?;
    if version < min || version > max {
        return Err(format!("{api:?} v{version} is not served ({min}..={max})"));
    }
    let mut buf = frame;
    let header_version = api.request_header_version(version);
    super::alloc_guard::decode_guarded(|| RequestHeader::decode(&mut buf, header_version))
        .map_err(|e| format!("malformed request header: {e}"))?;
    let v = version;
    match api {
        ApiKey::Produce => body::<ProduceRequest>(&mut buf, v)?,
        ApiKey::Fetch => body::<FetchRequest>(&mut buf, v)?,
        ApiKey::ListOffsets => body::<ListOffsetsRequest>(&mut buf, v)?,
        ApiKey::Metadata => body::<MetadataRequest>(&mut buf, v)?,
        ApiKey::ApiVersions => body::<ApiVersionsRequest>(&mut buf, v)?,
        ApiKey::CreateTopics => body::<CreateTopicsRequest>(&mut buf, v)?,
        ApiKey::DeleteTopics => body::<DeleteTopicsRequest>(&mut buf, v)?,
        ApiKey::CreatePartitions => body::<CreatePartitionsRequest>(&mut buf, v)?,
        ApiKey::InitProducerId => body::<InitProducerIdRequest>(&mut buf, v)?,
        ApiKey::DescribeCluster => body::<DescribeClusterRequest>(&mut buf, v)?,
        ApiKey::DescribeConfigs => body::<DescribeConfigsRequest>(&mut buf, v)?,
        ApiKey::AlterConfigs => body::<AlterConfigsRequest>(&mut buf, v)?,
        ApiKey::IncrementalAlterConfigs => body::<IncrementalAlterConfigsRequest>(&mut buf, v)?,
        ApiKey::DeleteRecords => body::<DeleteRecordsRequest>(&mut buf, v)?,
        ApiKey::FindCoordinator => body::<FindCoordinatorRequest>(&mut buf, v)?,
        ApiKey::JoinGroup => body::<JoinGroupRequest>(&mut buf, v)?,
        ApiKey::SyncGroup => body::<SyncGroupRequest>(&mut buf, v)?,
        ApiKey::Heartbeat => body::<HeartbeatRequest>(&mut buf, v)?,
        ApiKey::LeaveGroup => body::<LeaveGroupRequest>(&mut buf, v)?,
        ApiKey::OffsetCommit => body::<OffsetCommitRequest>(&mut buf, v)?,
        ApiKey::OffsetFetch => body::<OffsetFetchRequest>(&mut buf, v)?,
        ApiKey::OffsetDelete => body::<OffsetDeleteRequest>(&mut buf, v)?,
        ApiKey::ListGroups => body::<ListGroupsRequest>(&mut buf, v)?,
        ApiKey::DescribeGroups => body::<DescribeGroupsRequest>(&mut buf, v)?,
        ApiKey::DeleteGroups => body::<DeleteGroupsRequest>(&mut buf, v)?,
        other => return Err(format!("API {other:?} has no handler")),
    }
    Ok(DecodedRequest {
        api,
        version,
        correlation_id,
        trailing_bytes: buf.len(),
    })
}
