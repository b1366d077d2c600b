//! One share-partition's record states (KIP-932): the share-partition start offset (SPSO),
//! the end offset (SEO: the first offset never acquired), and for every offset between them
//! its state — available, acquired (by one member, until its lock's deadline), acknowledged
//! or archived — and its delivery count. The window is bounded (`max_in_flight`, Kafka's
//! `group.share.partition.max.record.locks`) and held in one ring buffer indexed by offset,
//! so acquiring and acknowledging allocate nothing per record.
//!
//! Owns: the state machine. Must not: do I/O or read the clock (`now` is an argument).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

/// Kafka's `group.share.partition.max.record.locks` default: in-flight records per
/// share-partition.
pub const MAX_IN_FLIGHT_RECORDS: usize = 2_000;

/// Acknowledgement types on the wire (ShareFetch / ShareAcknowledge v1; RENEW from v2).
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;
/// KIP-1222: the record stays acquired by the same member, its lock restarted.
pub const ACK_RENEW: i8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    /// On its way to the group's dead-letter topic (KIP-1191's ARCHIVING): archived once the
    /// dead-letter append is durable. Never handed out again; the window does not slide past
    /// it.
    Archiving(DlqCause),
    Archived,
}

/// Why a record is dead-lettered: the `__dlq.errors.message` Kafka writes for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlqCause {
    /// A member acknowledged it with REJECT.
    Rejected,
    /// It was delivered `share.delivery.count.limit` times without being accepted.
    DeliveryCountExceeded,
}

impl DlqCause {
    /// Kafka's `__dlq.errors.message` text for the cause.
    pub fn message(self) -> &'static str {
        match self {
            DlqCause::Rejected => "Offset rejected by client.",
            DlqCause::DeliveryCountExceeded => "Offset delivery count exceeded the threshold.",
        }
    }
}

/// Records one dead-letter batch carries at most (and so the offsets an intent lists in the
/// share-state frame: 8 bytes each, well inside the frame's 64 KiB).
pub const DLQ_BATCH_RECORDS_MAX: usize = 500;

/// A dead-letter append about to be made (or made, its outcome unknown after a crash): the
/// records, in offset order, and the base sequence of the group's dead-letter producer on the
/// dead-letter partition. Written durably before the append, so a retry after a crash sends
/// the same records with the same sequence and the dead-letter partition's idempotence
/// answers it as a duplicate if the first append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqIntent {
    pub base_sequence: i32,
    pub offsets: Vec<i64>,
}

/// One record of a dead-letter intent: where it is and what the headers say of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetter {
    pub offset: i64,
    pub delivery_count: u16,
    pub cause: DlqCause,
}

#[derive(Debug, Clone)]
struct InFlight {
    state: RecordState,
    delivery_count: u16,
    owner: Option<Rc<str>>,
    lock_deadline: Option<Instant>,
}

/// A run of acquired offsets with one delivery count (ShareFetch's AcquiredRecords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRange {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// Why an acknowledgement was refused (the handler turns it into Kafka's error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// Malformed: a reversed range, a bad type, types not matching the range.
    InvalidRequest,
    /// Some offset is not acquired by this member (expired, someone else's, settled).
    InvalidRecordState,
}

/// Counts for metrics and describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareCounts {
    pub start_offset: i64,
    pub end_offset: i64,
    pub available: u64,
    pub acquired: u64,
    pub acknowledged: u64,
    pub archived: u64,
    /// Records waiting for their dead-letter append (KIP-1191's ARCHIVING).
    pub archiving: u64,
    /// Highest delivery count among available and acquired records (0: none).
    pub delivery_count_max: u16,
}

#[derive(Debug)]
pub struct SharePartitionState {
    start_offset: i64,
    records: VecDeque<InFlight>,
    max_in_flight: usize,
    /// The group has a dead-letter topic: what would be archived is dead-lettered first.
    dead_letter: bool,
    /// The dead-letter append in progress (at most one per share-partition, so the group's
    /// dead-letter producer's sequences on the dead-letter partition are assigned in order).
    dlq_intent: Option<DlqIntent>,
}

