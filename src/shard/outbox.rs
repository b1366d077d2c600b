//! Cross-shard mail leaves in batches (decision 0023). Each shard keeps one outbox per
//! other shard; what its tasks send there (work for another shard, the answer to work it
//! did for one) waits until the end of the loop turn, when `flush` hands each target
//! everything queued for it as one channel message, before the shard enters the kernel.
//!
//! Why: a cross-thread wake-up (compio writes the sleeping target's eventfd, and the target
//! thread is switched in) was the largest cost left in produce spread over many partitions
//! (perf/RESULTS.md, sessions 14 and 15). Sent one at a time, a burst of forwarded appends
//! and answers could wake the same thread once per message, each arrival finding it asleep
//! again; batched, a target is woken at most once per sender turn, and the channel's lock is
//! taken once per batch instead of once per message.
//!
//! Owns: the per-target queues and their limit. Must not: run anything itself (the target's
//! inbox does), or hold a queue borrow across an `.await` or a channel operation.

use super::{ShardGone, ShardTask};
use crate::storage::notify::{Event, yield_now};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Messages one outbox queues for one target before it is flushed early: the length of a
/// batch, so the work a batch spawns on its target at once is bounded too.
pub const OUTBOX_MESSAGES_MAX: usize = 64;

/// Capacity a queue takes on its first message after a flush: enough for the usual burst
/// without regrowing, without reserving a full batch for the common single message.
const OUTBOX_INITIAL_CAPACITY: usize = 8;

/// How soon a shard loop looks again when a target's channel was full at a flush (the
/// target is busy; its queue then waits, and senders to it wait at `OUTBOX_MESSAGES_MAX`).
pub const OUTBOX_RETRY_AFTER: Duration = Duration::from_millis(1);

/// Work or an answer for another shard.
pub enum ShardMessage {
    /// A task the target spawns.
    Run(ShardTask),
    /// A completion the target runs inline as the batch arrives: it hands a result to a
    /// task waiting there (a oneshot send, which wakes that task on its own thread).
    Complete(Completion),
}

/// A completion: cheap, does not block, never fails visibly (a dropped waiter is fine).
pub type Completion = Box<dyn FnOnce() + Send>;

/// What a shard's channel carries: one task (from threads outside the shards: admin,
/// signals, shutdown) or an outbox batch from another shard.
pub enum ShardMail {
    Task(ShardTask),
    Batch(Vec<ShardMessage>),
}

impl From<ShardTask> for ShardMail {
    fn from(task: ShardTask) -> Self {
        ShardMail::Task(task)
    }
}

/// One shard's queues to the other shards. Lives on the shard's thread.
pub struct Outbox {
    peers: Arc<[flume::Sender<ShardMail>]>,
    queues: Box<[RefCell<Vec<ShardMessage>>]>,
    /// Notified after each flush that sent something: senders waiting on a full queue retry.
    flushed: Rc<Event>,
    /// A sender is waiting for `flushed`, so the loop must not sleep before it can retry.
    waiting: Cell<usize>,
}

impl Outbox {
    pub fn new(peers: Arc<[flume::Sender<ShardMail>]>) -> Self {
        let queues = (0..peers.len()).map(|_| RefCell::new(Vec::new())).collect();
        Outbox {
            peers,
            queues,
            flushed: Rc::new(Event::default()),
            waiting: Cell::new(0),
        }
    }

    /// Queues `task` for shard `target`, waiting while its queue is full and cannot be
    /// flushed (the target's channel is full too: backpressure, as a direct send had).
    pub async fn send(&self, target: usize, task: ShardTask) -> Result<(), ShardGone> {
        let mut message = ShardMessage::Run(task);
        loop {
            match self.try_queue(target, message)? {
                None => return Ok(()),
                Some(back) => message = back,
            }
            let flushed = self.flushed.listen();
            let _counted = Waiting::count(&self.waiting);
            flushed.await;
        }
    }

    /// Whether a message for `target` can be queued now without waiting (its queue is
    /// flushed early first when full).
    pub fn has_room(&self, target: usize) -> bool {
        let Some(queue) = self.queues.get(target) else {
            return false;
        };
        if queue.borrow().len() >= OUTBOX_MESSAGES_MAX {
            self.flush_target(target);
        }
        queue.borrow().len() < OUTBOX_MESSAGES_MAX
    }

