//! The durable writer of each group's offsets log: queued records are appended and
//! fdatasync'ed by one flush task per group (group commit: everything queued while a write
//! was in flight goes out in the next one), then applied in memory and acknowledged. The
//! same task compacts the log into a snapshot when it grows `COMPACTION_RATIO` times past
//! its live state, and removes it when the group has no offsets left.
//!
//! Owns: `GroupLog` (file handle, durable length, queue) and its single-writer rule: only
//! the running flush task writes, compacts or removes a group's file. Must not: decide what
//! to write (the protocol files queue records through `enqueue`) or hold the `groups`
//! borrow across an `.await`.

use std::path::PathBuf;
use std::rc::Rc;

use futures_channel::oneshot;

use super::coordinator::GroupCoordinator;
use super::offset_log::{self, GroupOffsets, LogRecord};
use super::replicated::WriteOrigin;
use super::state::{Group, PendingWrite};

/// Compact a group log when it is this many times larger than its live state...
pub const COMPACTION_RATIO: u64 = 4;
/// ...and at least this large (tiny logs are not worth a rewrite).
pub const COMPACTION_MIN_LOG_BYTES: u64 = 64 * 1024;

/// Resolves once the queued records are durable (Ok) or their write failed (Err: why).
pub(super) type WriteAck = oneshot::Receiver<Result<(), WriteError>>;

/// Why queued records did not become durable: the Kafka error to answer, and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    pub code: i16,
    pub message: String,
}

impl WriteError {
    /// A failure the client retries against the coordinator (a file write, a stopped task).
    pub fn unavailable(message: impl Into<String>) -> WriteError {
        WriteError {
            code: kafka_protocol::ResponseError::CoordinatorNotAvailable.code(),
            message: message.into(),
        }
    }
}

/// One batch taken off a group's queue, with what writing it needs to know.
struct FlushJob {
    batch: Vec<PendingWrite>,
    /// The batch's records, encoded; moved out to the write (never copied).
    bytes: Vec<u8>,
    file: Option<Rc<compio::fs::File>>,
    path: PathBuf,
    /// Append position: the log's durable length when the batch was taken.
    position: u64,
    /// A previous write failed part-way: cut the file back to `position` first.
    truncate: bool,
}

/// What compaction will do with a group's log (decided under the borrow, done after it).
enum CompactionPlan {
    /// The group has no offsets left: its log goes.
    Remove(PathBuf),
    /// The log is mostly dead records: replace it with this snapshot.
    Snapshot(PathBuf, Vec<u8>),
}

impl GroupCoordinator {
    /// Queues records on a group's log and makes sure a flush task runs. Must be called with
    /// the groups borrow held; the flush task only starts running after the caller yields.
    pub(super) fn enqueue(&self, group: &mut Group, records: Vec<LogRecord>) -> WriteAck {
        self.enqueue_as(group, records, WriteOrigin::Coordinator)
    }

    /// `enqueue`, saying who asks (cluster mode checks a coordinator's writes).
    pub(super) fn enqueue_as(
        &self,
        group: &mut Group,
        mut records: Vec<LogRecord>,
        origin: WriteOrigin,
    ) -> WriteAck {
        if let Some(ack) = self.enqueue_replicated(group, &mut records, origin) {
            return ack;
        }
        let (tx, rx) = oneshot::channel();
        group.log.pending.push(PendingWrite {
            records,
            done: Some(tx),
        });
        if !group.log.flushing {
            group.log.flushing = true;
            let inner = self.clone();
            let group_id = group.id.clone();
            compio::runtime::spawn(async move { inner.flush_loop(group_id).await }).detach();
        }
        rx
    }

    /// The single writer of one group's log: writes everything queued, fdatasyncs, then
    /// applies the records in memory and acknowledges them; repeats until the queue is empty.
    async fn flush_loop(self, group_id: String) {
        loop {
            let Some(mut job) = self.take_batch(&group_id) else {
                return;
            };
            let bytes = std::mem::take(&mut job.bytes);
            let written = bytes.len() as u64;
            let result = write_batch(&job, bytes).await;
            if !self.finish_batch(&group_id, job, written, result) {
                return;
            }
            self.maybe_compact(&group_id).await;
        }
    }

    /// Takes everything queued for the group and encodes it. None when there is nothing
    /// left to write (the task then ends, closing an idle log and forgetting a removable
    /// group) or the group is gone.
    fn take_batch(&self, group_id: &str) -> Option<FlushJob> {
        let mut groups = self.inner.groups.borrow_mut();
        let g = groups.get_mut(group_id)?;
        if g.log.pending.is_empty() {
            g.log.flushing = false;
            // Idle logs hold no file descriptor: thousands of groups must not
            // exhaust RLIMIT_NOFILE. Re-opening costs far less than the fsync.
            g.log.file = None;
            // A group that was never used goes now; one that emptied waits for the tick
            // (`is_forgettable`), as Kafka keeps it until its cleanup.
            if g.is_removable() && g.empty_since_ms.is_none() {
                groups.remove(group_id);
            }
            return None;
        }
        let batch = std::mem::take(&mut g.log.pending);
        let mut bytes = Vec::new();
        for write in &batch {
            for record in &write.records {
                offset_log::encode_record(&mut bytes, group_id, record);
            }
        }
        Some(FlushJob {
            batch,
            bytes,
            file: g.log.file.clone(),
            path: g.log.path.clone(),
            position: g.log.durable_len_bytes,
            truncate: g.log.needs_truncate,
        })
    }

