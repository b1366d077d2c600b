//! Which shard a connection's partition traffic belongs on.
//!
//! The kernel spreads connections over the shards' SO_REUSEPORT listeners without knowing
//! which partitions they will use. A connection served off the owner shard pays a
//! cross-shard hop per request (a message to the owner, answers back, and the thread
//! wake-ups of both): measured at about 2 broker CPU-s per GB produced on top of 2.6 for a
//! single-partition acks=1 producer. When a connection's recent produce and fetch requests
//! all went to one other shard, it moves there (`connection::serve_requests`): at once
//! while everything it ever asked for was on that shard, else after a streak.

/// Consecutive produce/fetch requests, all for partitions of one other shard, after which
/// the connection moves to that shard. High enough that a client cycling over partitions of
/// several shards never moves (its streak keeps resetting), low enough that a producer or
/// consumer of one partition moves within its first few milliseconds of traffic. A move
/// costs one drain of the connection's pipeline, so this also bounds moves to one per
/// this many requests.
pub const MOVE_AFTER_REQUESTS: u32 = 32;
/// Requests after which a connection whose every produce/fetch so far went to one other
/// shard moves there: its traffic has named no other shard yet, so nothing is lost by
/// moving at once. A single-partition consumer fetching 1 MiB at a time took 32 ms of
/// cross-shard fetches before moving at `MOVE_AFTER_REQUESTS`, each waking two shard
/// threads where one would do; on a loaded box each wake-up can wait a scheduler slice,
/// which made those fetches the run's tail (perf/RESULTS.md, "Issue 22, session 16").
/// Once the connection has moved or named a second shard, `MOVE_AFTER_REQUESTS` applies.
pub const FIRST_MOVE_AFTER_REQUESTS: u32 = 1;
const _: () = assert!(FIRST_MOVE_AFTER_REQUESTS <= MOVE_AFTER_REQUESTS);

#[derive(Debug, Default)]
pub struct ShardAffinity {
    /// The shard that owned every partition of the last `streak` requests.
    candidate: Option<usize>,
    streak: u32,
    /// Set when a move was refused (the target was full): stay put from then on.
    pinned: bool,
    /// The connection's traffic has named more than one shard (or moved it once): a move
    /// then needs `MOVE_AFTER_REQUESTS`, not `FIRST_MOVE_AFTER_REQUESTS`.
    settled: bool,
}

impl ShardAffinity {
    /// Notes the owning shards of one request's partitions.
    pub fn observe(&mut self, owners: impl IntoIterator<Item = usize>) {
        let mut single = None;
        for owner in owners {
            match single {
                None => single = Some(owner),
                Some(s) if s != owner => {
                    self.candidate = None;
                    self.streak = 0;
                    self.settled = true;
                    return;
                }
                Some(_) => {}
            }
        }
        // A request naming no partition (an empty incremental fetch) says nothing.
        let Some(owner) = single else { return };
        if self.candidate == Some(owner) {
            self.streak = self.streak.saturating_add(1);
        } else {
            // A second shard named (the first observation only names one).
            self.settled |= self.candidate.is_some();
            self.candidate = Some(owner);
            self.streak = 1;
        }
    }

    /// The shard this connection should move to, if not `here`.
    pub fn move_target(&self, here: usize) -> Option<usize> {
        let needed = if self.settled {
            MOVE_AFTER_REQUESTS
        } else {
            FIRST_MOVE_AFTER_REQUESTS
        };
        match self.candidate {
            Some(owner) if owner != here && !self.pinned && self.streak >= needed => Some(owner),
            _ => None,
        }
    }

    /// Notes that the connection is moving to the target `move_target` named: from now on
    /// a move needs the full streak.
    pub fn moving(&mut self) {
        self.settled = true;
    }

    /// Forgets the streak (after a move) and, if the move was refused, stops trying.
    pub fn reset(&mut self, refused: bool) {
        self.candidate = None;
        self.streak = 0;
        self.settled = true;
        self.pinned |= refused;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_named_one_shard_only_moves_at_once() {
        let mut a = ShardAffinity::default();
        a.observe([]);
        assert_eq!(a.move_target(0), None, "an empty request names no shard");
        a.observe([1, 1]);
        assert_eq!(a.move_target(0), Some(1), "one request named only shard 1");
        assert_eq!(a.move_target(1), None, "already on the owner");
        // After the move, traffic turning to the other shard needs the full streak.
        a.moving();
        a.observe([0]);
        assert_eq!(a.move_target(1), None);
    }

    #[test]
    fn a_first_request_naming_two_shards_settles_the_connection() {
        let mut a = ShardAffinity::default();
        a.observe([0, 1]);
        a.observe([1]);
        assert_eq!(a.move_target(0), None);
    }

    #[test]
    fn moves_only_after_a_streak_on_one_other_shard() {
        let mut a = ShardAffinity::default();
        // Traffic on this shard first: the connection has named two shards by the streak.
        a.observe([0]);
        for _ in 0..MOVE_AFTER_REQUESTS - 1 {
            a.observe([1]);
        }
        assert_eq!(a.move_target(0), None);
        a.observe([]);
        assert_eq!(
            a.move_target(0),
            None,
            "an empty request neither counts nor resets"
        );
        a.observe([1, 1]);
        assert_eq!(a.move_target(0), Some(1));
        assert_eq!(a.move_target(1), None, "already on the owner");
    }

    #[test]
    fn mixed_owners_reset_the_streak() {
        let mut a = ShardAffinity::default();
        for _ in 0..MOVE_AFTER_REQUESTS * 4 {
            a.observe([1]);
            a.observe([0, 1]);
        }
        assert_eq!(a.move_target(0), None);
        for _ in 0..MOVE_AFTER_REQUESTS * 4 {
            a.observe([1]);
            a.observe([0]);
        }
        assert_eq!(a.move_target(0), None);
    }

    #[test]
    fn a_refused_move_pins_the_connection() {
        let mut a = ShardAffinity::default();
        a.observe([1]);
        assert_eq!(a.move_target(0), Some(1));
        a.reset(true);
        for _ in 0..MOVE_AFTER_REQUESTS * 2 {
            a.observe([1]);
        }
        assert_eq!(a.move_target(0), None);
    }
}
