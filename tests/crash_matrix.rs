//! Crash matrix (issue 7): the real broker is SIGKILLed at random moments while idempotent
//! acks=all producers and a manually committing consumer run. After each restart the
//! producers retry the batch that was in flight (same producer id, epoch and sequence, as a
//! Kafka client does), then the test checks:
//! * every acknowledged record is readable at its acknowledged offset with its value;
//! * offsets are gap-free and every batch decodes (CRC checked by the decoder);
//! * no record appears twice (idempotent retries were deduplicated) and nothing appears that
//!   no producer sent;
//! * the group member's committed offset is at least its last acknowledged commit and never beyond what the
//!   consumer had consumed (nor beyond the high watermark);
//! * indexes agree with the log: fetch at random offsets returns the batch holding that
//!   offset first, and ListOffsets by timestamp returns the first offset at or after it.
//!
//! Default: `TRIALS_DEFAULT` trials; `SLUICE_LONG_TESTS=1`: `TRIALS_LONG`.
//! Must not: retry an acknowledged batch, or forgive any loss (all trials run, then the test
//! fails listing every loss).

mod reliability;
mod support;

use bytes::Bytes;
use rand::Rng;
use reliability::{RawConn, ReadBatch, batch, long_mode, now_ms, read_all};
use sluice::client::{Client, group};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Broker;

const TRIALS_DEFAULT: usize = 10;
const TRIALS_LONG: usize = 100;
const TOPIC: &str = "crash-matrix";
const PARTITIONS: i32 = 2;
/// Producers; producer i writes to partition i % PARTITIONS (two share partition 0, so
/// their batches interleave).
const PRODUCERS: usize = 3;
const GROUP: &str = "crash-matrix-group";
/// Short, so a member lost in a kill does not hold up the next trial's join for long.
const GROUP_SESSION_TIMEOUT_MS: i32 = 6_000;
/// Broker config: no initial rebalance delay (each trial's consumer joins a fresh broker).
/// `flush_syncfs_min_partitions = 1`: every background flush goes through one syncfs of the
/// data directory's filesystem (decision 0020) instead of the per-partition fdatasyncs the
/// storage crash tests and the other broker tests run, so kills also land between a syncfs and
/// the recovery points it lets the partitions write.
const BROKER_CONFIG: &str = "group_initial_rebalance_delay_ms = 0\ngroup_min_session_timeout_ms = 1000\n\
                             [log]\nflush_syncfs_min_partitions = 1\n";
/// Small segments so kills also land around segment rolls and index writes.
const SEGMENT_BYTES: &str = "65536";
/// Kill window after the clients start, in ms.
const KILL_AFTER_MS_MIN: u64 = 150;
const KILL_AFTER_MS_MAX: u64 = 1200;
const RECORDS_PER_BATCH_MAX: usize = 8;
const VALUE_PAD_BYTES_MAX: usize = 400;
/// Random offsets (per partition) checked against the index after each trial.
const INDEX_PROBES: usize = 20;
/// How long the retry of an in-flight batch may keep failing after a restart.
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Pending {
    seq: i32,
    values: Vec<Vec<u8>>,
    bytes: Bytes,
}

#[derive(Debug, Clone)]
struct Acked {
    base_offset: i64,
    values: Vec<Vec<u8>>,
}

/// One idempotent producer; survives broker restarts like a Kafka client session.
#[derive(Debug)]
struct ProducerSession {
    index: usize,
    partition: i32,
    pid: i64,
    epoch: i16,
    next_seq: i32,
    pending: Option<Pending>,
    acked: Vec<Acked>,
    /// Non-retriable errors the broker returned (each is a test failure).
    errors: Vec<String>,
    /// In-flight batches re-sent after a restart.
    retried: usize,
}