impl SharePartitionState {
    /// A share-partition starting at `start_offset` (from `share.auto.offset.reset`, or
    /// recovered from the durable log).
    pub fn new(start_offset: i64, max_in_flight: usize) -> SharePartitionState {
        SharePartitionState {
            start_offset,
            records: VecDeque::with_capacity(max_in_flight.min(MAX_IN_FLIGHT_RECORDS)),
            max_in_flight,
            dead_letter: false,
            dlq_intent: None,
        }
    }

    /// Whether records that would be archived go to the group's dead-letter topic first
    /// (set from the group's config before every change).
    pub fn set_dead_letter(&mut self, dead_letter: bool) {
        self.dead_letter = dead_letter;
    }

    pub fn dlq_intent(&self) -> Option<&DlqIntent> {
        self.dlq_intent.as_ref()
    }

    pub(super) fn restore_intent(&mut self, intent: Option<DlqIntent>) {
        self.dlq_intent = intent;
    }

    /// Whether some record waits for its dead-letter append.
    pub fn has_dead_letters(&self) -> bool {
        self.records
            .iter()
            .any(|r| matches!(r.state, RecordState::Archiving(_)))
    }

    /// The records of the intent in progress, or (none in progress) a new intent of up to
    /// `DLQ_BATCH_RECORDS_MAX` waiting records with `base_sequence` (`next_sequence` is asked
    /// only when a new intent is made). None: nothing waits.
    pub fn dead_letter_intent(
        &mut self,
        next_sequence: impl FnOnce() -> i32,
    ) -> Option<(DlqIntent, Vec<DeadLetter>)> {
        if self.dlq_intent.is_none() {
            let offsets: Vec<i64> = self
                .in_flight()
                .filter(|(_, state, _)| matches!(state, RecordState::Archiving(_)))
                .map(|(offset, _, _)| offset)
                .take(DLQ_BATCH_RECORDS_MAX)
                .collect();
            if offsets.is_empty() {
                return None;
            }
            self.dlq_intent = Some(DlqIntent {
                base_sequence: next_sequence(),
                offsets,
            });
        }
        let intent = self.dlq_intent.clone()?;
        let letters = intent
            .offsets
            .iter()
            .map(|&offset| {
                let (delivery_count, cause) = match self.slot(offset) {
                    Some(InFlight {
                        state: RecordState::Archiving(cause),
                        delivery_count,
                        ..
                    }) => (*delivery_count, *cause),
                    // Moved on meanwhile (skipped by retention, the group reset): its
                    // dead letter still goes out with what is known.
                    Some(r) => (r.delivery_count, DlqCause::Rejected),
                    None => (0, DlqCause::Rejected),
                };
                DeadLetter {
                    offset,
                    delivery_count,
                    cause,
                }
            })
            .collect();
        Some((intent, letters))
    }

    /// The intent's dead-letter append is durable (or its target refused it for good):
    /// its records are archived.
    pub fn finish_dead_letter_intent(&mut self) {
        let Some(intent) = self.dlq_intent.take() else {
            return;
        };
        for offset in intent.offsets {
            if let Some(r) = self.slot(offset)
                && matches!(r.state, RecordState::Archiving(_))
            {
                settle(r, RecordState::Archived);
            }
        }
        self.advance();
    }

    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    pub fn end_offset(&self) -> i64 {
        self.start_offset + self.records.len() as i64
    }

    fn slot(&mut self, offset: i64) -> Option<&mut InFlight> {
        let index = usize::try_from(offset - self.start_offset).ok()?;
        self.records.get_mut(index)
    }

    /// Moves the start past a log start that has overtaken it (retention, DeleteRecords):
    /// those records are gone, whatever their state.
    pub fn skip_to(&mut self, log_start_offset: i64) {
        while self.start_offset < log_start_offset {
            if self.records.pop_front().is_none() {
                self.start_offset = log_start_offset;
                return;
            }
            self.start_offset += 1;
        }
    }

