//! Fetch's reads: each wanted partition from its owning shard, as file regions, within the
//! response-wide byte budget. Must not copy record bytes: regions go to the socket as they are.

use crate::partition::Isolation;
use crate::server::fetch_sessions::{Answered, WantedPartition};
use crate::shard::Shard;
use crate::storage::FileRegion;
use kafka_protocol::ResponseError;
use std::rc::Rc;

/// Who reads and how: a consumer at its isolation level, or a follower (`replica`: its
/// broker id), which reads to the log end and reports its progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader {
    pub isolation: Isolation,
    pub replica: Option<i32>,
}

/// What the owning shard answered for one partition.
pub(super) struct PartitionRead {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub regions: Vec<FileRegion>,
    pub bytes: usize,
    /// read_committed: (producer id, first offset) of the aborted transactions the records
    /// overlap; None for read_uncommitted.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// What the long poll watches, as of this read: the high watermark for a consumer, the
    /// written end for a follower (`Partition::fetch_progress`).
    pub progress: i64,
}

impl PartitionRead {
    fn error(code: i16) -> PartitionRead {
        PartitionRead {
            error_code: code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            regions: Vec::new(),
            bytes: 0,
            aborted_transactions: None,
            progress: -1,
        }
    }

    /// What the fetch session remembers of this answer.
    pub fn answered(&self) -> Answered {
        Answered {
            bytes: self.bytes,
            error_code: self.error_code,
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
        }
    }
}

/// Reads every wanted partition from its owner, sharing the response-wide byte budget in
/// request order (the first partition with data always gets at least one whole batch).
/// A partition whose topic the principal may not read (`readable[i]` false) is answered
/// TOPIC_AUTHORIZATION_FAILED without a read.
pub(super) async fn read_all(
    shard: &Rc<Shard>,
    wants: &[WantedPartition],
    readable: &[bool],
    max_bytes: usize,
    reader: Reader,
) -> Vec<PartitionRead> {
    let Reader { isolation, replica } = reader;
    let calls = wants.iter().zip(readable).map(|(w, readable)| {
        let readable = *readable;
        let owner = w.owner;
        let topic = w.topic.clone();
        let (partition, offset) = (w.partition, w.fetch_offset);
        let replica_log_start = w.log_start_offset;
        let current_epoch = w.current_leader_epoch;
        let limit = w.max_bytes.max(0) as u32;
        async move {
            if !readable {
                return PartitionRead::error(ResponseError::TopicAuthorizationFailed.code());
            }
            if topic.is_empty() {
                return PartitionRead::error(ResponseError::UnknownTopicId.code());
            }
            shard
                .invoke_on(owner, move |s| async move {
                    if let Err(code) = fenced(&s, &topic, partition, current_epoch) {
                        return PartitionRead::error(code);
                    }
                    match replica {
                        Some(replica) => {
                            let follower = Follower {
                                id: replica,
                                log_start_offset: replica_log_start,
                            };
                            read_for_follower(&s, &topic, partition, offset, limit, follower)
                                .await
                        }
                        None => read_local(&s, &topic, partition, offset, limit, isolation).await,
                    }
                })
                .await
                .unwrap_or_else(|_| PartitionRead::error(ResponseError::BrokerNotAvailable.code()))
        }
    });
    let mut reads = futures_util::future::join_all(calls).await;
    // Enforce the response-wide max_bytes by dropping whole partitions past the budget.
    let mut used = 0usize;
    for r in reads.iter_mut() {
        if r.bytes == 0 {
            continue;
        }
        if used > 0 && used + r.bytes > max_bytes {
            r.regions.clear();
            r.bytes = 0;
            continue;
        }
        used += r.bytes;
    }
    reads
}

/// Kafka's leader-epoch fencing of a fetch (`current_leader_epoch`, -1: unchecked).
fn fenced(shard: &Shard, topic: &str, partition: i32, current_epoch: i32) -> Result<(), i16> {
    if current_epoch < 0 || shard.cluster.is_none() {
        return Ok(());
    }
    let snapshot = shard.metadata.load();
    let epoch = crate::server::cluster_view::leader_epoch(&snapshot, topic, partition);
    crate::server::cluster_view::check_leader_epoch(current_epoch, epoch)
}

/// The partition this shard leads, or the error a fetch of it answers.
fn led_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::partition::Partition>, PartitionRead> {
    shard
        .led_partition(topic, partition)
        .map_err(|e| PartitionRead::error(e.code()))
}

/// The replica a follower's fetch comes from, and the log start it reported.
struct Follower {
    id: i32,
    log_start_offset: i64,
}

/// A follower's fetch on the leader: records its progress and reads up to the log end.
async fn read_for_follower(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    follower: Follower,
) -> PartitionRead {
    let p = match led_partition(shard, topic, partition) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let progress = p.fetch_progress(true);
    let traced = crate::metrics::stage_trace::enabled()
        .then(|| crate::metrics::stage_trace::key(topic, partition));
    if let Some(key) = traced {
        let hw = p.high_watermark();
        crate::metrics::stage_trace::mark("fi", key, follower.id as i64, offset, hw);
    }
    let read = p
        .read_for_follower(
            follower.id,
            offset,
            follower.log_start_offset,
            max_bytes,
            crate::shard::now_ms(),
        )
        .await;
    if let (Some(key), Some(Ok(slice))) = (traced, &read) {
        let (bytes, next) = (slice.bytes as i64, slice.next_offset);
        crate::metrics::stage_trace::mark("fr", key, follower.id as i64, bytes, next);
    }
    match read {
        // Not one of this partition's replicas (or it has none here): Kafka's answer.
        None => PartitionRead::error(ResponseError::NotLeaderOrFollower.code()),
        Some(Ok(slice)) => PartitionRead {
            error_code: 0,
            high_watermark: slice.high_watermark,
            last_stable_offset: slice.last_stable_offset,
            log_start_offset: slice.log_start_offset,
            regions: slice.regions,
            bytes: slice.bytes,
            aborted_transactions: None,
            progress,
        },
        Some(Err(e)) => PartitionRead {
            progress,
            high_watermark: p.high_watermark(),
            log_start_offset: p.log_start_offset(),
            ..PartitionRead::error(e.kafka_error_code())
        },
    }
}

async fn read_local(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    isolation: Isolation,
) -> PartitionRead {
    let p = match led_partition(shard, topic, partition) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let progress = p.fetch_progress(false);
    match p.read(offset, max_bytes, isolation).await {
        Ok(slice) => PartitionRead {
            error_code: 0,
            high_watermark: slice.high_watermark,
            last_stable_offset: slice.last_stable_offset,
            log_start_offset: slice.log_start_offset,
            regions: slice.regions,
            bytes: slice.bytes,
            aborted_transactions: (isolation == Isolation::ReadCommitted).then(|| {
                slice
                    .aborted_transactions
                    .iter()
                    .map(|a| (a.producer_id, a.first_offset))
                    .collect()
            }),
            progress,
        },
        Err(e) => PartitionRead {
            error_code: e.kafka_error_code(),
            high_watermark: p.high_watermark(),
            last_stable_offset: p.last_stable_offset(),
            log_start_offset: p.log_start_offset(),
            regions: Vec::new(),
            bytes: 0,
            aborted_transactions: None,
            progress,
        },
    }
}

