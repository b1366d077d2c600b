//! `sluice consume TOPIC`: prints records to stdout, one per line by default, in offset
//! order per partition. Starts at the end unless told otherwise (like
//! kafka-console-consumer); with `--group` joins the group and commits what it printed.
//!
//! Must not: commit an offset past a record it did not print.

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::{
    Client, ConsumedRecord, Consumer, ConsumerConfig, GroupConfig, GroupMember, HeartbeatStatus,
    OffsetSpec, StartOffset,
};
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Consecutive retriable poll failures (broker restart, leader move) tolerated before
/// giving up.
const POLL_FAILURES_MAX: u32 = 20;
/// Pause after a failed poll.
const POLL_RETRY_BACKOFF_MS: u64 = 250;
/// Longest single Fetch wait, so `--timeout-ms` and heartbeats are checked often enough.
const POLL_WAIT_MS_MAX: i32 = 500;

/// Set by SIGINT/SIGTERM: stop after the current poll, commit what was printed, leave.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    #[arg(long, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    /// Start at the earliest offset (with --group: when nothing is committed yet).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start offset: a number, `earliest` or `latest`.
    #[arg(long, value_parser = parse_start_offset, conflicts_with = "group")]
    pub offset: Option<StartOffset>,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group", value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Exit after printing this many records.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: Option<u64>,
    /// Join this consumer group and commit printed offsets.
    #[arg(long)]
    pub group: Option<String>,
    /// Exit after this many milliseconds without a record.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Output format (kcat-style): %t topic, %p partition, %o offset, %k key, %s or %v value,
    /// %T timestamp (ms), %h headers (k=v,...), %K key length, %S value length, %% percent;
    /// escapes \n \t \r \\. Default `%v\n`.
    #[arg(long, conflicts_with_all = ["print_key", "print_headers", "print_timestamp", "print_offset", "print_partition"])]
    pub format: Option<String>,
    #[arg(long)]
    pub print_key: bool,
    #[arg(long)]
    pub print_headers: bool,
    #[arg(long)]
    pub print_timestamp: bool,
    #[arg(long)]
    pub print_offset: bool,
    #[arg(long)]
    pub print_partition: bool,
}

/// Parses `--offset`: a non-negative number, `earliest` or `latest`.
pub fn parse_start_offset(s: &str) -> Result<StartOffset, String> {
    match s {
        "earliest" | "beginning" => Ok(StartOffset::Earliest),
        "latest" | "end" => Ok(StartOffset::Latest),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(StartOffset::At(o)),
            _ => Err(format!(
                "invalid offset `{s}`: expected a non-negative number, earliest or latest"
            )),
        },
    }
}

/// One piece of an output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatToken {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLength,
    Value,
    ValueLength,
    Timestamp,
    Headers,
}

