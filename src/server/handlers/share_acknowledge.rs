//! ShareAcknowledge (KIP-932, v1 and v2): a member settles records it holds — ACCEPT,
//! RELEASE, REJECT (and GAP for offsets without a record) — within its share session (epoch
//! rules on the group's shard; epoch -1 also closes the session, releasing what it still
//! holds). v2 adds RENEW (KIP-1222: the member keeps the record, its lock restarted) and
//! answers with the group's acquisition lock duration, what a renewal extended the locks by.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::ShareAcknowledgeResponse;

use crate::group::share::sessions::FINAL_EPOCH;
use crate::protocol::share_v2::{
    RENEW_VERSION, ShareAcknowledgeRequestV2, ShareAcknowledgeResponseV2,
};
use crate::server::context::RequestContext;
use crate::server::share::{self, SharePartitionRef, share_config, topic_name, update_session};

fn refuse(code: ResponseError) -> ShareAcknowledgeResponseV2 {
    ShareAcknowledgeResponseV2 {
        base: ShareAcknowledgeResponse::default().with_error_code(code.code()),
        acquisition_lock_timeout_ms: 0,
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ShareAcknowledgeRequestV2,
) -> ShareAcknowledgeResponseV2 {
    // `IsRenewAck` only announces RENEWs (which need no extra step here): the types
    // themselves are what is applied.
    let renew_allowed = ctx.version >= RENEW_VERSION;
    let request = request.base;
    let admitted = share::member_permitted(
        ctx,
        request.group_id.as_ref().map(|g| g.0.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
        request.topics.iter().map(|t| t.topic_id),
    );
    let (group_id, member_id) = match admitted {
        Ok(ids) => ids,
        Err(code) => return refuse(code),
    };
    let epoch = request.share_session_epoch;
    let connection = ctx.connection.borrow().share_sessions.connection();
    let session = match update_session(
        ctx.shard,
        &group_id,
        &member_id,
        epoch,
        Vec::new(),
        Vec::new(),
        false,
        connection,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let config = share_config(ctx.shard, &group_id);
    let at = |topic: String, partition: i32| SharePartitionRef {
        group_id: group_id.clone(),
        member_id: member_id.clone(),
        topic,
        partition,
        config,
    };
    let leader = LeaderIdAndEpoch::default()
        .with_leader_id(ctx.shard.config.node_id)
        .with_leader_epoch(0);
    let mut responses = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = topic_name(ctx.shard, &t.topic_id);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let code = match &name {
                Some(name) => {
                    let batches = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                        .collect();
                    let target = at(name.clone(), p.partition_index);
                    share::acknowledge(ctx.shard, target, batches, renew_allowed).await
                }
                None => ResponseError::UnknownTopicId.code(),
            };
            partitions.push(
                PartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_current_leader(leader.clone()),
            );
        }
        responses.push(
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    if epoch == FINAL_EPOCH {
        for (topic_id, partition) in &session {
            if let Some(name) = topic_name(ctx.shard, topic_id) {
                share::release_member(ctx.shard, at(name, *partition)).await;
            }
        }
    }
    ShareAcknowledgeResponseV2 {
        base: ShareAcknowledgeResponse::default().with_responses(responses),
        acquisition_lock_timeout_ms: config.record_lock_duration_ms,
    }
}
