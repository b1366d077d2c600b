//! A share session ends with the connection that opened it (KIP-932, as Kafka's
//! `ShareSessionCache` disconnect listener, which calls `SharePartitionManager`'s
//! `releaseSession`): when that connection closes, the session is removed and the
//! member's acquired records on its partitions are released at once, on this broker
//! (the group's coordinator or any partition leader, decision 0025), instead of waiting
//! for their acquisition locks (`share.record.lock.duration.ms`) to expire.
//!
//! Owns: ending a closed connection's sessions (which ones it opened: `share_opened`).
//! Must not: hold the sessions (the group coordinator does) or record states
//! (`partition::share` does).

use std::rc::Rc;

use crate::server::share::{self, SharePartitionRef, share_config, topic_name};
use crate::server::share_opened::ShareSessionsOpened;
use crate::shard::Shard;

/// The connection closed: the sessions it opened (and nobody reopened since) end, and
/// their members' acquired records are released, in the background.
pub fn connection_closed(shard: &Rc<Shard>, sessions: ShareSessionsOpened) {
    let (connection, opened) = sessions.into_parts();
    if opened.is_empty() || shard.shutting_down.get() {
        return;
    }
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        for (group, member) in opened {
            release_session(&shard, group, member, connection).await;
        }
    })
    .detach();
}

async fn release_session(shard: &Rc<Shard>, group_id: String, member_id: String, connection: u64) {
    let owner = shard.owner_of_group(&group_id);
    let (group, member) = (group_id.clone(), member_id.clone());
    let closed = shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .share_session_connection_closed(&group, &member, connection)
        })
        .await;
    let Ok(Some(partitions)) = closed else {
        return;
    };
    let config = share_config(shard, &group_id);
    for (topic_id, partition) in partitions {
        let Some(topic) = topic_name(shard, &topic_id) else {
            continue;
        };
        let at = SharePartitionRef {
            group_id: group_id.clone(),
            member_id: member_id.clone(),
            topic,
            partition,
            config,
        };
        share::release_member(shard, at).await;
    }
}
