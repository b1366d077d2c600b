//! CreatePartitions: grow a topic (never shrink), with `validate_only`.

use crate::server::context::RequestContext;
use crate::shard::topics::create_partitions;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let result = match create_partitions(
            ctx.shard,
            topic.name.0.to_string(),
            topic.count,
            request.validate_only,
        )
        .await
        {
            Ok(_) => result.with_error_code(0),
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(StrBytes::from_string(e.message))),
        };
        results.push(result);
    }
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
