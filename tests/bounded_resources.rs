//! Bounded resources (issue 7): the broker enforces `max_connections`, closes frames over
//! `max_request_bytes`, answers a connection that pipelines far more requests than
//! `max_in_flight_requests_per_connection` correctly and in order, holds 10,000 idle
//! connections while staying responsive, and does not grow without bound for a consumer
//! that sends fetches but never reads the answers (VmRSS from /proc).
//!
//! Must not: assert on speed; memory bounds are generous multiples, not tuning targets.

mod reliability;
mod support;

use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    fetch_request::{FetchPartition, FetchTopic},
};
use reliability::{
    FETCH_VERSION, PRODUCE_VERSION, RawConn, batch, produce_request, rss_kib, topic_name,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::Broker;
use support::wire::{DEFAULT_CLIENT_ID, encode_request};

const MAX_CONNECTIONS: u32 = 20;
const MAX_REQUEST_BYTES: usize = 64 * 1024;
const MAX_IN_FLIGHT: u32 = 4;
/// Requests pipelined on one connection without reading (≫ MAX_IN_FLIGHT).
const PIPELINED_REQUESTS: i32 = 500;
const IDLE_CONNECTIONS: usize = 10_000;
/// Descriptors the test process (and the broker it spawns) may open.
const NOFILE_WANTED: u64 = 2 * IDLE_CONNECTIONS as u64 + 1_000;
/// Fetches a slow consumer sends without reading a byte of the answers.
const SLOW_CONSUMER_FETCHES: usize = 2_000;
/// How much VmRSS may grow while the slow consumer's fetches pile up.
const SLOW_CONSUMER_RSS_GROWTH_KIB_MAX: u64 = 128 * 1024;

/// A broker on one core (so per-shard limits equal broker-wide ones) with a small config.
fn limited_broker() -> Broker {
    Broker::start_with_config(
        &format!(
            "max_connections = {MAX_CONNECTIONS}\n\
             max_request_bytes = {MAX_REQUEST_BYTES}\n\
             max_in_flight_requests_per_connection = {MAX_IN_FLIGHT}\n"
        ),
        &["--cores", "1"],
    )
}

/// True if a new connection gets an ApiVersions answer.
fn answers(bootstrap: &str) -> Option<RawConn> {
    let mut c = RawConn::connect(bootstrap).ok()?;
    c.api_versions_ok().ok()?;
    Some(c)
}

#[test]
fn max_connections_is_enforced_and_freed_slots_are_reused() {
    let broker = limited_broker();
    let bootstrap = broker.bootstrap();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..MAX_CONNECTIONS + 10 {
        match answers(&bootstrap) {
            Some(c) => open.push(c),
            None => refused += 1,
        }
    }
    assert_eq!(
        open.len(),
        MAX_CONNECTIONS as usize,
        "connections served with max_connections = {MAX_CONNECTIONS} ({refused} refused)"
    );
    // Every held connection still works.
    for (i, c) in open.iter_mut().enumerate() {
        c.api_versions_ok()
            .unwrap_or_else(|e| panic!("held connection {i}: {e}"));
    }
    // Closing some frees their slots (the broker notices the close asynchronously).
    open.truncate(MAX_CONNECTIONS as usize - 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reopened = 0;
    while reopened < 5 {
        match answers(&bootstrap) {
            Some(c) => {
                open.push(c);
                reopened += 1;
            }
            None => {
                assert!(
                    Instant::now() < deadline,
                    "freed slots not reusable ({reopened}/5)"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert!(
        answers(&bootstrap).is_none(),
        "limit still holds after reuse"
    );
}

#[test]
fn frames_over_max_request_bytes_are_refused_and_just_under_are_served() {
    let broker = limited_broker();
    let bootstrap = broker.bootstrap();
    let mut conn = RawConn::connect(&bootstrap)
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", broker.diagnostics()));
    conn.create_topic("big", 1, &[]).expect("create");
    // A produce whose frame is a little under the limit is served.
    let under = batch(&[vec![b'u'; MAX_REQUEST_BYTES - 1024]], None, 1);
    let (code, _) = conn
        .produce("big", 0, under, -1)
        .expect("produce under the limit");
    assert_eq!(code, 0, "produce just under max_request_bytes");
    // Over the limit: the connection is closed without the body being read.
    let over = batch(&[vec![b'o'; MAX_REQUEST_BYTES + 1024]], None, 1);
    let result = conn.produce("big", 0, over, -1);
    assert!(
        result.is_err(),
        "a frame over max_request_bytes was answered: {result:?}"
    );
    let mut fresh = answers(&bootstrap).expect("broker serves new connections after");
    let (code, hw, ..) = fresh.fetch("big", 0, 0, 1 << 20).expect("fetch");
    assert_eq!(
        (code, hw),
        (0, 1),
        "only the frame under the limit was appended"
    );
}

#[test]
fn requests_pipelined_beyond_the_in_flight_limit_are_answered_in_order() {
    let broker = limited_broker();
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    let mut ids = Vec::new();
    for i in 0..PIPELINED_REQUESTS {
        let id = if i % 2 == 0 {
            conn.send(&ApiVersionsRequest::default(), 0)
        } else {
            conn.send(&MetadataRequest::default().with_topics(Some(vec![])), 1)
        };
        ids.push(id.expect("pipeline a request"));
    }
    for (i, id) in ids.iter().enumerate() {
        let answer = if i % 2 == 0 {
            conn.receive::<ApiVersionsRequest>(0, *id).map(|_| ())
        } else {
            conn.receive::<MetadataRequest>(1, *id).map(|_| ())
        };
        answer.unwrap_or_else(|e| panic!("pipelined request {i} (correlation {id}): {e}"));
    }
}

/// Rounds of mixed requests pipelined on one connection in the next test.
const MIXED_ROUNDS: i64 = 50;

/// Answers that complete at different moments (acks=1 after the write, acks=all after the
/// fsync, fetches spliced from the file, ApiVersions at once) and requests with no answer
/// (acks=0), pipelined without reading: every answer comes back once, in request order, and
/// each produce's offset is the one its place in the pipeline gives it.
#[test]
fn mixed_pipelined_answers_keep_request_order() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    conn.create_topic("mixed", 1, &[]).expect("create topic");
    enum Expect {
        Produce(i32, i64),
        Fetch(i32, i64),
        Versions(i32),
    }
    let mut expected = Vec::new();
    let mut next_offset = 0i64;
    for round in 0..MIXED_ROUNDS {
        for acks in [1i16, 0, -1] {
            let value = format!("round {round} acks {acks}").into_bytes();
            let id = conn
                .send(
                    &produce_request("mixed", 0, batch(&[value], None, 1), acks),
                    PRODUCE_VERSION,
                )
                .expect("pipeline a produce");
            if acks != 0 {
                expected.push(Expect::Produce(id, next_offset));
            }
            next_offset += 1;
        }
        let fetch = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            // Long poll: the produces ahead of it may still be on their way to the file.
            .with_max_wait_ms(10_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name("mixed"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_fetch_offset(round * 3)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let id = conn.send(&fetch, FETCH_VERSION).expect("pipeline a fetch");
        expected.push(Expect::Fetch(id, round * 3));
        let id = conn
            .send(&ApiVersionsRequest::default(), 0)
            .expect("pipeline ApiVersions");
        expected.push(Expect::Versions(id));
    }
    for e in expected {
        match e {
            Expect::Produce(id, offset) => {
                let r = conn
                    .receive::<ProduceRequest>(PRODUCE_VERSION, id)
                    .unwrap_or_else(|e| panic!("produce answer {id}: {e}"));
                let p = &r.responses[0].partition_responses[0];
                assert_eq!((p.error_code, p.base_offset), (0, offset), "produce {id}");
            }
            Expect::Fetch(id, offset) => {
                let r = conn
                    .receive::<FetchRequest>(FETCH_VERSION, id)
                    .unwrap_or_else(|e| panic!("fetch answer {id}: {e}"));
                let p = &r.responses[0].partitions[0];
                assert_eq!(p.error_code, 0, "fetch {id}");
                // The round's first batch was dispatched before the fetch, so the long poll
                // ends with it: this answer holds the batch at the offset asked for.
                let records = p.records.clone().unwrap_or_default();
                let batches = reliability::split_batches(records).expect("fetched batches");
                assert_eq!(
                    batches.first().map(|b| b.base_offset),
                    Some(offset),
                    "fetch {id} starts at its offset"
                );
            }
            Expect::Versions(id) => {
                conn.receive::<ApiVersionsRequest>(0, id)
                    .unwrap_or_else(|e| panic!("ApiVersions answer {id}: {e}"));
            }
        }
    }
}

fn raise_nofile(wanted: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_max < wanted {
            // Raising the hard limit needs root; fall back to the hard limit otherwise.
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: wanted,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return wanted;
            }
        }
        lim.rlim_cur = lim.rlim_max.min(wanted.max(lim.rlim_cur));
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

#[test]
fn ten_thousand_idle_connections_are_held_and_the_broker_stays_responsive() {
    let nofile = raise_nofile(NOFILE_WANTED);
    assert!(
        nofile >= IDLE_CONNECTIONS as u64 + 500,
        "RLIMIT_NOFILE is {nofile}; this test needs {NOFILE_WANTED}"
    );
    // Spawned after the raise: the broker inherits the limit.
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let pid = broker.pid().expect("pid");
    let rss_before = rss_kib(pid).unwrap_or(0);
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    let started = Instant::now();
    for i in 0..IDLE_CONNECTIONS {
        let s =
            TcpStream::connect(&bootstrap).unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(s);
    }
    let connect_s = started.elapsed().as_secs_f64();
    // Responsive: a new client can create a topic, produce and fetch.
    let mut conn = answers(&bootstrap).expect("a new connection is served next to 10k idle ones");
    conn.create_topic("busy", 1, &[]).expect("create topic");
    let (code, _) = conn
        .produce("busy", 0, batch(&[b"hello".to_vec()], None, 1), -1)
        .expect("produce");
    assert_eq!(code, 0, "produce next to 10k idle connections");
    // The idle connections are still open and served: probe a spread of them.
    let probes = 100;
    for k in 0..probes {
        let i = k * (IDLE_CONNECTIONS / probes);
        let s = &mut idle[i];
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let framed = encode_request(&ApiVersionsRequest::default(), 0, 1, DEFAULT_CLIENT_ID)
            .expect("encode");
        s.write_all(&framed)
            .unwrap_or_else(|e| panic!("idle connection {i} was closed: {e}"));
        let mut len = [0u8; 4];
        s.read_exact(&mut len)
            .unwrap_or_else(|e| panic!("idle connection {i} got no answer: {e}"));
        let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        s.read_exact(&mut body).expect("answer body");
    }
    let rss_after = rss_kib(pid).unwrap_or(0);
    eprintln!(
        "10k idle connections: opened in {connect_s:.1}s; broker VmRSS {rss_before} KiB → \
         {rss_after} KiB ({:.1} KiB per connection)",
        (rss_after.saturating_sub(rss_before)) as f64 / IDLE_CONNECTIONS as f64
    );
    assert!(reliability::alive(&mut broker), "broker alive");
}

#[test]
fn a_consumer_that_never_reads_does_not_grow_the_broker() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let pid = broker.pid().expect("pid");
    let mut conn = RawConn::connect(&bootstrap).expect("connect");
    conn.create_topic("slow", 1, &[]).expect("create");
    // ~8 MiB of records, so every fetch has up to 1 MiB to send.
    for i in 0..64 {
        let values: Vec<Vec<u8>> = (0..8)
            .map(|r| vec![b'a' + (i + r) as u8 % 26; 16 * 1024])
            .collect();
        let (code, _) = conn
            .produce("slow", 0, batch(&values, None, 1), -1)
            .expect("produce");
        assert_eq!(code, 0);
    }
    let rss_before = rss_kib(pid).expect("VmRSS");
    // The slow consumer: fetches pipelined, answers never read.
    let mut slow = TcpStream::connect(&bootstrap).expect("connect slow consumer");
    slow.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut fetches_sent = 0;
    let mut peak = rss_before;
    for i in 0..SLOW_CONSUMER_FETCHES {
        let request = kafka_protocol::messages::FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                kafka_protocol::messages::fetch_request::FetchTopic::default()
                    .with_topic(reliability::topic_name("slow"))
                    .with_partitions(vec![
                        kafka_protocol::messages::fetch_request::FetchPartition::default()
                            .with_fetch_offset(((i * 8) % 512) as i64)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let framed = encode_request(
            &request,
            reliability::FETCH_VERSION,
            i as i32,
            DEFAULT_CLIENT_ID,
        )
        .expect("encode fetch");
        // Once the broker stops reading (its answers are stuck), our writes block: that is
        // the backpressure we want; stop sending then.
        if slow.write_all(&framed).is_err() {
            break;
        }
        fetches_sent += 1;
        if i % 100 == 0 {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
        }
    }
    // Give the broker time to do whatever it would do with the backlog.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    // Meanwhile other clients are served.
    let mut other = answers(&bootstrap).expect("other clients are served");
    let (code, ..) = other.fetch("slow", 0, 0, 1024).expect("fetch");
    assert_eq!(code, 0);
    let growth = peak.saturating_sub(rss_before);
    eprintln!(
        "slow consumer: {fetches_sent} fetches of up to 1 MiB sent, none read; broker VmRSS \
         {rss_before} KiB → peak {peak} KiB (+{growth} KiB)"
    );
    assert!(reliability::alive(&mut broker), "broker alive");
    assert!(
        growth <= SLOW_CONSUMER_RSS_GROWTH_KIB_MAX,
        "broker VmRSS grew by {growth} KiB for a consumer that never reads"
    );
    drop(slow);
}

/// `shard_produce_memory_bytes` of the memory-budget test, and what the hostile clients try
/// to make the broker buffer (partial frames that never complete).
const PRODUCE_BUDGET_BYTES: u64 = 16 * 1024 * 1024;
const BUDGET_CONNECTIONS: usize = 8;
const BUDGET_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Slack over the budget for buffers, allocator and runtime.
const BUDGET_RSS_SLACK_KIB: u64 = 24 * 1024;

#[test]
fn unfinished_large_frames_cannot_exceed_the_produce_memory_budget() {
    let mut broker = Broker::start_with_config(
        &format!("shard_produce_memory_bytes = {PRODUCE_BUDGET_BYTES}\n"),
        &["--cores", "1"],
    );
    let bootstrap = broker.bootstrap();
    let pid = broker.pid().expect("pid");
    let rss_before = rss_kib(pid).expect("VmRSS");
    // Each client announces a big frame and sends all of it but the last byte.
    let senders: Vec<_> = (0..BUDGET_CONNECTIONS)
        .map(|_| {
            let bootstrap = bootstrap.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&bootstrap).expect("connect");
                s.set_write_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                let mut sent = 0usize;
                if s.write_all(&(BUDGET_FRAME_BYTES as i32).to_be_bytes())
                    .is_err()
                {
                    return (s, sent);
                }
                let chunk = vec![0x11u8; 64 * 1024];
                while sent + chunk.len() < BUDGET_FRAME_BYTES {
                    // Blocks (then times out) once the broker stops reading: backpressure.
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                    sent += chunk.len();
                }
                (s, sent)
            })
        })
        .collect();
    let held: Vec<(TcpStream, usize)> = senders
        .into_iter()
        .map(|t| t.join().expect("sender"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib(pid).unwrap_or(0);
    let sent: usize = held.iter().map(|(_, n)| n).sum();
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "produce budget {} MiB: clients pushed {} MiB of unfinished frames; broker VmRSS \
         {rss_before} KiB → {rss_after} KiB (+{growth} KiB)",
        PRODUCE_BUDGET_BYTES >> 20,
        sent >> 20
    );
    assert!(reliability::alive(&mut broker), "broker alive");
    assert!(
        answers(&bootstrap).is_some(),
        "a new client is served while the budget is exhausted"
    );
    assert!(
        growth <= (PRODUCE_BUDGET_BYTES >> 10) + BUDGET_RSS_SLACK_KIB,
        "broker buffered {growth} KiB of unfinished request frames with a {} KiB budget \
         (shard_produce_memory_bytes is not enforced on socket reads)",
        PRODUCE_BUDGET_BYTES >> 10
    );
    drop(held);
}
