//! Kafka API key → API name, for the `api` label of request metrics.
//!
//! Owns: the one table of names. Must not: allocate (the names are `&'static str`).

/// Kafka API names indexed by API key (from the Kafka protocol guide). Keys past the end of
/// the table, or negative ones, are labelled `unknown`.
pub const API_NAMES: &[&str] = &[
    "Produce",                      // 0
    "Fetch",                        // 1
    "ListOffsets",                  // 2
    "Metadata",                     // 3
    "LeaderAndIsr",                 // 4
    "StopReplica",                  // 5
    "UpdateMetadata",               // 6
    "ControlledShutdown",           // 7
    "OffsetCommit",                 // 8
    "OffsetFetch",                  // 9
    "FindCoordinator",              // 10
    "JoinGroup",                    // 11
    "Heartbeat",                    // 12
    "LeaveGroup",                   // 13
    "SyncGroup",                    // 14
    "DescribeGroups",               // 15
    "ListGroups",                   // 16
    "SaslHandshake",                // 17
    "ApiVersions",                  // 18
    "CreateTopics",                 // 19
    "DeleteTopics",                 // 20
    "DeleteRecords",                // 21
    "InitProducerId",               // 22
    "OffsetForLeaderEpoch",         // 23
    "AddPartitionsToTxn",           // 24
    "AddOffsetsToTxn",              // 25
    "EndTxn",                       // 26
    "WriteTxnMarkers",              // 27
    "TxnOffsetCommit",              // 28
    "DescribeAcls",                 // 29
    "CreateAcls",                   // 30
    "DeleteAcls",                   // 31
    "DescribeConfigs",              // 32
    "AlterConfigs",                 // 33
    "AlterReplicaLogDirs",          // 34
    "DescribeLogDirs",              // 35
    "SaslAuthenticate",             // 36
    "CreatePartitions",             // 37
    "CreateDelegationToken",        // 38
    "RenewDelegationToken",         // 39
    "ExpireDelegationToken",        // 40
    "DescribeDelegationToken",      // 41
    "DeleteGroups",                 // 42
    "ElectLeaders",                 // 43
    "IncrementalAlterConfigs",      // 44
    "AlterPartitionReassignments",  // 45
    "ListPartitionReassignments",   // 46
    "OffsetDelete",                 // 47
    "DescribeClientQuotas",         // 48
    "AlterClientQuotas",            // 49
    "DescribeUserScramCredentials", // 50
    "AlterUserScramCredentials",    // 51
    "Vote",                         // 52
    "BeginQuorumEpoch",             // 53
    "EndQuorumEpoch",               // 54
    "DescribeQuorum",               // 55
    "AlterPartition",               // 56
    "UpdateFeatures",               // 57
    "Envelope",                     // 58
    "FetchSnapshot",                // 59
    "DescribeCluster",              // 60
    "DescribeProducers",            // 61
    "BrokerRegistration",           // 62
    "BrokerHeartbeat",              // 63
    "UnregisterBroker",             // 64
    "DescribeTransactions",         // 65
    "ListTransactions",             // 66
    "AllocateProducerIds",          // 67
    "ConsumerGroupHeartbeat",       // 68
    "ConsumerGroupDescribe",        // 69
    "ControllerRegistration",       // 70
    "GetTelemetrySubscriptions",    // 71
    "PushTelemetry",                // 72
    "AssignReplicasToDirs",         // 73
    "ListConfigResources",          // 74 (ListClientMetricsResources before Kafka 4.1)
    "DescribeTopicPartitions",      // 75
    "ShareGroupHeartbeat",          // 76
    "ShareGroupDescribe",           // 77
    "ShareFetch",                   // 78
    "ShareAcknowledge",             // 79
    "AddRaftVoter",                 // 80
    "RemoveRaftVoter",              // 81
    "UpdateRaftVoter",              // 82
    "InitializeShareGroupState",    // 83
    "ReadShareGroupState",          // 84
    "WriteShareGroupState",         // 85
    "DeleteShareGroupState",        // 86
    "ReadShareGroupStateSummary",   // 87
    "StreamsGroupHeartbeat",        // 88
    "StreamsGroupDescribe",         // 89
    "DescribeShareGroupOffsets",    // 90
    "AlterShareGroupOffsets",       // 91
    "DeleteShareGroupOffsets",      // 92
];

/// Label used for API keys outside [`API_NAMES`].
pub const UNKNOWN_API_NAME: &str = "unknown";

/// The Kafka name of `api_key`, e.g. `Produce` for 0.
pub fn api_name(api_key: i16) -> &'static str {
    usize::try_from(api_key)
        .ok()
        .and_then(|i| API_NAMES.get(i).copied())
        .unwrap_or(UNKNOWN_API_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn well_known_keys_have_their_kafka_names() {
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(18), "ApiVersions");
        assert_eq!(api_name(75), "DescribeTopicPartitions");
        assert_eq!(api_name(92), "DeleteShareGroupOffsets");
        assert_eq!(api_name(-1), UNKNOWN_API_NAME);
        assert_eq!(api_name(i16::MAX), UNKNOWN_API_NAME);
    }

    /// The table must agree with the protocol crate the server decodes with.
    #[test]
    fn table_agrees_with_the_protocol_crate() {
        for (key, name) in API_NAMES.iter().enumerate() {
            if let Ok(api) = ApiKey::try_from(key as i16) {
                let debug = format!("{api:?}");
                let debug = debug.strip_suffix("Key").unwrap_or(&debug);
                assert_eq!(debug, *name, "api key {key}");
            }
        }
    }
}
