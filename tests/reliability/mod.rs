//! Shared helpers of the reliability tests (issue 7): Kafka operations on the raw, fallible
//! connection of `support::wire` (errors are values: the broker under test may be killed at
//! any moment), idempotent record batches, partition reads that keep batch boundaries, and small process probes.
//!
//! Must not: hide a broker failure (every error is returned with context, never retried
//! silently), or use broker internals beyond the public wire protocol.
#![allow(dead_code)]

pub mod fuzz_inputs;

pub use crate::support::wire::{RawConn, produce_request, topic_name};

use crate::support::wire::{encode_batch, plain_record};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchRequest, InitProducerIdRequest,
    ListOffsetsRequest,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Versions used: old enough to address topics by name, new enough for RecordBatch v2.
pub const PRODUCE_VERSION: i16 = 7;
pub const FETCH_VERSION: i16 = 11;
pub const LIST_OFFSETS_VERSION: i16 = 4;
pub const INIT_PRODUCER_ID_VERSION: i16 = 1;
pub const CREATE_TOPICS_VERSION: i16 = 4;
/// How long a new topic may take to accept produce requests.
pub const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);

pub const ERROR_NONE: i16 = 0;
pub const ERROR_OFFSET_OUT_OF_RANGE: i16 = 1;
pub const ERROR_KAFKA_STORAGE: i16 = 56;

/// Offset of `lastOffsetDelta` inside a batch (after base offset, length, epoch, magic, crc, attributes).
const LAST_OFFSET_DELTA_AT: usize = 23;
/// Base offset + batch length prefix.
const BATCH_PREFIX_BYTES: usize = 12;

pub fn long_mode() -> bool {
    std::env::var("SLUICE_LONG_TESTS").is_ok_and(|v| v == "1")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The Kafka operations the reliability tests use, on the shared raw connection.
impl RawConn {
    pub fn api_versions_ok(&mut self) -> Result<(), String> {
        let r = self.try_call(&ApiVersionsRequest::default(), 0)?;
        if r.error_code != 0 || r.api_keys.is_empty() {
            return Err(format!("ApiVersions error {}", r.error_code));
        }
        Ok(())
    }

    /// (producer id, epoch) for an idempotent (non-transactional) producer.
    pub fn init_producer_id(&mut self) -> Result<(i64, i16), String> {
        let r = self.try_call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1),
            INIT_PRODUCER_ID_VERSION,
        )?;
        if r.error_code != 0 {
            return Err(format!("InitProducerId error {}", r.error_code));
        }
        Ok((r.producer_id.0, r.producer_epoch))
    }

    /// Produce one batch; returns (error code, base offset).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<(i16, i64), String> {
        let request = produce_request(topic, partition, batch, acks);
        let r = self.try_call(&request, PRODUCE_VERSION)?;
        let p = r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or("produce response without a partition")?;
        Ok((p.error_code, p.base_offset))
    }

    /// One Fetch of one partition: (error code, high watermark, log start, record bytes).
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> Result<(i16, i64, i64, Bytes), String> {
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(max_bytes),
                    ]),
            ]);
        let r = self.try_call(&request, FETCH_VERSION)?;
        if r.error_code != 0 {
            return Err(format!("fetch top-level error {}", r.error_code));
        }
        let p = r
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("fetch response without a partition")?;
        Ok((
            p.error_code,
            p.high_watermark,
            p.log_start_offset,
            p.records.clone().unwrap_or_default(),
        ))
    }

    /// ListOffsets for one partition: (error code, offset, timestamp).
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i16, i64, i64), String> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let r = self.try_call(&request, LIST_OFFSETS_VERSION)?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("list offsets response without a partition")?;
        Ok((p.error_code, p.offset, p.timestamp))
    }

    /// Creates a topic (configs as Kafka names them) and waits until it accepts fetches.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), String> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let r = self.try_call(
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000),
            CREATE_TOPICS_VERSION,
        )?;
        let code = r.topics.first().map(|t| t.error_code).unwrap_or(-1);
        if code != 0 && code != 36 {
            return Err(format!("create topic {name}: error {code}"));
        }
        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        for p in 0..partitions {
            loop {
                let (code, ..) = self.fetch(name, p, 0, 1024)?;
                if code == 0 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("topic {name}-{p} not ready: fetch error {code}"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// A RecordBatch v2; `producer` = Some((id, epoch, base sequence)) makes it idempotent.
/// Record i gets timestamp `timestamp_base + i`.
pub fn batch(values: &[Vec<u8>], producer: Option<(i64, i16, i32)>, timestamp_base: i64) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence: if producer.is_some() {
                seq + i as i32
            } else {
                -1
            },
            ..plain_record(i as i64, timestamp_base + i as i64, Bytes::from(v.clone()))
        })
        .collect();
    encode_batch(&records).freeze()
}

