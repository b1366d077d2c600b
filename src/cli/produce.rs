//! `sluice produce TOPIC`: one record per stdin line, batched for throughput, flushed at
//! EOF. Every record that fails is reported on stderr; the exit code is non-zero if any did.
//!
//! Must not: drop a line silently or stop at the first failed record.

use super::DEFAULT_BOOTSTRAP_SERVER;
use super::topic::parse_key_value;
use crate::client::{
    Acks, Client, Compression, FlushReport, Producer, ProducerConfig, ProducerRecord,
    parse_compression,
};
use bytes::Bytes;
use clap::Args;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

/// Lines read ahead of the producer; bounds memory when stdin is faster than the broker.
const LINE_QUEUE_DEPTH: usize = 10_000;
/// Default batch size per partition for the CLI.
const CLI_BATCH_BYTES_MAX: usize = 512 * 1024;
/// Default linger for the CLI: interactive lines go out promptly.
const CLI_LINGER_MS: u64 = 10;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    #[arg(long, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    /// Split each line into KEY and VALUE at the first occurrence of SEP.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Send every record to this partition instead of using the partitioner.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Header KEY=VALUE added to every record (repeatable).
    #[arg(long = "header", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Deliver every record this long after the broker receives it (delayed delivery, e.g.
    /// 30s, 500ms, 5m): sets the `sluice.delay.ms` header.
    #[arg(long, value_parser = parse_delay)]
    pub delay: Option<u64>,
    /// Send a partition's batch once it holds this many bytes.
    #[arg(long, default_value_t = CLI_BATCH_BYTES_MAX)]
    pub batch_bytes_max: usize,
    /// Send a partial batch once its oldest line waited this long.
    #[arg(long, default_value_t = CLI_LINGER_MS)]
    pub linger_ms: u64,
}

/// A `--delay` as whole milliseconds.
fn parse_delay(s: &str) -> Result<u64, String> {
    let delay = crate::cli::bench::parse_duration(s)?;
    u64::try_from(delay.as_millis()).map_err(|_| format!("delay `{s}` is too long"))
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
}

/// Splits a line into (key, value) at the first `separator`; `None` if it does not occur.
pub fn split_key(line: &[u8], separator: &[u8]) -> Option<(Bytes, Bytes)> {
    if separator.is_empty() || line.len() < separator.len() {
        return None;
    }
    let at = line.windows(separator.len()).position(|w| w == separator)?;
    Some((
        Bytes::copy_from_slice(&line[..at]),
        Bytes::copy_from_slice(&line[at + separator.len()..]),
    ))
}

/// Checks the flags, connects, and fails fast (one line) if the topic or the requested
/// partition does not exist, before any input is read.
fn open_producer(args: &ProduceArgs) -> Result<Producer, String> {
    if let Some(sep) = &args.key_separator
        && sep.is_empty()
    {
        return Err("--key-separator must not be empty".to_string());
    }
    if args.batch_bytes_max == 0 {
        return Err("--batch-bytes-max must be at least 1".to_string());
    }
    let client = Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
        .map_err(|e| e.to_string())?;
    let config = ProducerConfig {
        acks: args.acks,
        compression: args.compression,
        batch_bytes_max: args.batch_bytes_max,
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(client, config);
    producer
        .client()
        .topic(&args.topic, true)
        .map_err(|e| e.to_string())?;
    if let Some(p) = args.partition {
        let count = producer
            .client()
            .topic(&args.topic, false)
            .map_err(|e| e.to_string())?
            .partitions
            .len();
        if p < 0 || p as usize >= count {
            return Err(format!(
                "topic `{}` has no partition {p} (it has {count})",
                args.topic
            ));
        }
    }
    Ok(producer)
}

pub fn run(args: ProduceArgs) -> Result<(), String> {
    let mut producer = open_producer(&args)?;

    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(LINE_QUEUE_DEPTH);
    std::thread::spawn(move || read_lines(tx));

    let mut headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(Bytes::from(v.clone()))))
        .collect();
    if let Some(delay_ms) = args.delay {
        let key = String::from_utf8_lossy(crate::delay::DELAY_HEADER).into_owned();
        headers.push((key, Some(Bytes::from(delay_ms.to_string()))));
    }
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut outcome = Outcome::default();
    let mut line_no: u64 = 0;
    loop {
        let line = match rx.recv_timeout(Duration::from_millis(args.linger_ms.max(1))) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                outcome.add(producer.flush());
                outcome.report();
                return Err(format!("reading stdin after line {line_no}: {e}"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                outcome.add(producer.poll());
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        line_no += 1;
        outcome.total += 1;
        let (key, value) = match separator {
            Some(sep) => match split_key(&line, sep) {
                Some((k, v)) => (Some(k), v),
                None => {
                    outcome.failed += 1;
                    eprintln!(
                        "sluice: line {line_no}: no key separator `{}` found; record not sent",
                        String::from_utf8_lossy(sep)
                    );
                    continue;
                }
            },
            None => (None, Bytes::from(line)),
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value: Some(value),
            headers: headers.clone(),
            timestamp_ms: None,
        };
        match producer.send(record, line_no) {
            Ok(report) => outcome.add(report),
            Err(e) => {
                outcome.failed += 1;
                eprintln!("sluice: line {line_no}: {e}");
            }
        }
        outcome.add(producer.poll());
    }
    outcome.add(producer.flush());
    outcome.report();
    if outcome.failed > 0 {
        return Err(format!(
            "{} of {} record(s) failed",
            outcome.failed, outcome.total
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Outcome {
    total: u64,
    failed: u64,
    failures: Vec<(u64, String)>,
}

impl Outcome {
    fn add(&mut self, report: FlushReport) {
        for f in report.failures {
            self.failed += 1;
            self.failures.push((f.tag, f.error.to_string()));
        }
        self.report();
    }

    /// Prints failures as they are learnt, in line order.
    fn report(&mut self) {
        self.failures.sort_by_key(|(tag, _)| *tag);
        for (tag, error) in self.failures.drain(..) {
            eprintln!("sluice: line {tag}: {error}");
        }
    }
}

/// Reads stdin line by line (bytes, not necessarily UTF-8), dropping the terminator.
fn read_lines(tx: mpsc::SyncSender<std::io::Result<Vec<u8>>>) {
    let stdin = std::io::stdin();
    let mut reader = stdin.lock();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if tx.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_split_at_the_first_separator_only() {
        let (k, v) = split_key(b"user1:hello:world", b":").expect("has separator");
        assert_eq!(&k[..], b"user1");
        assert_eq!(&v[..], b"hello:world");
        let (k, v) = split_key(b"a::b", b"::").expect("multi-byte separator");
        assert_eq!((&k[..], &v[..]), (&b"a"[..], &b"b"[..]));
        let (k, v) = split_key(b":v", b":").expect("empty key");
        assert_eq!((&k[..], &v[..]), (&b""[..], &b"v"[..]));
        assert!(split_key(b"novalue", b":").is_none());
    }

    #[test]
    fn acks_accepts_only_kafka_values() {
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert!(parse_acks("2").is_err());
        assert!(parse_acks("yes").is_err());
    }

    #[test]
    fn compression_names_match_kafka() {
        assert_eq!(parse_compression("zstd"), Ok(Compression::Zstd));
        assert_eq!(parse_compression("lz4"), Ok(Compression::Lz4));
        assert!(parse_compression("brotli").is_err());
    }
}
