//! `sluice bench e2e --slow-log PATH`: the timeline of every slow record, to tell where its
//! time went. A record's end-to-end latency says nothing about whether the harness sent it
//! late (its producer thread woken late), the broker answered the consumer's fetch late, or
//! the consumer read the answer late; this log gives, per record at least
//! `SLOW_RECORD_MIN` late, its intended send time, when its batch was written to the
//! socket, when the fetch that brought it was sent and when its answer was read. The
//! header carries the run's start on CLOCK_MONOTONIC, the clock `perf record -k mono`
//! and `perf sched timehist` print, so a slow record can be lined up with the scheduler's
//! view of both processes.
//!
//! Must not: cost a run without `--slow-log` anything but a branch per batch and record.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Records faster than this are not logged (the p99 of a quiet 5,000 records/s run is
/// under 1 ms; the tail is what the log is for).
pub const SLOW_RECORD_MIN: Duration = Duration::from_millis(1);
/// Most batch sends kept (16 bytes each: 64 MiB): a long max-throughput run stops noting
/// sends rather than growing without bound; records sent after that are logged without
/// their send time.
pub const SLOW_LOG_SENDS_MAX: usize = 4 * 1024 * 1024;
/// Most slow records kept (32 bytes each: 32 MiB).
pub const SLOW_LOG_RECORDS_MAX: usize = 1024 * 1024;

/// One batch written to the socket: the intended send time of its first record and when the
/// write returned, in ns since the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSend {
    pub intended_ns: u64,
    pub sent_ns: u64,
}

/// One record that arrived at least `SLOW_RECORD_MIN` after its intended send time, in ns
/// since the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowRecord {
    pub intended_ns: u64,
    /// When the consumer sent the fetch whose answer held the record.
    pub fetch_sent_ns: u64,
    pub received_ns: u64,
}

/// What the workers note during a run with `--slow-log`; joined and written at the end.
#[derive(Debug, Default)]
pub struct SlowLog {
    sends: Mutex<Vec<BatchSend>>,
    records: Mutex<Vec<SlowRecord>>,
}

impl SlowLog {
    /// Notes a batch written by a producer (one lock per batch, never held across I/O).
    pub fn note_send(&self, send: BatchSend) {
        if let Ok(mut sends) = self.sends.lock()
            && sends.len() < SLOW_LOG_SENDS_MAX
        {
            sends.push(send);
        }
    }

    /// Notes a record if it was slow.
    pub fn note_record(&self, record: SlowRecord) {
        let latency = record.received_ns.saturating_sub(record.intended_ns);
        if latency < SLOW_RECORD_MIN.as_nanos() as u64 {
            return;
        }
        if let Ok(mut records) = self.records.lock()
            && records.len() < SLOW_LOG_RECORDS_MAX
        {
            records.push(record);
        }
    }

    /// The log's lines: each slow record with the send of the batch that carried it (the
    /// latest batch whose first record was due no later than it; several producers'
    /// batches interleave, so with more than one producer this is the nearest send, not
    /// necessarily its own).
    pub fn lines(&self) -> Vec<String> {
        let mut sends = self.sends.lock().map(|s| s.clone()).unwrap_or_default();
        let mut records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        sends.sort_by_key(|s| s.intended_ns);
        records.sort_by_key(|r| r.intended_ns);
        let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
        records
            .iter()
            .map(|r| {
                let carried = sends.partition_point(|s| s.intended_ns <= r.intended_ns);
                let sent = carried
                    .checked_sub(1)
                    .and_then(|i| sends.get(i))
                    .map_or_else(|| "-".to_string(), |s| us(s.sent_ns));
                format!(
                    "{} {} {} {} {}",
                    us(r.intended_ns),
                    sent,
                    us(r.fetch_sent_ns),
                    us(r.received_ns),
                    us(r.received_ns.saturating_sub(r.intended_ns)),
                )
            })
            .collect()
    }

    /// Writes the log to `path`; `start_monotonic_ns` is the run's start on CLOCK_MONOTONIC.
    pub fn write(&self, path: &std::path::Path, start_monotonic_ns: u64) -> Result<(), String> {
        let file =
            std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let header = format!(
            "# sluice bench slow records (latency >= {} ms), times in us since the start\n\
             # start_monotonic_ns {start_monotonic_ns}\n\
             # intended_us batch_sent_us fetch_sent_us received_us latency_us\n",
            SLOW_RECORD_MIN.as_millis()
        );
        let mut text = header;
        for line in self.lines() {
            text.push_str(&line);
            text.push('\n');
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("write {}: {e}", path.display()))
    }
}

/// Now on CLOCK_MONOTONIC in ns (what `std::time::Instant` reads on Linux), for the header.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we pass it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_record_is_joined_with_the_send_of_its_batch() {
        let log = SlowLog::default();
        // Batches due at 0, 200 and 400 us; the one due at 200 us left 5 ms late.
        for (intended, sent) in [(0, 10_000), (200_000, 5_200_000), (400_000, 5_300_000)] {
            log.note_send(BatchSend {
                intended_ns: intended,
                sent_ns: sent,
            });
        }
        // A fast record is not kept; the slow one is.
        log.note_record(SlowRecord {
            intended_ns: 0,
            fetch_sent_ns: 5_000,
            received_ns: 300_000,
        });
        log.note_record(SlowRecord {
            intended_ns: 200_000,
            fetch_sent_ns: 100_000,
            received_ns: 5_500_000,
        });
        assert_eq!(log.lines(), vec!["200.0 5200.0 100.0 5500.0 5300.0"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("slow.log");
        log.write(&path, 42).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("# start_monotonic_ns 42\n"), "{text}");
        assert!(
            text.ends_with("200.0 5200.0 100.0 5500.0 5300.0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_record_before_any_send_has_no_send_time() {
        let log = SlowLog::default();
        log.note_record(SlowRecord {
            intended_ns: 0,
            fetch_sent_ns: 0,
            received_ns: 2_000_000,
        });
        assert_eq!(log.lines(), vec!["0.0 - 0.0 2000.0 2000.0"]);
    }
}
