//! Which logs the shard's background flush must look at (issue 19: 100,000 partitions on
//! one node). The maintenance tick used to ask every partition it owns whether a flush was
//! due, ten times a second: with 100,000 idle partitions that scan alone kept a quarter of
//! a core busy (perf/RESULTS.md, session 34). Instead a log tells the shard, through the
//! hook the shard installs at open (`watch_flushes`), when it gets work a background flush
//! must make durable while it had none; the tick looks only at the logs it was told of and
//! lets each go (`keep_flush_watch`) once nothing is left, so an idle partition costs the
//! tick nothing until its next write.
//!
//! Owns: the "told the shard" flag. Must not: decide when a flush is due (`flush_due`), or
//! flush anything.

use std::rc::{Rc, Weak};

use super::log::PartitionLog;

/// The shard's hook: given the log that has background-flush work now (a weak reference,
/// so a log deleted meanwhile simply drops out).
pub type FlushWatch = Rc<dyn Fn(Weak<PartitionLog>)>;

impl PartitionLog {
    /// Installs the shard's hook and tells it once now: whatever the open (a recovery, a
    /// follower's truncation) left unsynced is looked at by the next tick.
    pub fn watch_flushes(&self, watch: FlushWatch) {
        *self.flush.watch.borrow_mut() = Some(watch);
        self.flush.watched.set(false);
        self.note_flush_work();
    }

    /// The hook, for a log reopened over this one's directory (`truncate`).
    pub(super) fn flush_watch(&self) -> Option<FlushWatch> {
        self.flush.watch.borrow().clone()
    }

    /// Called with every write queued: tells the hook, unless it was told and has not let
    /// this log go since.
    pub(super) fn note_flush_work(&self) {
        if self.flush.watched.replace(true) {
            return;
        }
        if let Some(watch) = self.flush.watch.borrow().as_ref() {
            watch(self.self_ref.clone());
        }
    }

    /// Whether the shard must keep looking at this log: it went offline (an error for the
    /// flush to report) or holds records no flush has synced, or a recovery point not yet
    /// persisted up to its written end. When not, the log is let go: its next write tells
    /// the hook again.
    pub fn keep_flush_watch(&self) -> bool {
        let work_left = self.flush.unflushed_records.get() > 0
            || self.offsets.recovery_point.get() < self.offsets.written_end_offset.get();
        let keep = self.offline.borrow().is_some() || (!self.closed.get() && work_left);
        if !keep {
            self.flush.watched.set(false);
        }
        keep
    }
}
