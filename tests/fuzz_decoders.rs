//! Deterministic, seeded fuzzing of the two hostile-input decoders (issue 7), runnable on
//! stable without cargo-fuzz: `protocol::decode_request` (frame → header → body, as
//! `server::dispatch` does) and `storage::validate_batches`. Inputs are mutations of real,
//! valid requests and record batches (bit flips, interesting integers over length fields,
//! truncation, extension, splices) plus pure random bytes. Any panic fails the test with the
//! input in hex. Counts: `INPUTS_DEFAULT` per decoder, `INPUTS_LONG` with SLUICE_LONG_TESTS=1
//! (or `SLUICE_FUZZ_INPUTS=N`). The coverage-guided variant is `tests/fuzz/` (cargo-fuzz).

mod reliability;
mod support;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice::protocol::{SUPPORTED_APIS, decode_request};
use sluice::storage::validate_batches;

const INPUTS_DEFAULT: u64 = 200_000;
const INPUTS_LONG: u64 = 10_000_000;
const SEED: u64 = 0x5111_ce_f022;
/// Integers that tend to break length and count fields.
const INTERESTING_I32: &[i32] = &[
    0, 1, -1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, i32::MIN, -2,
];

fn inputs() -> u64 {
    if let Some(n) = std::env::var("SLUICE_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if reliability::long_mode() {
        INPUTS_LONG
    } else {
        INPUTS_DEFAULT
    }
}

/// A frame body (no size prefix) for `request` at every served version.
fn frames_of<R: Request + Clone>(request: R, out: &mut Vec<Vec<u8>>) {
    let Some(&(_, min, max)) = SUPPORTED_APIS.iter().find(|(k, ..)| *k as i16 == R::KEY) else {
        return;
    };
    for v in min..=max {
        if let Ok(framed) = reliability::RawConn::encode(&request, v, 7) {
            out.push(framed[4..].to_vec());
        }
    }
}

fn name(s: &str) -> TopicName {
    reliability::topic_name(s)
}

fn seed_requests() -> Vec<Vec<u8>> {
    let batch = reliability::batch(&[b"v1".to_vec(), b"value-two".to_vec()], Some((5, 0, 0)), 1);
    let mut out = Vec::new();
    frames_of(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(name("t"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.clone())),
                    ]),
            ]),
        &mut out,
    );
    frames_of(
        FetchRequest::default().with_max_bytes(1024).with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(name("t"))
                .with_partitions(vec![fetch_request::FetchPartition::default()]),
        ]),
        &mut out,
    );
    frames_of(
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("t"))),
        ])),
        &mut out,
    );
    frames_of(
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("x"))
            .with_client_software_version(StrBytes::from_static_str("1")),
        &mut out,
    );
    frames_of(
        ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()]),
        ]),
        &mut out,
    );
    frames_of(
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(3)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("segment.bytes"))
                        .with_value(Some(StrBytes::from_static_str("1024"))),
                ]),
        ]),
        &mut out,
    );
    frames_of(
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\0\0\0\0")),
            ]),
        &mut out,
    );
    frames_of(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default(),
                    ]),
            ]),
        &mut out,
    );
    frames_of(SyncGroupRequest::default(), &mut out);
    frames_of(HeartbeatRequest::default(), &mut out);
    frames_of(OffsetFetchRequest::default(), &mut out);
    frames_of(FindCoordinatorRequest::default(), &mut out);
    frames_of(InitProducerIdRequest::default().with_transactional_id(None), &mut out);
    frames_of(DescribeConfigsRequest::default(), &mut out);
    frames_of(DeleteTopicsRequest::default(), &mut out);
    frames_of(DeleteRecordsRequest::default(), &mut out);
    frames_of(LeaveGroupRequest::default(), &mut out);
    frames_of(DescribeGroupsRequest::default(), &mut out);
    frames_of(ListGroupsRequest::default(), &mut out);
    assert!(out.len() > 100, "only {} seed frames", out.len());
    out
}

fn seed_batches() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in [1usize, 2, 5] {
        let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'a' + i as u8; i * 7]).collect();
        out.push(reliability::batch(&values, None, 1_700_000_000_000).to_vec());
        out.push(reliability::batch(&values, Some((9, 1, 100)), 1).to_vec());
    }
    let two = [out[0].clone(), out[3].clone()].concat();
    out.push(two);
    out
}