    /// Releases every lock whose deadline has passed (the delivery count stays: past the
    /// limit the record is archived); how many were released.
    pub fn expire_locks(&mut self, now: Instant, delivery_limit: u16) -> usize {
        let mut released = 0;
        for r in self.records.iter_mut() {
            if r.state == RecordState::Acquired && r.lock_deadline.is_some_and(|d| d <= now) {
                release(r, delivery_limit, self.dead_letter);
                released += 1;
            }
        }
        self.advance();
        released
    }

    /// The earliest deadline among held locks (a waiting ShareFetch wakes then).
    pub fn earliest_lock_deadline(&self) -> Option<Instant> {
        self.records
            .iter()
            .filter(|r| r.state == RecordState::Acquired)
            .filter_map(|r| r.lock_deadline)
            .min()
    }

    /// Releases every record `member` holds (its session closed or it left).
    /// How many were released.
    pub fn release_member(&mut self, member: &str, delivery_limit: u16) -> usize {
        let mut released = 0;
        for r in self.records.iter_mut() {
            if r.state == RecordState::Acquired && r.owner.as_deref() == Some(member) {
                release(r, delivery_limit, self.dead_letter);
                released += 1;
            }
        }
        self.advance();
        released
    }

    /// Where the next read should start: the first available in-flight record, else the
    /// end offset if records below `readable_end` wait and the window has room.
    pub fn next_read_offset(&self, readable_end: i64) -> Option<i64> {
        if let Some(i) = self
            .records
            .iter()
            .position(|r| r.state == RecordState::Available)
        {
            return Some(self.start_offset + i as i64);
        }
        let end = self.end_offset();
        (end < readable_end && self.records.len() < self.max_in_flight).then_some(end)
    }

    /// Acquires for `member` the available or new offsets in `[from, read_end)` (what a read
    /// returned), never past `readable_end` or the window, at most `max_records`; returns
    /// the acquired runs.
    pub fn acquire(&mut self, member: &Rc<str>, grant: Grant) -> Vec<AcquiredRange> {
        let mut ranges: Vec<AcquiredRange> = Vec::new();
        let mut taken = 0usize;
        let mut offset = grant.from.max(self.start_offset);
        while offset < grant.read_end && taken < grant.max_records {
            let delivery_count = if offset < self.end_offset() {
                let Some(r) = self.slot(offset) else { break };
                if r.state != RecordState::Available {
                    offset += 1;
                    continue;
                }
                r.delivery_count = r.delivery_count.saturating_add(1);
                r.state = RecordState::Acquired;
                r.owner = Some(Rc::clone(member));
                r.lock_deadline = Some(grant.lock_deadline);
                r.delivery_count
            } else {
                if offset >= grant.readable_end || self.records.len() >= self.max_in_flight {
                    break;
                }
                self.records.push_back(InFlight {
                    state: RecordState::Acquired,
                    delivery_count: 1,
                    owner: Some(Rc::clone(member)),
                    lock_deadline: Some(grant.lock_deadline),
                });
                1
            };
            let count = delivery_count.min(i16::MAX as u16) as i16;
            match ranges.last_mut() {
                Some(last) if last.last_offset + 1 == offset && last.delivery_count == count => {
                    last.last_offset = offset
                }
                _ => ranges.push(AcquiredRange {
                    first_offset: offset,
                    last_offset: offset,
                    delivery_count: count,
                }),
            }
            taken += 1;
            offset += 1;
        }
        ranges
    }

