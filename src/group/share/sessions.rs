//! Share sessions (KIP-932): the partitions a member fetches from, kept between ShareFetch
//! requests so each request lists only what changed, and the epoch that orders a member's
//! ShareFetch and ShareAcknowledge requests. Epoch 0 opens (or replaces) the session,
//! every later request carries the next epoch, -1 closes it.
//!
//! Owns: the sessions of one share group. Must not: know about records or partitions'
//! state — the handler takes the session's partitions to their owning shards.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

/// Kafka's `group.share.max.share.sessions` (per broker there; per group here, so one
/// group cannot starve another).
pub const MAX_SHARE_SESSIONS_PER_GROUP: usize = 2_000;
/// Partitions one share session may hold.
pub const MAX_PARTITIONS_PER_SHARE_SESSION: usize = 10_000;
/// A session whose member has left the group is dropped after this long without a request:
/// a leaving member's last ShareAcknowledge may arrive after its leave heartbeat (they
/// travel on different connections), so the session outlives the membership a little.
pub const SESSION_IDLE_AFTER_LEAVE: Duration = Duration::from_secs(30);
/// Groups coordinated by other brokers that may have share sessions on one shard of a
/// partition leader (`GroupCoordinator::leader_session_update`); each holds at most
/// `MAX_SHARE_SESSIONS_PER_GROUP` sessions.
pub const MAX_LEADER_SHARE_SESSION_GROUPS: usize = 10_000;
/// The epoch that opens a session, and the one that closes it.
pub const OPEN_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// (topic id, partition).
pub type SessionPartition = (Uuid, i32);

#[derive(Default)]
struct Session {
    next_epoch: i32,
    last_used: Option<Instant>,
    partitions: BTreeSet<SessionPartition>,
    /// The connection that opened it: its close closes the session (as Kafka's
    /// `ShareSessionCache` does on a disconnect), unless another connection reopened it.
    connection: u64,
}

/// What a ShareFetch or ShareAcknowledge does to its member's session.
pub struct SessionUpdate<'a> {
    pub member_id: &'a str,
    pub epoch: i32,
    /// ShareFetch: partitions to add (all of them when opening); empty for ShareAcknowledge.
    pub add: &'a [SessionPartition],
    /// ShareFetch: partitions to forget.
    pub forget: &'a [SessionPartition],
    /// ShareAcknowledge may not open a session.
    pub may_open: bool,
    /// Cluster mode, the group coordinated by another broker: this one only leads some of
    /// its partitions and opens a session for any member id (decision 0025).
    pub any_member: bool,
    /// The connection the request came on (`ShareSessionsOpened::connection`).
    pub connection: u64,
    pub now: Instant,
}

#[derive(Default)]
pub struct ShareSessions {
    sessions: HashMap<String, Session>,
}

impl ShareSessions {
    /// Checks the epoch and applies the update; returns the session's partitions after it
    /// (for the final epoch: the partitions it had, the session being gone).
    pub fn update(&mut self, u: SessionUpdate<'_>) -> Result<Vec<SessionPartition>, ResponseError> {
        if u.epoch == OPEN_EPOCH {
            if !u.may_open {
                return Err(ResponseError::InvalidShareSessionEpoch);
            }
            if !self.sessions.contains_key(u.member_id)
                && self.sessions.len() >= MAX_SHARE_SESSIONS_PER_GROUP
            {
                return Err(ResponseError::ShareSessionLimitReached);
            }
            if u.add.len() > MAX_PARTITIONS_PER_SHARE_SESSION {
                return Err(ResponseError::InvalidRequest);
            }
            let session = Session {
                next_epoch: 1,
                last_used: Some(u.now),
                partitions: u.add.iter().copied().collect(),
                connection: u.connection,
            };
            let partitions = session.partitions.iter().copied().collect();
            self.sessions.insert(u.member_id.to_string(), session);
            return Ok(partitions);
        }
        let Some(session) = self.sessions.get_mut(u.member_id) else {
            return Err(ResponseError::ShareSessionNotFound);
        };
        if u.epoch == FINAL_EPOCH {
            let partitions = session.partitions.iter().copied().collect();
            self.sessions.remove(u.member_id);
            return Ok(partitions);
        }
        if u.epoch != session.next_epoch {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        session.last_used = Some(u.now);
        for p in u.forget {
            session.partitions.remove(p);
        }
        for p in u.add {
            if session.partitions.len() >= MAX_PARTITIONS_PER_SHARE_SESSION {
                return Err(ResponseError::InvalidRequest);
            }
            session.partitions.insert(*p);
        }
        // Epochs wrap to 1, never to 0 (which would mean "open").
        session.next_epoch = if session.next_epoch == i32::MAX {
            1
        } else {
            session.next_epoch + 1
        };
        Ok(session.partitions.iter().copied().collect())
    }

    /// The member's session closed because `connection`, which opened it, closed: its
    /// partitions (their records the member holds are to be released), or None when the
    /// session is gone already or another connection reopened it.
    pub fn close_for_connection(
        &mut self,
        member_id: &str,
        connection: u64,
    ) -> Option<Vec<SessionPartition>> {
        if self.sessions.get(member_id)?.connection != connection {
            return None;
        }
        let session = self.sessions.remove(member_id)?;
        Some(session.partitions.into_iter().collect())
    }

    pub fn remove(&mut self, member_id: &str) {
        self.sessions.remove(member_id);
    }

    /// Drops the sessions of members no longer in the group once idle long enough.
    pub fn reap(&mut self, is_member: impl Fn(&str) -> bool, now: Instant) {
        self.sessions.retain(|member, s| {
            is_member(member)
                || s.last_used
                    .is_some_and(|t| now.saturating_duration_since(t) < SESSION_IDLE_AFTER_LEAVE)
        });
    }

    /// Takes `other`'s sessions in, for members without one here, up to
    /// `MAX_SHARE_SESSIONS_PER_GROUP` (a member past it opens a new session).
    pub fn absorb(&mut self, other: ShareSessions) {
        for (member, session) in other.sessions {
            if self.sessions.len() >= MAX_SHARE_SESSIONS_PER_GROUP {
                return;
            }
            self.sessions.entry(member).or_insert(session);
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}