/// One mutation of a seed (or, 1 time in 16, pure random bytes).
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_range(0..16) == 0 {
        let len = rng.random_range(0..256);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        if data.is_empty() {
            data.push(rng.random());
            continue;
        }
        match rng.random_range(0..7) {
            0 => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..data.len());
                data[i] = rng.random();
            }
            2 if data.len() >= 4 => {
                let i = rng.random_range(0..=data.len() - 4);
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())];
                data[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 if data.len() >= 2 => {
                let i = rng.random_range(0..=data.len() - 2);
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())] as i16;
                data[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            4 => {
                let keep = rng.random_range(0..data.len());
                data.truncate(keep);
            }
            5 => {
                let extra = rng.random_range(1..64);
                data.extend((0..extra).map(|_| rng.random::<u8>()));
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let at = rng.random_range(0..=data.len());
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

const CHILD_ENV: &str = "SLUICE_FUZZ_CHILD";
/// Aborted children (each one input) after which the parent stops and reports.
const ABORTS_MAX: usize = 200;
/// How often a child records its accepted count (read back if it aborts).
const PROGRESS_ACCEPTED_EVERY: u64 = 64;

/// The `i`-th input of decoder `which`: deterministic per index, so an input that aborted a
/// child can be regenerated by the parent.
fn input(which: &str, i: u64, seeds: &[Vec<u8>]) -> Vec<u8> {
    let salt = if which == "request" { 0 } else { 1 << 62 };
    let mut rng = StdRng::seed_from_u64(SEED ^ salt ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    mutate(&mut rng, seeds)
}

fn seeds_of(which: &str) -> Vec<Vec<u8>> {
    if which == "request" {
        seed_requests()
    } else {
        seed_batches()
    }
}

/// Decodes one input; Ok(true) if accepted. Panics propagate.
fn decode(which: &str, data: &[u8]) -> bool {
    if which == "request" {
        return decode_request(Bytes::copy_from_slice(data)).is_ok();
    }
    match validate_batches(data) {
        Ok(batches) => {
            assert!(
                batches.iter().all(|b| b.position + b.size_bytes() <= data.len()),
                "accepted batch outside the input"
            );
            true
        }
        Err(_) => false,
    }
}

/// The child: runs inputs `start..end` of `which`, writing each index to the progress file
/// first (an abort cannot be caught in-process), printing `PANIC <i>` per panic and
/// `DONE <accepted>` at the end.
#[test]
#[ignore = "run by the fuzz tests below as a child process"]
fn fuzz_child() {
    use std::os::unix::fs::FileExt;
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let [which, start, end, progress] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let (start, end): (u64, u64) = (start.parse().expect("start"), end.parse().expect("end"));
    let progress = std::fs::OpenOptions::new()
        .write(true)
        .open(progress)
        .expect("progress file");
    let seeds = seeds_of(which);
    std::panic::set_hook(Box::new(|_| {}));
    let mut accepted = 0u64;
    for i in start..end {
        progress.write_at(&i.to_le_bytes(), 0).expect("write progress");
        if i % PROGRESS_ACCEPTED_EVERY == 0 {
            progress
                .write_at(&accepted.to_le_bytes(), 8)
                .expect("write progress");
        }
        let data = input(which, i, &seeds);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(which, &data))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => println!("\nPANIC {i}"),
        }
    }
    // The libtest harness prints "test fuzz_child ... " first: markers start a new line.
    println!("\nDONE {accepted}");
}

/// Runs `n` inputs of `which` in child processes, restarting after each abort. Returns
/// (inputs run, accepted, panics, aborts) with the failing inputs in hex.
fn fuzz(which: &str, n: u64) -> (u64, u64, Vec<String>, Vec<String>) {
    let seeds = seeds_of(which);
    let exe = std::env::current_exe().expect("current exe");
    let dir = tempfile::tempdir().expect("tempdir");
    let progress = dir.path().join("progress");
    let mut start = 0u64;
    let mut accepted = 0u64;
    let mut panics = Vec::new();
    let mut aborts = Vec::new();
    while start < n && aborts.len() < ABORTS_MAX {
        std::fs::write(&progress, [start.to_le_bytes(), 0u64.to_le_bytes()].concat())
            .expect("init progress");
        let out = std::process::Command::new(&exe)
            .args(["--exact", "fuzz_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{which},{start},{n},{}", progress.display()))
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run fuzz child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            if let Some(i) = line.strip_prefix("PANIC ").and_then(|i| i.parse().ok()) {
                panics.push(format!("input {i}: {}", hex(&input(which, i, &seeds))));
            }
            if let Some(a) = line.strip_prefix("DONE ").and_then(|a| a.parse::<u64>().ok()) {
                accepted += a;
            }
        }
        if out.status.success() && stdout.contains("DONE ") {
            start = n;
            break;
        }
        let raw = std::fs::read(&progress).expect("read progress");
        let i = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        accepted += u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
        aborts.push(format!(
            "input {i} killed the process ({}): {}",
            out.status,
            hex(&input(which, i, &seeds))
        ));
        start = i + 1;
    }
    (start, accepted, panics, aborts)
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn fuzz_and_report(which: &str, label: &str) {
    let n = inputs();
    let started = std::time::Instant::now();
    let (ran, accepted, panics, aborts) = fuzz(which, n);
    eprintln!(
        "{label}: {ran} of {n} inputs run, {accepted} accepted, {} panicked, {} aborted the process, {:.1}s",
        panics.len(),
        aborts.len(),
        started.elapsed().as_secs_f64()
    );
    let mut shown = aborts.clone();
    shown.truncate(5);
    assert!(
        panics.is_empty() && aborts.is_empty(),
        "{label}: {} panics {:#?}; {} aborts (first 5) {shown:#?}",
        panics.len(),
        &panics[..panics.len().min(5)],
        aborts.len()
    );
}

#[test]
fn request_decoder_never_panics_on_mutated_frames() {
    for s in &seed_requests() {
        let d = decode_request(Bytes::from(s.clone()));
        assert!(d.is_ok(), "seed frame does not decode: {d:?} {}", hex(s));
    }
    fuzz_and_report("request", "request decoder");
}

#[test]
fn batch_validator_never_panics_on_mutated_batches() {
    for s in &seed_batches() {
        assert!(validate_batches(s).is_ok(), "seed batch invalid: {}", hex(s));
    }
    fuzz_and_report("batch", "batch validator");
}
