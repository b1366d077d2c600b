//! The transaction coordinator of one shard: the transactional ids whose log slot this
//! shard owns, each id's state, and the single writer of each owned slot's log.
//!
//! A request works on an id through a `Lease`: at most one per id at a time. A client's
//! request arriving meanwhile waits its turn (`lease_queued`, bounded in waiters and time)
//! rather than being answered CONCURRENT_TRANSACTIONS: clients send AddPartitionsToTxn,
//! AddOffsetsToTxn and TxnOffsetCommit back to back, and librdkafka retries a
//! CONCURRENT_TRANSACTIONS TxnOffsetCommit only after 500 ms, a stall per transaction. The
//! timer takes leases without waiting (`lease`) and leaves busy ids for its next tick. Every change is written whole and fdatasync'ed
//! (`Lease::persist`; in cluster mode committed through the metadata log instead,
//! `replicated`) before it takes effect or is answered: changes to ids of one slot
//! queued while a write was in flight go out in the next write (group commit). A slot log
//! more than `COMPACTION_RATIO` times its live state is replaced by a snapshot.
//!
//! Owns: the id table and the slot logs. Must not: write markers, allocate producer ids or
//! reach other shards (the shard's transaction driver does), or hold a `RefCell` borrow
//! across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures_channel::oneshot;

use super::log::{self, TxnLogError};
use super::replicated::TxnReplicator;
use super::state::{MAX_TRANSACTIONAL_IDS_PER_SHARD, TxnError, TxnMetadata, TxnState};
use crate::group::offset_log as files;

/// Compact a slot log when it is this many times larger than its live state...
pub const COMPACTION_RATIO: u64 = 4;
/// ...and at least this large.
pub const COMPACTION_MIN_LOG_BYTES: u64 = 64 * 1024;
/// Requests that may wait for one id's lease at once; more get CONCURRENT_TRANSACTIONS.
pub const MAX_LEASE_WAITERS_PER_ID: usize = 16;
/// How long a request waits for an id's lease before answering CONCURRENT_TRANSACTIONS
/// (the holder may be writing markers to a slow partition; the client retries).
pub const MAX_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The shard that coordinates `transactional_id`: its log slot's owner.
pub fn owner_shard(transactional_id: &str, shard_count: usize) -> usize {
    log::slot_of(transactional_id) % shard_count.max(1)
}

struct PendingWrite {
    meta: TxnMetadata,
    done: oneshot::Sender<Result<(), String>>,
}

/// One slot's log file and its write queue; only its flush task writes the file.
struct SlotLog {
    path: PathBuf,
    file: Option<Rc<compio::fs::File>>,
    durable_len_bytes: u64,
    pending: Vec<PendingWrite>,
    flushing: bool,
    /// A write failed part-way: cut the file back before the next one.
    needs_truncate: bool,
}

pub(super) struct Inner {
    shard_id: usize,
    shard_count: usize,
    pub(super) txns: RefCell<HashMap<String, TxnMetadata>>,
    /// Cluster mode: the metadata log instead of the slot logs (`replicated`).
    pub(super) replicator: RefCell<Option<Rc<dyn TxnReplicator>>>,
    /// Cluster mode: each id's version, the log index of the record that wrote its state.
    pub(super) versions: RefCell<HashMap<String, u64>>,
    /// Ids with a lease out (a request or the timer working on them).
    leased: RefCell<HashSet<String>>,
    /// Requests waiting for a leased id, woken in arrival order as it is released.
    lease_waiters: RefCell<HashMap<String, VecDeque<oneshot::Sender<()>>>>,
    slots: RefCell<HashMap<usize, SlotLog>>,
    log_flushes_total: Cell<u64>,
}

/// The transaction coordinator of one shard. Cheap to clone (shared `Rc`).
#[derive(Clone)]
pub struct TxnCoordinator {
    pub(super) inner: Rc<Inner>,
}

/// Exclusive use of one transactional id until dropped.
pub struct Lease {
    pub(super) coordinator: TxnCoordinator,
    pub(super) transactional_id: String,
    /// The id's durable state (None: unknown id).
    pub current: Option<TxnMetadata>,
    /// Cluster mode: the version of `current` (see `Inner::versions`).
    pub(super) version: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let inner = &self.coordinator.inner;
        inner.leased.borrow_mut().remove(&self.transactional_id);
        let mut waiters = inner.lease_waiters.borrow_mut();
        if let Some(queue) = waiters.get_mut(&self.transactional_id) {
            // The first waiter still waiting takes its turn (one that gave up is skipped).
            while let Some(next) = queue.pop_front() {
                if next.send(()).is_ok() {
                    break;
                }
            }
            if queue.is_empty() {
                waiters.remove(&self.transactional_id);
            }
        }
    }
}

