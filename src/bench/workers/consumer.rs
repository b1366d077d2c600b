//! The benchmark's consumer threads: one Fetch per partition leader per round, pipelined,
//! then the answers in order; in e2e mode each record's latency is receive time minus the
//! send time stamped in its value, otherwise the fetch round trip.
//!
//! Must not: commit offsets or join groups; positions live in the plan only.

use super::Counters;
use super::WorkerResult;
use crate::bench::batch::summarize_fetched;
use crate::bench::slow_log::SlowRecord;
use crate::bench::stats::Recorder;
use crate::bench::{BenchConfig, Mode};
use crate::client::{Client, ClientError, ConsumerConfig};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    fetch_response::PartitionData,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What one consumer thread does.
pub struct ConsumerPlan {
    pub topic: String,
    /// (partition, first offset, end offset: stop there; None = run until told)
    pub partitions: Vec<(i32, i64, Option<i64>)>,
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    pub fetch: ConsumerConfig,
}

/// Runs one consumer; in e2e mode records receive time − send time per record, otherwise the
/// fetch round trip per request.
pub fn run_consumer(
    config: &BenchConfig,
    plan: ConsumerPlan,
    start: Instant,
    counters: &Counters,
) -> WorkerResult {
    let mut recorder = Recorder::new(start);
    let error = consume_loop(config, &plan, start, counters, &mut recorder).err();
    if error.is_some() {
        counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    WorkerResult { recorder, error }
}

/// How long e2e consumers keep reading after the producers stop, for stragglers.
const E2E_DRAIN: Duration = Duration::from_secs(10);

/// (partition, position, end offset) of the partitions one leader serves.
type LeaderParts = Vec<(i32, i64, Option<i64>)>;

fn consume_loop(
    config: &BenchConfig,
    plan: &ConsumerPlan,
    start: Instant,
    counters: &Counters,
    recorder: &mut Recorder,
) -> Result<(), String> {
    let e2e = config.mode == Mode::E2e;
    let mut client = config.connect().map_err(|e| e.to_string())?;
    let mut by_leader: BTreeMap<i32, LeaderParts> = BTreeMap::new();
    for &(p, from, end) in &plan.partitions {
        let leader = client
            .leader_for(&plan.topic, p)
            .map_err(|e| e.to_string())?;
        by_leader.entry(leader).or_default().push((p, from, end));
    }
    let mut consumed: u64 = 0;
    let mut drain_until: Option<Instant> = None;
    while !finished(plan, counters, &by_leader, consumed, e2e, &mut drain_until)? {
        let round = FetchRound {
            plan,
            start,
            counters,
            e2e,
        };
        consumed += round.run(&mut client, &mut by_leader, recorder)?;
    }
    Ok(())
}

/// True when this consumer should stop: aborted, its budget or deadline reached, every
/// partition at its end, or (e2e) everything produced has arrived. Errs when e2e records
/// are still missing `E2E_DRAIN` after the producers stopped.
fn finished(
    plan: &ConsumerPlan,
    counters: &Counters,
    by_leader: &BTreeMap<i32, LeaderParts>,
    consumed: u64,
    e2e: bool,
    drain_until: &mut Option<Instant>,
) -> Result<bool, String> {
    if counters.abort.load(Ordering::Relaxed) {
        return Ok(true);
    }
    let now = Instant::now();
    if plan.records.is_some_and(|n| consumed >= n) || plan.deadline.is_some_and(|d| now >= d) {
        return Ok(true);
    }
    let all_at_end = by_leader
        .values()
        .flatten()
        .all(|(_, pos, end)| end.is_some_and(|e| *pos >= e));
    if all_at_end {
        return Ok(true);
    }
    if e2e && counters.producers_done.load(Ordering::Relaxed) {
        let produced = counters.produced_records.load(Ordering::Relaxed);
        if counters.consumed_records.load(Ordering::Relaxed) >= produced {
            return Ok(true);
        }
        let until = *drain_until.get_or_insert(now + E2E_DRAIN);
        if now >= until {
            return Err(format!(
                "e2e: {} of {produced} records arrived within {} s after the producers stopped",
                counters.consumed_records.load(Ordering::Relaxed),
                E2E_DRAIN.as_secs()
            ));
        }
    }
    Ok(false)
}

/// When one fetch was sent and its answer read.
#[derive(Clone, Copy)]
struct AnswerTimes {
    sent_at: Instant,
    received_at: Instant,
}

/// One round of fetches: what it needs besides the client, the positions and the recorder.
struct FetchRound<'a> {
    plan: &'a ConsumerPlan,
    start: Instant,
    counters: &'a Counters,
    e2e: bool,
}

