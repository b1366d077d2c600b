use super::*;
use crate::delay::log::{Pending, encode_done, encode_intent, encode_pending, position, replay};

/// A log written frame by frame into segment files, remembering every frame boundary.
struct Log {
    dir: tempfile::TempDir,
    segment: u64,
    bytes: Vec<u8>,
    /// Every position a frame ends at (possible cuts).
    ends: Vec<u64>,
}

impl Log {
    fn new() -> Log {
        Log {
            dir: tempfile::tempdir().unwrap(),
            segment: 0,
            bytes: Vec::new(),
            ends: Vec::new(),
        }
    }

    fn flush(&self) {
        std::fs::write(segment_path(self.dir.path(), self.segment), &self.bytes).unwrap();
    }

    fn roll(&mut self) {
        self.flush();
        self.segment += 1;
        self.bytes.clear();
    }

    fn frame(&mut self, f: impl FnOnce(&mut Vec<u8>) -> u32) -> FrameRef {
        let at = position(self.segment, self.bytes.len() as u64);
        let len = f(&mut self.bytes);
        self.ends
            .push(position(self.segment, self.bytes.len() as u64));
        self.flush();
        FrameRef { position: at, len }
    }

    fn pending(&mut self, topic: &str, partition: i32, due_ms: i64) -> FrameRef {
        self.frame(|buf| {
            encode_pending(
                buf,
                &Pending {
                    due_ms,
                    timestamp_ms: 1,
                    topic,
                    partition,
                    tail: b"record bytes",
                },
            )
        })
    }

    fn intent(&mut self, topic: &str, partition: i32, records: Vec<FrameRef>) -> FrameRef {
        self.frame(|buf| {
            encode_intent(
                buf,
                &Intent {
                    topic: topic.into(),
                    partition,
                    base_sequence: 0,
                    records,
                },
            )
        })
    }

    fn done(&mut self, intent: FrameRef) {
        self.frame(|buf| encode_done(buf, intent.position));
    }
}

type Seen = (
    Vec<(FrameRef, i64, String, i32)>,
    Vec<(FrameRef, Intent)>,
    Vec<log::SegmentState>,
);

fn replay_all(dir: &Path) -> Seen {
    let mut found = Vec::new();
    let replayed = replay(dir, |frame, due, topic, partition| {
        found.push((frame, due, topic.to_string(), partition))
    })
    .unwrap();
    found.sort_by_key(|(f, ..)| f.position);
    (found, replayed.unresolved, replayed.segments)
}

/// Pending records, some delivered, one intent left unresolved, across three segments.
fn sample_log() -> Log {
    let mut log = Log::new();
    let a: Vec<FrameRef> = (0..6).map(|i| log.pending("a", 0, 100 + i)).collect();
    let b: Vec<FrameRef> = (0..4).map(|i| log.pending("b", 1, 200 + i)).collect();
    let first = log.intent("a", 0, a[..3].to_vec());
    log.done(first);
    log.roll();
    let c: Vec<FrameRef> = (0..5).map(|i| log.pending("a", 0, 300 + i)).collect();
    let unresolved = log.intent("b", 1, b[..2].to_vec());
    let second = log.intent("a", 0, vec![a[3], c[0]]);
    log.roll();
    log.done(second);
    let _ = unresolved;
    (0..3).for_each(|i| {
        log.pending("c", 2, 400 + i);
    });
    let third = log.intent("a", 0, c[1..3].to_vec());
    log.done(third);
    log
}

/// Writes a checkpoint of these parts in `dir` through the streaming writer.
fn write_parts(
    dir: &Path,
    cut: u64,
    pending: &[Entry],
    segments: &[(u64, u64)],
    keys: &[(String, i32)],
    intents: &[(FrameRef, Intent)],
) {
    let mut out = CheckpointWriter::create(dir, cut).unwrap();
    for e in pending {
        out.push(*e);
    }
    assert_eq!(
        out.finish(segments, keys, intents).unwrap(),
        pending.len() as u64
    );
}

fn read_back(dir: &Path) -> Option<(Checkpoint, Vec<Entry>)> {
    let file = File::open(dir.join(CHECKPOINT_FILE)).unwrap();
    let ckpt = read_checked(file).unwrap()?;
    let mut pending = Vec::new();
    ckpt.for_each_pending(|e| pending.push(e)).unwrap();
    Some((ckpt, pending))
}