impl Lease {
    /// Writes `meta` durably, then makes it the id's state. On a write failure nothing
    /// changes and the request answers COORDINATOR_NOT_AVAILABLE (the client retries).
    pub async fn persist(&mut self, meta: TxnMetadata) -> Result<(), TxnError> {
        debug_assert_eq!(meta.transactional_id, self.transactional_id);
        let replicator = self.coordinator.inner.replicator.borrow().clone();
        if let Some(replicator) = replicator {
            return self.persist_replicated(replicator, meta).await;
        }
        let ack = self.coordinator.enqueue(meta.clone());
        match ack.await {
            Ok(Ok(())) => {
                self.current = (meta.state != TxnState::Dead).then_some(meta);
                Ok(())
            }
            Ok(Err(why)) => {
                tracing::error!(id = %self.transactional_id, error = %why, "transaction log write failed");
                Err(TxnError::CoordinatorNotAvailable)
            }
            Err(_) => Err(TxnError::CoordinatorNotAvailable),
        }
    }
}

impl TxnCoordinator {
    /// Replays the slots this shard owns from `<data_dir>/__transaction_state/`.
    pub fn open(
        data_dir: &Path,
        shard_id: usize,
        shard_count: usize,
    ) -> Result<TxnCoordinator, TxnLogError> {
        let dir = log::txn_dir(data_dir);
        let owns = |slot: usize| slot % shard_count.max(1) == shard_id;
        let loaded = log::load_owned(&dir, owns)?;
        let mut txns = HashMap::new();
        let mut slots = HashMap::new();
        for l in loaded {
            txns.extend(l.txns);
            slots.insert(
                l.slot,
                SlotLog {
                    path: log::slot_path(&dir, l.slot),
                    file: None,
                    durable_len_bytes: l.log_len_bytes,
                    pending: Vec::new(),
                    flushing: false,
                    needs_truncate: false,
                },
            );
        }
        Ok(TxnCoordinator {
            inner: Rc::new(Inner {
                shard_id,
                shard_count,
                txns: RefCell::new(txns),
                leased: RefCell::new(HashSet::new()),
                lease_waiters: RefCell::new(HashMap::new()),
                slots: RefCell::new(slots),
                replicator: RefCell::new(None),
                versions: RefCell::new(HashMap::new()),
                log_flushes_total: Cell::new(0),
            }),
        })
    }

    /// Whether `transactional_id` belongs to this shard.
    pub fn owns(&self, transactional_id: &str) -> bool {
        owner_shard(transactional_id, self.inner.shard_count) == self.inner.shard_id
    }

