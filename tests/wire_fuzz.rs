//! Hostile input on the wire (issue 7): many connections send random and mutated frames
//! (mutations of real, valid requests of every served API and version) to a live broker for
//! a bounded time, while a healthy client keeps producing (acks=all) and reading its records
//! back. At the end the broker process is alive, answers new connections, and every record
//! the healthy client was acknowledged is intact. Plus one pinned input: a frame whose array
//! count asks the codec to preallocate gigabytes.
//!
//! Default: `FUZZ_DURATION_DEFAULT`; `SLUICE_LONG_TESTS=1`: `FUZZ_DURATION_LONG`.
//! Must not: send anything to the healthy client's connections.

mod reliability;
mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reliability::fuzz_inputs::{hex, mutate, seed_requests};
use reliability::{RawConn, batch, read_all};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Broker;

const FUZZ_DURATION_DEFAULT: Duration = Duration::from_secs(8);
const FUZZ_DURATION_LONG: Duration = Duration::from_secs(120);
const FUZZ_CONNECTIONS: usize = 8;
/// How long a fuzz connection waits for an answer before sending the next frame.
const FUZZ_READ_TIMEOUT: Duration = Duration::from_millis(50);
const HEALTHY_TOPIC: &str = "wire-fuzz-healthy";
const HEALTHY_PAUSE: Duration = Duration::from_millis(20);

fn duration() -> Duration {
    if reliability::long_mode() {
        FUZZ_DURATION_LONG
    } else {
        FUZZ_DURATION_DEFAULT
    }
}

/// One fuzzing connection: sends frames until `stop`, reconnecting whenever the broker
/// closes. Returns (frames sent, last frames sent before the broker stopped accepting).
fn fuzz_connection(
    bootstrap: &str,
    seed: u64,
    stop: &AtomicBool,
    sent: &AtomicU64,
    last_frames: &Mutex<Vec<String>>,
) {
    let seeds = seed_requests();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stream: Option<TcpStream> = None;
    let mut sink = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(bootstrap) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(FUZZ_READ_TIMEOUT));
                    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                    stream.insert(s)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        let body = mutate(&mut rng, &seeds);
        // Mostly a correct size prefix (so the body reaches the decoder), sometimes a lie.
        let size: i32 = match rng.random_range(0..10) {
            0 => rng.random(),
            1 => body.len() as i32 + rng.random_range(-8..8),
            _ => body.len() as i32,
        };
        let mut frame = size.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        if let Ok(mut last) = last_frames.lock() {
            if last.len() >= 4 {
                last.remove(0);
            }
            last.push(hex(&frame));
        }
        sent.fetch_add(1, Ordering::Relaxed);
        if s.write_all(&frame).is_err() {
            stream = None;
            continue;
        }
        match s.read(&mut sink) {
            Ok(0) => stream = None,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => stream = None,
        }
    }
}

#[test]
fn broker_survives_mutated_frames_while_a_healthy_client_works() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let mut healthy = RawConn::connect(&bootstrap).expect("connect");
    healthy
        .create_topic(HEALTHY_TOPIC, 1, &[])
        .expect("create healthy topic");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let last_frames = Arc::new(Mutex::new(Vec::new()));
    let fuzzers: Vec<_> = (0..FUZZ_CONNECTIONS)
        .map(|i| {
            let (stop, sent, last) = (stop.clone(), sent.clone(), last_frames.clone());
            let bootstrap = bootstrap.clone();
            std::thread::spawn(move || {
                fuzz_connection(&bootstrap, 0xf0f0 + i as u64, &stop, &sent, &last)
            })
        })
        .collect();
    // The healthy client: produce, then read back from where it last was.
    let mut acked: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut next_read = 0i64;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration() {
        n += 1;
        let values = vec![format!("healthy-{n}").into_bytes()];
        match healthy.produce(
            HEALTHY_TOPIC,
            0,
            batch(&values, None, reliability::now_ms()),
            -1,
        ) {
            Ok((0, base)) => {
                acked.insert(base, values[0].clone());
            }
            Ok((code, _)) => errors.push(format!("produce {n}: error {code}")),
            Err(e) => {
                errors.push(format!("produce {n}: {e}"));
                break;
            }
        }
        match read_all(&mut healthy, HEALTHY_TOPIC, 0, next_read) {
            Ok((batches, _, _)) => {
                for b in batches {
                    for (o, _, v) in b.records {
                        if acked.get(&o).map(|x| x.as_slice()) != v.as_deref() {
                            errors.push(format!("record {o} read back wrong"));
                        }
                        next_read = o + 1;
                    }
                }
            }
            Err(e) => {
                errors.push(format!("read: {e}"));
                break;
            }
        }
        std::thread::sleep(HEALTHY_PAUSE);
    }
    stop.store(true, Ordering::Relaxed);
    for f in fuzzers {
        f.join().expect("fuzz thread");
    }
    let frames = sent.load(Ordering::Relaxed);
    let alive = reliability::alive(&mut broker);
    eprintln!(
        "wire fuzz: {frames} hostile frames on {FUZZ_CONNECTIONS} connections in {:.1}s; \
         healthy client: {} acknowledged, {} errors; broker alive: {alive}",
        started.elapsed().as_secs_f64(),
        acked.len(),
        errors.len()
    );
    let last = last_frames.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        alive,
        "the broker died under hostile frames; the last frames sent (hex, size prefix \
         included), one of which likely killed it: {last:#?}"
    );
    assert!(errors.is_empty(), "healthy client failed: {errors:#?}");
    let mut fresh = RawConn::connect(&bootstrap).expect("new connection after fuzzing");
    fresh.api_versions_ok().expect("ApiVersions after fuzzing");
    let (batches, _, _) = read_all(&mut fresh, HEALTHY_TOPIC, 0, 0).expect("final read");
    let mut seen = 0;
    for b in batches {
        for (o, _, v) in b.records {
            if let Some(want) = acked.get(&o) {
                assert_eq!(v.as_deref(), Some(want.as_slice()), "record {o}");
                seen += 1;
            }
        }
    }
    assert_eq!(
        seen,
        acked.len(),
        "every acknowledged healthy record is intact"
    );
}

/// Metadata v0 whose topics array claims i32::MAX entries in a 14-byte frame: a decoder
/// that preallocates from the count asks for tens of GB and the process aborts.
#[test]
fn array_count_bomb_does_not_kill_the_broker() {
    let mut broker = Broker::start();
    let mut frame = Vec::new();
    let mut body = Vec::new();
    body.extend_from_slice(&3i16.to_be_bytes()); // Metadata
    body.extend_from_slice(&0i16.to_be_bytes()); // v0
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // topics: "2^31-1 entries follow"
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    let mut s = TcpStream::connect(broker.bootstrap()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(&frame).expect("send");
    let mut buf = [0u8; 64];
    let _ = s.read(&mut buf);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        reliability::alive(&mut broker),
        "the broker process died on a 18-byte Metadata frame claiming 2^31-1 topics ({})",
        hex(&frame)
    );
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect after the bomb");
    conn.api_versions_ok().expect("ApiVersions after the bomb");
}