#[test]
fn a_checkpoint_round_trips_and_rejects_any_damage() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(String, i32)> = vec![("t".into(), 4), ("u".into(), 0)];
    // More entries than one read chunk, so the chunked reads and the CRC over chunks count.
    let pending: Vec<Entry> = (0..ENTRIES_PER_CHUNK as u64 + 7)
        .map(|i| Entry {
            position: position(2, 17 + i * 40),
            len: 40,
            key: (i % 2) as u32,
            due_ms: 12345 + i as i64,
        })
        .collect();
    let segments = vec![(2, 1000), (3, 99)];
    let intents = vec![(
        FrameRef {
            position: position(3, 50),
            len: 0,
        },
        Intent {
            topic: "t".into(),
            partition: 4,
            base_sequence: 8,
            records: vec![FrameRef {
                position: position(2, 0),
                len: 40,
            }],
        },
    )];
    write_parts(
        dir.path(),
        position(3, 99),
        &pending,
        &segments,
        &keys,
        &intents,
    );
    let (back, back_pending) = read_back(dir.path()).unwrap();
    assert_eq!(back_pending, pending);
    assert_eq!(back.pending_count, pending.len() as u64);
    assert_eq!(back.keys, keys);
    assert_eq!(back.intents[0].1, intents[0].1);
    assert_eq!((back.cut, &back.segments), (position(3, 99), &segments));

    // Every truncation and every flipped bit of a small one is refused.
    write_parts(
        dir.path(),
        position(3, 99),
        &pending[..3],
        &segments,
        &keys,
        &intents,
    );
    let path = dir.path().join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&path).unwrap();
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(read_back(dir.path()).is_none(), "torn at {cut}");
    }
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        assert!(read_back(dir.path()).is_none(), "flipped at {at}");
    }
    // A checked file whose entries name a key it does not have is refused too.
    write_parts(
        dir.path(),
        position(3, 99),
        &pending[..3],
        &segments,
        &keys[..1],
        &intents,
    );
    assert!(read_back(dir.path()).is_none());
}

#[test]
fn replay_from_a_checkpoint_at_any_cut_equals_replaying_the_whole_log() {
    let log = sample_log();
    let dir = log.dir.path();
    let whole = replay_all(dir);
    assert!(!whole.0.is_empty() && whole.1.len() == 1);
    let mut previous: Option<u64> = None;
    for &cut in &log.ends {
        // Each checkpoint is built on the previous one, as a running shard builds them.
        if previous.is_none() {
            let _ = std::fs::remove_file(dir.join(CHECKPOINT_FILE));
        }
        take(dir, cut).unwrap();
        previous = Some(cut);
        let loaded = load(dir, &log::segment_numbers(dir).unwrap()).unwrap();
        assert_eq!(loaded.cut, cut);
        let from_checkpoint = replay_all(dir);
        assert_eq!(from_checkpoint.0, whole.0, "pending, cut {cut:#x}");
        assert_eq!(from_checkpoint.1, whole.1, "unresolved, cut {cut:#x}");
        assert_eq!(from_checkpoint.2, whole.2, "segments, cut {cut:#x}");
    }
    // A checkpoint taken straight at each cut (no previous one) says the same.
    for &cut in log.ends.iter().step_by(3) {
        std::fs::remove_file(dir.join(CHECKPOINT_FILE)).unwrap();
        take(dir, cut).unwrap();
        assert_eq!(replay_all(dir).0, whole.0, "fresh at {cut:#x}");
    }
}

#[test]
fn a_restart_reads_only_the_frames_after_the_cut() {
    let log = sample_log();
    let dir = log.dir.path();
    let last = *log.ends.last().unwrap();
    take(dir, last).unwrap();
    let replayed = replay(dir, |_, _, _, _| {}).unwrap();
    assert_eq!(replayed.checkpoint_cut, Some(last));
    assert_eq!(replayed.tail_bytes, 0);
}

#[test]
fn a_checkpoint_that_does_not_fit_the_log_is_removed_and_the_whole_log_replayed() {
    let log = sample_log();
    let dir = log.dir.path();
    let whole = replay_all(dir);
    let path = dir.join(CHECKPOINT_FILE);

    // Torn file.
    take(dir, *log.ends.last().unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let replayed = replay(dir, |_, _, _, _| {}).unwrap();
    assert_eq!(replayed.checkpoint_cut, None);
    assert!(!path.exists());
    assert_eq!(replay_all(dir).0, whole.0);

    // A cut past the end of its segment (the log lost its tail).
    take(dir, *log.ends.last().unwrap()).unwrap();
    let (ckpt, pending) = read_back(dir).unwrap();
    write_parts(
        dir,
        ckpt.cut + 1000,
        &pending,
        &ckpt.segments,
        &ckpt.keys,
        &ckpt.intents,
    );
    assert_eq!(replay_all(dir).0, whole.0);
    assert!(!path.exists());

    // An earlier segment whose length changed.
    take(dir, *log.ends.last().unwrap()).unwrap();
    let first = segment_path(dir, 0);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes.extend_from_slice(&[0u8; 5]);
    std::fs::write(&first, &bytes).unwrap();
    let replayed = replay(dir, |_, _, _, _| {}).unwrap();
    assert_eq!(replayed.checkpoint_cut, None);
    assert!(!path.exists());
}

#[test]
fn records_of_a_segment_deleted_after_the_checkpoint_count_as_delivered() {
    let mut log = Log::new();
    let old = log.pending("a", 0, 10);
    log.roll();
    let kept = log.pending("a", 0, 20);
    let cut = *log.ends.last().unwrap();
    take(log.dir.path(), cut).unwrap();
    // Delivered after the cut, then its segment deleted as a prefix.
    let intent = log.intent("a", 0, vec![old]);
    log.done(intent);
    std::fs::remove_file(segment_path(log.dir.path(), 0)).unwrap();
    let (found, unresolved, segments) = replay_all(log.dir.path());
    assert_eq!(
        found.iter().map(|(f, ..)| *f).collect::<Vec<_>>(),
        vec![kept]
    );
    assert!(unresolved.is_empty());
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].live, 1);
}
