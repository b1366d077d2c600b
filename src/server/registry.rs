//! The one table of the Kafka APIs this broker serves. Each line names the API, the version
//! range served (what ApiVersions advertises, capped at what the handler implements and the
//! codec knows), the request type, the handler module (`handlers/<module>.rs`, whose
//! `handle(ctx, request)` answers it) and what the API needs authorized. The list of served
//! APIs here, and the routing and socket-less decoder in `routing`, are generated from it:
//! adding an API is one line in `api_table!` plus its handler file.
//!
//! Must not: import handlers (they read this table: ApiVersions), or hold logic of its own.

use super::authorization::{AclOperation::*, Authorize, Requirement, ResourceType::*, needs};
use kafka_protocol::messages::ApiKey;

/// One served API, as the table declares it.
#[derive(Debug, Clone, Copy)]
pub struct ServedApi {
    pub api: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    /// What the authorizer must allow before the handler runs.
    pub authorize: Authorize,
}

/// Calls `$generate!` with every served API, one line each:
/// `Name min..=max, RequestType => handler_module, authorization;`.
macro_rules! api_table {
    ($generate:ident) => {
        $generate! {
            Produce 3..=12, ProduceRequest => produce, Authorize::All(&[needs(Topic, Write), needs(TransactionalId, Write)]);
            Fetch 4..=17, FetchRequest => fetch, Authorize::Any(&[needs(Topic, Read), needs(Cluster, ClusterAction)]);
            ListOffsets 1..=10, ListOffsetsRequest => list_offsets, Authorize::All(&[needs(Topic, Describe)]);
            Metadata 0..=13, MetadataRequest => metadata, Authorize::All(&[needs(Topic, Describe)]);
            ApiVersions 0..=4, ApiVersionsRequest => api_versions, Authorize::Nothing;
            CreateTopics 2..=7, CreateTopicsRequest => create_topics, Authorize::Any(&[CLUSTER_CREATE, TOPIC_CREATE]);
            DeleteTopics 1..=6, DeleteTopicsRequest => delete_topics, Authorize::All(&[needs(Topic, Delete)]);
            CreatePartitions 0..=3, CreatePartitionsRequest => create_partitions, Authorize::All(&[needs(Topic, Alter)]);
            InitProducerId 0..=5, InitProducerIdRequest => init_producer_id, Authorize::Any(&[needs(TransactionalId, Write), needs(Cluster, IdempotentWrite)]);
            DescribeCluster 0..=2, DescribeClusterRequest => describe_cluster, Authorize::All(&[CLUSTER_DESCRIBE]);
            DescribeConfigs 1..=4, DescribeConfigsRequest => describe_configs, Authorize::Any(&[needs(Topic, DescribeConfigs), needs(Group, DescribeConfigs), needs(Cluster, DescribeConfigs)]);
            AlterConfigs 0..=2, AlterConfigsRequest => alter_configs, Authorize::Any(&[needs(Topic, AlterConfigs), needs(Group, AlterConfigs), needs(Cluster, AlterConfigs)]);
            IncrementalAlterConfigs 0..=1, IncrementalAlterConfigsRequest => incremental_alter_configs, Authorize::Any(&[needs(Topic, AlterConfigs), needs(Group, AlterConfigs), needs(Cluster, AlterConfigs)]);
            DeleteRecords 0..=2, DeleteRecordsRequest => delete_records, Authorize::All(&[needs(Topic, Delete)]);
            FindCoordinator 0..=6, FindCoordinatorRequest => find_coordinator, Authorize::Any(&[needs(Group, Describe), needs(TransactionalId, Describe)]);
            JoinGroup 0..=9, JoinGroupRequest => join_group, Authorize::All(&[needs(Group, Read)]);
            SyncGroup 0..=5, SyncGroupRequest => sync_group, Authorize::All(&[needs(Group, Read)]);
            Heartbeat 0..=4, HeartbeatRequest => heartbeat, Authorize::All(&[needs(Group, Read)]);
            LeaveGroup 0..=5, LeaveGroupRequest => leave_group, Authorize::All(&[needs(Group, Read)]);
            OffsetCommit 2..=9, OffsetCommitRequest => offset_commit, Authorize::All(&[needs(Group, Read), needs(Topic, Read)]);
            OffsetFetch 1..=9, OffsetFetchRequest => offset_fetch, Authorize::All(&[needs(Group, Describe), needs(Topic, Describe)]);
            OffsetDelete 0..=0, OffsetDeleteRequest => offset_delete, Authorize::All(&[needs(Group, Delete), needs(Topic, Read)]);
            ListGroups 0..=5, ListGroupsRequest => list_groups, Authorize::Any(&[CLUSTER_DESCRIBE, needs(Group, Describe)]);
            DescribeGroups 0..=6, DescribeGroupsRequest => describe_groups, Authorize::All(&[needs(Group, Describe)]);
            DeleteGroups 0..=2, DeleteGroupsRequest => delete_groups, Authorize::All(&[needs(Group, Delete)]);
            DescribeLogDirs 1..=4, DescribeLogDirsRequest => describe_log_dirs, Authorize::All(&[CLUSTER_DESCRIBE]);
            OffsetForLeaderEpoch 2..=4, OffsetForLeaderEpochRequest => offset_for_leader_epoch, Authorize::Any(&[needs(Topic, Describe), needs(Cluster, ClusterAction)]);
            AddPartitionsToTxn 0..=5, AddPartitionsToTxnRequest => add_partitions_to_txn, Authorize::All(&[needs(TransactionalId, Write), needs(Topic, Write), needs(Cluster, ClusterAction)]);
            AddOffsetsToTxn 0..=4, AddOffsetsToTxnRequest => add_offsets_to_txn, Authorize::All(&[needs(TransactionalId, Write), needs(Group, Read)]);
            EndTxn 0..=5, EndTxnRequest => end_txn, Authorize::All(&[needs(TransactionalId, Write)]);
            WriteTxnMarkers 1..=1, WriteTxnMarkersRequest => write_txn_markers, Authorize::All(&[needs(Cluster, ClusterAction)]);
            TxnOffsetCommit 0..=5, TxnOffsetCommitRequest => txn_offset_commit, Authorize::All(&[needs(TransactionalId, Write), needs(Group, Read), needs(Topic, Read)]);
            DescribeTransactions 0..=0, DescribeTransactionsRequest => describe_transactions, Authorize::All(&[needs(TransactionalId, Describe)]);
            ListTransactions 0..=2, ListTransactionsRequest => list_transactions, Authorize::Any(&[needs(TransactionalId, Describe), CLUSTER_DESCRIBE]);
            DescribeProducers 0..=0, DescribeProducersRequest => describe_producers, Authorize::All(&[needs(Topic, Read)]);
            ConsumerGroupHeartbeat 0..=1, ConsumerGroupHeartbeatRequest => consumer_group_heartbeat, Authorize::All(&[needs(Group, Read), needs(Topic, Describe)]);
            ConsumerGroupDescribe 0..=1, ConsumerGroupDescribeRequest => consumer_group_describe, Authorize::All(&[needs(Group, Describe)]);
            ListPartitionReassignments 0..=0, ListPartitionReassignmentsRequest => list_partition_reassignments, Authorize::All(&[CLUSTER_DESCRIBE]);
            ElectLeaders 0..=2, ElectLeadersRequest => elect_leaders, Authorize::All(&[CLUSTER_ALTER]);
            AlterPartitionReassignments 0..=0, AlterPartitionReassignmentsRequest => alter_partition_reassignments, Authorize::All(&[CLUSTER_ALTER]);
            DescribeTopicPartitions 0..=0, DescribeTopicPartitionsRequest => describe_topic_partitions, Authorize::All(&[needs(Topic, Describe)]);
            DescribeQuorum 0..=2, DescribeQuorumRequest => describe_quorum, Authorize::All(&[CLUSTER_DESCRIBE]);
            UpdateFeatures 0..=2, UpdateFeaturesRequest => update_features, Authorize::All(&[CLUSTER_ALTER]);
            ShareGroupHeartbeat 1..=1, ShareGroupHeartbeatRequest => share_group_heartbeat, Authorize::All(&[needs(Group, Read), needs(Topic, Describe)]);
            ShareGroupDescribe 1..=1, ShareGroupDescribeRequest => share_group_describe, Authorize::All(&[needs(Group, Describe)]);
            ShareFetch 1..=2, ShareFetchRequestV2 => share_fetch, Authorize::All(&[needs(Group, Read), needs(Topic, Read)]);
            ShareAcknowledge 1..=2, ShareAcknowledgeRequestV2 => share_acknowledge, Authorize::All(&[needs(Group, Read), needs(Topic, Read)]);
            DescribeShareGroupOffsets 0..=0, DescribeShareGroupOffsetsRequest => describe_share_group_offsets, Authorize::All(&[needs(Group, Describe), needs(Topic, Describe)]);
            AlterShareGroupOffsets 0..=0, AlterShareGroupOffsetsRequest => alter_share_group_offsets, Authorize::All(&[needs(Group, Read), needs(Topic, Read)]);
            DeleteShareGroupOffsets 0..=0, DeleteShareGroupOffsetsRequest => delete_share_group_offsets, Authorize::All(&[needs(Group, Delete), needs(Topic, Read)]);
            AlterReplicaLogDirs 1..=2, AlterReplicaLogDirsRequest => alter_replica_log_dirs, Authorize::All(&[CLUSTER_ALTER]);
            SaslHandshake 1..=1, SaslHandshakeRequest => sasl_handshake, Authorize::Nothing;
            SaslAuthenticate 0..=2, SaslAuthenticateRequest => sasl_authenticate, Authorize::Nothing;
            DescribeUserScramCredentials 0..=0, DescribeUserScramCredentialsRequest => describe_user_scram_credentials, Authorize::All(&[CLUSTER_DESCRIBE]);
            AlterUserScramCredentials 0..=0, AlterUserScramCredentialsRequest => alter_user_scram_credentials, Authorize::All(&[CLUSTER_ALTER]);
            DescribeAcls 1..=3, DescribeAclsRequest => describe_acls, Authorize::All(&[CLUSTER_DESCRIBE]);
            CreateAcls 1..=3, CreateAclsRequest => create_acls, Authorize::All(&[CLUSTER_ALTER]);
            DeleteAcls 1..=3, DeleteAclsRequest => delete_acls, Authorize::All(&[CLUSTER_ALTER]);
            DescribeClientQuotas 0..=1, DescribeClientQuotasRequest => describe_client_quotas, Authorize::All(&[CLUSTER_DESCRIBE]);
            AlterClientQuotas 0..=1, AlterClientQuotasRequest => alter_client_quotas, Authorize::All(&[CLUSTER_ALTER]);
        }
    };
}
pub(super) use api_table;

