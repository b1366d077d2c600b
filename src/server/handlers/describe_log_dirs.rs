//! DescribeLogDirs: the one data directory and, per partition asked (all when `topics` is
//! null), its size on disk as its owning shard reports it (`Partition::size_bytes`).
//! Total and usable bytes (v4) come from statvfs of the data directory.

use crate::server::context::RequestContext;
use crate::shard::Lookup;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::path::Path;

/// (total bytes, usable bytes) of the filesystem holding `dir`; (-1, -1) if unknown.
fn filesystem_bytes(dir: &Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return (-1, -1);
    }
    let block = stat.f_frsize as i64;
    (
        (stat.f_blocks as i64).saturating_mul(block),
        (stat.f_bavail as i64).saturating_mul(block),
    )
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let shard = ctx.shard;
    let snapshot = shard.metadata.load_full();
    // Null topics means every partition of every topic; unknown topics are left out, as Kafka does.
    let wanted: Vec<(String, Vec<i32>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| {
                let name = t.topic.0.to_string();
                let count = snapshot.topic(&name)?.partitions;
                let parts = t.partitions.into_iter().filter(|p| (0..count).contains(p));
                Some((name, parts.collect()))
            })
            .collect(),
        None => {
            let mut all: Vec<(String, Vec<i32>)> = snapshot
                .topics
                .values()
                .map(|t| (t.name.clone(), (0..t.partitions).collect()))
                .collect();
            all.sort();
            all
        }
    };
    let mut topics = Vec::with_capacity(wanted.len());
    for (name, partitions) in wanted {
        let calls = partitions.into_iter().map(|partition| {
            let topic = name.clone();
            async move {
                let owner = shard.owner_of_partition(&topic, partition);
                let size = shard
                    .invoke_on(owner, move |s| async move {
                        match s.partitions.get(&topic, partition) {
                            Lookup::Online(p) => Some(p.size_bytes()),
                            _ => None,
                        }
                    })
                    .await
                    .ok()
                    .flatten();
                size.map(|bytes| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(partition)
                        .with_partition_size(i64::try_from(bytes).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false)
                })
            }
        });
        let found: Vec<_> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(found),
        );
    }
    let dir = &shard.config.data_dir;
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let (total, usable) = filesystem_bytes(dir);
    let result = DescribeLogDirsResult::default()
        .with_error_code(0)
        .with_log_dir(StrBytes::from_string(shown.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_results(vec![result])
}
