//! The share-partition state machine: acquisition, locks, acknowledgements, the delivery
//! count limit and the start offset's advance.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::state::{
    ACK_ACCEPT, ACK_GAP, ACK_REJECT, ACK_RELEASE, ACK_RENEW, AckError, AcquiredRange, DlqCause,
    Grant, RecordState, SharePartitionState,
};

fn grant(from: i64, read_end: i64, now: Instant) -> Grant {
    Grant {
        from,
        read_end,
        readable_end: read_end,
        max_records: 1_000,
        lock_deadline: now + Duration::from_secs(30),
    }
}

/// A renewal deadline for acknowledgements that renew nothing.
fn renewed() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn range(first: i64, last: i64, count: i16) -> AcquiredRange {
    AcquiredRange {
        first_offset: first,
        last_offset: last,
        delivery_count: count,
    }
}

#[test]
fn two_members_never_acquire_the_same_record() {
    let now = Instant::now();
    let (a, b): (Rc<str>, Rc<str>) = (Rc::from("a"), Rc::from("b"));
    let mut s = SharePartitionState::new(0, 100);
    assert_eq!(s.next_read_offset(10), Some(0));
    assert_eq!(s.acquire(&a, grant(0, 5, now)), vec![range(0, 4, 1)]);
    // b reads from the end offset; the batch it gets may overlap a's records.
    assert_eq!(s.next_read_offset(10), Some(5));
    assert_eq!(s.acquire(&b, grant(3, 10, now)), vec![range(5, 9, 1)]);
    assert_eq!(s.next_read_offset(10), None);
}

#[test]
fn expired_lock_makes_records_available_with_delivery_count_two() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let b: Rc<str> = Rc::from("b");
    let mut s = SharePartitionState::new(0, 100);
    s.acquire(&a, grant(0, 3, now));
    s.expire_locks(now + Duration::from_secs(29), 5);
    assert_eq!(s.counts().acquired, 3);
    s.expire_locks(now + Duration::from_secs(31), 5);
    assert_eq!(s.counts().available, 3);
    assert_eq!(s.next_read_offset(3), Some(0));
    assert_eq!(s.acquire(&b, grant(0, 3, now)), vec![range(0, 2, 2)]);
    // The first holder's late acknowledgement is refused.
    assert_eq!(
        s.acknowledge("a", 0, 2, &[ACK_ACCEPT], 5, renewed()),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(
        s.acknowledge("b", 0, 2, &[ACK_ACCEPT], 5, renewed()),
        Ok(())
    );
    assert_eq!(s.start_offset(), 3);
}

#[test]
fn accept_reject_release_and_the_start_offset() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(10, 100);
    s.acquire(&a, grant(10, 14, now));
    // Per-offset types: accept 10, release 11, reject 12, gap 13.
    assert_eq!(
        s.acknowledge(
            "a",
            10,
            13,
            &[ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_GAP],
            5,
            renewed()
        ),
        Ok(())
    );
    assert_eq!(s.start_offset(), 11);
    let states: Vec<_> = s.in_flight().map(|(o, st, _)| (o, st)).collect();
    assert_eq!(
        states,
        vec![
            (11, RecordState::Available),
            (12, RecordState::Archived),
            (13, RecordState::Archived)
        ]
    );
    // 11 comes back; accepting it moves the start past the archived ones.
    assert_eq!(s.acquire(&a, grant(11, 14, now)), vec![range(11, 11, 2)]);
    assert_eq!(
        s.acknowledge("a", 11, 11, &[ACK_ACCEPT], 5, renewed()),
        Ok(())
    );
    assert_eq!(s.start_offset(), 14);
    assert_eq!(s.counts().end_offset, 14);
}

#[test]
fn delivery_count_limit_archives_a_record_that_keeps_failing() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 100);
    for delivery in 1..=3 {
        assert_eq!(s.acquire(&a, grant(0, 1, now)), vec![range(0, 0, delivery)]);
        assert_eq!(
            s.acknowledge("a", 0, 0, &[ACK_RELEASE], 3, renewed()),
            Ok(())
        );
    }
    assert_eq!(s.start_offset(), 1, "archived after the third delivery");
    assert_eq!(s.next_read_offset(1), None);
}

#[test]
fn bad_acknowledgements_change_nothing() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 100);
    s.acquire(&a, grant(0, 4, now));
    assert_eq!(
        s.acknowledge("a", 3, 2, &[ACK_ACCEPT], 5, renewed()),
        Err(AckError::InvalidRequest)
    );
    assert_eq!(
        s.acknowledge("a", 0, 3, &[ACK_ACCEPT, ACK_ACCEPT], 5, renewed()),
        Err(AckError::InvalidRequest)
    );
    assert_eq!(
        s.acknowledge("a", 0, 0, &[9], 5, renewed()),
        Err(AckError::InvalidRequest)
    );
    assert_eq!(
        s.acknowledge("a", 2, 9, &[ACK_ACCEPT], 5, renewed()),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(
        s.acknowledge("b", 0, 0, &[ACK_ACCEPT], 5, renewed()),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(s.counts().acquired, 4);
}

#[test]
fn the_in_flight_window_and_max_records_bound_acquisition() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 3);
    assert_eq!(s.acquire(&a, grant(0, 10, now)), vec![range(0, 2, 1)]);
    assert_eq!(s.next_read_offset(10), None, "window full");
    s.acknowledge("a", 0, 0, &[ACK_ACCEPT], 5, renewed())
        .unwrap();
    assert_eq!(s.next_read_offset(10), Some(3));
    let mut g = grant(3, 10, now);
    g.max_records = 1;
    assert_eq!(s.acquire(&a, g), vec![range(3, 3, 1)]);
}