/// Parses a kcat-style format string.
pub fn parse_format(format: &str) -> Result<Vec<FormatToken>, String> {
    let mut tokens = Vec::new();
    let mut literal = Vec::new();
    let mut chars = format.chars();
    let flush = |literal: &mut Vec<u8>, tokens: &mut Vec<FormatToken>| {
        if !literal.is_empty() {
            tokens.push(FormatToken::Literal(std::mem::take(literal)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let token = match chars.next() {
                    Some('t') => FormatToken::Topic,
                    Some('p') => FormatToken::Partition,
                    Some('o') => FormatToken::Offset,
                    Some('k') => FormatToken::Key,
                    Some('K') => FormatToken::KeyLength,
                    Some('s') | Some('v') => FormatToken::Value,
                    Some('S') => FormatToken::ValueLength,
                    Some('T') => FormatToken::Timestamp,
                    Some('h') => FormatToken::Headers,
                    Some('%') => {
                        literal.push(b'%');
                        continue;
                    }
                    Some(other) => {
                        return Err(format!("unknown format placeholder `%{other}`"));
                    }
                    None => return Err("format ends with a lone `%`".to_string()),
                };
                flush(&mut literal, &mut tokens);
                tokens.push(token);
            }
            '\\' => match chars.next() {
                Some('n') => literal.push(b'\n'),
                Some('t') => literal.push(b'\t'),
                Some('r') => literal.push(b'\r'),
                Some('\\') => literal.push(b'\\'),
                Some(other) => return Err(format!("unknown format escape `\\{other}`")),
                None => return Err("format ends with a lone `\\`".to_string()),
            },
            other => {
                let mut buf = [0u8; 4];
                literal.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    flush(&mut literal, &mut tokens);
    Ok(tokens)
}

/// The format the `--print-*` flags describe, kafka-console-consumer style.
fn format_from_flags(args: &ConsumeArgs) -> Vec<FormatToken> {
    let mut tokens = Vec::new();
    let mut push_field = |label: &str, token: FormatToken| {
        tokens.push(FormatToken::Literal(label.as_bytes().to_vec()));
        tokens.push(token);
        tokens.push(FormatToken::Literal(b"\t".to_vec()));
    };
    if args.print_timestamp {
        push_field("CreateTime:", FormatToken::Timestamp);
    }
    if args.print_partition {
        push_field("Partition:", FormatToken::Partition);
    }
    if args.print_offset {
        push_field("Offset:", FormatToken::Offset);
    }
    if args.print_headers {
        push_field("", FormatToken::Headers);
    }
    if args.print_key {
        push_field("", FormatToken::Key);
    }
    tokens.push(FormatToken::Value);
    tokens.push(FormatToken::Literal(b"\n".to_vec()));
    tokens
}

/// Writes one record as `tokens` say.
pub fn render(tokens: &[FormatToken], r: &ConsumedRecord, out: &mut Vec<u8>) {
    for token in tokens {
        match token {
            FormatToken::Literal(bytes) => out.extend_from_slice(bytes),
            FormatToken::Topic => out.extend_from_slice(r.topic.as_bytes()),
            FormatToken::Partition => out.extend_from_slice(r.partition.to_string().as_bytes()),
            FormatToken::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
            FormatToken::Key => out.extend_from_slice(r.key.as_deref().unwrap_or(b"null")),
            FormatToken::KeyLength => out.extend_from_slice(
                r.key
                    .as_ref()
                    .map_or(-1, |k| k.len() as i64)
                    .to_string()
                    .as_bytes(),
            ),
            FormatToken::Value => out.extend_from_slice(r.value.as_deref().unwrap_or(b"null")),
            FormatToken::ValueLength => out.extend_from_slice(
                r.value
                    .as_ref()
                    .map_or(-1, |v| v.len() as i64)
                    .to_string()
                    .as_bytes(),
            ),
            FormatToken::Timestamp => out.extend_from_slice(r.timestamp_ms.to_string().as_bytes()),
            FormatToken::Headers => {
                if r.headers.is_empty() {
                    out.extend_from_slice(b"NO_HEADERS");
                }
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'=');
                    out.extend_from_slice(v.as_deref().unwrap_or(b"null"));
                }
            }
        }
    }
}

pub fn run(args: ConsumeArgs) -> Result<(), String> {
    let tokens = match &args.format {
        Some(f) => parse_format(f)?,
        None => format_from_flags(&args),
    };
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
            .map_err(|e| e.to_string())?;
    install_interrupt_handler();
    let meta = client
        .describe_topic(&args.topic)
        .map_err(|e| e.to_string())?;
    let count = meta.partitions.len() as i32;
    if let Some(p) = args.partition
        && p >= count
    {
        return Err(format!(
            "topic `{}` has no partition {p} (it has {count})",
            args.topic
        ));
    }
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let config = ConsumerConfig {
        max_wait_ms: timeout.map_or(POLL_WAIT_MS_MAX, |t| {
            (t.as_millis() as i32).clamp(1, POLL_WAIT_MS_MAX)
        }),
        reset: if args.from_beginning {
            OffsetSpec::Earliest
        } else {
            OffsetSpec::Latest
        },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    let mut session = Session {
        tokens,
        max_messages: args.max_messages,
        printed: 0,
        pending_commit: BTreeMap::new(),
        stdout: std::io::stdout(),
        buf: Vec::with_capacity(64 * 1024),
        closed: false,
    };
    let mut member = match &args.group {
        Some(group) => {
            let member = GroupMember::join(
                consumer.client(),
                GroupConfig::new(group),
                std::slice::from_ref(&args.topic),
            )
            .map_err(|e| e.to_string())?;
            assign_from_group(&mut consumer, &member, args.from_beginning)?;
            Some(member)
        }
        None => {
            let start = args.offset.unwrap_or(if args.from_beginning {
                StartOffset::Earliest
            } else {
                StartOffset::Latest
            });
            let partitions: Vec<i32> = match args.partition {
                Some(p) => vec![p],
                None => (0..count).collect(),
            };
            for p in partitions {
                consumer
                    .assign(&args.topic, p, start)
                    .map_err(|e| e.to_string())?;
            }
            None
        }
    };

    let result = consume_loop(&mut consumer, member.as_mut(), &mut session, &args, timeout);
    if let Some(mut m) = member {
        // Commit what was printed even when the loop failed; then leave so the group
        // rebalances at once.
        let commit = session.commit(&mut consumer, &mut m);
        let leave = m.leave(consumer.client());
        result?;
        commit?;
        leave.map_err(|e| e.to_string())?;
    } else {
        result?;
    }
    Ok(())
}

fn assign_from_group(
    consumer: &mut Consumer,
    member: &GroupMember,
    from_beginning: bool,
) -> Result<(), String> {
    consumer.unassign_all();
    let mut member_view = member_committed(consumer, member)?;
    let reset = if from_beginning {
        StartOffset::Earliest
    } else {
        StartOffset::Latest
    };
    for (topic, partitions) in member.assignment() {
        for &p in partitions {
            let start = match member_view.remove(&(topic.clone(), p)) {
                Some(o) => StartOffset::At(o),
                None => reset,
            };
            consumer
                .assign(topic, p, start)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn member_committed(
    consumer: &mut Consumer,
    member: &GroupMember,
) -> Result<BTreeMap<(String, i32), i64>, String> {
    let wanted: Vec<(String, Vec<i32>)> = member
        .assignment()
        .iter()
        .map(|(t, p)| (t.clone(), p.clone()))
        .collect();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let coordinator = crate::client::group::find_coordinator(consumer.client(), member.group_id())
        .map_err(|e| e.to_string())?;
    let committed = crate::client::group::fetch_committed(
        consumer.client(),
        coordinator,
        member.group_id(),
        Some(&wanted),
    )
    .map_err(|e| e.to_string())?;
    Ok(committed
        .into_iter()
        .filter_map(|(t, p, o)| o.map(|o| ((t, p), o)))
        .collect())
}

struct Session {
    tokens: Vec<FormatToken>,
    max_messages: Option<u64>,
    printed: u64,
    /// Next offset to commit per partition: one past the last printed record.
    pending_commit: BTreeMap<(String, i32), i64>,
    stdout: std::io::Stdout,
    buf: Vec<u8>,
    /// stdout was closed by the reader (e.g. `| head`): stop quietly.
    closed: bool,
}

impl Session {
    fn done(&self) -> bool {
        self.closed
            || INTERRUPTED.load(Ordering::Relaxed)
            || self.max_messages.is_some_and(|m| self.printed >= m)
    }

    /// Prints records until done; returns how many were printed.
    fn print(&mut self, records: &[ConsumedRecord]) -> Result<u64, String> {
        self.buf.clear();
        let mut n = 0;
        for r in records {
            if self.done() || self.max_messages.is_some_and(|m| self.printed + n >= m) {
                break;
            }
            render(&self.tokens, r, &mut self.buf);
            self.pending_commit
                .insert((r.topic.clone(), r.partition), r.offset + 1);
            n += 1;
        }
        let mut out = self.stdout.lock();
        let written = out.write_all(&self.buf).and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
            Err(e) => return Err(format!("writing to stdout: {e}")),
        }
        self.printed += n;
        Ok(n)
    }

    fn commit(&mut self, consumer: &mut Consumer, member: &mut GroupMember) -> Result<(), String> {
        if self.pending_commit.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(String, i32, i64)> = self
            .pending_commit
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        member
            .commit(consumer.client(), &offsets)
            .map_err(|e| e.to_string())?;
        self.pending_commit.clear();
        Ok(())
    }
}

fn consume_loop(
    consumer: &mut Consumer,
    mut member: Option<&mut GroupMember>,
    session: &mut Session,
    args: &ConsumeArgs,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let mut last_record = Instant::now();
    let mut failures = 0;
    while !session.done() {
        if timeout.is_some_and(|t| last_record.elapsed() >= t) {
            break;
        }
        let records = if consumer.positions().is_empty() {
            // A group member with nothing assigned just keeps its membership alive.
            std::thread::sleep(Duration::from_millis(POLL_WAIT_MS_MAX as u64));
            Vec::new()
        } else {
            match consumer.poll() {
                Ok(records) => {
                    failures = 0;
                    records
                }
                Err(e) if e.is_retriable() && failures < POLL_FAILURES_MAX => {
                    failures += 1;
                    std::thread::sleep(Duration::from_millis(POLL_RETRY_BACKOFF_MS));
                    Vec::new()
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        if session.print(&records)? > 0 {
            last_record = Instant::now();
        }
        if let Some(m) = member.as_deref_mut() {
            session.commit(consumer, m)?;
            let status = m
                .maybe_heartbeat(consumer.client())
                .map_err(|e| e.to_string())?;
            if status == HeartbeatStatus::RejoinNeeded {
                m.rejoin(consumer.client()).map_err(|e| e.to_string())?;
                assign_from_group(consumer, m, args.from_beginning)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::TimestampType;

    fn sample() -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".to_string(),
            partition: 2,
            offset: 41,
            timestamp_ms: 1700000000123,
            timestamp_type: TimestampType::Creation,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![
                ("a".to_string(), Some(Bytes::from_static(b"1"))),
                ("b".to_string(), None),
            ],
        }
    }

    fn rendered(format: &str) -> String {
        let tokens = parse_format(format).expect("valid format");
        let mut out = Vec::new();
        render(&tokens, &sample(), &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn kcat_placeholders_render_every_field() {
        assert_eq!(rendered("%t/%p@%o %k=%s\\n"), "t/2@41 k1=hello\n");
        assert_eq!(
            rendered("%v|%T|%h|%K|%S|100%%"),
            "hello|1700000000123|a=1,b=null|2|5|100%"
        );
        assert_eq!(rendered("\\t%v\\\\"), "\thello\\");
    }

    #[test]
    fn bad_formats_are_rejected_with_the_culprit() {
        assert_eq!(
            parse_format("%x").unwrap_err(),
            "unknown format placeholder `%x`"
        );
        assert!(parse_format("abc%").is_err());
        assert!(parse_format("abc\\").is_err());
        assert!(parse_format("\\q").is_err());
    }

    #[test]
    fn offsets_parse_numbers_and_names_only() {
        assert_eq!(parse_start_offset("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start_offset("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start_offset("17"), Ok(StartOffset::At(17)));
        assert!(parse_start_offset("-3").is_err());
        assert!(parse_start_offset("soon").is_err());
    }
}