macro_rules! served_apis {
    ($( $api:ident $min:literal ..= $max:literal, $request:ty => $module:ident, $authorize:expr; )*) => {
        /// Every served API, in the table's order.
        pub const SERVED_APIS: &[ServedApi] = &[
            $( ServedApi {
                api: ApiKey::$api,
                min_version: $min,
                max_version: $max,
                authorize: $authorize,
            }, )*
        ];
    };
}

// Requirements several APIs share, named for the table.
const TOPIC_CREATE: Requirement = needs(Topic, Create);
const CLUSTER_CREATE: Requirement = needs(Cluster, Create);
const CLUSTER_DESCRIBE: Requirement = needs(Cluster, Describe);
const CLUSTER_ALTER: Requirement = needs(Cluster, Alter);

api_table!(served_apis);

/// The table entry for `api`, if it is served at all.
pub fn served(api: ApiKey) -> Option<&'static ServedApi> {
    SERVED_APIS.iter().find(|s| s.api == api)
}

/// The version range served for `api`, if it is served at all.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    served(api).map(|s| (s.min_version, s.max_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_are_known_to_the_codec() {
        for s in SERVED_APIS {
            // ShareFetch / ShareAcknowledge v2 are `protocol::share_v2`'s, not the crate's.
            let known = match s.api {
                ApiKey::ShareFetch | ApiKey::ShareAcknowledge => {
                    crate::protocol::share_v2::SHARE_VERSIONS
                }
                _ => s.api.valid_versions(),
            };
            assert!(s.min_version <= s.max_version, "{:?}", s.api);
            assert!(
                known.min <= s.min_version && s.max_version <= known.max,
                "{:?} {}..={} vs {known:?}",
                s.api,
                s.min_version,
                s.max_version
            );
        }
    }

    #[test]
    fn each_api_is_served_once() {
        for s in SERVED_APIS {
            let count = SERVED_APIS.iter().filter(|t| t.api == s.api).count();
            assert_eq!(count, 1, "{:?} appears {count} times", s.api);
        }
    }

    #[test]
    fn only_api_versions_and_sasl_are_answered_without_authorization() {
        for s in SERVED_APIS {
            let open = s.authorize.requirements().is_empty();
            let unauthenticated = matches!(
                s.api,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            );
            assert_eq!(open, unauthenticated, "{:?}", s.api);
        }
    }
}