#[test]
fn released_member_and_log_start_overtaking() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 100);
    s.acquire(&a, grant(0, 5, now));
    s.release_member("a", 5);
    assert_eq!(s.counts().available, 5);
    s.skip_to(3);
    assert_eq!((s.start_offset(), s.end_offset()), (3, 5));
    s.skip_to(8);
    assert_eq!((s.start_offset(), s.end_offset()), (8, 8));
}

#[test]
fn durable_frames_round_trip_and_restore_acquired_records_as_available() {
    use super::durable::{SavedState, decode_log, encode};
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(5, 100);
    s.acquire(&a, grant(5, 10, now));
    s.acknowledge("a", 6, 7, &[ACK_ACCEPT], 5, renewed())
        .unwrap();
    let mut buf = Vec::new();
    encode(&mut buf, "g1", Some(&s));
    encode(&mut buf, "g2", Some(&SharePartitionState::new(0, 100)));
    encode(&mut buf, "g2", None);
    let (states, valid) = decode_log(&buf);
    assert_eq!(valid, buf.len());
    assert_eq!(states.len(), 1, "g2 was deleted");
    let saved = &states["g1"];
    assert_eq!(
        saved,
        &SavedState {
            start_offset: 5,
            runs: vec![
                (1, RecordState::Available, 1),
                (2, RecordState::Acknowledged, 1),
                (2, RecordState::Available, 1)
            ],
            intent: None,
        }
    );
    let restored = SharePartitionState::restore(saved, 100);
    assert_eq!((restored.start_offset(), restored.end_offset()), (5, 10));
    assert_eq!(restored.next_read_offset(10), Some(5));
    // A torn last frame is cut; the earlier state survives.
    let (states, valid) = decode_log(&buf[..buf.len() - 3]);
    assert!(valid < buf.len() - 3);
    assert_eq!(states.len(), 2);
}

#[test]
fn the_earliest_lock_deadline_is_what_a_waiting_fetch_wakes_for() {
    let now = Instant::now();
    let (a, b): (Rc<str>, Rc<str>) = (Rc::from("a"), Rc::from("b"));
    let mut s = SharePartitionState::new(0, 100);
    assert_eq!(s.earliest_lock_deadline(), None);
    let mut later = grant(0, 3, now);
    later.lock_deadline = now + Duration::from_secs(60);
    s.acquire(&a, later);
    let mut sooner = grant(3, 6, now);
    sooner.lock_deadline = now + Duration::from_secs(5);
    s.acquire(&b, sooner);
    assert_eq!(
        s.earliest_lock_deadline(),
        Some(now + Duration::from_secs(5))
    );
    // Settled records hold no lock: b's acknowledgement leaves a's deadline.
    assert_eq!(
        s.acknowledge("b", 3, 5, &[ACK_ACCEPT], 5, renewed()),
        Ok(())
    );
    assert_eq!(
        s.earliest_lock_deadline(),
        Some(now + Duration::from_secs(60))
    );
    s.release_member("a", 5);
    assert_eq!(s.earliest_lock_deadline(), None);
}

#[test]
fn with_a_dead_letter_topic_rejected_and_exhausted_records_wait_archiving_then_archive() {
    use super::durable::{decode_log, encode};
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 100);
    s.set_dead_letter(true);
    s.acquire(&a, grant(0, 4, now));
    // 0 rejected, 1 accepted, 2 released at the limit of 1 delivery, 3 still held.
    assert_eq!(
        s.acknowledge("a", 0, 0, &[ACK_REJECT], 1, renewed()),
        Ok(())
    );
    assert_eq!(
        s.acknowledge("a", 1, 1, &[ACK_ACCEPT], 1, renewed()),
        Ok(())
    );
    assert_eq!(
        s.acknowledge("a", 2, 2, &[ACK_RELEASE], 1, renewed()),
        Ok(())
    );
    let c = s.counts();
    assert_eq!((c.archiving, c.archived, c.start_offset), (2, 0, 0));
    // ARCHIVING is never handed out again and holds the window's start.
    assert_eq!(s.next_read_offset(4), None);
    let (intent, letters) = s.dead_letter_intent(|| 7).expect("records wait");
    assert_eq!(intent.base_sequence, 7);
    assert_eq!(intent.offsets, vec![0, 2]);
    assert_eq!(letters[0].cause, DlqCause::Rejected);
    assert_eq!(letters[1].cause, DlqCause::DeliveryCountExceeded);
    assert_eq!(letters[1].delivery_count, 1);
    // The intent in progress is returned again (a retry), never a new sequence.
    let (again, _) = s.dead_letter_intent(|| 99).expect("intent in progress");
    assert_eq!(again, intent);
    // Durable: the intent and the ARCHIVING states survive a restart.
    let mut buf = Vec::new();
    encode(&mut buf, "g", Some(&s));
    let (states, _) = decode_log(&buf);
    assert_eq!(states["g"].intent.as_ref(), Some(&intent));
    let mut restored = SharePartitionState::restore(&states["g"], 100);
    assert_eq!(restored.dlq_intent(), Some(&intent));
    assert_eq!(restored.counts().archiving, 2);
    restored.finish_dead_letter_intent();
    let c = restored.counts();
    assert_eq!(
        (c.archiving, c.start_offset),
        (0, 3),
        "0..=2 settled, 3 was held"
    );
    assert_eq!(restored.dead_letter_intent(|| 0), None);
}

