//! Retention under load (issue 7): a topic with tiny segments and small retention.bytes /
//! retention.ms is written continuously. A reader that fell behind must get
//! OFFSET_OUT_OF_RANGE (1) once its segments are deleted — never a crash, a wrong record or
//! a gap inside what it is served — and can resume from the new log start; a reader that
//! keeps up reads every record correctly throughout.
//!
//! Record `i` of the topic has value `rec-<i>` (one producer, so offsets are known), which
//! lets readers check every record they are served without coordination.
//! Default: `DURATION_DEFAULT`; `SLUICE_LONG_TESTS=1`: `DURATION_LONG`.

mod reliability;
mod support;

use reliability::{ERROR_OFFSET_OUT_OF_RANGE, RawConn, batch, split_batches};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};
use support::Broker;

const TOPIC: &str = "retention-load";
const SEGMENT_BYTES: &str = "4096";
const RETENTION_BYTES: &str = "32768";
const RETENTION_MS: &str = "3000";
const RETENTION_CHECK_INTERVAL_MS: u64 = 100;
const DURATION_DEFAULT: Duration = Duration::from_secs(8);
const DURATION_LONG: Duration = Duration::from_secs(90);
const RECORDS_PER_BATCH: i64 = 5;
const VALUE_BYTES: usize = 100;
/// The lagging reader reads small chunks slowly, so it reads records for a while and then
/// falls behind retention; the current reader reads big chunks without pausing.
const LAGGING_READER: (Duration, i32) = (Duration::from_millis(150), 2048);
const CURRENT_READER: (Duration, i32) = (Duration::ZERO, 256 * 1024);
const PRODUCER_PAUSE: Duration = Duration::from_millis(3);
const LIST_OFFSETS_EARLIEST: i64 = -2;

fn value(offset: i64) -> Vec<u8> {
    let mut v = format!("rec-{offset}|").into_bytes();
    v.resize(VALUE_BYTES, b'.');
    v
}

/// Checks one fetch answer; returns the next offset to read.
fn check_records(bytes: bytes::Bytes, from: i64, who: &str) -> Result<i64, String> {
    let batches = split_batches(bytes).map_err(|e| format!("{who}: {e}"))?;
    let mut next = from;
    for b in batches {
        for (o, _, v) in b.records {
            if o < from {
                continue;
            }
            if o != next {
                return Err(format!("{who}: expected offset {next}, served {o}"));
            }
            if v.as_deref() != Some(value(o).as_slice()) {
                return Err(format!("{who}: wrong record at {o}"));
            }
            next = o + 1;
        }
    }
    Ok(next)
}

#[derive(Debug, Default)]
struct ReaderReport {
    records: i64,
    out_of_range: usize,
    errors: Vec<String>,
}

fn reader(
    bootstrap: &str,
    stop: &AtomicBool,
    (pause, max_bytes): (Duration, i32),
    who: &str,
) -> ReaderReport {
    let mut report = ReaderReport::default();
    let mut conn = match RawConn::connect(bootstrap) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("{who}: {e}"));
            return report;
        }
    };
    let mut offset = 0i64;
    while !stop.load(Ordering::Relaxed) {
        match conn.fetch(TOPIC, 0, offset, max_bytes) {
            Ok((0, _, _, bytes)) => match check_records(bytes, offset, who) {
                Ok(next) => {
                    report.records += next - offset;
                    offset = next;
                }
                Err(e) => {
                    report.errors.push(e);
                    return report;
                }
            },
            Ok((ERROR_OFFSET_OUT_OF_RANGE, _, log_start, _)) => {
                report.out_of_range += 1;
                // Resume from the earliest offset still present, as auto.offset.reset=earliest.
                match conn.list_offsets(TOPIC, 0, LIST_OFFSETS_EARLIEST) {
                    Ok((0, earliest, _)) if earliest > offset => offset = earliest,
                    Ok((0, earliest, _)) => {
                        report.errors.push(format!(
                            "{who}: OFFSET_OUT_OF_RANGE at {offset} but earliest is {earliest} \
                             (fetch said log start {log_start})"
                        ));
                        return report;
                    }
                    other => {
                        report
                            .errors
                            .push(format!("{who}: ListOffsets earliest: {other:?}"));
                        return report;
                    }
                }
            }
            Ok((code, ..)) => {
                report
                    .errors
                    .push(format!("{who}: fetch at {offset}: error {code}"));
                return report;
            }
            Err(e) => {
                report.errors.push(format!("{who}: fetch at {offset}: {e}"));
                return report;
            }
        }
        std::thread::sleep(pause);
    }
    report
}

#[test]
fn lagging_reader_gets_offset_out_of_range_and_current_reader_stays_correct() {
    let mut broker = Broker::start_with_config(
        &format!("log_retention_check_interval_ms = {RETENTION_CHECK_INTERVAL_MS}\n"),
        &[],
    );
    let bootstrap = broker.bootstrap();
    let mut conn = RawConn::connect(&bootstrap).expect("connect");
    conn.create_topic(
        TOPIC,
        1,
        &[
            ("segment.bytes", SEGMENT_BYTES),
            ("retention.bytes", RETENTION_BYTES),
            ("retention.ms", RETENTION_MS),
        ],
    )
    .expect("create topic");
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicI64::new(0));
    let producer = {
        let (stop, produced, bootstrap) = (stop.clone(), produced.clone(), bootstrap.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let mut conn = RawConn::connect(&bootstrap)?;
            let mut next = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<Vec<u8>> = (next..next + RECORDS_PER_BATCH).map(value).collect();
                let (code, base) =
                    conn.produce(TOPIC, 0, batch(&values, None, reliability::now_ms()), -1)?;
                if code != 0 || base != next {
                    return Err(format!("produce at {next}: error {code}, base {base}"));
                }
                next += RECORDS_PER_BATCH;
                produced.store(next, Ordering::Relaxed);
                std::thread::sleep(PRODUCER_PAUSE);
            }
            Ok(())
        })
    };
    let readers: Vec<_> = [("lagging", LAGGING_READER), ("current", CURRENT_READER)]
        .into_iter()
        .map(|(who, pause)| {
            let (stop, bootstrap) = (stop.clone(), bootstrap.clone());
            std::thread::spawn(move || reader(&bootstrap, &stop, pause, who))
        })
        .collect();
    let duration = if reliability::long_mode() {
        DURATION_LONG
    } else {
        DURATION_DEFAULT
    };
    let started = Instant::now();
    while started.elapsed() < duration && reliability::alive(&mut broker) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let produce_result = producer.join().expect("producer");
    let reports: Vec<ReaderReport> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    let alive = reliability::alive(&mut broker);
    let (code, log_start, _) = conn
        .list_offsets(TOPIC, 0, LIST_OFFSETS_EARLIEST)
        .unwrap_or((-1, -1, -1));
    eprintln!(
        "retention under load: {} records produced, log start now {log_start} (code {code}); \
         lagging reader: {:?}; current reader: {:?}",
        produced.load(Ordering::Relaxed),
        reports[0],
        reports[1]
    );
    assert!(alive, "the broker died during retention under load");
    produce_result.unwrap_or_else(|e| panic!("producer: {e}"));
    assert!(
        log_start > 0,
        "retention deleted nothing (log start {log_start})"
    );
    for r in &reports {
        assert!(r.errors.is_empty(), "reader errors: {:?}", r.errors);
    }
    assert!(
        reports[0].out_of_range > 0,
        "the lagging reader never got OFFSET_OUT_OF_RANGE"
    );
    assert!(reports[1].records > 0, "the current reader read nothing");
}
