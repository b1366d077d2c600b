//! The KIP-584 feature flags this node reports (ApiVersions v3+) and holds finalized
//! (UpdateFeatures). One node and no metadata log to upgrade: the levels are fixed, so the
//! finalized epoch never moves. Levels follow Kafka 4.0: `metadata.version` 25 is 4.0-IV3,
//! `group.version` 1 is the KIP-848 consumer protocol (ConsumerGroupHeartbeat is served),
//! `transaction.version` 2 is KIP-890's transactions v2 (EndTxn v5, Produce v12 and
//! TxnOffsetCommit v5 add partitions and groups implicitly; clients that do not speak it
//! keep the classic protocol).
//! A leaf: handlers import it, it imports nothing of the server.

/// One feature: the range this node supports and the level it runs at (0 = not finalized,
/// left out of ApiVersions' finalized list as Kafka leaves it).
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub name: &'static str,
    pub min_version: i16,
    pub max_version: i16,
    pub finalized_level: i16,
}

pub const FEATURES: &[Feature] = &[
    Feature {
        name: "metadata.version",
        min_version: 7,
        max_version: 25,
        finalized_level: 25,
    },
    Feature {
        name: "kraft.version",
        min_version: 0,
        max_version: 0,
        finalized_level: 0,
    },
    Feature {
        name: "group.version",
        min_version: 0,
        max_version: 1,
        finalized_level: 1,
    },
    Feature {
        name: "transaction.version",
        min_version: 0,
        max_version: 2,
        finalized_level: 2,
    },
];

/// The finalized-features epoch: the levels never change, so neither does it.
pub const FINALIZED_FEATURES_EPOCH: i64 = 0;

pub fn feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}
