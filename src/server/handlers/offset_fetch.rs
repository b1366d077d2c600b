//! OffsetFetch (v1–v7 one group, v8+ several): each group is read on its owning shard and
//! the answers are put back into the request's version. `topics: null` means all.

use crate::group;
use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(ctx: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let wanted = group::offset_fetch_wanted(&request, ctx.version);
    let require_stable = ctx.version >= 7 && request.require_stable;
    let calls = wanted.into_iter().map(|(group_id, topics)| {
        let owner = ctx.shard.owner_of_group(&group_id);
        let name = group_id.clone();
        let describable = permitted(ctx, ResourceType::Group, &group_id);
        let named_topics = topics.is_some();
        async move {
            if !describable {
                return OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(name)))
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let mut answer = ctx.shard
                .invoke_on(owner, move |s| async move {
                    let mut answer = s.groups.fetch_offsets(&group_id, topics);
                    if require_stable {
                        mark_unstable(&s.groups, &group_id, &mut answer);
                    }
                    answer
                })
                .await
                .unwrap_or_else(|_| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(name)))
                        .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                });
            hide_undescribable_topics(ctx, &mut answer, named_topics);
            answer
        }
    });
    let groups = futures_util::future::join_all(calls).await;
    group::offset_fetch_response(groups, ctx.version)
}

/// `require_stable` (KIP-447): a partition with a transactional offset commit still pending
/// answers UNSTABLE_OFFSET_COMMIT (the client retries) instead of the older offset.
/// Topics the principal may not DESCRIBE: TOPIC_AUTHORIZATION_FAILED when the request named
/// them, left out when it asked for all of the group's offsets (as Kafka does).
fn hide_undescribable_topics(
    ctx: &RequestContext<'_>,
    answer: &mut OffsetFetchResponseGroup,
    named_topics: bool,
) {
    if named_topics {
        for topic in answer.topics.iter_mut() {
            if !permitted(ctx, ResourceType::Topic, &topic.name.0) {
                for p in topic.partitions.iter_mut() {
                    p.error_code = ResponseError::TopicAuthorizationFailed.code();
                    p.committed_offset = -1;
                    p.metadata = None;
                }
            }
        }
    } else {
        answer
            .topics
            .retain(|topic| permitted(ctx, ResourceType::Topic, &topic.name.0));
    }
}

fn mark_unstable(
    groups: &group::GroupCoordinator,
    group_id: &str,
    answer: &mut OffsetFetchResponseGroup,
) {
    for topic in answer.topics.iter_mut() {
        for p in topic.partitions.iter_mut() {
            if groups.has_pending_txn_offset(group_id, &topic.name.0, p.partition_index) {
                p.error_code = ResponseError::UnstableOffsetCommit.code();
                p.committed_offset = -1;
            }
        }
    }
}
