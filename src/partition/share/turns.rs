//! The order in which waiting ShareFetches take records from one share-partition: a FIFO of
//! turns per share group, as Kafka's delayed-share-fetch purgatory completes waiting fetches
//! in arrival order. Only the fetch at the head of its group's queue acquires; when it is
//! answered its turn ends and the next fetch's begins. So a wave of records reaches the
//! member that has waited longest, and a member that just got records and comes straight
//! back queues behind the others instead of taking the next wave too.
//!
//! Owns: the queues. Must not: decide what a fetch acquires (`SharePartitionState` does) or
//! wake anyone (the caller notifies the share-partition's `changed` event on a head change).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

/// Fetches of one share group that may wait in turn on one partition; more are answered at
/// once with what they can take without a turn (nothing while others wait): a bound on
/// the queue's memory and on the wake-ups one change costs.
pub const MAX_WAITING_FETCHES_PER_SHARE_PARTITION: usize = 1_024;

/// One fetch's place in its group's queue.
pub type TurnTicket = u64;

#[derive(Default)]
pub struct FetchTurns {
    queues: RefCell<HashMap<String, VecDeque<TurnTicket>>>,
    next_ticket: Cell<TurnTicket>,
}

impl FetchTurns {
    /// Queues a fetch of `group` at the tail; None when the queue is full.
    pub fn join(&self, group: &str) -> Option<TurnTicket> {
        let mut queues = self.queues.borrow_mut();
        if !queues.contains_key(group) {
            queues.insert(group.to_string(), VecDeque::new());
        }
        let queue = queues.get_mut(group)?;
        if queue.len() >= MAX_WAITING_FETCHES_PER_SHARE_PARTITION {
            return None;
        }
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket.wrapping_add(1));
        queue.push_back(ticket);
        Some(ticket)
    }

    /// Whether `ticket` is the group's oldest waiting fetch (its turn to acquire).
    pub fn is_head(&self, group: &str, ticket: TurnTicket) -> bool {
        self.queues
            .borrow()
            .get(group)
            .and_then(|q| q.front())
            .is_some_and(|&head| head == ticket)
    }

    /// Takes `ticket` out of the queue; true if it was the head (the next fetch's turn
    /// begins, so waiters must be woken).
    pub fn leave(&self, group: &str, ticket: TurnTicket) -> bool {
        let mut queues = self.queues.borrow_mut();
        let Some(queue) = queues.get_mut(group) else {
            return false;
        };
        let was_head = queue.front() == Some(&ticket);
        if let Some(i) = queue.iter().position(|&t| t == ticket) {
            queue.remove(i);
        }
        if queue.is_empty() {
            queues.remove(group);
        }
        was_head
    }

    /// Fetches of `group` waiting here (for metrics).
    pub fn waiting(&self, group: &str) -> usize {
        self.queues.borrow().get(group).map_or(0, VecDeque::len)
    }
}
