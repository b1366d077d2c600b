//! Measurement for `sluice bench`: latency histograms (HdrHistogram, with one histogram per
//! one-second interval for the HdrHistogram log), process CPU time (getrusage for the
//! harness, /proc/PID/stat for a broker) and a broker's peak RSS (/proc/PID/status VmHWM).
//!
//! Must not: send requests or decide what to measure; workers call `Recorder::record*`.

use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Latency range the histograms cover, in microseconds: 1 µs to 10 minutes.
pub const LATENCY_US_MAX: u64 = 600_000_000;
/// HdrHistogram precision (significant decimal digits).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Length of one interval in the HdrHistogram log and the throughput timeline.
pub const INTERVAL: Duration = Duration::from_secs(1);

pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds (1 <= low, high >= 2 * low, digits <= 5): cannot fail.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// One worker's latencies: a total and one histogram per interval since `start`.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    pub total: Histogram<u64>,
    pub intervals: Vec<Histogram<u64>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            total: new_histogram(),
            intervals: Vec::new(),
        }
    }

    /// Records `count` samples of `latency` observed at `at`.
    pub fn record_n(&mut self, at: Instant, latency: Duration, count: u64) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.total.saturating_record_n(us, count);
        let index =
            (at.saturating_duration_since(self.start).as_nanos() / INTERVAL.as_nanos()) as usize;
        while self.intervals.len() <= index {
            self.intervals.push(new_histogram());
        }
        if let Some(h) = self.intervals.get_mut(index) {
            h.saturating_record_n(us, count);
        }
    }

    /// Adds another worker's samples.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.total.add(&other.total);
        while self.intervals.len() < other.intervals.len() {
            self.intervals.push(new_histogram());
        }
        for (mine, theirs) in self.intervals.iter_mut().zip(&other.intervals) {
            let _ = mine.add(theirs);
        }
    }
}

/// CPU seconds (user + system) this process has used so far, all threads.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass it.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU seconds (utime + stime, all threads) of process `pid`, from /proc/PID/stat.
pub fn process_cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_stat_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / clock_ticks_per_second())
        .ok_or_else(|| format!("{path}: unexpected format"))
}

/// utime + stime in clock ticks from the text of /proc/PID/stat. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last ')'.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Peak and current resident set size of `pid` in bytes (VmHWM, VmRSS).
pub fn process_rss_bytes(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    match (field("VmHWM:"), field("VmRSS:")) {
        (Some(peak), Some(now)) => Ok((peak, now)),
        _ => Err(format!("{path}: no VmHWM/VmRSS")),
    }
}

/// Percentiles reported in summaries and JSON.
pub const SUMMARY_PERCENTILES: &[f64] = &[50.0, 90.0, 99.0, 99.9, 99.99];
/// Points of the percentile curve in the JSON (for plots): 0 to 99.999 %.
pub const CURVE_PERCENTILES: &[f64] = &[
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0,
    98.0, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999,
];

/// A histogram summarised in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencySummary {
    /// What was measured: "produce_ack", "e2e" or "fetch_rtt".
    pub kind: String,
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
    /// (percentile, ms) pairs.
    pub curve: Vec<(f64, f64)>,
}

pub fn summarize(kind: &str, h: &Histogram<u64>) -> LatencySummary {
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |p: f64| ms(h.value_at_quantile(p / 100.0));
    LatencySummary {
        kind: kind.to_string(),
        count: h.len(),
        mean_ms: h.mean() / 1000.0,
        p50_ms: q(SUMMARY_PERCENTILES[0]),
        p90_ms: q(SUMMARY_PERCENTILES[1]),
        p99_ms: q(SUMMARY_PERCENTILES[2]),
        p999_ms: q(SUMMARY_PERCENTILES[3]),
        p9999_ms: q(SUMMARY_PERCENTILES[4]),
        max_ms: ms(h.max()),
        curve: CURVE_PERCENTILES.iter().map(|p| (*p, q(*p))).collect(),
    }
}

/// Writes `recorder`'s interval histograms as an HdrHistogram interval log (V2 compressed,
/// the format HdrHistogram's Java/Python tools and HistogramLogAnalyzer read). Values are
/// microseconds.
pub fn write_hdr_log(
    path: &std::path::Path,
    recorder: &Recorder,
    start_unix_s: f64,
    tag: &str,
) -> Result<(), String> {
    use hdrhistogram::serialization::V2DeflateSerializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    let file =
        std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment("sluice bench latency log; values in microseconds")
        .with_start_time(std::time::UNIX_EPOCH + Duration::from_secs_f64(start_unix_s))
        .with_base_time(std::time::UNIX_EPOCH + Duration::from_secs_f64(start_unix_s))
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    let tag = Tag::new(tag);
    for (i, h) in recorder.intervals.iter().enumerate() {
        writer
            .write_histogram(
                h,
                Duration::from_secs(i as u64 * INTERVAL.as_secs()),
                INTERVAL,
                tag,
            )
            .map_err(|e| format!("write {}: {e:?}", path.display()))?;
    }
    drop(writer);
    use std::io::Write;
    out.flush()
        .map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 \
                    9 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_measurable() {
        let pid = std::process::id();
        let cpu = process_cpu_seconds(pid).expect("cpu");
        assert!(cpu >= 0.0);
        let (peak, now) = process_rss_bytes(pid).expect("rss");
        assert!(peak >= now && now > 0);
    }

    #[test]
    fn recorder_keeps_intervals_and_merges() {
        let start = Instant::now();
        let mut a = Recorder::new(start);
        a.record_n(start, Duration::from_micros(100), 3);
        a.record_n(
            start + Duration::from_millis(2500),
            Duration::from_millis(5),
            1,
        );
        let mut b = Recorder::new(start);
        b.record_n(
            start + Duration::from_millis(1500),
            Duration::from_millis(1),
            1,
        );
        a.merge(&b);
        assert_eq!(a.total.len(), 5);
        assert_eq!(a.intervals.len(), 3);
        assert_eq!(a.intervals[1].len(), 1);
        let s = summarize("t", &a.total);
        assert!((s.p50_ms - 0.1).abs() < 0.001, "{s:?}");
        assert!((s.max_ms - 5.0).abs() < 0.01, "{s:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.hlog");
        write_hdr_log(&path, &a, 1_700_000_000.0, "e2e").expect("log");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("#[StartTime: 1700000000"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("Tag=e2e,")).count(),
            3
        );
    }
}
