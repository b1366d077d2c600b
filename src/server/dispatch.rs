//! Request dispatch: parse the header, check the API and version against what we serve,
//! decode the body with the generated codec, call the API's handler, encode its answer.
//! One table (`protocol::api::SUPPORTED_APIS`) decides what is served.

use super::connection::ConnectionState;
use super::handlers;
use super::response::{Reply, encode_frame};
use crate::protocol::alloc_guard::decode_guarded;
use crate::protocol::supported_range;
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::rc::Rc;

/// What every handler knows about the request it serves.
pub struct RequestContext<'a> {
    pub shard: &'a Rc<Shard>,
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

impl RequestContext<'_> {
    /// Encodes a response body in this request's version, with the matching header.
    pub fn reply<B: Encodable>(&self, body: &B) -> Reply {
        match encode_frame(
            self.correlation_id,
            self.api.response_header_version(self.version),
            body,
            self.version,
        ) {
            Ok(frame) => Reply::Frame(frame),
            Err(e) => Reply::Close(format!("{:?} v{}: {e}", self.api, self.version)),
        }
    }
}

fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, Reply> {
    decode_guarded(|| T::decode(buf, version))
        .map_err(|e| Reply::Close(format!("malformed request body: {e}")))
}

pub async fn dispatch(shard: &Rc<Shard>, state: &mut ConnectionState, frame: Bytes) -> Reply {
    // The first 8 bytes of every request header version are fixed: key, version, correlation id.
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api) = ApiKey::try_from(raw_key) else {
        return Reply::Close(format!("unknown API key {raw_key}"));
    };
    let Some((min, max)) = supported_range(api) else {
        return Reply::Close(format!("API {api:?} is not served"));
    };
    if api == ApiKey::Produce && (0..min).contains(&version) {
        // Pre-0.11 clients: a proper refusal instead of a dropped connection. Header v1:
        // key, version, correlation id, then a nullable client id string.
        let mut rest = frame.slice(8..);
        if rest.len() < 2 {
            return Reply::Close("truncated request header".into());
        }
        let client_id_len = i16::from_be_bytes([rest[0], rest[1]]).max(0) as usize;
        if rest.len() < 2 + client_id_len {
            return Reply::Close("truncated request header".into());
        }
        rest = rest.slice(2 + client_id_len..);
        return handlers::produce_legacy::handle(version, correlation_id, rest);
    }
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return handlers::api_versions::unsupported_version(correlation_id);
        }
        return Reply::Close(format!("{api:?} v{version} is not served ({min}..={max})"));
    }
    let mut buf = frame;
    let header_version = api.request_header_version(version);
    let header = match decode_guarded(|| RequestHeader::decode(&mut buf, header_version)) {
        Ok(h) => h,
        Err(e) => return Reply::Close(format!("malformed request header: {e}")),
    };
    // Copy the client id out and drop the header: its strings point into the frame buffer.
    let client_id = {
        let header = header;
        header.client_id.map(|s| s.to_string())
    };
    let ctx = RequestContext {
        shard,
        api,
        version,
        correlation_id,
        client_id,
    };
    match route(&ctx, state, &mut buf).await {
        Ok(reply) | Err(reply) => reply,
    }
}

async fn route(
    ctx: &RequestContext<'_>,
    state: &mut ConnectionState,
    buf: &mut Bytes,
) -> Result<Reply, Reply> {
    let v = ctx.version;
    Ok(match ctx.api {
        ApiKey::ApiVersions => ctx.reply(&handlers::api_versions::handle(ctx, decode(buf, v)?)),
        ApiKey::Metadata => ctx.reply(&handlers::metadata::handle(ctx, decode(buf, v)?).await),
        ApiKey::Produce => {
            let request = decode(buf, v)?;
            // Release the frame so a partition's record bytes can be the only reference to
            // their buffer: the log then patches them in place instead of copying.
            *buf = Bytes::new();
            handlers::produce::handle(ctx, state, request).await
        }
        ApiKey::Fetch => handlers::fetch::handle(ctx, state, decode(buf, v)?).await,
        ApiKey::ListOffsets => {
            ctx.reply(&handlers::list_offsets::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::CreateTopics => {
            ctx.reply(&handlers::create_topics::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::DeleteTopics => {
            ctx.reply(&handlers::delete_topics::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::CreatePartitions => {
            ctx.reply(&handlers::create_partitions::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::InitProducerId => {
            ctx.reply(&handlers::init_producer_id::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::DescribeCluster => {
            ctx.reply(&handlers::describe_cluster::handle(ctx, decode(buf, v)?))
        }
        ApiKey::DescribeConfigs => {
            ctx.reply(&handlers::describe_configs::handle(ctx, decode(buf, v)?))
        }
        ApiKey::AlterConfigs => {
            ctx.reply(&handlers::alter_configs::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::IncrementalAlterConfigs => {
            ctx.reply(&handlers::alter_configs::handle_incremental(ctx, decode(buf, v)?).await)
        }
        ApiKey::DeleteRecords => {
            ctx.reply(&handlers::delete_records::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::FindCoordinator => {
            ctx.reply(&handlers::find_coordinator::handle(ctx, decode(buf, v)?))
        }
        ApiKey::JoinGroup => ctx.reply(&handlers::join_group::handle(ctx, decode(buf, v)?).await),
        ApiKey::SyncGroup => ctx.reply(&handlers::sync_group::handle(ctx, decode(buf, v)?).await),
        ApiKey::Heartbeat => ctx.reply(&handlers::heartbeat::handle(ctx, decode(buf, v)?).await),
        ApiKey::LeaveGroup => ctx.reply(&handlers::leave_group::handle(ctx, decode(buf, v)?).await),
        ApiKey::OffsetCommit => {
            ctx.reply(&handlers::offset_commit::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::OffsetFetch => {
            ctx.reply(&handlers::offset_fetch::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::OffsetDelete => {
            ctx.reply(&handlers::offset_delete::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::ListGroups => ctx.reply(&handlers::list_groups::handle(ctx, decode(buf, v)?).await),
        ApiKey::DescribeGroups => {
            ctx.reply(&handlers::describe_groups::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::DeleteGroups => {
            ctx.reply(&handlers::delete_groups::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::DescribeLogDirs => {
            ctx.reply(&handlers::describe_log_dirs::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::OffsetForLeaderEpoch => {
            ctx.reply(&handlers::offset_for_leader_epoch::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::DescribeProducers => {
            ctx.reply(&handlers::describe_producers::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            ctx.reply(&handlers::consumer_group_heartbeat::handle(ctx, decode(buf, v)?).await)
        }
        ApiKey::ConsumerGroupDescribe => {
            ctx.reply(&handlers::consumer_group_describe::handle(ctx, decode(buf, v)?).await)
        }
        other => Reply::Close(format!("API {other:?} has no handler")),
    })
}