    /// Queues `task` for shard `target` now, or drops it: `ShardGone` when the target is
    /// gone or (for a caller that did not check `has_room` first) its queue is full.
    pub fn send_now(&self, target: usize, task: ShardTask) -> Result<(), ShardGone> {
        match self.try_queue(target, ShardMessage::Run(task))? {
            None => Ok(()),
            Some(_) => Err(ShardGone(target)),
        }
    }

    /// Queues `completion` for shard `target`. Never waits: when the queue is full and the
    /// target's channel too, the completion runs here at once (a direct cross-thread wake,
    /// as before batching). Dropped when the target is gone.
    pub fn complete(&self, target: usize, completion: Completion) {
        match self.try_queue(target, ShardMessage::Complete(completion)) {
            Ok(None) | Err(_) => {}
            Ok(Some(ShardMessage::Complete(completion))) => completion(),
            Ok(Some(ShardMessage::Run(_))) => {}
        }
    }

    /// `None` when queued; the message back when the queue is full even after a flush.
    fn try_queue(
        &self,
        target: usize,
        message: ShardMessage,
    ) -> Result<Option<ShardMessage>, ShardGone> {
        let queue = self.queues.get(target).ok_or(ShardGone(target))?;
        if self.peers[target].is_disconnected() {
            return Err(ShardGone(target));
        }
        if queue.borrow().len() >= OUTBOX_MESSAGES_MAX {
            self.flush_target(target);
        }
        let mut queue = queue.borrow_mut();
        if queue.len() >= OUTBOX_MESSAGES_MAX {
            return Ok(Some(message));
        }
        if queue.capacity() == 0 {
            queue.reserve(OUTBOX_INITIAL_CAPACITY);
        }
        queue.push(message);
        Ok(None)
    }

    /// Sends every non-empty queue as one batch to its target. Called by the shard loop
    /// once per turn, before it polls the ring. Returns the longest the loop may then
    /// sleep: `None` (no limit), zero when a sender waiting on a full queue can now retry,
    /// `OUTBOX_RETRY_AFTER` when a target's channel was full and its batch waits.
    pub fn flush(&self) -> Option<Duration> {
        let mut sent = false;
        let mut stuck = false;
        for target in 0..self.queues.len() {
            match self.flush_target(target) {
                Flushed::Nothing => {}
                Flushed::Sent => sent = true,
                Flushed::Full => stuck = true,
            }
        }
        if sent {
            self.flushed.notify();
        }
        if sent && self.waiting.get() > 0 {
            Some(Duration::ZERO)
        } else if stuck {
            Some(OUTBOX_RETRY_AFTER)
        } else {
            None
        }
    }

    fn flush_target(&self, target: usize) -> Flushed {
        let Some(queue) = self.queues.get(target) else {
            return Flushed::Nothing;
        };
        let batch = std::mem::take(&mut *queue.borrow_mut());
        if batch.is_empty() {
            return Flushed::Nothing;
        }
        match self.peers[target].try_send(ShardMail::Batch(batch)) {
            Ok(()) => Flushed::Sent,
            // Gone: the messages are dropped, and with them the oneshots their waiters hold,
            // which then see `ShardGone`.
            Err(flume::TrySendError::Disconnected(_)) => Flushed::Sent,
            Err(flume::TrySendError::Full(ShardMail::Batch(batch))) => {
                *queue.borrow_mut() = batch;
                Flushed::Full
            }
            Err(flume::TrySendError::Full(ShardMail::Task(_))) => Flushed::Full,
        }
    }
}

