//! Coalescing: writes made while a group's proposal is in flight go as one proposal of the
//! newest state, each answered only once the proposal covering it has committed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use futures_util::FutureExt;

use super::{Coalescer, Outcome};
use crate::partition::share::replicated::ReplicationError;
use crate::storage::notify::yield_now;

/// A proposal the fake quorum holds: (group, the state it carries, how to answer it).
type Proposed = (String, u32, Option<oneshot::Sender<Outcome>>);

/// A quorum the test commits by hand.
#[derive(Default)]
struct FakeQuorum {
    proposed: RefCell<Vec<Proposed>>,
}

impl FakeQuorum {
    fn commit(&self, index: usize, outcome: Outcome) {
        let answer = self.proposed.borrow_mut()[index].2.take();
        if let Some(answer) = answer {
            let _ = answer.send(outcome);
        }
    }

    fn states(&self) -> Vec<(String, u32)> {
        let proposed = self.proposed.borrow();
        proposed.iter().map(|(g, s, _)| (g.clone(), *s)).collect()
    }
}

/// A write of `group` whose proposal carries `state`'s value when it goes; the answer
/// lands in the returned cell.
fn write(
    rounds: &Rc<Coalescer>,
    quorum: &Rc<FakeQuorum>,
    state: &Rc<Cell<u32>>,
    group: &str,
) -> Rc<RefCell<Option<Outcome>>> {
    let (answered, task) = abandonable_write(rounds, quorum, state, group);
    task.detach();
    answered
}

/// `write`, and its task: dropping it abandons the write (its request went away).
fn abandonable_write(
    rounds: &Rc<Coalescer>,
    quorum: &Rc<FakeQuorum>,
    state: &Rc<Cell<u32>>,
    group: &str,
) -> (
    Rc<RefCell<Option<Outcome>>>,
    compio::runtime::JoinHandle<()>,
) {
    let answered = Rc::new(RefCell::new(None));
    let (rounds, quorum, state) = (rounds.clone(), quorum.clone(), state.clone());
    let (group, slot) = (group.to_string(), answered.clone());
    let task = compio::runtime::spawn(async move {
        let start = || {
            let (tx, rx) = oneshot::channel();
            quorum
                .proposed
                .borrow_mut()
                .push((group.clone(), state.get(), Some(tx)));
            rx.map(|r| r.unwrap_or(Err(gone()))).boxed_local()
        };
        let outcome = rounds.write(&group, start).await;
        *slot.borrow_mut() = Some(outcome);
    });
    (answered, task)
}

fn gone() -> ReplicationError {
    ReplicationError {
        code: -1,
        message: "dropped".into(),
    }
}

async fn settle() {
    for _ in 0..10 {
        yield_now().await;
    }
}

#[compio::test]
async fn writes_behind_one_in_flight_go_as_one_proposal_of_the_newest_state() {
    let (rounds, quorum) = (
        Rc::new(Coalescer::default()),
        Rc::new(FakeQuorum::default()),
    );
    let state = Rc::new(Cell::new(1));
    let first = write(&rounds, &quorum, &state, "g");
    settle().await;
    assert_eq!(quorum.states(), [("g".to_string(), 1)]);
    let mut later = Vec::new();
    for value in 2..=5 {
        state.set(value);
        later.push(write(&rounds, &quorum, &state, "g"));
    }
    settle().await;
    // Nothing more is proposed while the first is in flight, nobody is answered early.
    assert_eq!(quorum.proposed.borrow().len(), 1);
    assert!(first.borrow().is_none() && later.iter().all(|w| w.borrow().is_none()));
    quorum.commit(0, Ok(()));
    settle().await;
    assert!(matches!(*first.borrow(), Some(Ok(()))));
    // The four later writes go as one proposal of the newest state (5), answered only once
    // it commits.
    assert_eq!(
        quorum.states(),
        [("g".to_string(), 1), ("g".to_string(), 5)]
    );
    assert!(later.iter().all(|w| w.borrow().is_none()));
    quorum.commit(1, Ok(()));
    settle().await;
    assert!(later.iter().all(|w| matches!(*w.borrow(), Some(Ok(())))));
    assert_eq!(rounds.totals(), (2, 5));
    assert!(
        rounds.groups.borrow().is_empty(),
        "no slot kept after the last write"
    );
}

#[compio::test]
async fn a_refused_proposal_answers_every_write_it_covers_and_the_next_goes_anew() {
    let (rounds, quorum) = (
        Rc::new(Coalescer::default()),
        Rc::new(FakeQuorum::default()),
    );
    let state = Rc::new(Cell::new(1));
    let first = write(&rounds, &quorum, &state, "g");
    settle().await;
    let covered = [
        write(&rounds, &quorum, &state, "g"),
        write(&rounds, &quorum, &state, "g"),
    ];
    quorum.commit(0, Ok(()));
    settle().await;
    let fenced = ReplicationError {
        code: 74,
        message: "fenced".into(),
    };
    quorum.commit(1, Err(fenced));
    settle().await;
    assert!(matches!(*first.borrow(), Some(Ok(()))));
    for w in &covered {
        assert!(matches!(&*w.borrow(), Some(Err(e)) if e.code == 74));
    }
    let next = write(&rounds, &quorum, &state, "g");
    settle().await;
    assert_eq!(quorum.proposed.borrow().len(), 3);
    quorum.commit(2, Ok(()));
    settle().await;
    assert!(matches!(*next.borrow(), Some(Ok(()))));
}

#[compio::test]
async fn groups_do_not_wait_for_each_other() {
    let (rounds, quorum) = (
        Rc::new(Coalescer::default()),
        Rc::new(FakeQuorum::default()),
    );
    let state = Rc::new(Cell::new(7));
    let a = write(&rounds, &quorum, &state, "a");
    let b = write(&rounds, &quorum, &state, "b");
    settle().await;
    assert_eq!(
        quorum.states(),
        [("a".to_string(), 7), ("b".to_string(), 7)]
    );
    quorum.commit(1, Ok(()));
    settle().await;
    assert!(a.borrow().is_none() && matches!(*b.borrow(), Some(Ok(()))));
    quorum.commit(0, Ok(()));
    settle().await;
    assert!(matches!(*a.borrow(), Some(Ok(()))));
}

#[compio::test]
async fn a_proposal_whose_writer_went_away_still_finishes_and_the_next_round_goes() {
    let (rounds, quorum) = (
        Rc::new(Coalescer::default()),
        Rc::new(FakeQuorum::default()),
    );
    let state = Rc::new(Cell::new(1));
    let (driver, task) = abandonable_write(&rounds, &quorum, &state, "g");
    settle().await;
    assert_eq!(
        quorum.proposed.borrow().len(),
        1,
        "proposed by the writer itself"
    );
    let next = write(&rounds, &quorum, &state, "g");
    // The request of the writer driving the proposal goes away mid-proposal.
    drop(task);
    settle().await;
    quorum.commit(0, Ok(()));
    settle().await;
    // Its proposal still finished: the next round went.
    assert_eq!(quorum.proposed.borrow().len(), 2);
    quorum.commit(1, Ok(()));
    settle().await;
    assert!(
        driver.borrow().is_none(),
        "the abandoned write is not answered"
    );
    assert!(matches!(*next.borrow(), Some(Ok(()))));
    assert!(rounds.groups.borrow().is_empty());
}
