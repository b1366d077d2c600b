//! Incremental fetch sessions (KIP-227), kept per connection: a client names a session and
//! an epoch, sends only the partitions that changed, and is answered only for partitions
//! with new data or changed offsets. Owns the sessions and their limits; must not read
//! partitions (the Fetch handler does, with the plan this returns).

use kafka_protocol::ResponseError;
use std::collections::HashMap;

/// Sessions one connection may hold (clients use one; the bound stops abuse).
pub const MAX_FETCH_SESSIONS_PER_CONNECTION: usize = 8;
/// Partitions one fetch session may track.
pub const MAX_PARTITIONS_PER_FETCH_SESSION: usize = 10_000;

/// A session epoch that asks for a sessionless fetch (and closes the named session).
const FINAL_EPOCH: i32 = -1;
/// A session epoch that opens a new full session.
const INITIAL_EPOCH: i32 = 0;

/// One partition to read, in response order.
pub struct WantedPartition {
    pub topic: String,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub fetch_offset: i64,
    /// The fetcher's own log start: a follower reports it (Fetch v5+) so the leader knows
    /// when a DeleteRecords has reached every replica; -1 from consumers and older fetches.
    pub log_start_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the fetcher believes in (-1: not checked; fenced as Kafka does).
    pub current_leader_epoch: i32,
    /// The shard that owns the partition, worked out once per request.
    pub owner: usize,
}

/// What was answered for one partition, for the session to remember.
pub struct Answered {
    pub bytes: usize,
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// The partitions one request reads, through its session if it has one.
pub struct SessionPlan {
    /// The session to answer with (0: none).
    pub session_id: i32,
    /// True when the client sent only changes: unchanged partitions are left out.
    pub incremental: bool,
    pub wants: Vec<WantedPartition>,
}

#[derive(Clone, Copy)]
struct SessionPartition {
    fetch_offset: i64,
    log_start_offset: i64,
    current_leader_epoch: i32,
    max_bytes: i32,
    /// What we last told the client, to decide whether the partition changed.
    last_high_watermark: i64,
    last_log_start: i64,
}

impl SessionPartition {
    fn new(want: &WantedPartition) -> SessionPartition {
        SessionPartition {
            fetch_offset: want.fetch_offset,
            log_start_offset: want.log_start_offset,
            current_leader_epoch: want.current_leader_epoch,
            max_bytes: want.max_bytes,
            last_high_watermark: -1,
            last_log_start: -1,
        }
    }
}

struct FetchSession {
    next_epoch: i32,
    partitions: HashMap<(String, i32), SessionPartition>,
}

#[derive(Default)]
pub struct FetchSessions {
    sessions: HashMap<i32, FetchSession>,
}

impl FetchSessions {
    /// Works out the partitions to read. `requested` are the request's partitions,
    /// `forgotten` the ones an incremental request drops; `locate` gives a session
    /// partition's topic id and owner shard. Errs with the Kafka error code of a bad session.
    pub fn plan(
        &mut self,
        session_id: i32,
        session_epoch: i32,
        requested: Vec<WantedPartition>,
        forgotten: impl Iterator<Item = (String, i32)>,
        locate: impl Fn(&str, i32) -> (uuid::Uuid, usize),
    ) -> Result<SessionPlan, i16> {
        match session_epoch {
            FINAL_EPOCH => {
                self.sessions.remove(&session_id);
                Ok(SessionPlan {
                    session_id: 0,
                    incremental: false,
                    wants: requested,
                })
            }
            INITIAL_EPOCH => {
                self.sessions.remove(&session_id);
                let session_id = self.open(&requested);
                Ok(SessionPlan {
                    session_id,
                    incremental: false,
                    wants: requested,
                })
            }
            epoch => self.update(session_id, epoch, requested, forgotten, locate),
        }
    }

    /// A new full session for `requested`, if this connection may hold one more (else 0:
    /// answered sessionless, as Kafka does when its session cache is full).
    fn open(&mut self, requested: &[WantedPartition]) -> i32 {
        if self.sessions.len() >= MAX_FETCH_SESSIONS_PER_CONNECTION
            || requested.len() > MAX_PARTITIONS_PER_FETCH_SESSION
        {
            return 0;
        }
        let mut id: i32 = rand::random::<i32>() & i32::MAX;
        while id == 0 || self.sessions.contains_key(&id) {
            id = rand::random::<i32>() & i32::MAX;
        }
        let partitions = requested
            .iter()
            .map(|w| ((w.topic.clone(), w.partition), SessionPartition::new(w)))
            .collect();
        self.sessions.insert(
            id,
            FetchSession {
                next_epoch: 1,
                partitions,
            },
        );
        id
    }

    /// An incremental request: apply its changes to the session and read every partition
    /// the session holds, in a stable order.
    fn update(
        &mut self,
        session_id: i32,
        epoch: i32,
        requested: Vec<WantedPartition>,
        forgotten: impl Iterator<Item = (String, i32)>,
        locate: impl Fn(&str, i32) -> (uuid::Uuid, usize),
    ) -> Result<SessionPlan, i16> {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Err(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.next_epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        session.next_epoch = session.next_epoch.checked_add(1).unwrap_or(1);
        for w in &requested {
            let entry = session
                .partitions
                .entry((w.topic.clone(), w.partition))
                .or_insert(SessionPartition::new(w));
            entry.fetch_offset = w.fetch_offset;
            entry.log_start_offset = w.log_start_offset;
            entry.current_leader_epoch = w.current_leader_epoch;
            entry.max_bytes = w.max_bytes;
        }
        for key in forgotten {
            session.partitions.remove(&key);
        }
        if session.partitions.len() > MAX_PARTITIONS_PER_FETCH_SESSION {
            self.sessions.remove(&session_id);
            return Err(ResponseError::InvalidRequest.code());
        }
        let mut keys: Vec<_> = session.partitions.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let wants = keys
            .into_iter()
            .map(|((topic, partition), sp)| {
                let (topic_id, owner) = locate(topic, *partition);
                WantedPartition {
                    owner,
                    topic: topic.clone(),
                    topic_id,
                    partition: *partition,
                    fetch_offset: sp.fetch_offset,
                    log_start_offset: sp.log_start_offset,
                    max_bytes: sp.max_bytes,
                    current_leader_epoch: sp.current_leader_epoch,
                }
            })
            .collect();
        Ok(SessionPlan {
            session_id,
            incremental: true,
            wants,
        })
    }

    /// Remembers what was answered for `plan` and says which partitions the answer
    /// includes: all of them, except unchanged ones in an incremental session.
    pub fn record_answer(&mut self, plan: &SessionPlan, answered: &[Answered]) -> Vec<bool> {
        let mut include = vec![true; plan.wants.len()];
        if plan.session_id == 0 {
            return include;
        }
        let Some(session) = self.sessions.get_mut(&plan.session_id) else {
            return include;
        };
        for (i, (w, a)) in plan.wants.iter().zip(answered).enumerate() {
            if let Some(sp) = session.partitions.get_mut(&(w.topic.clone(), w.partition)) {
                let changed = a.bytes > 0
                    || a.error_code != 0
                    || sp.last_high_watermark != a.high_watermark
                    || sp.last_log_start != a.log_start_offset;
                if plan.incremental && !changed {
                    include[i] = false;
                }
                sp.last_high_watermark = a.high_watermark;
                sp.last_log_start = a.log_start_offset;
            }
        }
        include
    }
}