impl ProducerSession {
    fn next_batch(&mut self, rng: &mut impl Rng) -> Pending {
        let n = rng.random_range(1..=RECORDS_PER_BATCH_MAX);
        let values: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut v = format!("p{}-s{}|", self.index, self.next_seq + i as i32).into_bytes();
                let pad = rng.random_range(0..VALUE_PAD_BYTES_MAX);
                v.extend((0..pad).map(|j| b'a' + (j % 26) as u8));
                v
            })
            .collect();
        let bytes = batch(
            &values,
            Some((self.pid, self.epoch, self.next_seq)),
            now_ms(),
        );
        Pending {
            seq: self.next_seq,
            values,
            bytes,
        }
    }

    fn acknowledge(&mut self, p: Pending, base_offset: i64) {
        self.next_seq = p.seq + p.values.len() as i32;
        self.acked.push(Acked {
            base_offset,
            values: p.values,
        });
    }

    /// Produces until the connection dies or `stop` is set.
    fn run(&mut self, bootstrap: &str, stop: &AtomicBool) {
        let mut rng = rand::rng();
        let Ok(mut conn) = RawConn::connect(bootstrap) else {
            return;
        };
        while !stop.load(Ordering::Relaxed) {
            let p = match self.pending.take() {
                Some(p) => p,
                None => self.next_batch(&mut rng),
            };
            self.pending = Some(p.clone());
            match conn.produce(TOPIC, self.partition, p.bytes.clone(), -1) {
                Ok((0, base)) => {
                    self.pending = None;
                    self.acknowledge(p, base);
                }
                Ok((code, _)) => {
                    self.errors
                        .push(format!("producer {}: produce error {code}", self.index));
                    return;
                }
                // The broker was killed: the batch stays pending for the retry.
                Err(_) => return,
            }
        }
    }

    /// After a restart: re-sends the in-flight batch until the broker answers it.
    fn retry_pending(&mut self, bootstrap: &str) {
        let Some(p) = self.pending.take() else {
            return;
        };
        self.retried += 1;
        let deadline = Instant::now() + RETRY_TIMEOUT;
        loop {
            let answer = RawConn::connect(bootstrap)
                .and_then(|mut c| c.produce(TOPIC, self.partition, p.bytes.clone(), -1));
            match answer {
                Ok((0, base)) => {
                    self.acknowledge(p, base);
                    return;
                }
                Ok((code, _)) if Instant::now() > deadline => {
                    self.errors.push(format!(
                        "producer {}: retry of seq {} failed with error {code}",
                        self.index, p.seq
                    ));
                    self.pending = Some(p);
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    self.errors
                        .push(format!("producer {}: retry failed: {e}", self.index));
                    self.pending = Some(p);
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// What the committing consumer knows per partition.
#[derive(Debug, Default, Clone, Copy)]
struct ConsumerProgress {
    /// Position after the last record it consumed (what it may commit).
    consumed_upto: i64,
    /// The last commit the broker acknowledged.
    commit_acked: i64,
}

/// A group member (JoinGroup/SyncGroup, range assignment of both partitions) that reads its
/// assignment and commits its position after each poll with its generation, until the broker
/// dies. Positions start from the last acknowledged commit.
fn run_consumer(bootstrap: &str, progress: &Mutex<Vec<ConsumerProgress>>, stop: &AtomicBool) {
    let Ok(mut conn) = RawConn::connect(bootstrap) else {
        return;
    };
    let Ok(mut client) = Client::connect(bootstrap) else {
        return;
    };
    let mut config = group::GroupConfig::new(GROUP);
    config.session_timeout_ms = GROUP_SESSION_TIMEOUT_MS;
    let Ok(mut member) = group::GroupMember::join(&mut client, config, &[TOPIC.to_string()]) else {
        return;
    };
    let assigned: Vec<i32> = member.assignment().get(TOPIC).cloned().unwrap_or_default();
    let mut positions: Vec<i64> = match progress.lock() {
        Ok(p) => p.iter().map(|c| c.commit_acked).collect(),
        Err(_) => return,
    };
    while !stop.load(Ordering::Relaxed) {
        for &p in &assigned {
            let Ok((0, _, _, bytes)) = conn.fetch(TOPIC, p, positions[p as usize], 64 * 1024)
            else {
                return;
            };
            let Ok(batches) = reliability::split_batches(bytes) else {
                return;
            };
            for b in batches {
                positions[p as usize] = positions[p as usize].max(b.last_offset + 1);
            }
            if let Ok(mut prog) = progress.lock() {
                prog[p as usize].consumed_upto = positions[p as usize];
            }
            let commit = [(TOPIC.to_string(), p, positions[p as usize])];
            if member.commit(&mut client, &commit).is_err() {
                return;
            }
            if let Ok(mut prog) = progress.lock() {
                prog[p as usize].commit_acked = positions[p as usize];
            }
        }
        if member.maybe_heartbeat(&mut client).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Default)]
struct Findings {
    lost: Vec<String>,
    duplicates: Vec<String>,
    phantoms: Vec<String>,
    index: Vec<String>,
    commits: Vec<String>,
    other: Vec<String>,
}

impl Findings {
    fn total(&self) -> usize {
        self.lost.len()
            + self.duplicates.len()
            + self.phantoms.len()
            + self.index.len()
            + self.commits.len()
            + self.other.len()
    }
}

fn check_partition(
    conn: &mut RawConn,
    partition: i32,
    sessions: &[ProducerSession],
    trial: usize,
    f: &mut Findings,
) {
    let (batches, hw, lso) = match read_all(conn, TOPIC, partition, 0) {
        Ok(r) => r,
        Err(e) => {
            f.other
                .push(format!("trial {trial}: read partition {partition}: {e}"));
            return;
        }
    };
    let mut by_offset: BTreeMap<i64, (i64, Vec<u8>)> = BTreeMap::new();
    let mut seen: HashMap<Vec<u8>, i64> = HashMap::new();
    for b in &batches {
        for (o, ts, v) in &b.records {
            let v = v.as_ref().map(|v| v.to_vec()).unwrap_or_default();
            if let Some(first) = seen.insert(v.clone(), *o) {
                f.duplicates.push(format!(
                    "trial {trial}: p{partition} value {:?} at offsets {first} and {o}",
                    String::from_utf8_lossy(&v[..v.len().min(16)])
                ));
            }
            by_offset.insert(*o, (*ts, v));
        }
    }
    let mut acked_values: HashMap<&[u8], i64> = HashMap::new();
    for s in sessions.iter().filter(|s| s.partition == partition) {
        for a in &s.acked {
            for (i, v) in a.values.iter().enumerate() {
                let offset = a.base_offset + i as i64;
                acked_values.insert(v, offset);
                match by_offset.get(&offset) {
                    Some((_, got)) if got == v => {}
                    Some((_, got)) => f.lost.push(format!(
                        "trial {trial}: p{partition} offset {offset}: acknowledged {:?}, read {:?}",
                        String::from_utf8_lossy(&v[..v.len().min(16)]),
                        String::from_utf8_lossy(&got[..got.len().min(16)])
                    )),
                    None => f.lost.push(format!(
                        "trial {trial}: p{partition} offset {offset} acknowledged but absent (hw {hw})"
                    )),
                }
            }
        }
    }
    for (o, (_, v)) in &by_offset {
        if !acked_values.contains_key(v.as_slice()) {
            f.phantoms.push(format!(
                "trial {trial}: p{partition} offset {o} holds {:?}, never acknowledged",
                String::from_utf8_lossy(&v[..v.len().min(16)])
            ));
        }
    }
    probe_indexes(conn, partition, &batches, (lso, hw), trial, f);
}

/// Fetch at random offsets returns the batch holding them; ListOffsets(ts) returns the first
/// offset whose timestamp is >= ts.
fn probe_indexes(
    conn: &mut RawConn,
    partition: i32,
    batches: &[ReadBatch],
    (lso, hw): (i64, i64),
    trial: usize,
    f: &mut Findings,
) {
    if hw <= lso {
        return;
    }
    let mut rng = rand::rng();
    let records: Vec<(i64, i64)> = batches
        .iter()
        .flat_map(|b| b.records.iter().map(|(o, ts, _)| (*o, *ts)))
        .collect();
    for _ in 0..INDEX_PROBES {
        let offset = rng.random_range(lso..hw);
        match conn.fetch(TOPIC, partition, offset, 16 * 1024) {
            Ok((0, _, _, bytes)) => match reliability::split_batches(bytes) {
                Ok(got) => match got.first() {
                    Some(b) if b.base_offset <= offset && offset <= b.last_offset => {}
                    other => f.index.push(format!(
                        "trial {trial}: p{partition} fetch at {offset} returned first batch {:?}",
                        other.map(|b| (b.base_offset, b.last_offset))
                    )),
                },
                Err(e) => f.index.push(format!(
                    "trial {trial}: p{partition} fetch at {offset}: {e}"
                )),
            },
            Ok((code, ..)) => f.index.push(format!(
                "trial {trial}: p{partition} fetch at {offset}: error {code}"
            )),
            Err(e) => f.other.push(format!(
                "trial {trial}: p{partition} fetch at {offset}: {e}"
            )),
        }
        let Some(&(_, ts)) = records.get(rng.random_range(0..records.len())) else {
            continue;
        };
        let expected = records
            .iter()
            .find(|(_, t)| *t >= ts)
            .map(|(o, _)| *o)
            .unwrap_or(-1);
        match conn.list_offsets(TOPIC, partition, ts) {
            Ok((0, got, _)) if got == expected => {}
            Ok((code, got, _)) => f.index.push(format!(
                "trial {trial}: p{partition} ListOffsets({ts}) = {got} (error {code}), first offset with ts >= it is {expected}"
            )),
            Err(e) => f
                .other
                .push(format!("trial {trial}: p{partition} ListOffsets({ts}): {e}")),
        }
    }
}

fn check_commits(bootstrap: &str, progress: &[ConsumerProgress], trial: usize, f: &mut Findings) {
    let committed = Client::connect(bootstrap).and_then(|mut client| {
        let coordinator = group::find_coordinator(&mut client, GROUP)?;
        let wanted = [(TOPIC.to_string(), (0..PARTITIONS).collect::<Vec<_>>())];
        group::fetch_committed(&mut client, coordinator, GROUP, Some(&wanted))
    });
    let committed = match committed {
        Ok(c) => c,
        Err(e) => {
            f.other.push(format!("trial {trial}: fetch committed: {e}"));
            return;
        }
    };
    for (_, p, offset) in committed {
        let prog = progress[p as usize];
        let c = offset.unwrap_or(0);
        if c < prog.commit_acked || c > prog.consumed_upto {
            f.commits.push(format!(
                "trial {trial}: p{p} committed {c}, acknowledged commit {}, consumed up to {}",
                prog.commit_acked, prog.consumed_upto
            ));
        }
    }
}

#[test]
fn crash_matrix_acknowledged_records_survive_sigkill() {
    let trials = if long_mode() {
        TRIALS_LONG
    } else {
        TRIALS_DEFAULT
    };
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = reliability::write_config(config_dir.path(), BROKER_CONFIG);
    let config = config.to_str().expect("utf-8 path").to_string();
    let mut broker = Broker::start_with(&["--config", &config]);
    let bootstrap = broker.bootstrap();
    let mut admin = RawConn::connect(&bootstrap).expect("connect");
    admin
        .create_topic(TOPIC, PARTITIONS, &[("segment.bytes", SEGMENT_BYTES)])
        .expect("create topic");
    let mut sessions: Vec<ProducerSession> = (0..PRODUCERS)
        .map(|i| {
            let (pid, epoch) = admin.init_producer_id().expect("InitProducerId");
            ProducerSession {
                index: i,
                partition: (i as i32) % PARTITIONS,
                pid,
                epoch,
                next_seq: 0,
                pending: None,
                acked: Vec::new(),
                errors: Vec::new(),
                retried: 0,
            }
        })
        .collect();
    drop(admin);
    let progress = Arc::new(Mutex::new(vec![
        ConsumerProgress::default();
        PARTITIONS as usize
    ]));
    let mut findings = Findings::default();
    let mut rng = rand::rng();
    let started = Instant::now();
    for trial in 0..trials {
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = sessions
            .drain(..)
            .map(|mut s| {
                let stop = Arc::clone(&stop);
                let bootstrap = bootstrap.clone();
                std::thread::spawn(move || {
                    s.run(&bootstrap, &stop);
                    s
                })
            })
            .collect();
        let consumer = {
            let stop = Arc::clone(&stop);
            let bootstrap = bootstrap.clone();
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || run_consumer(&bootstrap, &progress, &stop))
        };
        std::thread::sleep(Duration::from_millis(
            rng.random_range(KILL_AFTER_MS_MIN..KILL_AFTER_MS_MAX),
        ));
        broker.kill();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            sessions.push(p.join().expect("producer thread"));
        }
        consumer.join().expect("consumer thread");
        broker.spawn();
        for s in &mut sessions {
            s.retry_pending(&bootstrap);
            findings.other.append(&mut s.errors);
        }
        let mut conn = RawConn::connect(&bootstrap).expect("connect after restart");
        for p in 0..PARTITIONS {
            check_partition(&mut conn, p, &sessions, trial, &mut findings);
        }
        let snapshot = progress.lock().expect("progress").clone();
        check_commits(&bootstrap, &snapshot, trial, &mut findings);
        let acked: usize = sessions
            .iter()
            .flat_map(|s| s.acked.iter())
            .map(|a| a.values.len())
            .sum();
        eprintln!(
            "crash matrix trial {}/{trials}: {acked} records acknowledged so far, commits {:?}, \
             {} problems so far ({:.1}s)",
            trial + 1,
            snapshot
                .iter()
                .map(|c| (c.commit_acked, c.consumed_upto))
                .collect::<Vec<_>>(),
            findings.total(),
            started.elapsed().as_secs_f64()
        );
    }
    let acked: usize = sessions
        .iter()
        .flat_map(|s| s.acked.iter())
        .map(|a| a.values.len())
        .sum();
    let retried: usize = sessions.iter().map(|s| s.retried).sum();
    eprintln!(
        "crash matrix: {trials} trials, {acked} acknowledged records, {retried} in-flight \
         batches retried after restarts, {} lost, {} duplicated, \
         {} phantom, {} index disagreements, {} commit violations, {} other errors",
        findings.lost.len(),
        findings.duplicates.len(),
        findings.phantoms.len(),
        findings.index.len(),
        findings.commits.len(),
        findings.other.len()
    );
    assert!(acked > 0, "no record was acknowledged in {trials} trials");
    let mut all: Vec<&String> = findings
        .lost
        .iter()
        .chain(&findings.duplicates)
        .chain(&findings.phantoms)
        .chain(&findings.index)
        .chain(&findings.commits)
        .chain(&findings.other)
        .collect();
    all.truncate(40);
    assert_eq!(
        findings.total(),
        0,
        "crash matrix problems (first 40): {all:#?}"
    );
}
