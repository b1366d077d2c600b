use super::*;

fn pending(topic: &str, due_ms: i64, tail: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_pending(
        &mut buf,
        &Pending {
            due_ms,
            timestamp_ms: 7,
            topic,
            partition: 3,
            tail,
        },
    );
    buf
}

#[test]
fn frames_round_trip() {
    let frame = pending("t", 42, b"tail bytes");
    match decode_frame(&frame) {
        Some(Frame::Pending(p)) => {
            assert_eq!(
                (p.due_ms, p.timestamp_ms, p.topic, p.partition),
                (42, 7, "t", 3)
            );
            assert_eq!(p.tail, b"tail bytes");
        }
        other => panic!("{other:?}"),
    }
    let intent = Intent {
        topic: "t".into(),
        partition: 1,
        base_sequence: 9,
        records: vec![FrameRef {
            position: position(2, 5),
            len: 30,
        }],
    };
    let mut buf = Vec::new();
    encode_intent(&mut buf, &intent);
    assert_eq!(decode_frame(&buf), Some(Frame::Intent(intent)));
    let mut buf = Vec::new();
    encode_done(&mut buf, 77);
    assert_eq!(
        decode_frame(&buf),
        Some(Frame::Done {
            intent_position: 77
        })
    );
}

#[test]
fn replay_skips_delivered_records_keeps_unresolved_intents_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let mut refs = Vec::new();
    for due in [10, 20, 30, 40] {
        let at = log.len() as u64;
        let frame = pending("t", due, b"x");
        refs.push(FrameRef {
            position: position(0, at),
            len: frame.len() as u32,
        });
        log.extend_from_slice(&frame);
    }
    let done_intent_at = log.len() as u64;
    encode_intent(
        &mut log,
        &Intent {
            topic: "t".into(),
            partition: 3,
            base_sequence: 0,
            records: vec![refs[0]],
        },
    );
    encode_done(&mut log, position(0, done_intent_at));
    encode_intent(
        &mut log,
        &Intent {
            topic: "t".into(),
            partition: 3,
            base_sequence: 1,
            records: vec![refs[1]],
        },
    );
    let whole = log.len();
    log.extend_from_slice(&pending("t", 50, b"torn")[..10]);
    std::fs::write(segment_path(dir.path(), 0), &log).unwrap();

    let mut found = Vec::new();
    let replayed = replay(dir.path(), |frame, due, topic, partition| {
        assert_eq!((topic, partition), ("t", 3));
        found.push((frame, due))
    })
    .unwrap();
    assert_eq!(found, vec![(refs[2], 30), (refs[3], 40)]);
    assert_eq!(replayed.unresolved.len(), 1);
    assert_eq!(replayed.unresolved[0].1.records, vec![refs[1]]);
    // Pending 2, 3 and 4 (in the unresolved intent), and that intent.
    assert_eq!(replayed.segments[0].live, 4);
    assert_eq!(replayed.segments[0].len, whole as u64);
    assert_eq!(
        std::fs::metadata(segment_path(dir.path(), 0))
            .unwrap()
            .len(),
        whole as u64
    );
}

#[test]
fn the_smallest_frame_is_min_frame_bytes_long() {
    let mut done = Vec::new();
    assert_eq!(u64::from(encode_done(&mut done, 1)), MIN_FRAME_BYTES);
    let smallest_pending = pending("", 0, b"");
    assert!(smallest_pending.len() as u64 >= MIN_FRAME_BYTES);
}

#[test]
fn a_position_set_tells_adjacent_frames_apart_and_ignores_impossible_positions() {
    let mut set = PositionSet::new(&[4, 5, 7]);
    // Back-to-back smallest frames, in two segments.
    let frames: Vec<u64> = (0..200)
        .map(|i| position(4 + i % 2, (i / 2) * MIN_FRAME_BYTES))
        .collect();
    for (i, &at) in frames.iter().enumerate() {
        if i % 3 == 0 {
            set.insert(at);
        }
    }
    for (i, &at) in frames.iter().enumerate() {
        assert_eq!(set.contains(at), i % 3 == 0, "frame {i} at {at:#x}");
    }
    // A segment the log does not have, and an offset past any segment's end: nothing is
    // marked (and nothing is allocated for them).
    for at in [position(6, 0), position(9, 0), position(7, OFFSET_MAX + 1)] {
        set.insert(at);
        assert!(!set.contains(at));
    }
    assert!(set.words[2].is_empty());
    assert!(!set.contains(position(7, 0)));
}

#[test]
fn replay_settles_records_delivered_from_an_older_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Segment 0: three records. Segment 1: a done intent for the first two, and an
    // unresolved one for the third.
    let mut old = Vec::new();
    let mut refs = Vec::new();
    for due in [10, 20, 30] {
        let at = old.len() as u64;
        let frame = pending("t", due, b"payload");
        refs.push(FrameRef {
            position: position(0, at),
            len: frame.len() as u32,
        });
        old.extend_from_slice(&frame);
    }
    let mut new = Vec::new();
    encode_intent(
        &mut new,
        &Intent {
            topic: "t".into(),
            partition: 3,
            base_sequence: 0,
            records: vec![refs[0], refs[1]],
        },
    );
    encode_done(&mut new, position(1, 0));
    let unresolved_at = new.len() as u64;
    encode_intent(
        &mut new,
        &Intent {
            topic: "t".into(),
            partition: 3,
            base_sequence: 2,
            records: vec![refs[2]],
        },
    );
    let later = new.len() as u64;
    new.extend_from_slice(&pending("t", 40, b"later"));
    std::fs::write(segment_path(dir.path(), 0), &old).unwrap();
    std::fs::write(segment_path(dir.path(), 1), &new).unwrap();

    let mut found = Vec::new();
    let replayed = replay(dir.path(), |frame, due, _, _| found.push((frame, due))).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.position, found[0].1), (position(1, later), 40));
    assert_eq!(replayed.unresolved.len(), 1);
    assert_eq!(
        replayed.unresolved[0].0.position,
        position(1, unresolved_at)
    );
    // Segment 0: the record in the unresolved intent; segment 1: that intent and the
    // later record.
    let live: Vec<u64> = replayed.segments.iter().map(|s| s.live).collect();
    assert_eq!(live, vec![1, 2]);
}
