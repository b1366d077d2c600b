//! DeleteTopics: by name (all versions) or by topic id (v6+).

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::topics::delete_topic;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0–v5 name topics in `topic_names`; v6+ in `topics` (name or id).
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => ctx
                .shard
                .metadata
                .load()
                .topic_by_id(&id)
                .map(|t| t.name.clone()),
        };
        // Named as Kafka does: the topic's name also when asked by id, null when unknown.
        let mut result = DeletableTopicResult::default()
            .with_name(resolved.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        match resolved {
            Some(n) if !permitted(ctx, ResourceType::Topic, &n) => {
                let code = ResponseError::TopicAuthorizationFailed.code();
                result = result.with_error_code(code);
            }
            None => {
                result = result.with_error_code(ResponseError::UnknownTopicId.code());
            }
            Some(n) => match delete_topic(ctx.shard, n).await {
                Ok(meta) => result = result.with_error_code(0).with_topic_id(meta.id),
                Err(e) => {
                    result = result
                        .with_error_code(e.code)
                        .with_error_message(Some(StrBytes::from_string(e.message)))
                }
            },
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}