/// Counts a sender waiting for a flush while it waits (also when its future is dropped).
struct Waiting<'a>(&'a Cell<usize>);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a Cell<usize>) -> Self {
        waiting.set(waiting.get() + 1);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

enum Flushed {
    Nothing,
    Sent,
    Full,
}

/// A shard's inbox: delivers its mail in the order it arrived, one piece per turn of the
/// shard's other tasks (a batch spawns at most `OUTBOX_MESSAGES_MAX` tasks, then everything
/// else ready on the shard runs before the next batch), until every sender is gone.
pub(super) async fn serve_inbox(shard: Rc<super::Shard>, inbox: flume::Receiver<ShardMail>) {
    while let Ok(mail) = inbox.recv_async().await {
        deliver(&shard, mail);
        yield_now().await;
    }
}

/// Runs one piece of mail on the receiving shard: tasks are spawned (in the order sent),
/// completions run inline.
fn deliver(shard: &Rc<super::Shard>, mail: ShardMail) {
    match mail {
        ShardMail::Task(task) => compio::runtime::spawn(task(shard.clone())).detach(),
        ShardMail::Batch(batch) => {
            for message in batch {
                match message {
                    ShardMessage::Run(task) => {
                        compio::runtime::spawn(task(shard.clone())).detach();
                    }
                    ShardMessage::Complete(completion) => completion(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_task() -> ShardTask {
        Box::new(|_| Box::pin(async {}))
    }

    fn batches(rx: &flume::Receiver<ShardMail>) -> Vec<usize> {
        rx.try_iter()
            .map(|mail| match mail {
                ShardMail::Batch(b) => b.len(),
                ShardMail::Task(_) => 0,
            })
            .collect()
    }

    /// Messages queued in one turn leave as one batch per target at the flush, not one
    /// channel message each.
    #[test]
    fn a_turn_of_messages_leaves_as_one_batch_per_target() {
        let (tx0, rx0) = flume::bounded(16);
        let (tx1, rx1) = flume::bounded(16);
        let outbox = Outbox::new(vec![tx0, tx1].into());
        compio::runtime::Runtime::new().unwrap().block_on(async {
            for _ in 0..5 {
                outbox.send(1, noop_task()).await.unwrap();
            }
        });
        outbox.complete(1, Box::new(|| {}));
        outbox.complete(0, Box::new(|| {}));
        assert!(rx1.is_empty(), "nothing leaves before the flush");
        assert_eq!(outbox.flush(), None);
        assert_eq!(batches(&rx1), vec![6]);
        assert_eq!(batches(&rx0), vec![1]);
        assert_eq!(outbox.flush(), None);
        assert!(rx1.is_empty(), "a flush with nothing queued sends nothing");
    }

    /// A full queue is flushed at once; when the target's channel is full too, a
    /// completion runs in place and the flush asks the loop to come back soon.
    #[test]
    fn a_full_queue_flushes_early_and_never_grows_past_its_limit() {
        let (tx, rx) = flume::bounded(1);
        let outbox = Outbox::new(vec![tx.clone(), tx].into());
        for _ in 0..OUTBOX_MESSAGES_MAX + 1 {
            outbox.complete(1, Box::new(|| {}));
        }
        assert_eq!(batches(&rx), vec![OUTBOX_MESSAGES_MAX]);
        assert_eq!(outbox.queues[1].borrow().len(), 1);
        // Fill the channel, then the queue: the next completion cannot wait, so it runs.
        assert_eq!(outbox.flush(), None);
        for _ in 0..OUTBOX_MESSAGES_MAX {
            outbox.complete(1, Box::new(|| {}));
        }
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        outbox.complete(
            1,
            Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)),
        );
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(outbox.queues[1].borrow().len(), OUTBOX_MESSAGES_MAX);
        assert_eq!(outbox.flush(), Some(OUTBOX_RETRY_AFTER));
        assert_eq!(batches(&rx), vec![1]);
        assert_eq!(outbox.flush(), None);
        assert_eq!(batches(&rx), vec![OUTBOX_MESSAGES_MAX]);
    }

    /// A target whose receiver is gone answers `ShardGone` to a sender.
    #[test]
    fn a_gone_target_is_reported() {
        let (tx, rx) = flume::bounded(1);
        drop(rx);
        let outbox = Outbox::new(vec![tx.clone(), tx].into());
        let sent = compio::runtime::Runtime::new()
            .unwrap()
            .block_on(outbox.send(1, noop_task()));
        assert!(matches!(sent, Err(ShardGone(1))));
        assert!(matches!(
            compio::runtime::Runtime::new()
                .unwrap()
                .block_on(outbox.send(7, noop_task())),
            Err(ShardGone(7))
        ));
    }
}