/// One batch as read back: its offset range and its records (offset, timestamp, value).
#[derive(Debug, Clone)]
pub struct ReadBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub records: Vec<(i64, i64, Option<Bytes>)>,
}

/// Splits fetched record bytes into complete batches (a trailing partial batch is dropped,
/// as a client would). A batch that does not decode (CRC, framing) is an error.
pub fn split_batches(mut records: Bytes) -> Result<Vec<ReadBatch>, String> {
    let mut out = Vec::new();
    while records.len() >= BATCH_PREFIX_BYTES {
        let base = i64::from_be_bytes(records[0..8].try_into().map_err(|_| "short")?);
        let len = i32::from_be_bytes(records[8..12].try_into().map_err(|_| "short")?);
        if len < 0 {
            return Err(format!("batch at {base}: negative length {len}"));
        }
        let whole = BATCH_PREFIX_BYTES + len as usize;
        if records.len() < whole {
            break;
        }
        let mut one = records.split_to(whole);
        if whole < LAST_OFFSET_DELTA_AT + 4 {
            return Err(format!("batch at {base}: only {whole} bytes"));
        }
        let delta = i32::from_be_bytes(
            one[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .map_err(|_| "short")?,
        );
        let set = RecordBatchDecoder::decode(&mut one)
            .map_err(|e| format!("batch at {base} does not decode: {e}"))?;
        out.push(ReadBatch {
            base_offset: base,
            last_offset: base + delta as i64,
            records: set
                .records
                .into_iter()
                .map(|r| (r.offset, r.timestamp, r.value))
                .collect(),
        });
    }
    let _ = records.remaining();
    Ok(out)
}

/// Every batch of a partition from `from` up to the high watermark, with gap-free offsets
/// checked. Returns (batches, high watermark, log start offset).
pub fn read_all(
    conn: &mut RawConn,
    topic: &str,
    partition: i32,
    from: i64,
) -> Result<(Vec<ReadBatch>, i64, i64), String> {
    let mut out: Vec<ReadBatch> = Vec::new();
    let mut offset = from;
    let (code, hw, lso, _) = conn.fetch(topic, partition, offset, 1)?;
    if code != 0 {
        return Err(format!(
            "{topic}-{partition} fetch at {offset}: error {code}"
        ));
    }
    while offset < hw {
        let (code, _, _, bytes) = conn.fetch(topic, partition, offset, 1 << 20)?;
        if code != 0 {
            return Err(format!(
                "{topic}-{partition} fetch at {offset}: error {code}"
            ));
        }
        let batches = split_batches(bytes)?;
        if batches.is_empty() {
            return Err(format!(
                "{topic}-{partition} fetch at {offset} < hw {hw}: no batch"
            ));
        }
        for b in batches {
            if b.last_offset < offset {
                continue;
            }
            if let Some(prev) = out.last()
                && b.base_offset != prev.last_offset + 1
            {
                return Err(format!(
                    "{topic}-{partition}: batch {}..={} follows {}..={} (gap or overlap)",
                    b.base_offset, b.last_offset, prev.base_offset, prev.last_offset
                ));
            }
            offset = b.last_offset + 1;
            out.push(b);
        }
    }
    Ok((out, hw, lso))
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Writes a TOML config file into `dir` and returns its path, for `--config`.
pub fn write_config(dir: &std::path::Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("sluice-test.toml");
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// (Re)starts `broker` on its data directory and ports with stdout and stderr appended to
/// `log_path` (the support helper discards them), and waits until it listens. Returns false
/// if the process exited instead (its output is in `log_path`).
pub fn spawn_logged(broker: &mut crate::support::Broker, log_path: &std::path::Path) -> bool {
    use std::process::{Command, Stdio};
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()))
    };
    let child = Command::new(crate::support::sluice_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", broker.port))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{}", broker.admin_port))
        .args(&broker.extra_args)
        .env_remove("NOTIFY_SOCKET")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(open()))
        .stderr(Stdio::from(open()))
        .spawn()
        .expect("spawn sluice serve");
    broker.child = Some(child);
    let deadline = Instant::now() + crate::support::BROKER_START_TIMEOUT;
    let addr: std::net::SocketAddr = broker.bootstrap().parse().expect("addr");
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if let Some(child) = broker.child.as_mut()
            && let Ok(Some(_)) = child.try_wait()
        {
            broker.child = None;
            return false;
        }
        assert!(Instant::now() < deadline, "broker did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True if the broker process is still running.
pub fn alive(broker: &mut crate::support::Broker) -> bool {
    broker
        .child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}
