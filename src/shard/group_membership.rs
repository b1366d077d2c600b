//! Cluster mode: classic group memberships through the metadata log (decision 0024). The
//! apply loop (`cluster_apply`) hands every applied `GroupMembership` record to the
//! group's owning shard here, and gathers / hands out the stored memberships of a snapshot
//! image. Proposing is `group_offsets::ClusterOffsets::store_membership`.
//! Must not: decide what is stored or loaded (the group coordinator's `membership` does).

use super::Shard;
use crate::metadata::group_membership::{GroupMembership, GroupMembershipsImage};
use std::collections::HashMap;
use std::rc::Rc;

/// An applied `GroupMembership` record: the group's owning shard stores it.
pub(super) async fn apply(shard: &Rc<Shard>, group: String, membership: GroupMembership) {
    let owner = shard.owner_of_group(&group);
    let applied = shard
        .invoke_on(owner, move |s| async move {
            s.groups.apply_membership(&group, membership)
        })
        .await;
    if applied.is_err() {
        tracing::error!(
            owner,
            "group membership not applied: the owning shard is gone"
        );
    }
}

/// Every shard's stored memberships, for a snapshot image at the index just applied.
pub(super) async fn gather(shard: &Rc<Shard>) -> GroupMembershipsImage {
    let per_shard = shard
        .invoke_on_all(|s| async move { s.groups.stored_memberships() })
        .await;
    let mut image: GroupMembershipsImage = per_shard.into_iter().flatten().flatten().collect();
    image.sort_by(|a, b| a.0.cmp(&b.0));
    image
}

/// A snapshot image was installed: each shard's stored memberships are the image's.
pub(super) async fn install(shard: &Rc<Shard>, image: GroupMembershipsImage) {
    let mut per_shard: Vec<HashMap<String, GroupMembership>> = vec![HashMap::new(); shard.count()];
    for (group, membership) in image {
        let owner = shard.owner_of_group(&group);
        if let Some(groups) = per_shard.get_mut(owner) {
            groups.insert(group, membership);
        }
    }
    for (owner, groups) in per_shard.into_iter().enumerate() {
        let installed = shard
            .invoke_on(owner, move |s| async move {
                s.groups.install_memberships(groups)
            })
            .await;
        if installed.is_err() {
            tracing::error!(
                owner,
                "snapshot memberships not installed: the owning shard is gone"
            );
        }
    }
}
