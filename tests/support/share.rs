//! Share-group request parts the share tests build alike: partition 0's acknowledgements
//! in a ShareFetch or a ShareAcknowledge, and the acquired ranges of an answer.

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ShareFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Acknowledgements as (first offset, last offset, acknowledge type).
pub type Acks<'a> = &'a [(i64, i64, i8)];

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A ShareFetch's topics: partition 0 of `topic_id`, carrying `acks`.
pub fn fetch_topics(topic_id: uuid::Uuid, acks: Acks, partition_max_bytes: i32) -> Vec<FetchTopic> {
    let batches = acks
        .iter()
        .map(|(first, last, kind)| {
            AcknowledgementBatch::default()
                .with_first_offset(*first)
                .with_last_offset(*last)
                .with_acknowledge_types(vec![*kind])
        })
        .collect();
    vec![
        FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![
                FetchPartition::default()
                    .with_partition_index(0)
                    .with_partition_max_bytes(partition_max_bytes)
                    .with_acknowledgement_batches(batches),
            ]),
    ]
}

/// A ShareAcknowledge's topics: partition 0 of `topic_id`, carrying `acks`.
pub fn acknowledge_topics(topic_id: uuid::Uuid, acks: Acks) -> Vec<AcknowledgeTopic> {
    let batches = acks
        .iter()
        .map(|(first, last, kind)| {
            AckBatch::default()
                .with_first_offset(*first)
                .with_last_offset(*last)
                .with_acknowledge_types(vec![*kind])
        })
        .collect();
    vec![
        AcknowledgeTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![
                AcknowledgePartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(batches),
            ]),
    ]
}

/// (first, last, delivery count) of every acquired range in an answer.
pub fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .flat_map(|p| p.acquired_records.iter())
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

/// Kafka's GROUP config resource type.
const RESOURCE_GROUP: i8 = 32;

/// IncrementalAlterConfigs SET of `configs` on `group`; the resource's error code.
pub fn alter_group(broker: &super::Broker, group: &str, configs: &[(&str, &str)]) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_GROUP)
            .with_resource_name(sb(group))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(0)
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            ),
    ]);
    let response: IncrementalAlterConfigsResponse =
        super::wire::call_once(&broker.bootstrap(), "share-test", &request, 1);
    response.responses[0].error_code
}
