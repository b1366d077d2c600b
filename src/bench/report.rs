//! The result of one run: throughput per side, latency summary, harness and broker CPU per
//! GB, the timeline and the errors; `--json` prints it as is, `human()` as a summary.
//!
//! Must not: print (the CLI does) or run anything; it only turns measurements into figures.

use super::stats::{self, LatencySummary, Recorder};
use super::timeline::TimelinePoint;
use super::workers::Counters;
use super::{BYTES_PER_GB, BYTES_PER_MB, BenchConfig, Mode, batch::RecordSize};
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Throughput {
    pub records: u64,
    /// Key + value bytes.
    pub payload_bytes: u64,
    /// Record batch bytes as stored by the broker.
    pub batch_bytes: u64,
    pub records_per_s: f64,
    /// Payload MB/s (1 MB = 10^6 bytes).
    pub mb_per_s: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerUsage {
    pub pid: u32,
    pub cpu_s: f64,
    /// Broker CPU seconds per GB of payload produced (produce, e2e) or fetched (consume).
    pub cpu_s_per_gb: f64,
    /// VmHWM: the broker's peak RSS since it started.
    pub peak_rss_mb: f64,
    pub rss_mb: f64,
}

/// The result of one run; `--json` prints it as is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub mode: Mode,
    pub bootstrap: String,
    pub topic: String,
    pub partitions: u32,
    pub record_size: RecordSize,
    pub rate: Option<f64>,
    pub producers: u32,
    pub consumers: u32,
    pub acks: i16,
    pub compression: String,
    pub batch_bytes: usize,
    pub max_in_flight: usize,
    /// 0: as many as the request size cap allows (the Java producer's drain).
    pub partitions_per_request: usize,
    pub idempotence: bool,
    pub fetch_max_wait_ms: i32,
    pub elapsed_s: f64,
    pub produced: Throughput,
    pub consumed: Throughput,
    pub latency: Option<LatencySummary>,
    pub harness_cpu_s: f64,
    /// Harness CPU seconds per GB of payload moved (produced + consumed).
    pub harness_cpu_s_per_gb: f64,
    pub broker: Option<BrokerUsage>,
    pub timeline: Vec<TimelinePoint>,
    pub errors: Vec<String>,
    #[serde(skip)]
    pub recorder: Option<Arc<Recorder>>,
    #[serde(skip)]
    pub start_unix_s: f64,
}

/// What a finished run measured, before `Report::assemble` turns it into figures.
pub(super) struct Measured {
    pub(super) counters: Arc<Counters>,
    /// Seconds from the start until every worker finished.
    pub(super) elapsed: f64,
    pub(super) producers_elapsed: Option<f64>,
    /// Harness CPU seconds used during the run.
    pub(super) harness_cpu: f64,
    /// Broker CPU seconds at the start, if a broker PID was given.
    pub(super) broker_cpu0: Option<f64>,
    pub(super) recorder: Recorder,
    pub(super) timeline: Vec<TimelinePoint>,
    pub(super) errors: Vec<String>,
    pub(super) start_unix_s: f64,
}

/// Rates over each side's active time: producers until the last answer, consumers until
/// the last record (not the final empty long-poll).
fn throughputs(
    counters: &Counters,
    elapsed: f64,
    producers_elapsed: Option<f64>,
) -> (Throughput, Throughput) {
    let throughput = |records: u64, payload: u64, batch: u64, secs: f64| Throughput {
        records,
        payload_bytes: payload,
        batch_bytes: batch,
        records_per_s: records as f64 / secs,
        mb_per_s: payload as f64 / secs / BYTES_PER_MB,
    };
    let last_consumed_s = counters.last_consumed_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let consumed_secs = if last_consumed_s > 0.0 {
        last_consumed_s
    } else {
        elapsed
    };
    let produced = throughput(
        counters.produced_records.load(Ordering::Relaxed),
        counters.produced_payload_bytes.load(Ordering::Relaxed),
        counters.produced_batch_bytes.load(Ordering::Relaxed),
        producers_elapsed.unwrap_or(elapsed).max(1e-9),
    );
    let consumed = throughput(
        counters.consumed_records.load(Ordering::Relaxed),
        counters.consumed_payload_bytes.load(Ordering::Relaxed),
        counters.consumed_batch_bytes.load(Ordering::Relaxed),
        consumed_secs.max(1e-9),
    );
    (produced, consumed)
}

