//! Produce, the cross-shard part: each owning shard gets its partitions' appends, and the
//! request waits until each group is *dispatched* (order fixed) before the connection goes
//! on, then for the results (decision 0023 for groups forwarded through the outbox).

use super::{Appended, PendingAppend, append_one, partition_error};
use crate::server::connection_state::ConnectionState;
use crate::shard::{Shard, now_ms};
use kafka_protocol::ResponseError;
use std::cell::RefCell;
use std::rc::Rc;

/// The appends of one owner's group, on their way: the future of their results.
type Running = futures_util::future::LocalBoxFuture<'static, Vec<Appended>>;

/// Sends each owning shard its appends (all shards at once), waits until every one is
/// dispatched, and returns the future of their results. Notes the owners in the connection's affinity.
///
/// A non-transactional group for another shard counts as dispatched once it is queued in
/// this shard's outbox to the owner: from there its order is fixed (one queue per owner,
/// delivered in order, spawned in order, and the log's dispatch lock is first come first
/// served), so the connection goes on at once and the owner answers once, with the result
/// (decision 0023). Transactional groups still wait for the owner's *dispatched* signal:
/// a transaction's next step (EndTxn, markers) reaches the partition from another shard.
pub(super) async fn dispatch_on_owners(
    shard: &Rc<Shard>,
    pending: Vec<PendingAppend>,
    connection: &RefCell<ConnectionState>,
    transactional: bool,
) -> impl std::future::Future<Output = Vec<Appended>> + 'static {
    let mut by_owner: Vec<Vec<PendingAppend>> = (0..shard.count()).map(|_| Vec::new()).collect();
    for append in pending {
        let owner = shard.owner_of_partition(&append.topic, append.partition);
        by_owner[owner].push(append);
    }
    connection.borrow_mut().affinity.observe(
        by_owner
            .iter()
            .enumerate()
            .filter(|(_, group)| !group.is_empty())
            .map(|(owner, _)| owner),
    );
    let mut dispatched = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    for (owner, group) in by_owner.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let group = if transactional {
            group
        } else {
            match forward_queued(shard, owner, group) {
                Ok(queued) => {
                    running.push(queued);
                    continue;
                }
                Err(group) => group,
            }
        };
        let (dispatched_rx, task) = dispatch_group(shard, owner, group);
        dispatched.push(dispatched_rx);
        running.push(task);
    }
    // A dropped sender (owner gone, or append failed early) also means "nothing pending".
    for d in dispatched {
        let _ = d.await;
    }
    async move {
        let mut all = Vec::new();
        for task in running {
            all.extend(task.await);
        }
        all
    }
}

/// BROKER_NOT_AVAILABLE for every partition of a group whose owner is gone.
fn owner_gone(fallback: Vec<(usize, i32)>) -> Vec<Appended> {
    fallback
        .into_iter()
        .map(|(t, p)| partition_error(t, p, ResponseError::BrokerNotAvailable.code(), None))
        .collect()
}

/// Queues the group for another shard `owner` now, in order, with nothing to wait for but
/// the result; the group back when `owner` is this shard or its outbox queue is full.
fn forward_queued(
    shard: &Rc<Shard>,
    owner: usize,
    group: Vec<PendingAppend>,
) -> Result<Running, Vec<PendingAppend>> {
    if owner == shard.id || !shard.outbox.has_room(owner) {
        return Err(group);
    }
    let fallback: Vec<(usize, i32)> = group.iter().map(|a| (a.topic_index, a.partition)).collect();
    let call = shard.invoke_queued(owner, move |s| async move {
        append_local(&s, group, Box::new(|| {})).await
    });
    Ok(Box::pin(async move { call.await.unwrap_or_else(|_| owner_gone(fallback)) }))
}

/// The group on its owner through `invoke_on` (the owner's *dispatched* signal, then the
/// result): the signal's receiver and the result's future.
fn dispatch_group(
    shard: &Rc<Shard>,
    owner: usize,
    group: Vec<PendingAppend>,
) -> (futures_channel::oneshot::Receiver<()>, Running) {
    let fallback: Vec<(usize, i32)> = group.iter().map(|a| (a.topic_index, a.partition)).collect();
    let (dispatched_tx, dispatched_rx) = futures_channel::oneshot::channel::<()>();
    // A spawned task: tasks run in spawn order, so messages leave in request order.
    let shard = shard.clone();
    let source = shard.id;
    let task = compio::runtime::spawn(async move {
        let call = shard.invoke_on(owner, move |s| async move {
            let on_all_dispatched = signal_back(&s, source, move || {
                let _ = dispatched_tx.send(());
            });
            append_local(&s, group, on_all_dispatched).await
        });
        call.await.unwrap_or_else(|_| owner_gone(fallback))
    });
    let running: Running = Box::pin(async move { task.await.unwrap_or_default() });
    (dispatched_rx, running)
}

/// `signal` for the shard `source` waiting on it, run on the owning shard `owner`: at once
/// when they are the same shard, else in `owner`'s next outbox batch to `source` (with the
/// other answers going there in the same loop turn: one wake-up, decision 0023).
fn signal_back(
    owner: &Rc<Shard>,
    source: usize,
    signal: impl FnOnce() + Send + 'static,
) -> Box<dyn FnOnce()> {
    let owner = owner.clone();
    Box::new(move || {
        if owner.id == source {
            signal();
        } else {
            owner.outbox.complete(source, Box::new(signal));
        }
    })
}

/// Counts the appends of one owner's group that are dispatched; tells the connection when
/// all are (errors before dispatch count as dispatched: they wait for nothing).
struct DispatchGate {
    remaining: std::cell::Cell<usize>,
    on_all_dispatched: std::cell::RefCell<Option<Box<dyn FnOnce()>>>,
}

impl DispatchGate {
    fn arrive(&self) {
        let left = self.remaining.get().saturating_sub(1);
        self.remaining.set(left);
        if left == 0 {
            let signal = self.on_all_dispatched.borrow_mut().take();
            if let Some(signal) = signal {
                signal();
            }
        }
    }
}

/// Runs on the owning shard: appends to each partition (different partitions concurrently).
async fn append_local(
    shard: &Rc<Shard>,
    group: Vec<PendingAppend>,
    on_all_dispatched: Box<dyn FnOnce()>,
) -> Vec<Appended> {
    let now = now_ms();
    let gate = Rc::new(DispatchGate {
        remaining: std::cell::Cell::new(group.len()),
        on_all_dispatched: std::cell::RefCell::new(Some(on_all_dispatched)),
    });
    let appends = group.into_iter().map(|a| {
        let gate = gate.clone();
        async move {
            let arrived = Rc::new(std::cell::Cell::new(false));
            let appended = append_one(shard, a, now, {
                let (gate, arrived) = (gate.clone(), arrived.clone());
                move || {
                    arrived.set(true);
                    gate.arrive();
                }
            })
            .await;
            if !arrived.get() {
                gate.arrive();
            }
            appended
        }
    });
    futures_util::future::join_all(appends).await
}

