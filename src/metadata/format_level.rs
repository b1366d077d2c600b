//! Sluice's metadata format level (decision 0027, KIP-584/KIP-778 style): the feature
//! `sluice.metadata.version` says which record kinds and fields the metadata log may carry.
//! Every node registers the range of levels its binary reads (RegisterBroker
//! `format_levels`); the finalized level is itself a record of the log (`FinalizeFeature`),
//! raised only when every registered broker supports the new level, so a node never meets
//! a record it cannot decode. A record above the finalized level is refused where it is
//! proposed and, should one reach the log anyway, at apply time on every node alike.
//! Adding a gated record kind or field is one edit here: a new entry in `LEVELS`, a bumped
//! `CURRENT_LEVEL`, and its arm in `required_level`.
//! Must not: read the configuration or talk to the quorum (callers pass what they know).

use super::MetadataError;
use super::replicated::{ClusterState, MetadataRecord};
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// The feature's name in ApiVersions and UpdateFeatures (beside Kafka's own
/// `metadata.version`, which stays what clients are told).
pub const FEATURE: &str = "sluice.metadata.version";
/// The format of session 20 (every record kind before this level system): what a log with
/// no `FinalizeFeature` record is at, and what a registration without a range supports.
pub const LEGACY_LEVEL: i16 = 1;
/// The highest level this binary reads and writes.
pub const CURRENT_LEVEL: i16 = 5;
/// The level from which a registration names its process start (`RegisterBroker`'s
/// `incarnation`).
pub const INCARNATION_LEVEL: i16 = 5;

/// What each level added, for `sluice cluster features` and the decision record.
pub const LEVELS: &[(i16, &str)] = &[
    (1, "the metadata records of session 20"),
    (
        2,
        "FinalizeFeature: finalized feature levels carried by the metadata log",
    ),
    (
        3,
        "ShareStateReset: share-group offset resets and deletes at every partition leader",
    ),
    (
        4,
        "GroupMembership with a share group: share groups outlive their coordinator",
    ),
    (
        5,
        "RegisterBroker with an incarnation: a broker back from an unclean stop leads nothing in its old epochs; ControlledShutdown with the broker epoch",
    ),
];

/// The level that introduced `record`'s kind (or a field it carries): a node finalized
/// below it must not write it, as a node of an older binary could not decode it.
pub fn required_level(record: &MetadataRecord) -> i16 {
    match record {
        MetadataRecord::FinalizeFeature { .. } => 2,
        // A new kind: a session-20 node cannot decode it. (The fields added beside it in
        // session 21, ShareState's epoch and GroupMembership's number, are optional JSON
        // an older node ignores, applying in log order as it always did: not gated.)
        MetadataRecord::ShareStateReset(_) => 3,
        // A field, but not one an older node may ignore: it would read the record as an
        // emptied group (no classic or KIP-848 members) and keep a tombstone, so a
        // level-3 successor would not know the share group (decision 0028).
        MetadataRecord::GroupMembership { membership, .. } if membership.share.is_some() => 4,
        // A field an older node would ignore, applying the registration without the
        // unclean-restart elections: its partition state would differ from the others'.
        MetadataRecord::RegisterBroker {
            incarnation: Some(_),
            ..
        }
        | MetadataRecord::ControlledShutdown { epoch: Some(_), .. } => INCARNATION_LEVEL,
        _ => LEGACY_LEVEL,
    }
}

/// The levels a broker's binary reads (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelRange {
    pub min: i16,
    pub max: i16,
}

/// A registration written before ranges were carried is a session-20 binary's.
impl Default for LevelRange {
    fn default() -> Self {
        LevelRange {
            min: LEGACY_LEVEL,
            max: LEGACY_LEVEL,
        }
    }
}

impl LevelRange {
    /// This binary's range; `limit` (the hidden `upgrade_test_max_metadata_format_level`,
    /// validated to 1..=CURRENT_LEVEL) makes it act as an older binary in upgrade tests.
    pub fn of_this_node(limit: Option<i16>) -> LevelRange {
        let max = limit.map_or(CURRENT_LEVEL, |l| l.clamp(LEGACY_LEVEL, CURRENT_LEVEL));
        LevelRange {
            min: LEGACY_LEVEL,
            max,
        }
    }

    pub fn supports(&self, level: i16) -> bool {
        self.min <= level && level <= self.max
    }
}

/// A finalized level and the log index of the record that set it (ApiVersions' epoch, as
/// Kafka's is the offset of its FeatureLevelRecord).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizedLevel {
    pub level: i16,
    pub epoch: i64,
}

/// Whether `record` may be written while `finalized` is the level. A `FinalizeFeature`
/// raising the level is judged by the level it sets (`ClusterState::check_finalize` decides
/// that one): the only record above the current level a node may propose.
pub fn check_record_level(record: &MetadataRecord, finalized: i16) -> Result<(), MetadataError> {
    let level = match record {
        MetadataRecord::FinalizeFeature { level, .. } => (*level).max(finalized),
        _ => finalized,
    };
    let required = required_level(record);
    if required <= level {
        return Ok(());
    }
    Err(refused(
        ResponseError::UnsupportedVersion,
        format!(
            "this change needs {FEATURE} {required} but the cluster is finalized at {level}: \
             upgrade every node's binary, then `sluice cluster features --upgrade {FEATURE}={required}`"
        ),
    ))
}

