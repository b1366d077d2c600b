//! The replicated state as one image, for Raft snapshots: what `encode_image` writes and
//! `install_image` reads back on a restart or on a node far behind. Since issue 17's
//! offsets stage it also carries every group's committed offsets, since decision 0022
//! every transactional id's state, since decision 0024 every classic group's stored
//! membership and since decision 0025 every share-partition state, which the shards hold
//! (the caller gathers them before encoding and hands them out after installing).
//! Must not: be read by anything but the metadata writer (the format is JSON, versioned by
//! `#[serde(default)]` on fields added later).

use super::credentials::{PersistedScramCredentials, ScramCredentials};
use super::dynamic_broker::DynamicBrokerConfigs;
use super::group_membership::GroupMembershipsImage;
use super::group_offsets::GroupOffsetsImage;
use super::quotas::{ClientQuotas, PersistedQuota};
use super::replicated::ClusterState;
use super::share_state::{ShareStateEpochsImage, ShareStatesImage};
use super::txn_state::TxnStatesImage;
use super::{MetadataError, MetadataSnapshot, MetadataWriter, TopicMeta, effective_config};
use crate::security::acl::AclBinding;
use crate::security::authorizer::AclSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The whole replicated state, as a Raft snapshot carries it.
#[derive(Debug, Serialize, Deserialize)]
struct ReplicatedImage {
    topics: Vec<(String, uuid::Uuid, i32, BTreeMap<String, String>)>,
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    dynamic_broker: DynamicBrokerConfigs,
    cluster: ClusterState,
    /// Committed offsets per group (absent in images written before they were replicated).
    #[serde(default)]
    group_offsets: GroupOffsetsImage,
    /// ACLs, SCRAM credentials and client quotas (`security_records`; absent in images
    /// written before they were replicated).
    #[serde(default)]
    acls: Vec<AclBinding>,
    #[serde(default)]
    scram_credentials: PersistedScramCredentials,
    #[serde(default)]
    client_quotas: Vec<PersistedQuota>,
    /// Every transactional id's state and version (absent in images written before the
    /// transaction coordinator's state was replicated).
    #[serde(default)]
    txn_states: TxnStatesImage,
    /// Every classic group's last stored membership (decision 0024; absent in images
    /// written before memberships were replicated).
    #[serde(default)]
    group_memberships: GroupMembershipsImage,
    /// Every share group's state on every partition (absent in images written before it
    /// was replicated, decision 0025).
    #[serde(default)]
    share_states: ShareStatesImage,
    /// Every reset share group's state epoch (absent in images written before resets
    /// went through the metadata log: no group was reset then).
    #[serde(default)]
    share_state_epochs: ShareStateEpochsImage,
}

/// What installing an image gives the shards to act on.
pub struct InstalledImage {
    /// The topics in the new state.
    pub topics: Vec<Arc<TopicMeta>>,
    /// Every group's committed offsets: they replace what the shards held.
    pub group_offsets: GroupOffsetsImage,
    /// Every transactional id's state: it replaces what the shards held.
    pub txn_states: TxnStatesImage,
    /// Every classic group's stored membership: it replaces what the shards held.
    pub group_memberships: GroupMembershipsImage,
    /// Every share-partition state: it replaces what the shards held.
    pub share_states: ShareStatesImage,
    /// Every reset share group's state epoch: they replace what the shards held.
    pub share_state_epochs: ShareStateEpochsImage,
}

/// What the shards hold at the snapshot's index, gathered for `encode_image`.
#[derive(Debug, Default)]
pub struct ShardImages {
    pub group_offsets: GroupOffsetsImage,
    pub txn_states: TxnStatesImage,
    pub group_memberships: GroupMembershipsImage,
    pub share_states: ShareStatesImage,
    pub share_state_epochs: ShareStateEpochsImage,
}

impl MetadataWriter {
    /// The replicated state as bytes, for a Raft snapshot, with the shards' committed
    /// offsets, transaction states, group memberships and share-partition states at the
    /// same log index.
    pub fn encode_image(&self, shards: ShardImages) -> Vec<u8> {
        let snapshot = self.snapshot();
        let mut topics: Vec<_> = snapshot
            .topics
            .values()
            .map(|t| (t.name.clone(), t.id, t.partitions, t.overrides.clone()))
            .collect();
        topics.sort();
        let image = ReplicatedImage {
            topics,
            group_configs: snapshot
                .group_configs
                .iter()
                .map(|(g, c)| (g.clone(), (**c).clone()))
                .collect(),
            dynamic_broker: (*snapshot.dynamic_broker).clone(),
            cluster: snapshot.cluster.as_deref().cloned().unwrap_or_default(),
            group_offsets: shards.group_offsets,
            acls: snapshot.acls.bindings().to_vec(),
            scram_credentials: snapshot.scram_credentials.to_persisted(),
            client_quotas: snapshot.client_quotas.to_persisted(),
            txn_states: shards.txn_states,
            group_memberships: shards.group_memberships,
            share_states: shards.share_states,
            share_state_epochs: shards.share_state_epochs,
        };
        serde_json::to_vec(&image).unwrap_or_default()
    }

    /// Replaces the whole state with a snapshot's image (a node far behind, or a restart).
    pub fn install_image(&self, bytes: &[u8]) -> Result<InstalledImage, MetadataError> {
        let corrupt = |message: String| MetadataError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let image: ReplicatedImage =
            serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let defaults = image
            .dynamic_broker
            .topic_defaults(&self.defaults)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut next = MetadataSnapshot {
            cluster_id: self.snapshot().cluster_id.clone(),
            version: self.snapshot().version,
            dynamic_broker: Arc::new(image.dynamic_broker),
            cluster: Some(Arc::new(image.cluster)),
            acls: Arc::new(AclSet::new(image.acls)),
            scram_credentials: Arc::new(
                ScramCredentials::from_persisted(image.scram_credentials).map_err(corrupt)?,
            ),
            client_quotas: Arc::new(ClientQuotas::from_persisted(image.client_quotas)),
            ..MetadataSnapshot::default()
        };
        for (group, configs) in image.group_configs {
            next.group_configs.insert(group, Arc::new(configs));
        }
        for (name, id, partitions, overrides) in image.topics {
            let config = effective_config(&defaults, &overrides)
                .map_err(|e| corrupt(format!("topic {name}: {e}")))?;
            let topic = TopicMeta {
                name: name.clone(),
                id,
                partitions,
                overrides,
                config,
            };
            next.topic_names_by_id.insert(id, name.clone());
            next.topics.insert(name, Arc::new(topic));
        }
        let topics = next.topics.values().cloned().collect();
        self.publish(next)?;
        Ok(InstalledImage {
            topics,
            group_offsets: image.group_offsets,
            txn_states: image.txn_states,
            group_memberships: image.group_memberships,
            share_states: image.share_states,
            share_state_epochs: image.share_state_epochs,
        })
    }
}
