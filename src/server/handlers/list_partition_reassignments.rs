//! ListPartitionReassignments (KIP-455): the partition reassignments in progress. One node
//! holds every replica of every partition, so none is ever in progress: the answer lists
//! none for any topic asked about, as Kafka does when nothing is moving.

use crate::server::context::RequestContext;
use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

pub async fn handle(
    _ctx: &RequestContext<'_>,
    _request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_error_message(None)
        .with_topics(Vec::new())
}
