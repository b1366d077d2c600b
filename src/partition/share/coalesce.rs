//! Coalesced replicated writes of one partition's share states (issue 17, decision 0025).
//! Each durable change of a group's state used to be its own metadata-log proposal, one
//! after the other: N acknowledgements arriving while one was in flight cost N more Raft
//! rounds, each waiting for the one before. Here, while a proposal of a group is in flight,
//! every later write of that group joins one gathering round; when the proposal commits,
//! the round goes as ONE proposal of the group's state as it is then (the record carries
//! the whole state, so the newest state covers every change made before it), and every
//! write that joined it is answered with that proposal's outcome. No write is answered
//! before a proposal encoded after its change has committed, so durability is as before.
//!
//! Bounds: per group at most one proposal in flight and one round gathering; a group has
//! a slot here only while a write of it waits (so at most the partition's share groups,
//! `MAX_SHARE_GROUPS_PER_PARTITION`, plus groups being deleted). Writers that join a round
//! cost a counter each; how many can wait is bounded by the requests in flight.
//!
//! Owns: the rounds. Must not: encode states or talk to the quorum (its caller's `start`
//! does both), or hold a borrow across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::LocalBoxFuture;

use super::replicated::ReplicationError;
use crate::storage::Event;

/// What one proposal answered every write it covers.
pub type Outcome = Result<(), ReplicationError>;

/// One proposal and the writes it answers.
#[derive(Default)]
struct Round {
    outcome: RefCell<Option<Outcome>>,
}

/// A group's rounds: the proposal in flight, and the round gathering the writes made
/// since it was encoded.
#[derive(Default)]
struct GroupRounds {
    in_flight: Option<Rc<Round>>,
    gathering: Option<Rc<Round>>,
}

/// The coalesced writes of one partition's share groups.
#[derive(Default)]
pub struct Coalescer {
    groups: RefCell<HashMap<String, GroupRounds>>,
    /// Notified whenever a proposal finishes: its writers have their outcome, and the
    /// group's gathering round may go.
    finished: Rc<Event>,
    /// Proposals made, and writes answered (their difference is what coalescing saved).
    proposals_total: Cell<u64>,
    writes_total: Cell<u64>,
}

impl Coalescer {
    /// Makes the group's current state durable: joins the group's gathering round and
    /// waits until that round's proposal has committed (or failed). `start` encodes the
    /// group's state and returns its proposal; it is called when the round goes (by
    /// whichever of its writers is polled first then), never more than once per round.
    pub async fn write(
        self: &Rc<Self>,
        group_id: &str,
        start: impl Fn() -> LocalBoxFuture<'static, Outcome>,
    ) -> Outcome {
        self.writes_total.set(self.writes_total.get() + 1);
        let round = {
            let mut groups = self.groups.borrow_mut();
            let rounds = groups.entry(group_id.to_string()).or_default();
            Rc::clone(rounds.gathering.get_or_insert_with(Rc::default))
        };
        loop {
            // Registered before the checks: a proposal finishing in between wakes it.
            let finished = self.finished.listen();
            if let Some(outcome) = round.outcome.borrow().as_ref() {
                return outcome.clone();
            }
            if self.take_turn(group_id, &round) {
                self.proposals_total.set(self.proposals_total.get() + 1);
                let drive = Drive {
                    rounds: Rc::clone(self),
                    group_id: group_id.to_string(),
                    round: Rc::clone(&round),
                    proposal: RefCell::new(Some(start())),
                };
                return drive.run().await;
            }
            finished.await;
        }
    }

    /// Whether `round` goes now (nothing of its group in flight); if so it is in flight.
    fn take_turn(&self, group_id: &str, round: &Rc<Round>) -> bool {
        let mut groups = self.groups.borrow_mut();
        let Some(rounds) = groups.get_mut(group_id) else {
            return false;
        };
        let gathering = rounds
            .gathering
            .as_ref()
            .is_some_and(|g| Rc::ptr_eq(g, round));
        if !gathering || rounds.in_flight.is_some() {
            return false;
        }
        rounds.in_flight = rounds.gathering.take();
        true
    }

    fn finish(&self, group_id: &str, round: &Round, outcome: Outcome) {
        *round.outcome.borrow_mut() = Some(outcome);
        let mut groups = self.groups.borrow_mut();
        if let Some(rounds) = groups.get_mut(group_id) {
            rounds.in_flight = None;
            if rounds.gathering.is_none() {
                groups.remove(group_id);
            }
        }
        drop(groups);
        self.finished.notify();
    }

    /// (proposals made, writes answered or waiting) since this leadership began.
    pub fn totals(&self) -> (u64, u64) {
        (self.proposals_total.get(), self.writes_total.get())
    }
}

/// A round's proposal, driven by the writer that started it (no task hop on the common
/// path). Dropped before the proposal finished (its request abandoned), it hands the
/// proposal to a task of its own: the round's other writers wait for its outcome.
struct Drive {
    rounds: Rc<Coalescer>,
    group_id: String,
    round: Rc<Round>,
    proposal: RefCell<Option<LocalBoxFuture<'static, Outcome>>>,
}

impl Drive {
    async fn run(self) -> Outcome {
        let outcome = std::future::poll_fn(|cx| {
            let mut proposal = self.proposal.borrow_mut();
            let Some(pending) = proposal.as_mut() else {
                return std::task::Poll::Ready(None);
            };
            let outcome = std::task::ready!(pending.as_mut().poll(cx));
            *proposal = None;
            std::task::Poll::Ready(Some(outcome))
        })
        .await;
        // None only if polled again after it finished, which `run` never does.
        let outcome = outcome.unwrap_or_else(|| {
            Err(ReplicationError {
                code: kafka_protocol::ResponseError::UnknownServerError.code(),
                message: "share-state proposal polled after it finished".into(),
            })
        });
        self.rounds
            .finish(&self.group_id, &self.round, outcome.clone());
        outcome
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        let Some(proposal) = self.proposal.get_mut().take() else {
            return;
        };
        let (rounds, round) = (Rc::clone(&self.rounds), Rc::clone(&self.round));
        let group_id = std::mem::take(&mut self.group_id);
        compio::runtime::spawn(async move {
            let outcome = proposal.await;
            rounds.finish(&group_id, &round, outcome);
        })
        .detach();
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;
