//! The answer of each API refused before its handler runs (`access::cluster_refusal`):
//! Kafka's error response for that API, the code in every place its clients read one. The
//! routing calls `ClusterRefusal::refuse` for every served request type, so a new table
//! line does not compile without an impl here, and a test checks that every API checked
//! before its handler has a real answer rather than `None` (which closes the connection).

use super::context::{IntoReply, RequestContext};
use super::response::Reply;
use crate::protocol::share_v2::{ShareAcknowledgeRequestV2, ShareFetchRequestV2};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The error response of a request refused with `code` before its handler ran; `None`
/// for APIs never refused there (they check what they need in the handler).
pub trait ClusterRefusal: Sized {
    /// Whether `refuse` answers (true) or this API is never refused before its handler.
    const ANSWERS: bool;
    fn refuse(self, _ctx: &RequestContext<'_>, _code: i16) -> Option<Reply> {
        None
    }
}

/// APIs whose requirements name a topic, group or transactional id: never refused before
/// their handler.
macro_rules! checked_in_handler {
    ($($request:ty),* $(,)?) => {
        $( impl ClusterRefusal for $request {
            const ANSWERS: bool = false;
        } )*
    };
}

checked_in_handler!(
    ProduceRequest,
    FetchRequest,
    ListOffsetsRequest,
    MetadataRequest,
    ApiVersionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    CreatePartitionsRequest,
    InitProducerIdRequest,
    DescribeConfigsRequest,
    AlterConfigsRequest,
    IncrementalAlterConfigsRequest,
    DeleteRecordsRequest,
    FindCoordinatorRequest,
    JoinGroupRequest,
    SyncGroupRequest,
    HeartbeatRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    OffsetDeleteRequest,
    ListGroupsRequest,
    DescribeGroupsRequest,
    DeleteGroupsRequest,
    OffsetForLeaderEpochRequest,
    AddPartitionsToTxnRequest,
    AddOffsetsToTxnRequest,
    EndTxnRequest,
    TxnOffsetCommitRequest,
    DescribeTransactionsRequest,
    ListTransactionsRequest,
    DescribeProducersRequest,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupDescribeRequest,
    DescribeTopicPartitionsRequest,
    ShareGroupHeartbeatRequest,
    ShareGroupDescribeRequest,
    ShareFetchRequestV2,
    ShareAcknowledgeRequestV2,
    DescribeShareGroupOffsetsRequest,
    AlterShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequest,
    // Served before authentication completes: nothing to authorize.
    SaslHandshakeRequest,
    SaslAuthenticateRequest,
);

fn message() -> Option<StrBytes> {
    Some(StrBytes::from_static_str("Cluster authorization failed."))
}

/// APIs refused with only a top-level error code (and message where the response has one).
macro_rules! top_level_error {
    ($($request:ty => $response:ty { $($field:ident),* }),* $(,)?) => {
        $( impl ClusterRefusal for $request {
            const ANSWERS: bool = true;
            fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
                let response = <$response>::default().with_error_code(code)$(.$field(message()))*;
                Some(response.into_reply(ctx))
            }
        } )*
    };
}

top_level_error!(
    DescribeClusterRequest => DescribeClusterResponse { with_error_message },
    DescribeLogDirsRequest => DescribeLogDirsResponse {},
    ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse { with_error_message },
    AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse { with_error_message },
    DescribeQuorumRequest => DescribeQuorumResponse { with_error_message },
    DescribeAclsRequest => DescribeAclsResponse { with_error_message },
    DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse { with_error_message },
);

/// KIP-554's Alter has no top-level error: every user named is answered with the code.
impl ClusterRefusal for AlterUserScramCredentialsRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
        let users = self
            .deletions
            .iter()
            .map(|d| d.name.clone())
            .chain(self.upsertions.iter().map(|u| u.name.clone()));
        let mut seen = std::collections::BTreeSet::new();
        let results = users
            .filter(|user| seen.insert(user.clone()))
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(code)
                    .with_error_message(message())
            })
            .collect();
        Some(
            AlterUserScramCredentialsResponse::default()
                .with_results(results)
                .into_reply(ctx),
        )
    }
}

impl ClusterRefusal for ElectLeadersRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use elect_leaders_response::{PartitionResult, ReplicaElectionResult};
        let results = self
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionResult::default()
                            .with_partition_id(*p)
                            .with_error_code(code)
                            .with_error_message(message())
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(partitions)
            })
            .collect();
        let response = ElectLeadersResponse::default()
            .with_error_code(code)
            .with_replica_election_results(results);
        Some(response.into_reply(ctx))
    }
}

impl ClusterRefusal for UpdateFeaturesRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        let response = UpdateFeaturesResponse::default()
            .with_error_code(code)
            .with_error_message(message());
        Some(response.into_reply(ctx))
    }
}

impl ClusterRefusal for AlterReplicaLogDirsRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use alter_replica_log_dirs_response::{
            AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
        };
        let results = self
            .dirs
            .into_iter()
            .flat_map(|d| d.topics)
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        AlterReplicaLogDirPartitionResult::default()
                            .with_partition_index(*p)
                            .with_error_code(code)
                    })
                    .collect();
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Some(
            AlterReplicaLogDirsResponse::default()
                .with_results(results)
                .into_reply(ctx),
        )
    }
}

impl ClusterRefusal for CreateAclsRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use create_acls_response::AclCreationResult;
        let results = self
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message())
            })
            .collect();
        Some(
            CreateAclsResponse::default()
                .with_results(results)
                .into_reply(ctx),
        )
    }
}

impl ClusterRefusal for WriteTxnMarkersRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use write_txn_markers_response::{
            WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
        };
        let markers = self
            .markers
            .into_iter()
            .map(|m| {
                let topics = m
                    .topics
                    .into_iter()
                    .map(|t| {
                        let partitions = t
                            .partition_indexes
                            .iter()
                            .map(|p| {
                                WritableTxnMarkerPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_error_code(code)
                            })
                            .collect();
                        WritableTxnMarkerTopicResult::default()
                            .with_name(t.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics)
            })
            .collect();
        Some(
            WriteTxnMarkersResponse::default()
                .with_markers(markers)
                .into_reply(ctx),
        )
    }
}

impl ClusterRefusal for DeleteAclsRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use delete_acls_response::DeleteAclsFilterResult;
        let results = self
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(message())
            })
            .collect();
        Some(
            DeleteAclsResponse::default()
                .with_filter_results(results)
                .into_reply(ctx),
        )
    }
}

impl ClusterRefusal for DescribeClientQuotasRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        Some(
            DescribeClientQuotasResponse::default()
                .with_error_code(code)
                .with_error_message(message())
                .with_entries(None)
                .into_reply(ctx),
        )
    }
}

impl ClusterRefusal for AlterClientQuotasRequest {
    const ANSWERS: bool = true;
    fn refuse(self, ctx: &RequestContext<'_>, code: i16) -> Option<Reply> {
        use alter_client_quotas_response::{EntityData, EntryData};
        let entries = self
            .entries
            .into_iter()
            .map(|entry| {
                let entity = entry
                    .entity
                    .into_iter()
                    .map(|e| {
                        EntityData::default()
                            .with_entity_type(e.entity_type)
                            .with_entity_name(e.entity_name)
                    })
                    .collect();
                EntryData::default()
                    .with_error_code(code)
                    .with_error_message(message())
                    .with_entity(entity)
            })
            .collect();
        Some(
            AlterClientQuotasResponse::default()
                .with_entries(entries)
                .into_reply(ctx),
        )
    }
}
