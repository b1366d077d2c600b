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