    /// Applies a durable batch to the group's offsets and acknowledges it, or fails every
    /// write in it. False when the group is gone (the task then ends).
    fn finish_batch(
        &self,
        group_id: &str,
        job: FlushJob,
        written: u64,
        result: std::io::Result<Rc<compio::fs::File>>,
    ) -> bool {
        let mut groups = self.inner.groups.borrow_mut();
        let Some(g) = groups.get_mut(group_id) else {
            return false;
        };
        match result {
            Ok(file) => {
                let flushes = &self.inner.log_flushes_total;
                flushes.set(flushes.get() + 1);
                g.log.file = Some(file);
                g.log.durable_len_bytes = job.position + written;
                g.log.needs_truncate = false;
                for write in job.batch {
                    for record in &write.records {
                        record.apply(&mut g.offsets);
                    }
                    if let Some(done) = write.done {
                        let _ = done.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                let path = &job.path;
                tracing::error!(group = %group_id, file = %path.display(), error = %e, "offsets log write failed");
                g.log.file = None;
                g.log.needs_truncate = true;
                let message = format!("offsets log {}: {e}", path.display());
                for write in job.batch {
                    if let Some(done) = write.done {
                        let _ = done.send(Err(WriteError::unavailable(message.clone())));
                    }
                }
            }
        }
        true
    }

    /// Called by the flush task only (it is the log's single writer).
    async fn maybe_compact(&self, group_id: &str) {
        match self.compaction_plan(group_id) {
            None => {}
            Some(CompactionPlan::Remove(path)) => self.remove_empty_log(group_id, path),
            Some(CompactionPlan::Snapshot(path, snapshot)) => {
                self.replace_with_snapshot(group_id, path, snapshot).await
            }
        }
    }

    fn compaction_plan(&self, group_id: &str) -> Option<CompactionPlan> {
        let groups = self.inner.groups.borrow();
        let g = groups.get(group_id)?;
        let log_len = g.log.durable_len_bytes;
        if g.offsets.is_empty() {
            (log_len > 0).then(|| CompactionPlan::Remove(g.log.path.clone()))
        } else if log_len >= COMPACTION_MIN_LOG_BYTES
            && log_len > COMPACTION_RATIO * live_bytes(group_id, &g.offsets)
        {
            Some(CompactionPlan::Snapshot(
                g.log.path.clone(),
                offset_log::encode_snapshot(group_id, &g.offsets),
            ))
        } else {
            None
        }
    }

    fn remove_empty_log(&self, group_id: &str, path: PathBuf) {
        let result = offset_log::remove_log(&path);
        let mut groups = self.inner.groups.borrow_mut();
        if let Some(g) = groups.get_mut(group_id) {
            match result {
                Ok(()) => {
                    g.log.file = None;
                    g.log.durable_len_bytes = 0;
                    g.log.needs_truncate = false;
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove empty offsets log")
                }
            }
        }
    }

    async fn replace_with_snapshot(&self, group_id: &str, path: PathBuf, snapshot: Vec<u8>) {
        let len = snapshot.len() as u64;
        let result = offset_log::replace_with_snapshot(&path, snapshot).await;
        let mut groups = self.inner.groups.borrow_mut();
        match result {
            Ok(file) => {
                if let Some(g) = groups.get_mut(group_id) {
                    g.log.file = Some(Rc::new(file));
                    g.log.durable_len_bytes = len;
                    g.log.needs_truncate = false;
                }
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "offsets log compaction failed; keeping the log");
            }
        }
    }
}

/// Appends a batch durably (opening the file if the idle log had closed it); no borrow of
/// the group table is held while this runs.
async fn write_batch(job: &FlushJob, bytes: Vec<u8>) -> std::io::Result<Rc<compio::fs::File>> {
    let file = match &job.file {
        Some(f) => f.clone(),
        None => Rc::new(offset_log::open_for_append(&job.path, job.position == 0).await?),
    };
    offset_log::append_durably(&file, job.position, bytes, job.truncate).await?;
    Ok(file)
}

/// Bytes a snapshot of `offsets` takes (frame headers included), without building it.
fn live_bytes(group_id: &str, offsets: &GroupOffsets) -> u64 {
    let fixed = (offset_log::FRAME_HEADER_BYTES + 1 + 8 + 2 + 2 + 4 + 8 + 4 + 4) as u64;
    offsets
        .iter()
        .map(|(topic, parts)| {
            parts
                .values()
                .map(|e| fixed + (group_id.len() + topic.len() + e.metadata.len()) as u64)
                .sum::<u64>()
        })
        .sum()
}
