//! What the admin listener sees of the shards: metric snapshots gathered by message from
//! every shard (merged only when read), readiness, and the `/v1/status` document.
//! Runs on the admin thread; never touches shard state directly.

use super::{Shard, ShardMail, ShardTask};
use crate::admin::console::api::{ConsoleError, ConsoleQuery, ConsoleWrite};
use crate::admin::{ADMIN_COLLECT_TIMEOUT, AdminSource, ShardStatus, status_document};
use crate::metrics::{BrokerInfo, ShardSnapshot, StorageHealth};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a console question may take (it may read a page of records from disk) before
/// the admin thread answers 503 instead.
pub const CONSOLE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Each shard's channel, and the core it is pinned to.
struct AttachedShards {
    senders: Arc<[flume::Sender<ShardMail>]>,
    cores: Vec<usize>,
    io_driver: &'static str,
}

/// The admin thread's view of the broker. Shards are attached once they exist.
pub struct BrokerObserver {
    node_id: i32,
    started: Instant,
    ready: AtomicBool,
    shards: OnceLock<AttachedShards>,
    /// `console_read_only`: the console's writes are refused.
    console_read_only: bool,
}

impl BrokerObserver {
    pub fn new(node_id: i32) -> BrokerObserver {
        BrokerObserver {
            node_id,
            started: Instant::now(),
            ready: AtomicBool::new(false),
            shards: OnceLock::new(),
            console_read_only: false,
        }
    }

    /// Sets `console_read_only`.
    pub fn with_console_read_only(mut self, read_only: bool) -> BrokerObserver {
        self.console_read_only = read_only;
        self
    }

    /// Runs `work` on shard 0 and waits for its answer, at most [`CONSOLE_ANSWER_TIMEOUT`].
    fn ask_shard_zero<F, Fut>(&self, work: F) -> Result<serde_json::Value, ConsoleError>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, ConsoleError>> + 'static,
    {
        let Some(AttachedShards { senders, .. }) = self.shards.get() else {
            return Err(ConsoleError::Unavailable(
                "the broker is still starting".into(),
            ));
        };
        let sender = senders
            .first()
            .ok_or_else(|| ConsoleError::Unavailable("no shards".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let task: ShardTask = Box::new(move |shard: Rc<Shard>| {
            Box::pin(async move {
                let _ = tx.send(work(shard).await);
            })
        });
        sender
            .try_send(task.into())
            .map_err(|_| ConsoleError::Unavailable("shard 0 is busy or stopping".into()))?;
        rx.recv_timeout(CONSOLE_ANSWER_TIMEOUT).map_err(|_| {
            ConsoleError::Unavailable(format!(
                "no answer within {} s",
                CONSOLE_ANSWER_TIMEOUT.as_secs()
            ))
        })?
    }

    /// Called once every shard has recovered and listens.
    pub fn attach(
        &self,
        senders: Arc<[flume::Sender<ShardMail>]>,
        cores: Vec<usize>,
        io_driver: &'static str,
    ) {
        let _ = self.shards.set(AttachedShards {
            senders,
            cores,
            io_driver,
        });
        self.ready.store(true, Ordering::Release);
    }

    /// Called when shutdown begins: `/v1/ready` answers 503 again.
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::Release);
    }
}

/// The shard's open-file budget and offline partitions (run on the shard).
fn storage_health(shard: &Shard) -> StorageHealth {
    let files = crate::storage::open_files::stats();
    StorageHealth {
        open_files: files.open_files,
        open_file_limit: files.limit,
        open_file_evictions: files.evictions,
        open_file_reopens: files.reopens,
        offline_partitions: shard.partitions.offline(),
    }
}

impl AdminSource for BrokerObserver {
    fn collect(&self) -> Vec<ShardSnapshot> {
        let Some(AttachedShards { senders, .. }) = self.shards.get() else {
            return Vec::new();
        };
        let (tx, rx) = std::sync::mpsc::channel::<ShardSnapshot>();
        let mut asked = 0;
        for sender in senders.iter() {
            let tx = tx.clone();
            let task: ShardTask = Box::new(move |shard: Rc<Shard>| {
                Box::pin(async move {
                    // The storage gauges are read from the logs when someone looks, not on
                    // a timer: a sweep of every partition each second kept an idle broker
                    // of 100,000 partitions ~4 % of a core busy (perf/RESULTS.md, session 34).
                    let publish = |_: &str, _, p: &Rc<crate::partition::Partition>| {
                        p.publish_storage_metrics()
                    };
                    shard.partitions.for_each_online(publish);
                    shard.followers.for_each_online(publish);
                    let mut snapshot = shard.metrics.snapshot();
                    snapshot.storage = storage_health(&shard);
                    snapshot.share = super::group_metrics::share_series(&shard);
                    let _ = tx.send(snapshot);
                })
            });
            if sender.try_send(task.into()).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        // A stuck shard must not hang /metrics: its snapshot is left out (the watchdog
        // reports it).
        let deadline = Instant::now() + ADMIN_COLLECT_TIMEOUT;
        let mut snapshots = Vec::with_capacity(asked);
        while snapshots.len() < asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(s) => snapshots.push(s),
                Err(_) => break,
            }
        }
        snapshots.sort_by_key(|s| s.shard_id);
        snapshots
    }

    fn status(&self) -> serde_json::Value {
        let cores = self
            .shards
            .get()
            .map(|a| a.cores.clone())
            .unwrap_or_default();
        let shards: Vec<ShardStatus> = self
            .collect()
            .iter()
            .map(|s| ShardStatus::from_snapshot(s, cores.get(s.shard_id).copied().unwrap_or(0)))
            .collect();
        status_document(&self.broker_info(), self.ready(), &shards)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn console(&self, query: &ConsoleQuery) -> Result<serde_json::Value, ConsoleError> {
        let query = query.clone();
        let mut answer = self.ask_shard_zero(move |shard| super::console::answer(shard, query))?;
        if let Some(fields) = answer.as_object_mut() {
            // The console hides its create and delete controls when they would be refused.
            fields.insert("read_only".into(), self.console_read_only.into());
        }
        Ok(answer)
    }

    fn console_write(&self, write: &ConsoleWrite) -> Result<serde_json::Value, ConsoleError> {
        let write = write.clone();
        self.ask_shard_zero(move |shard| super::console::write(shard, write))
    }

    fn console_read_only(&self) -> bool {
        self.console_read_only
    }

    fn broker_info(&self) -> BrokerInfo {
        BrokerInfo::new(self.node_id, self.started)
            .with_io_driver(self.shards.get().map(|a| a.io_driver))
    }
}
