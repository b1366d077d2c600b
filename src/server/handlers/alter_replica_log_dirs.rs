//! AlterReplicaLogDirs (KIP-113): this node has one log directory, its data directory.
//! Moving a partition there is a no-op success; any other path is LOG_DIR_NOT_FOUND, and a
//! partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION.

use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};
use std::path::Path;

/// Whether `path` names the data directory (as DescribeLogDirs reports it, or any spelling
/// that resolves to it).
fn is_the_log_dir(data_dir: &Path, path: &str) -> bool {
    let path = Path::new(path);
    if path == data_dir {
        return true;
    }
    match (path.canonicalize(), data_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let snapshot = ctx.shard.metadata.load_full();
    let data_dir = &ctx.shard.config.data_dir;
    let mut results = Vec::new();
    for dir in request.dirs {
        let known_dir = is_the_log_dir(data_dir, &dir.path);
        for topic in dir.topics {
            let count = snapshot.topic(&topic.name.0).map(|t| t.partitions);
            let partitions = topic
                .partitions
                .iter()
                .map(|&p| {
                    let error = if !known_dir {
                        ResponseError::LogDirNotFound.code()
                    } else if count.is_some_and(|c| (0..c).contains(&p)) {
                        0
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(error)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic.name)
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