    /// Takes the id for one request; CONCURRENT_TRANSACTIONS while another holds it.
    pub fn lease(&self, transactional_id: &str) -> Result<Lease, TxnError> {
        super::state::check_transactional_id(transactional_id)?;
        if !self.owns(transactional_id) {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        let current = self.inner.txns.borrow().get(transactional_id).cloned();
        if current.is_none() && self.inner.txns.borrow().len() >= MAX_TRANSACTIONAL_IDS_PER_SHARD {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        if !self
            .inner
            .leased
            .borrow_mut()
            .insert(transactional_id.to_string())
        {
            return Err(TxnError::Concurrent);
        }
        let version = self.version_of(transactional_id);
        Ok(Lease {
            coordinator: self.clone(),
            transactional_id: transactional_id.to_string(),
            current,
            version,
        })
    }

    /// Takes the id for one client request, waiting (in arrival order, at most
    /// `MAX_LEASE_WAIT`) while another request holds it; CONCURRENT_TRANSACTIONS when too
    /// many wait or the wait runs out.
    pub async fn lease_queued(&self, transactional_id: &str) -> Result<Lease, TxnError> {
        let deadline = std::time::Instant::now() + MAX_LEASE_WAIT;
        loop {
            match self.lease(transactional_id) {
                Err(TxnError::Concurrent) => {}
                taken_or_refused => return taken_or_refused,
            }
            let (turn_tx, turn) = oneshot::channel();
            {
                let mut waiters = self.inner.lease_waiters.borrow_mut();
                let queue = waiters.entry(transactional_id.to_string()).or_default();
                if queue.len() >= MAX_LEASE_WAITERS_PER_ID {
                    return Err(TxnError::Concurrent);
                }
                queue.push_back(turn_tx);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match compio::time::timeout(left, turn).await {
                Ok(Ok(())) => {}
                // Timed out (our sender is skipped when found dropped): one last try, in
                // case a waiter woken before us gave up without taking its turn.
                _ => return self.lease(transactional_id),
            }
        }
    }

    /// The id's durable state, if known.
    pub fn get(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.inner.txns.borrow().get(transactional_id).cloned()
    }

    /// Every id this shard coordinates (ListTransactions, metrics), sorted by id.
    pub fn all(&self) -> Vec<TxnMetadata> {
        let mut v: Vec<TxnMetadata> = self.inner.txns.borrow().values().cloned().collect();
        v.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        v
    }

    /// Transactions open now among the ids `counted` accepts (metrics: in cluster mode
    /// every node holds every id, and each counts the ones it coordinates).
    pub fn open_count(&self, counted: impl Fn(&str) -> bool) -> usize {
        let txns = self.inner.txns.borrow();
        txns.values()
            .filter(|m| m.state == super::TxnState::Ongoing && counted(&m.transactional_id))
            .count()
    }

    /// Ids whose open transaction is past its timeout at `now_ms`.
    /// Ids idle past `expiration_ms`: the driver forgets them.
    pub fn idle(&self, expiration_ms: i64, now_ms: i64) -> Vec<String> {
        let txns = self.inner.txns.borrow();
        txns.values()
            .filter(|m| m.is_idle_past(expiration_ms, now_ms))
            .map(|m| m.transactional_id.clone())
            .collect()
    }

    pub fn expired(&self, now_ms: i64) -> Vec<String> {
        let txns = self.inner.txns.borrow();
        txns.values()
            .filter(|m| m.is_expired(now_ms))
            .map(|m| m.transactional_id.clone())
            .collect()
    }

    /// Ids whose outcome is decided but whose markers may not all be written (a restart
    /// during PrepareCommit / PrepareAbort): the driver completes them.
    pub fn preparing(&self) -> Vec<String> {
        let txns = self.inner.txns.borrow();
        txns.values()
            .filter(|m| m.state.is_preparing())
            .map(|m| m.transactional_id.clone())
            .collect()
    }

    /// Slot-log writes (each one fdatasync) since start (for metrics and tests).
    pub fn log_flushes_total(&self) -> u64 {
        self.inner.log_flushes_total.get()
    }

    fn enqueue(&self, meta: TxnMetadata) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        let slot = log::slot_of(&meta.transactional_id);
        let mut slots = self.inner.slots.borrow_mut();
        let Some(s) = slots.get_mut(&slot) else {
            let _ = tx.send(Err(format!("slot {slot} is not owned by this shard")));
            return rx;
        };
        s.pending.push(PendingWrite { meta, done: tx });
        if !s.flushing {
            s.flushing = true;
            let me = self.clone();
            compio::runtime::spawn(async move { me.flush_loop(slot).await }).detach();
        }
        rx
    }

    /// The single writer of one slot: writes everything queued in one append + fdatasync,
    /// applies it and acknowledges it, compacts when due; until the queue is empty.
    async fn flush_loop(self, slot: usize) {
        loop {
            let (batch, bytes, file, path, position, truncate) = {
                let mut slots = self.inner.slots.borrow_mut();
                let Some(s) = slots.get_mut(&slot) else {
                    return;
                };
                if s.pending.is_empty() {
                    s.flushing = false;
                    return;
                }
                let batch = std::mem::take(&mut s.pending);
                let mut bytes = Vec::new();
                for w in &batch {
                    log::encode_record(&mut bytes, &w.meta);
                }
                let (file, path) = (s.file.clone(), s.path.clone());
                (
                    batch,
                    bytes,
                    file,
                    path,
                    s.durable_len_bytes,
                    s.needs_truncate,
                )
            };
            let written = bytes.len() as u64;
            let result = async {
                let file = match file {
                    Some(f) => f,
                    None => Rc::new(files::open_for_append(&path, position == 0).await?),
                };
                files::append_durably(&file, position, bytes, truncate).await?;
                Ok::<_, std::io::Error>(file)
            }
            .await;
            self.finish_batch(slot, batch, position + written, result);
            self.maybe_compact(slot).await;
        }
    }

    fn finish_batch(
        &self,
        slot: usize,
        batch: Vec<PendingWrite>,
        durable_len_bytes: u64,
        result: std::io::Result<Rc<compio::fs::File>>,
    ) {
        let mut slots = self.inner.slots.borrow_mut();
        let Some(s) = slots.get_mut(&slot) else {
            return;
        };
        match result {
            Ok(file) => {
                let flushes = &self.inner.log_flushes_total;
                flushes.set(flushes.get() + 1);
                s.file = Some(file);
                s.durable_len_bytes = durable_len_bytes;
                s.needs_truncate = false;
                let mut txns = self.inner.txns.borrow_mut();
                for w in batch {
                    if w.meta.state == TxnState::Dead {
                        txns.remove(&w.meta.transactional_id);
                    } else {
                        txns.insert(w.meta.transactional_id.clone(), w.meta);
                    }
                    let _ = w.done.send(Ok(()));
                }
            }
            Err(e) => {
                s.file = None;
                s.needs_truncate = true;
                let message = format!("transaction log {}: {e}", s.path.display());
                for w in batch {
                    let _ = w.done.send(Err(message.clone()));
                }
            }
        }
    }

    /// Replaces a slot log that is mostly superseded records with one record per id.
    async fn maybe_compact(&self, slot: usize) {
        let plan = {
            let slots = self.inner.slots.borrow();
            let Some(s) = slots.get(&slot) else {
                return;
            };
            let txns = self.inner.txns.borrow();
            let live: Vec<&TxnMetadata> = txns
                .values()
                .filter(|m| log::slot_of(&m.transactional_id) == slot)
                .collect();
            let live_bytes: u64 = live.iter().map(|m| log::record_len(m)).sum();
            if s.durable_len_bytes < COMPACTION_MIN_LOG_BYTES
                || s.durable_len_bytes <= COMPACTION_RATIO * live_bytes
            {
                return;
            }
            let mut snapshot = Vec::with_capacity(live_bytes as usize);
            for m in live {
                log::encode_record(&mut snapshot, m);
            }
            (s.path.clone(), snapshot)
        };
        let (path, snapshot) = plan;
        let len = snapshot.len() as u64;
        let result = files::replace_with_snapshot(&path, snapshot).await;
        let mut slots = self.inner.slots.borrow_mut();
        match (result, slots.get_mut(&slot)) {
            (Ok(file), Some(s)) => {
                s.file = Some(Rc::new(file));
                s.durable_len_bytes = len;
                s.needs_truncate = false;
            }
            (Err(e), _) => {
                tracing::warn!(file = %path.display(), error = %e, "transaction log compaction failed; keeping the log")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn a_queued_request_gets_the_lease_when_the_holder_releases_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        run(async {
            let coordinator = TxnCoordinator::open(dir.path(), 0, 1).expect("open");
            let holder = coordinator.lease("tx-a").expect("first lease");
            assert!(matches!(
                coordinator.lease("tx-a"),
                Err(TxnError::Concurrent)
            ));
            let waiter = {
                let coordinator = coordinator.clone();
                compio::runtime::spawn(async move { coordinator.lease_queued("tx-a").await })
            };
            // Let the waiter queue up, then release: it must get the id, not an error.
            compio::runtime::time::sleep(std::time::Duration::from_millis(10)).await;
            assert_eq!(coordinator.inner.lease_waiters.borrow()["tx-a"].len(), 1);
            drop(holder);
            let lease = waiter.await.expect("waiter task").expect("queued lease");
            assert_eq!(lease.transactional_id, "tx-a");
            assert!(coordinator.inner.lease_waiters.borrow().is_empty());
            // Another id is never blocked by this one.
            assert!(coordinator.lease("tx-b").is_ok());
        });
    }

    #[test]
    fn too_many_waiters_get_concurrent_transactions_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        run(async {
            let coordinator = TxnCoordinator::open(dir.path(), 0, 1).expect("open");
            let _holder = coordinator.lease("tx-a").expect("first lease");
            let mut waiting = Vec::new();
            for _ in 0..MAX_LEASE_WAITERS_PER_ID {
                let coordinator = coordinator.clone();
                waiting.push(compio::runtime::spawn(async move {
                    coordinator.lease_queued("tx-a").await.is_ok()
                }));
            }
            compio::runtime::time::sleep(std::time::Duration::from_millis(10)).await;
            let queued = coordinator.inner.lease_waiters.borrow()["tx-a"].len();
            assert_eq!(queued, MAX_LEASE_WAITERS_PER_ID);
            assert!(matches!(
                coordinator.lease_queued("tx-a").await,
                Err(TxnError::Concurrent)
            ));
        });
    }
}