#[test]
fn without_a_dead_letter_topic_reject_archives_at_once() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 100);
    s.acquire(&a, grant(0, 1, now));
    assert_eq!(
        s.acknowledge("a", 0, 0, &[ACK_REJECT], 5, renewed()),
        Ok(())
    );
    assert_eq!(s.counts().start_offset, 1);
    assert!(!s.has_dead_letters());
}

#[test]
fn renew_restarts_the_lock_and_keeps_the_record_and_its_count() {
    let now = Instant::now();
    let (a, b): (Rc<str>, Rc<str>) = (Rc::from("a"), Rc::from("b"));
    let mut s = SharePartitionState::new(0, 100);
    assert_eq!(s.acquire(&a, grant(0, 3, now)), vec![range(0, 2, 1)]);
    // Renewed 20 s in, for another 30 s: the lock now ends at 50 s, not 30 s.
    let renewed_at = now + Duration::from_secs(20);
    let until = renewed_at + Duration::from_secs(30);
    assert_eq!(s.acknowledge("a", 0, 2, &[ACK_RENEW], 5, until), Ok(()));
    assert_eq!(s.earliest_lock_deadline(), Some(until));
    assert_eq!(s.expire_locks(now + Duration::from_secs(31), 5), 0);
    assert_eq!(s.counts().acquired, 3);
    assert_eq!(s.next_read_offset(3), None);
    assert_eq!(s.acquire(&b, grant(0, 3, now)), vec![]);
    // Still the first delivery: accepting settles it for good, nothing is redelivered.
    let in_flight: Vec<_> = s.in_flight().collect();
    assert!(
        in_flight
            .iter()
            .all(|(_, state, count)| *state == RecordState::Acquired && *count == 1)
    );
    assert_eq!(
        s.acknowledge("a", 0, 2, &[ACK_ACCEPT], 5, renewed()),
        Ok(())
    );
    assert_eq!(s.start_offset(), 3);
    assert_eq!(s.counts().acquired, 0);
}

#[test]
fn renew_of_what_the_member_does_not_hold_is_refused_and_changes_nothing() {
    let now = Instant::now();
    let (a, b): (Rc<str>, Rc<str>) = (Rc::from("a"), Rc::from("b"));
    let mut s = SharePartitionState::new(0, 100);
    s.acquire(&a, grant(0, 2, now));
    let later = now + Duration::from_secs(60);
    // Another member's record, an offset never acquired, a range straddling both.
    assert_eq!(
        s.acknowledge("b", 0, 0, &[ACK_RENEW], 5, later),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(
        s.acknowledge("a", 5, 5, &[ACK_RENEW], 5, later),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(
        s.acknowledge("a", 1, 2, &[ACK_RENEW], 5, later),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(
        s.earliest_lock_deadline(),
        Some(now + Duration::from_secs(30))
    );
    // Expired: the record went back (or on) and a late renewal cannot take it back.
    s.expire_locks(now + Duration::from_secs(31), 5);
    assert_eq!(
        s.acknowledge("a", 0, 0, &[ACK_RENEW], 5, later),
        Err(AckError::InvalidRecordState)
    );
    assert_eq!(s.acquire(&b, grant(0, 2, now)), vec![range(0, 1, 2)]);
}

#[test]
fn renew_mixes_with_other_types_per_offset() {
    let now = Instant::now();
    let a: Rc<str> = Rc::from("a");
    let mut s = SharePartitionState::new(0, 100);
    s.acquire(&a, grant(0, 3, now));
    let later = now + Duration::from_secs(90);
    assert_eq!(
        s.acknowledge("a", 0, 2, &[ACK_ACCEPT, ACK_RENEW, ACK_RELEASE], 5, later),
        Ok(())
    );
    let states: Vec<_> = s.in_flight().map(|(o, state, _)| (o, state)).collect();
    assert_eq!(
        states,
        vec![(1, RecordState::Acquired), (2, RecordState::Available)]
    );
    assert_eq!(s.earliest_lock_deadline(), Some(later));
    assert_eq!(
        s.acknowledge("a", 1, 1, &[5], 5, later),
        Err(AckError::InvalidRequest)
    );
}