impl FetchRound<'_> {
    /// One Fetch per leader, all pipelined, then the answers in order. Returns the records
    /// consumed.
    fn run(
        &self,
        client: &mut Client,
        by_leader: &mut BTreeMap<i32, LeaderParts>,
        recorder: &mut Recorder,
    ) -> Result<u64, String> {
        let leaders: Vec<i32> = by_leader.keys().copied().collect();
        let mut sent = Vec::new();
        for leader in &leaders {
            let parts = &by_leader[leader];
            let request = fetch_for(&self.plan.topic, parts, &self.plan.fetch);
            let conn = client
                .broker_connection(*leader)
                .map_err(|e| e.to_string())?;
            conn.send(&request).map_err(|e| e.to_string())?;
            sent.push((*leader, Instant::now()));
        }
        let mut consumed = 0;
        for (leader, sent_at) in sent {
            let conn = client
                .broker_connection(leader)
                .map_err(|e| e.to_string())?;
            let (_, response) = conn.receive::<FetchRequest>().map_err(|e| e.to_string())?;
            let received_at = Instant::now();
            if !self.e2e {
                recorder.record_n(received_at, received_at - sent_at, 1);
            }
            let parts = by_leader.get_mut(&leader).ok_or("unknown leader")?;
            let times = AnswerTimes {
                sent_at,
                received_at,
            };
            consumed += self.apply(&response, parts, times, recorder)?;
        }
        Ok(consumed)
    }

    /// Advances positions past the batches in one answer, records e2e latencies and counts.
    fn apply(
        &self,
        response: &FetchResponse,
        parts: &mut LeaderParts,
        times: AnswerTimes,
        recorder: &mut Recorder,
    ) -> Result<u64, String> {
        let mut consumed = 0;
        for topic in &response.responses {
            for pd in &topic.partitions {
                consumed += self.apply_partition(pd, parts, times, recorder)?;
            }
        }
        Ok(consumed)
    }

    fn apply_partition(
        &self,
        pd: &PartitionData,
        parts: &mut LeaderParts,
        times: AnswerTimes,
        recorder: &mut Recorder,
    ) -> Result<u64, String> {
        let received_at = times.received_at;
        if let Some(err) = ClientError::from_code(
            pd.error_code,
            format!("fetch partition {}", pd.partition_index),
            None,
        ) {
            return Err(err.to_string());
        }
        let Some(entry) = parts.iter_mut().find(|(p, ..)| *p == pd.partition_index) else {
            return Ok(0);
        };
        let Some(records) = &pd.records else {
            return Ok(0);
        };
        let now_ns = received_at.saturating_duration_since(self.start).as_nanos() as u64;
        let fetch_sent_ns = times
            .sent_at
            .saturating_duration_since(self.start)
            .as_nanos() as u64;
        let slow_log = self.counters.slow_log.as_ref();
        let summary = summarize_fetched(records, entry.1, self.e2e, |sent_ns| {
            let latency = Duration::from_nanos(now_ns.saturating_sub(sent_ns));
            recorder.record_n(received_at, latency, 1);
            if let Some(log) = slow_log {
                log.note_record(SlowRecord {
                    intended_ns: sent_ns,
                    fetch_sent_ns,
                    received_ns: now_ns,
                });
            }
        })?;
        if let Some(next) = summary.next_offset {
            entry.1 = entry.1.max(next);
        } else if !records.is_empty() {
            return Err(format!(
                "fetch partition {} at {}: one batch exceeds the {} bytes returned; \
                 raise --fetch-partition-max-bytes",
                pd.partition_index,
                entry.1,
                records.len()
            ));
        }
        let counters = self.counters;
        if summary.records > 0 {
            let at = received_at.saturating_duration_since(self.start).as_nanos() as u64;
            counters.last_consumed_ns.fetch_max(at, Ordering::Relaxed);
        }
        counters
            .consumed_records
            .fetch_add(summary.records, Ordering::Relaxed);
        counters
            .consumed_payload_bytes
            .fetch_add(summary.payload_bytes, Ordering::Relaxed);
        counters
            .consumed_batch_bytes
            .fetch_add(summary.batch_bytes, Ordering::Relaxed);
        Ok(summary.records)
    }
}

fn fetch_for(
    topic: &str,
    parts: &[(i32, i64, Option<i64>)],
    config: &ConsumerConfig,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(config.isolation_level)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, offset, _)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*offset)
                                .with_partition_max_bytes(config.partition_max_bytes)
                        })
                        .collect(),
                ),
        ])
}