impl Report {
    /// The report of a run of `config` that measured `m`.
    pub(super) fn assemble(config: &BenchConfig, m: Measured) -> Result<Report, String> {
        let Measured {
            counters,
            elapsed,
            producers_elapsed,
            harness_cpu,
            broker_cpu0,
            recorder,
            timeline,
            errors,
            start_unix_s,
        } = m;
        let latency_kind = match config.mode {
            Mode::Produce => "produce_ack",
            Mode::Consume => "fetch_rtt",
            Mode::E2e => "e2e",
        };
        let (produced, consumed) = throughputs(&counters, elapsed, producers_elapsed);
        let moved_gb = (produced.payload_bytes + consumed.payload_bytes) as f64 / BYTES_PER_GB;
        let broker_gb = match config.mode {
            Mode::Consume => consumed.payload_bytes,
            _ => produced.payload_bytes,
        } as f64
            / BYTES_PER_GB;
        let broker = match (config.broker_pid, broker_cpu0) {
            (Some(pid), Some(cpu0)) => {
                let cpu = stats::process_cpu_seconds(pid)? - cpu0;
                let (peak, now) = stats::process_rss_bytes(pid)?;
                Some(BrokerUsage {
                    pid,
                    cpu_s: cpu,
                    cpu_s_per_gb: per_gb(cpu, broker_gb),
                    peak_rss_mb: peak as f64 / BYTES_PER_MB,
                    rss_mb: now as f64 / BYTES_PER_MB,
                })
            }
            _ => None,
        };
        let latency =
            (!recorder.total.is_empty()).then(|| stats::summarize(latency_kind, &recorder.total));
        Ok(Report {
            mode: config.mode,
            bootstrap: config.bootstrap.clone(),
            topic: config.topic.clone(),
            partitions: config.partitions,
            record_size: config.record_size,
            rate: config.rate,
            producers: config.producers,
            consumers: config.consumers,
            acks: config.acks.wire(),
            compression: format!("{:?}", config.compression).to_lowercase(),
            batch_bytes: config.batch_bytes,
            max_in_flight: config.max_in_flight,
            partitions_per_request: config.partitions_per_request,
            idempotence: config.idempotence,
            fetch_max_wait_ms: config.fetch.max_wait_ms,
            elapsed_s: elapsed,
            produced,
            consumed,
            latency,
            harness_cpu_s: harness_cpu,
            harness_cpu_s_per_gb: per_gb(harness_cpu, moved_gb),
            broker,
            timeline,
            errors,
            recorder: Some(Arc::new(recorder)),
            start_unix_s,
        })
    }

    /// The human summary.
    pub fn human(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:?} on {} topic {} ({} partitions), records {:?}, acks {}, compression {}, \
             batch {} B, in flight {}, partitions per request {}{}",
            self.mode,
            self.bootstrap,
            self.topic,
            self.partitions,
            self.record_size,
            self.acks,
            self.compression,
            self.batch_bytes,
            self.max_in_flight,
            match self.partitions_per_request {
                0 => "up to the size cap".to_string(),
                n => n.to_string(),
            },
            if self.idempotence { ", idempotent" } else { "" }
        );
        let _ = writeln!(s, "elapsed        {:.2} s", self.elapsed_s);
        for (name, t) in [("produced", &self.produced), ("consumed", &self.consumed)] {
            if t.records > 0 {
                let _ = writeln!(
                    s,
                    "{name:<14} {} records, {:.1} MB payload: {:.0} records/s, {:.1} MB/s",
                    t.records,
                    t.payload_bytes as f64 / BYTES_PER_MB,
                    t.records_per_s,
                    t.mb_per_s
                );
            }
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                s,
                "latency ({})  p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  \
                 max {:.3}  (n={})",
                l.kind, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.p9999_ms, l.max_ms, l.count
            );
        }
        let _ = writeln!(
            s,
            "harness CPU    {:.2} s, {:.3} CPU-s/GB",
            self.harness_cpu_s, self.harness_cpu_s_per_gb
        );
        if let Some(b) = &self.broker {
            let _ = writeln!(
                s,
                "broker CPU     {:.2} s, {:.3} CPU-s/GB (pid {}), peak RSS {:.1} MB",
                b.cpu_s, b.cpu_s_per_gb, b.pid, b.peak_rss_mb
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }

    /// Writes the HdrHistogram interval log.
    pub fn write_hdr_log(&self, path: &std::path::Path) -> Result<(), String> {
        let recorder = self.recorder.as_ref().ok_or("no latency recorded")?;
        let tag = self.latency.as_ref().map_or("latency", |l| l.kind.as_str());
        stats::write_hdr_log(path, recorder, self.start_unix_s, tag)
    }
}

fn per_gb(cpu_s: f64, gb: f64) -> f64 {
    if gb > 0.0 { cpu_s / gb } else { f64::NAN }
}
