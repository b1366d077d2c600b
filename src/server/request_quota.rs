//! Kafka's request-time quota, `request_percentage` (issue 20, decision 0016): the share of
//! a thread's time a user / client id may take, measured over the same window as the byte
//! rates (`quota`). A request's time is the time its handler spends running on the shard's
//! thread (the sum of its polls, so waits on other shards or the disk are not counted, as
//! Kafka counts only I/O-thread time). Over its quota the client is answered with
//! `throttle_time_ms` set (the larger of this and a byte-rate throttle) and its connection
//! is then muted until the throttle passes (KIP-219).
//!
//! Owns: which requests are measured, the measuring, and writing the throttle time into an
//! encoded answer. Must not: measure rates (`quota` does) or mute connections (the
//! connection loop does, from `ConnectionState::throttled_until`).
//!
//! Nothing is measured while no `request_percentage` quota exists: one wait-free snapshot
//! load and a flag check per request.

use super::context::RequestContext;
use super::quota;
use super::response::{Chunk, Reply};
use super::routing;
use crate::metadata::quotas::QuotaKey;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use std::future::Future;
use std::time::{Duration, Instant};

/// Requests never throttled by time, as in Kafka: ApiVersions and the SASL exchange (a
/// client cannot obey a throttle before it is authenticated and knows the versions).
const EXEMPT: [ApiKey; 3] = [
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// Answers whose body starts with `throttle_time_ms`, and the first version that has it
/// (Kafka's JSON message specs; checked against the codec by the tests below). Produce
/// carries it last and is handled apart; answers not listed (OffsetDelete, DescribeQuorum)
/// are muted without the field being written.
const THROTTLE_FIRST_SINCE: &[(ApiKey, i16)] = &[
    (ApiKey::Fetch, 1),
    (ApiKey::ListOffsets, 2),
    (ApiKey::Metadata, 3),
    (ApiKey::OffsetCommit, 3),
    (ApiKey::OffsetFetch, 3),
    (ApiKey::FindCoordinator, 1),
    (ApiKey::JoinGroup, 2),
    (ApiKey::Heartbeat, 1),
    (ApiKey::LeaveGroup, 1),
    (ApiKey::SyncGroup, 1),
    (ApiKey::DescribeGroups, 1),
    (ApiKey::ListGroups, 1),
    (ApiKey::CreateTopics, 2),
    (ApiKey::DeleteTopics, 1),
    (ApiKey::DeleteRecords, 0),
    (ApiKey::InitProducerId, 0),
    (ApiKey::OffsetForLeaderEpoch, 2),
    (ApiKey::AddPartitionsToTxn, 0),
    (ApiKey::AddOffsetsToTxn, 0),
    (ApiKey::EndTxn, 0),
    (ApiKey::TxnOffsetCommit, 0),
    (ApiKey::DescribeAcls, 0),
    (ApiKey::CreateAcls, 0),
    (ApiKey::DeleteAcls, 0),
    (ApiKey::DescribeConfigs, 0),
    (ApiKey::AlterConfigs, 0),
    (ApiKey::AlterReplicaLogDirs, 0),
    (ApiKey::DescribeLogDirs, 0),
    (ApiKey::CreatePartitions, 0),
    (ApiKey::DeleteGroups, 0),
    (ApiKey::ElectLeaders, 0),
    (ApiKey::IncrementalAlterConfigs, 0),
    (ApiKey::AlterPartitionReassignments, 0),
    (ApiKey::ListPartitionReassignments, 0),
    (ApiKey::DescribeClientQuotas, 0),
    (ApiKey::AlterClientQuotas, 0),
    (ApiKey::DescribeUserScramCredentials, 0),
    (ApiKey::AlterUserScramCredentials, 0),
    (ApiKey::DescribeCluster, 0),
    (ApiKey::DescribeProducers, 0),
    (ApiKey::DescribeTransactions, 0),
    (ApiKey::ListTransactions, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0),
    (ApiKey::ConsumerGroupDescribe, 0),
    (ApiKey::DescribeTopicPartitions, 0),
    (ApiKey::UpdateFeatures, 0),
    (ApiKey::ShareGroupHeartbeat, 0),
    (ApiKey::ShareGroupDescribe, 0),
    (ApiKey::ShareFetch, 0),
    (ApiKey::ShareAcknowledge, 0),
    (ApiKey::DescribeShareGroupOffsets, 0),
    (ApiKey::AlterShareGroupOffsets, 0),
    (ApiKey::DeleteShareGroupOffsets, 0),
];

/// Produce's first flexible version: from it the answer ends with tagged fields.
const PRODUCE_FIRST_FLEXIBLE_VERSION: i16 = 9;

/// Whether this request's time is measured: a `request_percentage` quota exists and the
/// API is not exempt.
pub(super) fn measured(ctx: &RequestContext<'_>) -> bool {
    !EXEMPT.contains(&ctx.api)
        && ctx
            .shard
            .metadata
            .load()
            .client_quotas
            .has_key(QuotaKey::RequestPercentage)
}

/// Routes the request as `dispatch` would, counting the time its handler runs on this
/// thread; then records it against the client's `request_percentage` quota and, when over,
/// writes the throttle into the answer and mutes the connection.
pub(super) async fn route_measured(ctx: &RequestContext<'_>, body: Bytes) -> Reply {
    let mut route = std::pin::pin!(routing::route(ctx, body));
    let mut spent = Duration::ZERO;
    let reply = std::future::poll_fn(|cx| {
        let start = Instant::now();
        let poll = route.as_mut().poll(cx);
        spent += start.elapsed();
        poll
    })
    .await;
    // Kafka's `nanosToPercentage`: one second of one thread's time is 100 (percent).
    let amount = spent.as_secs_f64() * 100.0;
    let throttle_ms = quota::record_amount(ctx, QuotaKey::RequestPercentage, amount).await;
    if throttle_ms == 0 {
        return reply;
    }
    with_throttle(reply, ctx.api, ctx.version, throttle_ms)
}

/// `reply` with its `throttle_time_ms` raised to at least `throttle_ms` where the answer
/// has the field; a deferred answer is patched when it completes.
fn with_throttle(reply: Reply, api: ApiKey, version: i16, throttle_ms: i32) -> Reply {
    match reply {
        Reply::Frame(frame) => Reply::Frame(patched(frame, api, version, throttle_ms)),
        Reply::Chunks(mut chunks) => {
            // The header and the body's first fields are in the first, inline piece.
            if let Some(Chunk::Inline(first)) = chunks.first_mut() {
                let first_bytes = std::mem::take(first);
                *first = patched(first_bytes, api, version, throttle_ms);
            }
            Reply::Chunks(chunks)
        }
        Reply::Deferred(answer) => Reply::Deferred(Box::pin(async move {
            with_throttle(answer.await, api, version, throttle_ms)
        })),
        other => other,
    }
}

/// `frame` (size prefix first) with the throttle written in, or unchanged when this answer
/// has no throttle field where it is looked for, or a larger one already.
fn patched(frame: Bytes, api: ApiKey, version: i16, throttle_ms: i32) -> Bytes {
    let Some(at) = throttle_offset(api, version, &frame) else {
        return frame;
    };
    let current = i32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    if current >= throttle_ms {
        return frame;
    }
    let mut copy = BytesMut::from(frame.as_ref());
    copy[at..at + 4].copy_from_slice(&throttle_ms.to_be_bytes());
    copy.freeze()
}

/// Where `throttle_time_ms` sits in an encoded answer (size prefix included), if it has it.
fn throttle_offset(api: ApiKey, version: i16, frame: &[u8]) -> Option<usize> {
    const SIZE_BYTES: usize = 4;
    const FIELD_BYTES: usize = 4;
    let at = if api == ApiKey::Produce {
        if version < PRODUCE_FIRST_FLEXIBLE_VERSION {
            frame.len().checked_sub(FIELD_BYTES)?
        } else if frame.last() == Some(&0) {
            // Throttle, then an empty tagged-field section (one zero byte); an answer with
            // tagged fields (NodeEndpoints) is left as it is.
            frame.len().checked_sub(FIELD_BYTES + 1)?
        } else {
            return None;
        }
    } else {
        let (_, since) = THROTTLE_FIRST_SINCE.iter().find(|(a, _)| *a == api)?;
        if version < *since {
            return None;
        }
        // Response header: the correlation id, then (v1) an empty tagged-field section.
        let header = if api.response_header_version(version) >= 1 {
            5
        } else {
            4
        };
        SIZE_BYTES + header
    };
    (at >= SIZE_BYTES && at + FIELD_BYTES <= frame.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::share_v2::{ShareAcknowledgeResponseV2, ShareFetchResponseV2};
    use crate::server::registry::supported_range;
    use crate::server::response::encode_frame;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Encodable;

    const MARK: i32 = 0x0102_0304;

    /// Encodes `R` with the mark as throttle at every served version of `api` and checks
    /// `throttle_offset` finds it exactly where the field exists, and nowhere else.
    fn check<R: Encodable + Default>(api: ApiKey, set: fn(R, i32) -> R) {
        let (min, max) = supported_range(api).unwrap_or_else(|| panic!("{api:?} not served"));
        for version in min..=max {
            let body = set(R::default(), MARK);
            let header = api.response_header_version(version);
            let frame = encode_frame(7, header, &body, version);
            let plain = encode_frame(7, header, &R::default(), version)
                .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
            match frame {
                // The codec writes the field: it must be found where it was written.
                Ok(frame) if frame != plain => {
                    let at = throttle_offset(api, version, &frame)
                        .unwrap_or_else(|| panic!("{api:?} v{version}: throttle not found"));
                    assert_eq!(
                        &frame[at..at + 4],
                        &MARK.to_be_bytes(),
                        "{api:?} v{version}"
                    );
                    let patched = patched(plain, api, version, MARK);
                    assert_eq!(patched, frame, "{api:?} v{version}: patch differs");
                }
                // The version has no such field (refused or left out): nothing is patched.
                _ => assert_eq!(
                    throttle_offset(api, version, &plain),
                    None,
                    "{api:?} v{version} has no throttle field"
                ),
            }
        }
    }

    macro_rules! check_all {
        ($($api:ident => $response:ty),* $(,)?) => {{
            let mut checked = Vec::new();
            $(
                check::<$response>(ApiKey::$api, |r, t| r.with_throttle_time_ms(t));
                checked.push(ApiKey::$api);
            )*
            checked
        }};
    }

    #[test]
    fn the_throttle_is_written_where_every_answer_carries_it() {
        let checked = check_all!(
            Produce => ProduceResponse,
            Fetch => FetchResponse,
            ListOffsets => ListOffsetsResponse,
            Metadata => MetadataResponse,
            OffsetCommit => OffsetCommitResponse,
            OffsetFetch => OffsetFetchResponse,
            FindCoordinator => FindCoordinatorResponse,
            JoinGroup => JoinGroupResponse,
            Heartbeat => HeartbeatResponse,
            LeaveGroup => LeaveGroupResponse,
            SyncGroup => SyncGroupResponse,
            DescribeGroups => DescribeGroupsResponse,
            ListGroups => ListGroupsResponse,
            CreateTopics => CreateTopicsResponse,
            DeleteTopics => DeleteTopicsResponse,
            DeleteRecords => DeleteRecordsResponse,
            InitProducerId => InitProducerIdResponse,
            OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
            AddPartitionsToTxn => AddPartitionsToTxnResponse,
            AddOffsetsToTxn => AddOffsetsToTxnResponse,
            EndTxn => EndTxnResponse,
            TxnOffsetCommit => TxnOffsetCommitResponse,
            DescribeAcls => DescribeAclsResponse,
            CreateAcls => CreateAclsResponse,
            DeleteAcls => DeleteAclsResponse,
            DescribeConfigs => DescribeConfigsResponse,
            AlterConfigs => AlterConfigsResponse,
            AlterReplicaLogDirs => AlterReplicaLogDirsResponse,
            DescribeLogDirs => DescribeLogDirsResponse,
            CreatePartitions => CreatePartitionsResponse,
            DeleteGroups => DeleteGroupsResponse,
            ElectLeaders => ElectLeadersResponse,
            IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
            AlterPartitionReassignments => AlterPartitionReassignmentsResponse,
            ListPartitionReassignments => ListPartitionReassignmentsResponse,
            DescribeClientQuotas => DescribeClientQuotasResponse,
            AlterClientQuotas => AlterClientQuotasResponse,
            DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
            AlterUserScramCredentials => AlterUserScramCredentialsResponse,
            DescribeCluster => DescribeClusterResponse,
            DescribeProducers => DescribeProducersResponse,
            DescribeTransactions => DescribeTransactionsResponse,
            ListTransactions => ListTransactionsResponse,
            ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
            ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
            DescribeTopicPartitions => DescribeTopicPartitionsResponse,
            UpdateFeatures => UpdateFeaturesResponse,
            ShareGroupHeartbeat => ShareGroupHeartbeatResponse,
            ShareGroupDescribe => ShareGroupDescribeResponse,
            ShareFetch => ShareFetchResponseV2,
            ShareAcknowledge => ShareAcknowledgeResponseV2,
            DescribeShareGroupOffsets => DescribeShareGroupOffsetsResponse,
            AlterShareGroupOffsets => AlterShareGroupOffsetsResponse,
            DeleteShareGroupOffsets => DeleteShareGroupOffsetsResponse,
        );
        // Every entry of the table is checked against the codec.
        for (api, _) in THROTTLE_FIRST_SINCE {
            assert!(checked.contains(api), "{api:?} is not checked");
        }
    }

    #[test]
    fn a_larger_throttle_already_written_is_kept() {
        let body = MetadataResponse::default().with_throttle_time_ms(500);
        let frame = encode_frame(7, 1, &body, 12).unwrap();
        assert_eq!(patched(frame.clone(), ApiKey::Metadata, 12, 20), frame);
    }
}
