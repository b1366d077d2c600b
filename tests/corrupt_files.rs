//! Torn and corrupt files (issue 7): with the broker stopped, truncate or flip bytes in a
//! partition's `.log`, `.index`, `.timeindex` and `partition.state`, restart, and check the
//! outcome is one of the two allowed (see `src/storage/recovery.rs`):
//! * recovered: indexes rebuilt / torn tail truncated; everything served decodes (CRC), sits
//!   at the offset it was acknowledged at with its value, nothing after a tear is served, and
//!   fetch / ListOffsets by timestamp agree with the log; or
//! * refused: KAFKA_STORAGE_ERROR (56) on produce and fetch for that partition, the broker's
//!   log names the damaged file, and the other partition keeps working.
//!
//! Where the rules of recovery fix the outcome (torn tail after a crash → truncate; damage
//! before the recovery point → refuse), the test demands that outcome.
//! Must not: accept a served batch that fails its CRC, or a record at the wrong offset.

mod reliability;
mod support;

use reliability::{ERROR_KAFKA_STORAGE, RawConn, batch, read_all, spawn_logged};
use sluice::storage::state::{PartitionState, STATE_FILE_NAME};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::Broker;

const TOPIC: &str = "corrupt";
/// The partition whose files are damaged; `HEALTHY` is left alone.
const VICTIM: i32 = 0;
const HEALTHY: i32 = 1;
/// Small segments (several per partition) and dense index entries.
const SEGMENT_BYTES: &str = "8192";
const INDEX_INTERVAL_BYTES: &str = "512";
const BATCHES: usize = 60;
const RECORDS_PER_BATCH: usize = 4;
/// Value bytes per record (≈ 4 × 100 B batches → several segments of 8 KiB).
const VALUE_BYTES: usize = 100;

/// How long partitions may take to open after the broker listens.
const PARTITION_OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
const ERROR_NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// What the test produced: offset → (timestamp, value), per partition.
type Acked = BTreeMap<i64, (i64, Vec<u8>)>;

struct Fixture {
    broker: Broker,
    acked: [Acked; 2],
    log_path: PathBuf,
    _logs: tempfile::TempDir,
}

impl Fixture {
    /// A broker with both partitions filled, then stopped cleanly.
    fn new() -> Fixture {
        let broker = Broker::start();
        let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
        conn.create_topic(
            TOPIC,
            2,
            &[
                ("segment.bytes", SEGMENT_BYTES),
                ("index.interval.bytes", INDEX_INTERVAL_BYTES),
            ],
        )
        .expect("create topic");
        let mut acked: [Acked; 2] = [BTreeMap::new(), BTreeMap::new()];
        let ts_base = reliability::now_ms() - 1_000_000;
        for i in 0..BATCHES {
            for p in [VICTIM, HEALTHY] {
                let values: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
                    .map(|r| {
                        let mut v = format!("p{p}-b{i}-r{r}|").into_bytes();
                        v.resize(VALUE_BYTES, b'x');
                        v
                    })
                    .collect();
                let ts = ts_base + (i * RECORDS_PER_BATCH) as i64 * 10;
                let (code, base) = conn
                    .produce(TOPIC, p, batch(&values, None, ts), -1)
                    .expect("produce");
                assert_eq!(code, 0, "produce to {p}");
                for (r, v) in values.into_iter().enumerate() {
                    acked[p as usize].insert(base + r as i64, (ts + r as i64, v));
                }
            }
        }
        let logs = tempfile::tempdir().expect("tempdir");
        let log_path = logs.path().join("broker.log");
        let mut f = Fixture {
            broker,
            acked,
            log_path,
            _logs: logs,
        };
        f.broker.terminate();
        f
    }

    fn dir(&self, partition: i32) -> PathBuf {
        self.broker.data_dir.join(format!("{TOPIC}-{partition}"))
    }

    /// Files of the victim with this suffix, by base offset.
    fn files(&self, suffix: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.dir(VICTIM))
            .expect("read partition dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == suffix))
            .collect();
        out.sort();
        assert!(
            !out.is_empty(),
            "no .{suffix} files in {}",
            self.dir(VICTIM).display()
        );
        out
    }

    fn restart(&mut self) {
        assert!(
            spawn_logged(&mut self.broker, &self.log_path),
            "the broker exited at start-up instead of refusing one partition: {}",
            self.broker_log()
        );
    }

