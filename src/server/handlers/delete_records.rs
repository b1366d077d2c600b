//! DeleteRecords: advance a partition's log start offset (whole segments below it are
//! removed by the owning shard). Offset -1 means "up to the high watermark".

use crate::server::access::permitted;
use crate::server::authorization::ResourceType;
use crate::server::context::RequestContext;
use crate::shard::Lookup;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let shard = ctx.shard;
    let mut topics = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let deletable = permitted(ctx, ResourceType::Topic, &name);
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let (partition, offset) = (p.partition_index, p.offset);
            let owner = shard.owner_of_partition(&name, partition);
            let topic_name = name.clone();
            let denied = (ResponseError::TopicAuthorizationFailed.code(), -1);
            let (code, low) = if !deletable { denied } else { shard
                .invoke_on(owner, move |s| async move {
                    let Lookup::Online(p) = s.partitions.get(&topic_name, partition) else {
                        return (ResponseError::UnknownTopicOrPartition.code(), -1);
                    };
                    // The partition resolves -1 to its high watermark and refuses offsets
                    // past it (OFFSET_OUT_OF_RANGE).
                    match p.delete_records(offset).await {
                        Ok(start) => (0, start),
                        Err(e) => (e.kafka_error_code(), -1),
                    }
                })
                .await
                .unwrap_or((ResponseError::BrokerNotAvailable.code(), -1)) };
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(partition)
                    .with_low_watermark(low)
                    .with_error_code(code),
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