    /// Applies one acknowledgement batch from `member`: every offset must be acquired by it
    /// (else INVALID_RECORD_STATE and nothing changes). `types` holds one type for the whole
    /// range or one per offset. RENEW keeps a record acquired by `member` with its delivery
    /// count and moves its lock's deadline to `renew_deadline`; a lock that expired before
    /// this call is not renewed (the caller expires locks first), so a renewal never hands
    /// a record back to a member who lost it.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first_offset: i64,
        last_offset: i64,
        types: &[i8],
        delivery_limit: u16,
        renew_deadline: Instant,
    ) -> Result<(), AckError> {
        let span = last_offset
            .checked_sub(first_offset)
            .and_then(|d| usize::try_from(d).ok())
            .map(|d| d + 1)
            .ok_or(AckError::InvalidRequest)?;
        if types.is_empty() || (types.len() != 1 && types.len() != span) {
            return Err(AckError::InvalidRequest);
        }
        if types.iter().any(|t| !(ACK_GAP..=ACK_RENEW).contains(t)) {
            return Err(AckError::InvalidRequest);
        }
        if first_offset < self.start_offset || last_offset >= self.end_offset() {
            return Err(AckError::InvalidRecordState);
        }
        let type_at = |i: usize| if types.len() == 1 { types[0] } else { types[i] };
        let dead_letter = self.dead_letter;
        for i in 0..span {
            let held = self.slot(first_offset + i as i64).is_some_and(|r| {
                r.state == RecordState::Acquired && r.owner.as_deref() == Some(member)
            });
            if !held {
                return Err(AckError::InvalidRecordState);
            }
        }
        for i in 0..span {
            let kind = type_at(i);
            if let Some(r) = self.slot(first_offset + i as i64) {
                match kind {
                    ACK_ACCEPT => settle(r, RecordState::Acknowledged),
                    ACK_RENEW => r.lock_deadline = Some(renew_deadline),
                    ACK_RELEASE => release(r, delivery_limit, dead_letter),
                    // REJECT archives for good, through the dead-letter topic if the group
                    // has one (KIP-1191); GAP marks an offset with no record.
                    ACK_REJECT if dead_letter => {
                        settle(r, RecordState::Archiving(DlqCause::Rejected))
                    }
                    _ => settle(r, RecordState::Archived),
                }
            }
        }
        self.advance();
        Ok(())
    }

    /// Appends a record replayed from the durable log (`durable::restore`), never past the
    /// window.
    pub(super) fn push_restored(&mut self, state: RecordState, delivery_count: u16) {
        if self.records.len() >= self.max_in_flight {
            return;
        }
        self.records.push_back(InFlight {
            state,
            delivery_count,
            owner: None,
            lock_deadline: None,
        });
    }

    /// Slides the start past acknowledged and archived records.
    fn advance(&mut self) {
        while let Some(front) = self.records.front() {
            if !matches!(
                front.state,
                RecordState::Acknowledged | RecordState::Archived
            ) {
                break;
            }
            self.records.pop_front();
            self.start_offset += 1;
        }
    }

    pub fn counts(&self) -> ShareCounts {
        let mut c = ShareCounts {
            start_offset: self.start_offset,
            end_offset: self.end_offset(),
            ..ShareCounts::default()
        };
        for r in &self.records {
            if matches!(r.state, RecordState::Available | RecordState::Acquired) {
                c.delivery_count_max = c.delivery_count_max.max(r.delivery_count);
            }
            match r.state {
                RecordState::Available => c.available += 1,
                RecordState::Acquired => c.acquired += 1,
                RecordState::Acknowledged => c.acknowledged += 1,
                RecordState::Archiving(_) => c.archiving += 1,
                RecordState::Archived => c.archived += 1,
            }
        }
        c
    }

    /// (offset, state, delivery count) of every in-flight record: for the durable log and
    /// tests.
    pub fn in_flight(&self) -> impl Iterator<Item = (i64, RecordState, u16)> + '_ {
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| (self.start_offset + i as i64, r.state, r.delivery_count))
    }
}

/// What one read lets `acquire` hand out.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub from: i64,
    /// One past the last offset the read returned.
    pub read_end: i64,
    /// The high watermark (or last stable offset for read_committed).
    pub readable_end: i64,
    pub max_records: usize,
    pub lock_deadline: Instant,
}

fn settle(r: &mut InFlight, state: RecordState) {
    r.state = state;
    r.owner = None;
    r.lock_deadline = None;
}

/// An acquired record goes back to available, or is archived (dead-lettered first when the
/// group has a dead-letter topic) once delivered `delivery_limit` times.
fn release(r: &mut InFlight, delivery_limit: u16, dead_letter: bool) {
    if r.delivery_count >= delivery_limit && dead_letter {
        settle(r, RecordState::Archiving(DlqCause::DeliveryCountExceeded));
    } else if r.delivery_count >= delivery_limit {
        settle(r, RecordState::Archived);
    } else {
        settle(r, RecordState::Available);
    }
}