    fn broker_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Rewrites partition.state of the victim as an unclean shutdown with `recovery_point`.
    fn mark_unclean(&self, recovery_point: i64) {
        let path = self.dir(VICTIM).join(STATE_FILE_NAME);
        let raw = std::fs::read(&path).expect("read state");
        let mut state = PartitionState::decode(&raw, &path).expect("decode state");
        state.clean_shutdown = false;
        state.recovery_point = recovery_point;
        std::fs::write(&path, state.encode()).expect("write state");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Online; records [0, end) served, all correct.
    Recovered {
        end: i64,
    },
    Refused,
}

/// Checks the victim after a restart and returns which allowed outcome it is. Panics on any
/// served corruption or wrong record, or if the healthy partition does not work.
fn check(f: &mut Fixture, damaged_file: &Path) -> Outcome {
    assert!(
        reliability::alive(&mut f.broker),
        "broker died: {}",
        f.broker_log()
    );
    let mut conn = RawConn::connect(&f.broker.bootstrap()).expect("connect");
    // Partitions open after the listener: wait (bounded) until neither is still loading.
    let deadline = std::time::Instant::now() + PARTITION_OPEN_TIMEOUT;
    for p in [HEALTHY, VICTIM] {
        loop {
            let (code, ..) = conn.fetch(TOPIC, p, 0, 1).expect("fetch");
            if code != ERROR_NOT_LEADER_OR_FOLLOWER {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "partition {p} still not open (NOT_LEADER_OR_FOLLOWER) after \
                 {PARTITION_OPEN_TIMEOUT:?}; broker log:\n{}",
                f.broker_log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // The healthy partition: every record intact, and it accepts writes.
    let (batches, hw, _) = read_all(&mut conn, TOPIC, HEALTHY, 0).expect("healthy partition reads");
    assert_eq!(
        hw,
        f.acked[1].len() as i64,
        "healthy partition high watermark"
    );
    for b in &batches {
        for (o, _, v) in &b.records {
            assert_eq!(
                v.as_deref(),
                f.acked[1].get(o).map(|(_, v)| v.as_slice()),
                "healthy record {o}"
            );
        }
    }
    let (code, _) = conn
        .produce(TOPIC, HEALTHY, batch(&[b"after".to_vec()], None, 1), -1)
        .expect("produce healthy");
    assert_eq!(code, 0, "produce to the healthy partition");

    let (code, ..) = conn.fetch(TOPIC, VICTIM, 0, 1024).expect("fetch victim");
    if code == ERROR_KAFKA_STORAGE {
        let (pcode, _) = conn
            .produce(TOPIC, VICTIM, batch(&[b"x".to_vec()], None, 1), -1)
            .expect("produce victim");
        assert_eq!(pcode, ERROR_KAFKA_STORAGE, "produce to a refused partition");
        let name = damaged_file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let log = f.broker_log();
        assert!(
            log.contains(&name),
            "the broker log does not name the damaged file {name}:\n{log}"
        );
        return Outcome::Refused;
    }
    assert_eq!(code, 0, "fetch of the victim: neither served nor refused");
    // Everything served decodes (CRC) and is gap-free (read_all), and is what was acked.
    let (batches, hw, _) = read_all(&mut conn, TOPIC, VICTIM, 0)
        .unwrap_or_else(|e| panic!("victim partition served bad data: {e}"));
    let acked = &f.acked[0];
    let mut served = 0i64;
    for b in &batches {
        for (o, ts, v) in &b.records {
            let expected = acked.get(o);
            assert_eq!(
                v.as_deref(),
                expected.map(|(_, v)| v.as_slice()),
                "victim offset {o}: wrong record served"
            );
            assert_eq!(Some(*ts), expected.map(|(t, _)| *t), "timestamp at {o}");
            served = o + 1;
        }
    }
    assert_eq!(served, hw, "records served up to the high watermark");
    // Index agreement: fetch at every offset returns the batch holding it first …
    for o in 0..hw {
        let (code, _, _, bytes) = conn.fetch(TOPIC, VICTIM, o, 4096).expect("fetch");
        assert_eq!(code, 0, "fetch at {o}; broker log:\n{}", f.broker_log());
        let got = reliability::split_batches(bytes).unwrap_or_else(|e| panic!("fetch at {o}: {e}"));
        let first = got.first().map(|b| (b.base_offset, b.last_offset));
        assert!(
            first.is_some_and(|(b, l)| b <= o && o <= l),
            "fetch at {o} returned first batch {first:?}"
        );
    }
    // … and ListOffsets by timestamp finds the first record at or after it.
    for (o, (ts, _)) in acked.range(..hw) {
        let (code, got, _) = conn.list_offsets(TOPIC, VICTIM, *ts).expect("list offsets");
        assert_eq!((code, got), (0, *o), "ListOffsets({ts})");
    }
    // The partition takes writes at its end.
    let (code, base) = conn
        .produce(TOPIC, VICTIM, batch(&[b"after".to_vec()], None, 1), -1)
        .expect("produce victim");
    assert_eq!((code, base), (0, hw), "produce after recovery");
    Outcome::Recovered { end: hw }
}

fn flip_byte(path: &Path, at: u64) {
    let mut raw = std::fs::read(path).expect("read");
    let i = at as usize;
    assert!(
        i < raw.len(),
        "{} has {} bytes, flip at {i}",
        path.display(),
        raw.len()
    );
    raw[i] ^= 0x5a;
    std::fs::write(path, raw).expect("write");
}

fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_len(len).expect("truncate");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Base offset of a segment file, from its name.
fn base_of(path: &Path) -> i64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment name")
}

/// Byte positions of the batches in a segment file (walks length prefixes).
fn batch_positions(path: &Path) -> Vec<(u64, i64)> {
    let raw = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= raw.len() {
        let base = i64::from_be_bytes(raw[pos..pos + 8].try_into().expect("8"));
        let len = i32::from_be_bytes(raw[pos + 8..pos + 12].try_into().expect("4")) as usize;
        out.push((pos as u64, base));
        pos += 12 + len;
    }
    out
}

#[test]
fn torn_log_tail_after_a_crash_is_truncated() {
    let mut f = Fixture::new();
    let logs = f.files("log");
    let last = logs.last().expect("a segment");
    let positions = batch_positions(last);
    let (tear_pos, tear_offset) = positions[positions.len() / 2];
    // Cut into the middle of a batch, as a crash during a write would.
    truncate(last, tear_pos + 30);
    f.mark_unclean(base_of(last));
    f.restart();
    assert_eq!(
        check(&mut f, last),
        Outcome::Recovered { end: tear_offset },
        "a torn tail after the recovery point is truncated at the last whole batch"
    );
}

#[test]
fn flipped_byte_in_the_tail_after_a_crash_truncates_there() {
    let mut f = Fixture::new();
    let logs = f.files("log");
    let last = logs.last().expect("a segment");
    let positions = batch_positions(last);
    let (pos, offset) = positions[positions.len() / 2];
    // A payload byte (past the 61-byte header) of a batch after the recovery point.
    flip_byte(last, pos + 70);
    f.mark_unclean(base_of(last));
    f.restart();
    let outcome = check(&mut f, last);
    assert!(
        outcome == Outcome::Recovered { end: offset } || outcome == Outcome::Refused,
        "expected truncation at {offset} or refusal, got {outcome:?}"
    );
}

#[test]
fn flipped_byte_before_the_recovery_point_refuses_the_partition_at_its_first_read() {
    let mut f = Fixture::new();
    let logs = f.files("log");
    let last = logs.last().expect("a segment");
    let positions = batch_positions(last);
    let (pos, _) = positions[positions.len() / 2];
    flip_byte(last, pos + 70);
    // Recovery point at the log end: the damage is in data that was known durable. The
    // open does not re-read it (decision 0002: re-validation starts at the recovery point,
    // and Kafka trusts what is below it too); the first read of the segment checks it.
    f.mark_unclean(f.acked[0].len() as i64);
    f.restart();
    let mut conn = RawConn::connect(&f.broker.bootstrap()).expect("connect");
    // Open, and read its first (undamaged) segment, before a few maintenance ticks pass:
    // the partition has nothing to flush, so the background flush no longer watches it
    // when the damage is found.
    let deadline = std::time::Instant::now() + PARTITION_OPEN_TIMEOUT;
    loop {
        let (code, ..) = conn.fetch(TOPIC, VICTIM, 0, 1024).expect("fetch offset 0");
        if code != ERROR_NOT_LEADER_OR_FOLLOWER || std::time::Instant::now() > deadline {
            assert_eq!(code, 0, "the first segment is undamaged");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (code, ..) = conn
        .fetch(TOPIC, VICTIM, base_of(last), 1024)
        .expect("fetch the damaged segment");
    assert_eq!(
        code, ERROR_KAFKA_STORAGE,
        "the first read of damaged data must refuse it"
    );
    assert_eq!(
        check(&mut f, last),
        Outcome::Refused,
        "corruption before the recovery point must take the partition offline"
    );
    // The read that found the damage (on a partition with nothing to flush) takes it out
    // of service: listed offline, as Metadata and /v1/status report it.
    support::wait_until(
        PARTITION_OPEN_TIMEOUT,
        std::time::Duration::from_millis(100),
        || {
            let metrics = support::scrape_metrics(f.broker.admin_port);
            let offline: f64 = metrics
                .lines()
                .filter(|l| l.starts_with("sluice_offline_partitions{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if offline == 1.0 {
                Ok(())
            } else {
                Err(format!("offline partitions listed: {offline}"))
            }
        },
    );
}

#[test]
fn flipped_byte_in_an_old_segment_is_never_served() {
    let mut f = Fixture::new();
    let logs = f.files("log");
    let first = &logs[0];
    let positions = batch_positions(first);
    let (pos, _) = positions[positions.len() / 2];
    flip_byte(first, pos + 70);
    // Clean shutdown flag left as is: the broker trusts the files; the damage must still
    // never reach a client.
    f.restart();
    let outcome = check(&mut f, first);
    eprintln!("flipped byte in an old segment: {outcome:?}");
}

#[test]
fn flipped_length_in_an_old_segment_after_a_crash_is_refused_or_truncated() {
    let mut f = Fixture::new();
    let logs = f.files("log");
    let first = &logs[0];
    let positions = batch_positions(first);
    let (pos, _) = positions[positions.len() / 2];
    // The batch length field: the header walk can no longer find the next batch.
    flip_byte(first, pos + 10);
    // Unclean, with the recovery point the broker itself persisted when it sealed the
    // segments before the active one: every rolled segment is known synced.
    f.mark_unclean(base_of(logs.last().expect("a segment")));
    f.restart();
    let outcome = check(&mut f, first);
    assert_eq!(
        outcome,
        Outcome::Refused,
        "damage in a sealed segment is corruption, never a torn tail"
    );
}

/// Damages the offset index of the middle segment with `damage` and checks it is rebuilt.
fn offset_index_damage_is_repaired(damage: impl FnOnce(&Path)) {
    let mut f = Fixture::new();
    let indexes = f.files("index");
    assert!(
        indexes.len() >= 3,
        "want ≥ 3 segments, got {}",
        indexes.len()
    );
    let target = indexes[indexes.len() / 2].clone();
    damage(&target);
    f.restart();
    assert_eq!(
        check(&mut f, &target),
        Outcome::Recovered {
            end: f.acked[0].len() as i64
        }
    );
}

#[test]
fn offset_index_truncated_to_odd_length_is_rebuilt() {
    offset_index_damage_is_repaired(|p| truncate(p, file_len(p).saturating_sub(3)));
}

#[test]
fn emptied_offset_index_is_rebuilt() {
    offset_index_damage_is_repaired(|p| truncate(p, 0));
}

#[test]
fn offset_index_with_a_flipped_position_byte_is_rebuilt() {
    // The low byte of a middle entry's position: entries stay monotonic and inside the
    // file, so only a check against the log itself can catch it.
    offset_index_damage_is_repaired(|p| {
        let entries = file_len(p) / 8;
        assert!(entries >= 3, "index {} has {entries} entries", p.display());
        flip_byte(p, (entries / 2) * 8 + 7);
    });
}

#[test]
fn offset_index_with_a_flipped_offset_byte_is_rebuilt() {
    offset_index_damage_is_repaired(|p| {
        let entries = file_len(p) / 8;
        assert!(entries >= 3, "index {} has {entries} entries", p.display());
        flip_byte(p, (entries / 2) * 8 + 3);
    });
}

#[test]
fn garbage_offset_index_is_rebuilt() {
    let mut f = Fixture::new();
    let indexes = f.files("index");
    let target = &indexes[indexes.len() / 2];
    let len = file_len(target) as usize;
    std::fs::write(target, vec![0xffu8; len.max(8)]).expect("write");
    f.restart();
    assert_eq!(
        check(&mut f, target),
        Outcome::Recovered {
            end: f.acked[0].len() as i64
        }
    );
}

#[test]
fn damaged_time_indexes_are_rebuilt() {
    let mut f = Fixture::new();
    let indexes = f.files("timeindex");
    assert!(indexes.len() >= 2);
    truncate(&indexes[0], file_len(&indexes[0]).saturating_sub(5));
    let flipped = &indexes[1];
    let entries = file_len(flipped) / 12;
    assert!(entries >= 1, "time index {} is empty", flipped.display());
    // A timestamp byte of a middle entry.
    flip_byte(flipped, (entries / 2) * 12 + 6);
    f.restart();
    assert_eq!(
        check(&mut f, flipped),
        Outcome::Recovered {
            end: f.acked[0].len() as i64
        }
    );
}

#[test]
fn deleted_index_files_are_rebuilt() {
    let mut f = Fixture::new();
    for p in f.files("index").iter().chain(f.files("timeindex").iter()) {
        std::fs::remove_file(p).expect("remove");
    }
    let any = f.files("log")[0].clone();
    f.restart();
    assert_eq!(
        check(&mut f, &any),
        Outcome::Recovered {
            end: f.acked[0].len() as i64
        }
    );
}

#[test]
fn damaged_state_file_triggers_full_recovery() {
    for damage in ["flip", "truncate", "garbage"] {
        let mut f = Fixture::new();
        let path = f.dir(VICTIM).join(STATE_FILE_NAME);
        match damage {
            "flip" => flip_byte(&path, 10),
            "truncate" => truncate(&path, 7),
            _ => std::fs::write(&path, b"not a state file at all").expect("write"),
        }
        f.restart();
        assert_eq!(
            check(&mut f, &path),
            Outcome::Recovered {
                end: f.acked[0].len() as i64
            },
            "state file damage: {damage}"
        );
    }
}