fn refused(code: ResponseError, message: String) -> MetadataError {
    MetadataError::FeatureLevel {
        code: code.code(),
        message,
    }
}

impl ClusterState {
    /// The finalized format level (1 until a `FinalizeFeature` raised it).
    pub fn format_level(&self) -> i16 {
        self.features.get(FEATURE).map_or(LEGACY_LEVEL, |f| f.level)
    }

    /// The finalized-features epoch: the index of the last `FinalizeFeature` applied, 0
    /// while none was.
    pub fn features_epoch(&self) -> i64 {
        self.features.values().map(|f| f.epoch).max().unwrap_or(0)
    }

    /// Whether `record` may be written at the finalized level (`check_record_level`).
    pub fn check_writable(&self, record: &MetadataRecord) -> Result<(), MetadataError> {
        check_record_level(record, self.format_level())
    }

    /// UpdateFeatures' rules for `name` at `level`, against the registered brokers: only
    /// upgrades (a lower level could leave records an older binary cannot decode), and
    /// only to a level every registered broker, fenced or not, reads.
    pub fn check_finalize(&self, name: &str, level: i16) -> Result<(), MetadataError> {
        let invalid = |message| Err(refused(ResponseError::InvalidUpdateVersion, message));
        if name != FEATURE {
            return invalid(format!(
                "the {name} feature is not finalized by the metadata log"
            ));
        }
        let current = self.format_level();
        if level < current {
            return invalid(format!(
                "cannot downgrade {FEATURE} from {current} to {level}: records of level {current} \
                 may already be in the log"
            ));
        }
        let lacking: Vec<String> = self
            .brokers
            .values()
            .filter(|b| !b.format_levels.supports(level))
            .map(|b| format!("broker {} (up to {})", b.id, b.format_levels.max))
            .collect();
        if !lacking.is_empty() {
            return invalid(format!(
                "cannot finalize {FEATURE} at {level}: not supported by {}",
                lacking.join(", ")
            ));
        }
        Ok(())
    }

    /// A registering broker must read the finalized level, else it would skip records and
    /// diverge (Kafka refuses its BrokerRegistration with UNSUPPORTED_VERSION).
    pub fn check_registration(&self, id: i32, range: LevelRange) -> Result<(), MetadataError> {
        let level = self.format_level();
        if range.supports(level) {
            return Ok(());
        }
        Err(refused(
            ResponseError::UnsupportedVersion,
            format!(
                "broker {id} reads {FEATURE} {}..={} but the cluster is finalized at {level}: \
                 start it with a binary that supports level {level}",
                range.min, range.max
            ),
        ))
    }
}

/// Bootstrapping a fresh cluster (no broker ever registered, nothing finalized): once every
/// voter has registered, the quorum leader finalizes the lowest maximum among them, so a
/// cluster whose initial nodes all run this binary starts at `CURRENT_LEVEL` without an
/// UpdateFeatures. A registration that cannot raise the level (an older binary) closes the
/// bootstrap: from then on only UpdateFeatures raises it, so rolling that node later does
/// not upgrade the cluster behind the operator's back.
impl ClusterState {
    pub(super) fn note_registration_for_bootstrap(&mut self, range: LevelRange) {
        if self.brokers.is_empty() && self.features.is_empty() {
            self.format_bootstrap_open = true;
        }
        if range.max <= self.format_level() {
            self.format_bootstrap_open = false;
        }
    }

    /// The level the quorum leader should bootstrap to, once every one of `voters` has
    /// registered and the bootstrap is still open.
    pub fn bootstrap_target(&self, voters: &[i32]) -> Option<i16> {
        if !self.format_bootstrap_open || !voters.iter().all(|v| self.brokers.contains_key(v)) {
            return None;
        }
        let lowest = self.brokers.values().map(|b| b.format_levels.max).min()?;
        (lowest > self.format_level()).then_some(lowest)
    }
}

impl super::MetadataWriter {
    /// FinalizeFeature at log `index`: checked against the applied state (the same on
    /// every node), then the level and its epoch are the cluster's.
    pub(super) fn apply_finalize_feature(
        &self,
        index: u64,
        name: &str,
        level: i16,
    ) -> Result<super::replicated::Applied, MetadataError> {
        let mut cluster = self.cluster_state();
        cluster.check_finalize(name, level)?;
        cluster.format_bootstrap_open = false;
        if cluster.format_level() != level {
            let epoch = i64::try_from(index).unwrap_or(i64::MAX);
            cluster
                .features
                .insert(name.to_string(), FinalizedLevel { level, epoch });
        }
        self.publish_cluster(cluster)?;
        Ok(super::replicated::Applied::Brokers)
    }
}

#[cfg(test)]
#[path = "format_level_tests.rs"]
mod tests;
